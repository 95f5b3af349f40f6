"""The gate in front of Datasette: read-only methods, and a login when one is configured."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from datasette.utils import path_with_format
from datasette.utils.asgi import Request, Response

from .app import LedgerDatasette
from .render import PAGE, PageBudget

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]

PUBLIC_PREFIXES = ("/-/static/", "/-/static-plugins/", "/ledger-static/")
PUBLIC_PATHS = ("/-/login", "/favicon.ico")
LOGIN_POSTS = ("/-/login", "/-/logout")


def _actor(ds: LedgerDatasette, scope: MutableMapping[str, Any]) -> Any:
    request = Request(scope, None)
    cookie = request.cookies.get("ds_actor")
    if cookie:
        from datasette.actor_auth_cookie import actor_from_request

        actor = actor_from_request(ds, request)
        if actor:
            return actor
    if request.headers.get("authorization", "").startswith("Basic "):
        from datasette_auth_passwords.utils import scope_has_valid_authorization

        return scope_has_valid_authorization(scope, ds)
    return None


def gate(ds: LedgerDatasette, app: ASGIApp) -> ASGIApp:
    async def gated(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        path = scope.get("path", "")
        base = ds.urls.path("/").rstrip("/")
        local = path[len(base) :] if base and path.startswith(base) else path
        method = scope.get("method", "GET")
        login_post = ds.ledger_auth is not None and method == "POST" and local in LOGIN_POSTS
        if method not in ("GET", "HEAD") and not login_post:
            response = Response.text(
                "405 Method Not Allowed: the ledger's Datasette is read-only\n",
                status=405,
                headers={"Allow": "GET, HEAD"},
            )
            await response.asgi_send(send)
            return
        public = local in PUBLIC_PATHS or local.startswith(PUBLIC_PREFIXES)
        if ds.ledger_auth is not None and not public and not _actor(ds, scope):
            wants_html = not re.search(r"\.(json|csv)$", local) and method == "GET"
            if wants_html:
                response = Response.redirect(ds.urls.path("/-/login"))
            else:
                response = Response.text("401 Unauthorized: log in first\n", status=401)
            await response.asgi_send(send)
            return
        PAGE.set(PageBudget(path_with_format(request=Request(scope, receive), format="json")))
        await app(scope, receive, send)

    return gated

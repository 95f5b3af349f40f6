"""The read side: a Datasette over the live file, read-only, configured by metadata.yml.

Read-only holds at three levels:

* Datasette opens the file with ``mode=ro`` for every read (it is served mutable, so it
  sees new rows at once), and ``ReadOnlyDatabase`` refuses Datasette's write path
  outright, so no plugin and no canned query can write through it;
* ``metadata.yml`` defines no writable canned query, and ``load_metadata`` refuses one;
* the ASGI gate below answers 405 to every method but GET and HEAD (the login form's
  POST excepted) before Datasette sees the request.

With a password hash configured, the same gate turns away every anonymous request except
the login form and static files, and ``allow`` blocks make Datasette's own permission
checks agree.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from collections.abc import Awaitable, Callable, Generator, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlencode

from datasette import hookimpl
from datasette.app import Datasette
from datasette.database import Database
from datasette.facets import ColumnFacet
from datasette.plugins import pm
from datasette.utils import parse_metadata
from datasette.utils.asgi import Forbidden, Request, Response
from markupsafe import Markup, escape

from .errors import ConfigError
from .facets import KeptCountsFacet
from .schema import ORDER_FACETS
from .views import RECONCILIATION_VIEWS

if TYPE_CHECKING:
    from pluggy import Result  # datasette's plugin manager; only its hook result type

# Facet suggestions cost 10-80x on large tables; explicit facets live in metadata.yml.
DATASETTE_SETTINGS: dict[str, Any] = {
    "suggest_facets": False,
    "allow_download": False,
    "default_page_size": 50,
    # Auditors reconcile with their own SQL over the whole log (a scan of a million
    # events takes seconds); they should get the answer, not a time-out.
    "sql_time_limit_ms": 15_000,
    "max_returned_rows": 1000,
    "facet_time_limit_ms": 500,
    "allow_csv_stream": True,
    # Tables and views stream every row as CSV; 0 lifts the 100 MB default cap so a
    # month's export is never cut short.
    "max_csv_mb": 0,
}

METADATA_DB = "ledger"  # the database name metadata.yml is written for
PLUGIN = "ledger-readside"
USER_ENV = "LEDGER_DATASETTE_USER"
HASH_ENV = "LEDGER_DATASETTE_PASSWORD_HASH"
DEFAULT_USER = "ledger"

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


# --- configuration ------------------------------------------------------------------------


def default_metadata_path() -> Path | None:
    candidate = HERE.parent / "metadata.yml"
    return candidate if candidate.exists() else None


def load_metadata(path: Path | None, db_name: str = METADATA_DB) -> dict[str, Any]:
    """Parse metadata.yml and point it at ``db_name`` (it is written for ``ledger``)."""
    if path is None:
        return {}
    metadata: dict[str, Any] = parse_metadata(path.read_text(encoding="utf-8"))
    databases = metadata.get("databases") or {}
    if db_name != METADATA_DB and METADATA_DB in databases:
        databases[db_name] = databases.pop(METADATA_DB)
    for dashboard in (metadata.get("plugins") or {}).get("datasette-dashboards", {}).values():
        for chart in (dashboard.get("charts") or {}).values():
            if chart.get("db") == METADATA_DB:
                chart["db"] = db_name
    for name, db in databases.items():
        for query_name, query in (db.get("queries") or {}).items():
            if isinstance(query, Mapping) and query.get("write"):
                raise ConfigError(
                    f"metadata: canned query {name}/{query_name} has write: true;"
                    " the read side never writes"
                )
    return metadata


def hash_password(password: str) -> str:
    from datasette_auth_passwords.utils import hash_password as _hash

    return str(_hash(password))


def password_hash_from(password: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The hash to guard Datasette with: from a password given now, else from the env."""
    env = os.environ if env is None else env
    if password is not None:
        if not password.strip():
            raise ConfigError("--datasette-password: an empty password protects nothing")
        return hash_password(password)
    configured = env.get(HASH_ENV, "").strip()
    if configured and configured.count("$") != 3:
        raise ConfigError(
            f"{HASH_ENV} is not a pbkdf2_sha256$iterations$salt$hash value"
            " (make one with: datasette hash-password)"
        )
    return configured or None


# --- the Datasette --------------------------------------------------------------------------


class ReadOnlyDatabase(Database):  # type: ignore[misc]
    """Datasette's one write path, closed: nothing served here can change the file."""

    async def execute_write_fn(self, fn: Any, block: bool = True) -> Any:
        raise Forbidden("the ledger's read side is read-only")


class LedgerDatasette(Datasette):  # type: ignore[misc]
    """A Datasette that knows its login (kept out of metadata, so no page can show it)."""

    # the facet counts triggers keep, by table (KeptCountsFacet reads them)
    kept_facets: Mapping[str, tuple[str, ...]] = {"orders": ORDER_FACETS}

    def __init__(self, *args: Any, auth: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.ledger_auth = auth  # before Datasette's __init__, which already builds its app
        self._database_urls: dict[str, str] = {}
        super().__init__(*args, **kwargs)

    def plugin_config(
        self,
        plugin_name: str,
        database: str | None = None,
        table: str | None = None,
        fallback: bool = True,
    ) -> Any:
        if plugin_name == "datasette-auth-passwords":
            return copy.deepcopy(self.ledger_auth) if self.ledger_auth else None
        if plugin_name == "datasette-render-markdown":
            # No ledger column holds markdown. The plugin (a dependency of
            # datasette-dashboards) asks for its config for every text cell of every
            # page, and each ask walks the metadata: ~10 ms on a page of 50 orders.
            return {"patterns": []}
        return super().plugin_config(plugin_name, database, table, fallback)

    def database_url(self, database: str) -> str:
        # Once per database: urls.database re-encodes the name, and render_cell asks per cell.
        url = self._database_urls.get(database)
        if url is None:
            url = self._database_urls[database] = self.urls.database(database)
        return url

    @functools.cached_property
    def currency_symbol(self) -> str:
        # Read once: render_cell runs for every cell, and plugin_config walks the metadata.
        config = self.plugin_config(PLUGIN) or {}
        return str(config.get("currency_symbol", ""))


def make_datasette(
    db_path: Path,
    metadata: Path | None = None,
    password_hash: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> LedgerDatasette:
    """A Datasette on the live file, mutable (so it sees new rows), never writing;
    ``settings`` over DATASETTE_SETTINGS."""
    _register_plugin()
    db_path = Path(db_path)
    name = db_path.stem
    meta = load_metadata(metadata if metadata is not None else default_metadata_path(), name)
    auth = None
    if password_hash:
        user = os.environ.get(USER_ENV, "").strip() or DEFAULT_USER
        auth = {f"{user}_password_hash": password_hash}
        only_user = {"id": [user]}
        meta["allow"] = only_user
        meta["allow_sql"] = only_user
    ds = LedgerDatasette(
        files=[str(db_path)],
        metadata=meta,
        settings={**DATASETTE_SETTINGS, **(settings or {})},
        template_dir=str(TEMPLATES),
        static_mounts=[("ledger-static", str(STATIC))],
        auth=auth,
    )
    ds.remove_database(name)
    ds.add_database(ReadOnlyDatabase(ds, path=str(db_path), is_mutable=True), name=name)
    return ds


def datasette_app(
    db_path: Path, metadata: Path | None = None, password_hash: str | None = None
) -> Any:
    return make_datasette(db_path, metadata, password_hash).app()


# --- the gate: read-only methods, and a login in front of everything when configured --------

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


def _gate(ds: LedgerDatasette, app: ASGIApp) -> ASGIApp:
    async def gate(
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
        await app(scope, receive, send)

    return gate


# --- readable values ------------------------------------------------------------------------

TIMESTAMP_COLUMNS = frozenset({"date_added", "date_shipped", "day"})
JSON_COLUMNS = frozenset({"payload", "variation"})
SEQ_COLUMNS = frozenset(
    {"seq", "first_seq", "last_seq", "already_had_seq", "same_payload_seq", "event_seq"}
)
PRETTY_LIMIT = 256 * 1024
_TS = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]00:?00)?$")


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]|[^\s{}\[\],:"]+')


def reindent_json(text: str, indent: str = "  ") -> str:
    """Pretty-print JSON text without re-serialising it: every string, number and
    escape keeps its exact characters; only whitespace between tokens changes.
    Token by token (a regex finds them), not character by character: a table page
    shows fifty payloads."""
    out: list[str] = []
    depth = 0
    tokens = _JSON_TOKEN.findall(text)
    for i, token in enumerate(tokens):
        if token in ("{", "["):
            closing = "}" if token == "{" else "]"
            if i + 1 < len(tokens) and tokens[i + 1] == closing:
                out.append(token)  # an empty map or list stays on one line
                continue
            depth += 1
            out.append(token + "\n" + indent * depth)
        elif token in ("}", "]"):
            if out and out[-1] in ("{", "["):
                out.append(token)
                continue
            depth -= 1
            out.append("\n" + indent * depth + token)
        elif token == ",":
            out.append(",\n" + indent * depth)
        elif token == ":":
            out.append(": ")
        else:
            out.append(token)
    return "".join(out)


def format_money(cents: int, symbol: str = "") -> str:
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{symbol}{whole:,}.{frac:02d}"


def format_timestamp(value: str) -> str | None:
    match = _TS.match(value.strip())
    if not match:
        return None
    return f"{match.group(1)} {match.group(2)} UTC"


@functools.lru_cache(maxsize=4096)
def column_kind(column: str) -> str:
    """How a column's cells render, decided once per column name: the same for every row,
    and render_cell runs for every cell (~15 µs a cell was most of a 1,000-row page)."""
    if column.endswith("_cents"):
        return "money"
    if column in TIMESTAMP_COLUMNS or column.endswith("_at"):
        return "timestamp"
    if column in JSON_COLUMNS:
        return "json"
    if column in SEQ_COLUMNS:
        return "seq"
    if column == "order_id":
        return "order"
    if column == "code":
        return "sku"
    return ""


def render_value(
    value: Any, column: str, table: str | None, db_path: str, currency: str
) -> Markup | None:
    """HTML for one cell, or None to let Datasette render it as usual."""
    kind = column_kind(column)
    if not kind or isinstance(value, bool):
        return None
    if isinstance(value, int):
        if kind == "money":
            return Markup(
                f'<span class="money" title="{value} cents">'
                f"{escape(format_money(value, currency))}</span>"
            )
        if kind == "seq" and table not in ("events", "deliveries"):
            return Markup(f'<a href="{escape(db_path)}/events/{value}">{value}</a>')
        return None
    if not isinstance(value, str):
        return None
    if kind == "timestamp":
        shown = format_timestamp(value)
        if not shown:
            return None
        text = escape(value)
        return Markup(f'<time datetime="{text}" title="{text}">{escape(shown)}</time>')
    if kind == "json":
        return _render_json(value, column)
    if kind == "order" and value:
        return _link(f"{db_path}/history_of_order", "order_id", value, "history of this order")
    if kind == "sku" and value:  # on its own history too: back to the first page
        return _link(f"{db_path}/history_of_sku", "code", value, "history of this SKU")
    return None


def _link(page: str, param: str, value: str, title: str) -> Markup:
    href = escape(f"{page}?{urlencode({param: value})}")
    return Markup(f'<a href="{href}" title="{title}">{escape(value)}</a>')


def _render_json(value: str, column: str) -> Markup | None:
    stripped = value.strip()
    if not stripped.startswith(("{", "[")):
        return None
    if len(value) > PRETTY_LIMIT:
        pretty = (
            value[:PRETTY_LIMIT] + "\n… (truncated here: the .json and .csv exports hold it all)"
        )
    else:
        try:
            json.loads(value)
        except ValueError:
            return None
        pretty = reindent_json(value)
    if column != "payload":
        return Markup('<pre class="json">{}</pre>').format(pretty)
    summary = f"{len(value.encode('utf-8')):,} bytes of JSON"
    order_id = re.search(r'"id"\s*:\s*"([^"]{1,40})"', value[:4096])
    if order_id:
        summary = f"order {order_id.group(1)} · {summary}"
    return Markup(
        '<details class="payload"><summary>{}</summary><pre class="json">{}</pre></details>'
    ).format(summary, pretty)


# --- the plugin ---------------------------------------------------------------------------

_F = TypeVar("_F", bound=Callable[..., Any])


def _hook(fn: _F) -> _F:
    return cast(_F, hookimpl(fn))


def _wrapper(fn: _F) -> _F:
    return cast(_F, hookimpl(hookwrapper=True)(fn))


FacetClasses = list[list[type[Any]]]


OPEN_PAYLOAD_JS = "document.querySelectorAll('details.payload').forEach(d => d.open = true);"
FOLD_DESCRIPTIONS_JS = """
document.querySelectorAll('dl.column-descriptions').forEach(dl => {
  const fold = document.createElement('details');
  fold.className = 'column-descriptions';
  const summary = document.createElement('summary');
  summary.textContent = 'What each column means (' + dl.querySelectorAll('dt').length + ')';
  dl.parentNode.insertBefore(fold, dl);
  fold.appendChild(summary);
  fold.appendChild(dl);
});
"""


class _Hooks:
    """Hooks that act only on a LedgerDatasette (other Datasettes in the process are left be)."""

    __name__ = __name__  # Datasette lists plugins by module name

    @_hook
    def asgi_wrapper(self, datasette: Datasette) -> Callable[[ASGIApp], ASGIApp]:
        if not isinstance(datasette, LedgerDatasette):
            return lambda app: app
        return lambda app: _gate(datasette, app)

    @_hook
    def render_cell(
        self, value: Any, column: str, table: str | None, database: str, datasette: Datasette
    ) -> Markup | None:
        if not isinstance(datasette, LedgerDatasette):
            return None
        return render_value(
            value, column, table, datasette.database_url(database), datasette.currency_symbol
        )

    @_wrapper
    def register_facet_classes(self) -> Generator[None, Result[FacetClasses], None]:
        # Datasette's column facet, swapped for the subclass that reads kept counts. It
        # behaves exactly like Datasette's on any Datasette that declares none.
        outcome = yield
        outcome.force_result(
            [
                [KeptCountsFacet if c is ColumnFacet else c for c in classes]
                for classes in outcome.get_result()
            ]
        )

    @_hook
    def extra_template_vars(self, database: str | None, datasette: Datasette) -> dict[str, Any]:
        if not isinstance(datasette, LedgerDatasette) or database is None:
            return {}
        return {"more_sku_movements": functools.partial(more_sku_movements, datasette, database)}

    @_hook
    def extra_css_urls(self, datasette: Datasette) -> list[str]:
        if not isinstance(datasette, LedgerDatasette):
            return []
        return [datasette.urls.path("/ledger-static/ledger.css")]

    @_hook
    def extra_body_script(self, view_name: str | None, datasette: Datasette) -> str | None:
        if not isinstance(datasette, LedgerDatasette):
            return None
        if view_name == "row":  # on one event's own page its payload opens by itself
            return OPEN_PAYLOAD_JS
        if view_name == "table":  # column descriptions fold away above the rows
            return FOLD_DESCRIPTIONS_JS
        return None

    @_hook
    def menu_links(self, datasette: Datasette) -> list[dict[str, str]]:
        if not isinstance(datasette, LedgerDatasette):
            return []
        return [{"href": datasette.urls.path("/-/reconciliation"), "label": "Reconciliation"}]

    @_hook
    def register_routes(self) -> list[tuple[str, Any]]:
        return [(r"^/-/reconciliation$", reconciliation_page)]


# A row value, not "store_id > ? OR (store_id = ? AND seq > ?)": SQLite seeks the index
# to it, where the OR read a best-seller's movements from its first (0.01 against 114 ms).
MORE_SKU_MOVEMENTS = """
SELECT EXISTS (
  SELECT 1 FROM inventory_movements INDEXED BY read_inventory_movements_sums
  WHERE code = :code AND (store_id, seq) > (:store_id, :seq))
"""


async def more_sku_movements(
    datasette: Datasette, database: str, code: str, store_id: str, seq: int
) -> bool:
    """Whether the SKU moved after (store_id, seq): history_of_sku links a next page only
    then, so a page that ends on the SKU's last movement does not lead to an empty one."""
    params = {"code": code, "store_id": store_id, "seq": seq}
    result = await datasette.get_database(database).execute(MORE_SKU_MOVEMENTS, params)
    return bool(result.first()[0])


async def reconciliation_page(request: Request, datasette: Datasette) -> Response:
    if not isinstance(datasette, LedgerDatasette):
        return Response.text("not found", status=404)
    db = datasette.get_database()
    await datasette.ensure_permissions(request.actor, [("view-database", db.name), "view-instance"])
    config = datasette.plugin_config(PLUGIN) or {}
    expect_empty = set(config.get("expect_empty") or ())
    tables_meta = (datasette.metadata("tables", database=db.name) or {}) if db else {}
    views = []
    for name in config.get("reconciliation_views") or RECONCILIATION_VIEWS:
        meta = tables_meta.get(name) or {}
        try:
            rows = (await db.execute(f"SELECT count(*) FROM [{name}]")).first()
            count: int | None = int(rows[0]) if rows else 0
            error = None
        except Exception as exc:  # a view that times out or is missing still gets a line
            count, error = None, str(exc)
        views.append(
            {
                "name": name,
                "title": meta.get("title") or name,
                "description": meta.get("description") or "",
                "count": count,
                "error": error,
                "expect_empty": name in expect_empty,
                "url": datasette.urls.table(db.name, name),
                "csv": datasette.urls.table(db.name, name, format="csv") + "?_stream=on&_size=max",
            }
        )
    queries = []
    for name in config.get("reconciliation_queries") or ():
        query = await datasette.get_canned_query(db.name, name, request.actor)
        if query is None:
            continue
        queries.append(
            {
                "name": name,
                "title": query.get("title") or name,
                "description": query.get("description") or "",
                "url": datasette.urls.query(db.name, name),
                "params": named_params(query.get("sql", "")),
            }
        )
    return Response.html(
        await datasette.render_template(
            "reconciliation.html",
            {
                "views": views,
                "queries": queries,
                "database": db.name,
                "max_rows": datasette.setting("max_returned_rows"),
            },
            request=request,
        )
    )


def named_params(sql: str) -> list[str]:
    """The ``:name`` parameters of a canned query, in order of first use."""
    seen: list[str] = []
    for name in re.findall(r"(?<![:\w]):(\w+)", sql):
        if name not in seen:
            seen.append(name)
    return seen


_registered = _Hooks()


def _register_plugin() -> None:
    if not pm.is_registered(_registered):
        pm.register(_registered, name=PLUGIN)

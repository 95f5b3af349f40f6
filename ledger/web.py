"""The HTTP edge: read the post, verify it, hand it to the writer, answer.

A post for an unknown store is refused before its body is read; a large body is checked
in a thread, never on the event loop that reads everyone's next request. Each post gets
one log line (outcome, status, store, order, seq, milliseconds, peer), never a secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from litestar import Litestar, MediaType, Request, Response, get, post, route
from litestar.datastructures import State
from litestar.exceptions import ClientException, InternalServerException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.params import HeaderParameter

from .db import connection
from .errors import (
    BadPost,
    Rehearsed,
    Rejected,
    StorageUnavailable,
    TooLarge,
    TooSlow,
    WrongMethod,
)
from .form import extract_order
from .heads import Keys, last_head, note
from .jobs import AppendSnapshot, RecordRejection, Rehearse
from .log import Delivery, Verdict, last_seq, utcnow
from .metrics import CONTENT_TYPE, Metrics
from .post import check_post
from .projections.positions import position
from .settings import Settings
from .signature import store_api_key
from .startup import open_ledger
from .writer import Writer

log = logging.getLogger("ledger.web")

StoreHeader = Annotated[str | None, HeaderParameter(name="X-ORDER-DESK-STORE-ID", required=False)]
HashHeader = Annotated[str | None, HeaderParameter(name="X-ORDER-DESK-HASH", required=False)]


def _text(status: int, line: str, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(line + "\n", status_code=status, media_type=MediaType.TEXT, headers=headers)


# Bodies up to this size are checked on the event loop (~50 us for a 4 KB order); a
# larger one goes to a thread, so one junk post cannot hold everyone's next request.
INLINE_CHECK_BYTES = 64 * 1024
T = TypeVar("T")


def _delivery(request: Request[Any, Any, Any], store_id: str | None) -> Delivery:
    announced = request.headers.get("content-length", "")
    return Delivery(
        utcnow(),
        request.client.host if request.client else None,
        request.method,
        request.headers.get("content-type"),
        int(announced) if announced.isdigit() and len(announced) < 16 else None,
        store_id,
    )


async def _off_loop(large: bool, fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args) if large else fn(*args)


def _logged(state: State, started: float, d: Delivery, status: int, outcome: str,
            order: str | None = None, seq: int | None = None) -> None:  # fmt: skip
    seconds = time.perf_counter() - started
    log.info(
        "%s %d store=%r order=%r seq=%s %.1fms peer=%s", outcome, status, d.store_id, order,
        seq, seconds * 1000, d.remote_addr,
    )  # fmt: skip
    state.metrics.post(outcome, status, seconds)


async def _read_body(request: Request[Any, Any, Any], timeout_s: float) -> bytes:
    chunks = []
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                chunks.append(chunk)
    except RequestEntityTooLarge:
        raise TooLarge("body is larger than the configured limit") from None
    except TimeoutError:
        raise TooSlow(f"body not received within {timeout_s:g} s") from None
    except ClientException as exc:
        raise BadPost(f"bad request: {exc.detail}") from None
    except InternalServerException:
        raise BadPost("body ended before its announced length") from None
    return b"".join(chunks)


async def _record_rejection(writer: Writer, d: Delivery, exc: Rejected, sha: str | None) -> None:
    try:
        await writer.run(RecordRejection(d, exc.status, exc.reason, sha))
    except StorageUnavailable:
        log.error("rejected delivery could not be recorded (%s)", exc.reason)


async def _refuse(
    state: State, d: Delivery, exc: Rejected, sha: str | None, started: float
) -> None:
    await _record_rejection(state.writer, d, exc, sha)
    _logged(state, started, d, exc.status, "rejected")


async def _written(state: State, started: float, d: Delivery, job: AppendSnapshot | Rehearse,
                   order: str) -> Verdict:  # fmt: skip
    try:
        verdict: Verdict = await state.writer.run(job)
    except StorageUnavailable:
        _logged(state, started, d, 503, "unavailable", order)
        raise
    _logged(state, started, d, verdict.http_status, verdict.outcome, order, verdict.seq)
    return verdict


@post("/orderdesk", status_code=200, media_type=MediaType.TEXT)
async def receive_order(
    request: Request[Any, Any, Any],
    state: State,
    store_id: StoreHeader = None,
    signature: HashHeader = None,
) -> Response[str]:
    settings: Settings = state.settings
    started = time.perf_counter()
    delivery = _delivery(request, store_id)
    order: bytes | None = None
    try:
        store_api_key(settings.stores, store_id)  # before the body: a stranger costs nothing
        body = await _read_body(request, settings.body_timeout_s)
        delivery = delivery._replace(body_bytes=len(body))
        large = len(body) > INLINE_CHECK_BYTES
        content_type = request.headers.get("content-type")  # whole: the record keeps a part
        order = await _off_loop(large, extract_order, body, content_type)
        snapshot = await _off_loop(large, check_post, order, store_id, signature, settings.stores)
    except Rejected as exc:
        answer = Rehearsed.of(exc) if settings.rehearses(store_id) else exc
        sha = hashlib.sha256(order).hexdigest() if order is not None else None
        await _refuse(state, delivery, answer, sha, started)
        raise answer from None
    if settings.rehearses(store_id):
        rehearsed = await _written(state, started, delivery, Rehearse(delivery, snapshot),
                                   snapshot.order_id)  # fmt: skip
        return _text(400, rehearsed.reason or "")
    verdict = await _written(state, started, delivery, AppendSnapshot(delivery, snapshot),
                             snapshot.order_id)  # fmt: skip
    if verdict.outcome == "duplicate":
        return _text(200, f"duplicate of seq {verdict.seq}")
    return _text(200, f"appended as seq {verdict.seq}")


@route(
    "/orderdesk",
    http_method=["GET", "PUT", "PATCH", "DELETE"],
    status_code=405,
    media_type=MediaType.TEXT,
)
async def wrong_method(
    request: Request[Any, Any, Any], state: State, store_id: StoreHeader = None
) -> Response[str]:
    exc = WrongMethod(f"{request.method} is not allowed: Order Desk posts with POST")
    await _refuse(state, _delivery(request, store_id), exc, None, time.perf_counter())
    return _text(405, exc.reason, {"Allow": "POST"})


@get("/head", media_type=MediaType.TEXT, sync_to_thread=True)
def signed_head(state: State) -> Response[str]:
    """The latest signed head, for witnesses (`ledger witness URL`)."""
    settings: Settings = state.settings
    try:
        with connection(settings.db_path, readonly=True, busy_timeout_ms=2000) as conn:
            last, keys = last_head(conn), Keys.read(conn)
    except sqlite3.Error as exc:
        return _text(503, f"unavailable: {exc}")
    if last is None:
        return _text(503, "no signed head yet")
    return Response(note(last, keys.origin), media_type=MediaType.TEXT)


@get("/metrics", media_type=CONTENT_TYPE, sync_to_thread=True)
def metrics(state: State) -> Response[bytes]:
    """Prometheus's scrape (ledger/metrics.py says what each series is)."""
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)


@get("/healthz", media_type=MediaType.JSON, sync_to_thread=True)
def healthz(state: State) -> Response[dict[str, Any]]:
    settings: Settings = state.settings
    try:
        with connection(settings.db_path, readonly=True, busy_timeout_ms=2000) as conn:
            last, projected = last_seq(conn), position(conn)
    except sqlite3.Error as exc:
        return Response({"status": "unavailable", "error": str(exc)}, status_code=503)
    return Response({"status": "ok", "last_seq": last, "projected_seq": projected})


def _on_rejected(_: Request[Any, Any, Any], exc: Rejected) -> Response[str]:
    return _text(exc.status, exc.reason)


def _on_unavailable(_: Request[Any, Any, Any], exc: StorageUnavailable) -> Response[str]:
    # 503 makes Order Desk retry; nothing was acknowledged, so nothing is lost.
    return _text(503, f"not recorded, retry later: {exc}", {"Retry-After": "30"})


def create_app(settings: Settings) -> Litestar:
    """Build the receiver. Fails closed: no store key, no app."""
    settings.require_stores()

    def start(app: Litestar) -> None:
        open_ledger(settings)
        app.state.writer = Writer(settings, on_batch=app.state.metrics.batches.observe)
        app.state.writer.start()

    def running(app: Litestar) -> dict[str, bool]:
        writer, read_side = getattr(app.state, "writer", None), app.state.get("read_side")
        up = {"writer": writer is not None and writer.alive()}
        return up | ({"read_side": read_side.up} if read_side is not None else {})

    def stop(app: Litestar) -> None:
        if getattr(app.state, "writer", None):
            app.state.writer.stop()

    # The handlers take `state: State` (Litestar hands it over as is) rather than named
    # dependencies: resolving those cost ~9% of the event loop's time per request.
    app = Litestar(
        route_handlers=[receive_order, wrong_method, healthz, signed_head, metrics],
        state=State({"settings": settings}),
        exception_handlers={Rejected: _on_rejected, StorageUnavailable: _on_unavailable},
        on_startup=[start],
        on_shutdown=[stop],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
        logging_config=None,  # the process configures logging: one format for every line
    )
    app.state.metrics = Metrics(settings.db_path, lambda: running(app))
    return app

"""``ledger serve``: the receiver in this process, the read side in a supervised child,
one file; SIGTERM drains the receiver, then stops the read side."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from pathlib import Path
from typing import Any, NamedTuple

import uvicorn

from .listen import ACCEPT_BATCH, bind, connection_cap, forwarded, guarded_protocol
from .publish import Publish, publish_heads
from .readside.app import length_limit_for
from .readside.process import ReadSideConfig, Supervised, supervise
from .settings import Settings
from .web import create_app

log = logging.getLogger("ledger.serve")


class _Server(uvicorn.Server):
    """uvicorn re-raises the signal it caught after shutdown; here the process owns signals."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass

    def capture_signals(self) -> Any:  # uvicorn >= 0.29
        from contextlib import nullcontext

        return nullcontext()


class Addresses(NamedTuple):
    host: str
    port: int
    datasette_host: str
    datasette_port: int


async def serve(
    settings: Settings,
    at: Addresses,
    metadata: Path | None,
    datasette_password_hash: str | None = None,
    publish: Publish | None = None,
) -> None:
    receiver_sock = bind(at.host, at.port, "the receiver")
    datasette_sock = bind(at.datasette_host, at.datasette_port, "Datasette")
    read_side = ReadSideConfig(
        datasette_sock.fileno(), str(settings.db_path), str(metadata) if metadata else None,
        datasette_password_hash, settings.datasette_user, settings.header_timeout_s,
        settings.max_connections, length_limit_for(settings.max_body_bytes),
        list(settings.trusted_proxies),
    )  # fmt: skip
    protocol = guarded_protocol(
        "receiver", settings.header_timeout_s, connection_cap(settings.max_connections)
    )
    app = create_app(settings)
    app.state.read_side = read_side_state = Supervised()
    server = _Server(
        uvicorn.Config(
            app, http=protocol, log_level="info", lifespan="on",
            access_log=False, backlog=ACCEPT_BATCH, **forwarded(settings.trusted_proxies),
        )
    )  # fmt: skip
    # Everything built so far lives as long as the process: out of the collector's way.
    gc.collect()
    gc.freeze()
    loop = asyncio.get_running_loop()

    def shutdown() -> None:
        log.info("shutting down: draining requests")
        server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown)
    log.info(
        "receiver on http://%s:%d/orderdesk for stores %s, Datasette on http://%s:%d/",
        at.host, at.port, ", ".join(sorted(settings.stores)), at.datasette_host,
        at.datasette_port,
    )  # fmt: skip
    if settings.rehearse:
        stores = "every store" if "*" in settings.rehearse else ", ".join(sorted(settings.rehearse))
        log.warning("rehearsal: posts of %s are answered 400 and never appended", stores)
    stopped = asyncio.Event()
    reading = asyncio.create_task(supervise(read_side, stopped, read_side_state))
    publishing = asyncio.create_task(publish_heads(settings, publish, stopped)) if publish else None
    try:
        await server.serve(sockets=[receiver_sock])
    finally:
        stopped.set()
        await reading
        if publishing is not None:
            await publishing
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

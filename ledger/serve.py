"""Run the receiver and Datasette in one process, on one file; SIGTERM drains both."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from pathlib import Path
from typing import Any, NamedTuple

import uvicorn

from .errors import ConfigError
from .publish import Publish, publish_heads
from .readside.app import datasette_app
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


def bind(host: str, port: int, what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it every keep-alive response waits ~40 ms for delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen for {what} on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


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
    app = create_app(settings)
    datasette = datasette_app(
        settings.db_path, metadata, datasette_password_hash, settings.datasette_user
    )
    servers = [
        _Server(uvicorn.Config(app, log_level="info", lifespan="on", access_log=False)),
        _Server(uvicorn.Config(datasette, log_level="warning", lifespan="off")),
    ]
    # Everything built so far (both apps, their modules) lives as long as the process:
    # out of the collector's way, a full collection pauses a page for ~7 ms, not ~30.
    gc.collect()
    gc.freeze()
    loop = asyncio.get_running_loop()

    def shutdown() -> None:
        log.info("shutting down: draining requests")
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown)
    log.info("receiver on http://%s:%d/orderdesk, Datasette on http://%s:%d/", *at)
    stopped = asyncio.Event()
    publishing = asyncio.create_task(publish_heads(settings, publish, stopped)) if publish else None
    try:
        await asyncio.gather(
            servers[0].serve(sockets=[receiver_sock]), servers[1].serve(sockets=[datasette_sock])
        )
    finally:
        stopped.set()
        if publishing is not None:
            await publishing
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

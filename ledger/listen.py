"""Listening sockets, connections that cannot hold them, and whose forwarding is believed.

uvicorn's HTTP/1.1 protocol waits for a request's headers for as long as the peer likes,
and accepts until the process runs out of descriptors; ``accept()`` then fails with
EMFILE and asyncio stops accepting for a second at a time, real posts included. Here a
connection has ``header_timeout_s`` to finish its headers, and when connections near the
descriptor limit, the oldest ones still waiting for headers are closed to make room.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import time
from collections.abc import Sequence
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import ConfigError

log = logging.getLogger("ledger.listen")

# asyncio accepts up to ``backlog`` sockets in one go, before any of them reaches a
# protocol that could make room; the rest is files, pipes and the database.
ACCEPT_BATCH = 128
RESERVED_FDS = 64
FD_WANTED = 65_536
TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
REPORT_EVERY_S = 10.0


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
    sock.listen(ACCEPT_BATCH)
    sock.set_inheritable(True)
    return sock


def connection_cap(max_connections: int) -> int:
    """How many connections one server may hold: ``max_connections``, fewer when the
    descriptor limit (raised to its hard limit first) leaves less room."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FD_WANTED if hard == resource.RLIM_INFINITY else min(hard, FD_WANTED)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        soft = wanted
    return max(8, min(max_connections, soft - RESERVED_FDS - ACCEPT_BATCH))


class _Closed:
    """Connections closed for want of headers, reported at most every REPORT_EVERY_S."""

    def __init__(self, what: str) -> None:
        self.what, self.timed_out, self.evicted = what, 0, 0
        self.reported = float("-inf")  # the first is reported at once

    def count(self, *, evicted: bool) -> None:
        if evicted:
            self.evicted += 1
        else:
            self.timed_out += 1
        now = time.monotonic()
        if now - self.reported >= REPORT_EVERY_S:
            log.warning(
                "%s: closed %d connections that did not finish their headers in time and %d"
                " to make room for new ones", self.what, self.timed_out, self.evicted,
            )  # fmt: skip
            self.timed_out = self.evicted = 0
            self.reported = now


def guarded_protocol(what: str, header_timeout_s: float, cap: int) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a header deadline and eviction at ``cap`` connections."""
    waiting: dict[Guarded, None] = {}  # insertion order: the oldest first
    closed = _Closed(what)

    class Guarded(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _partial = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > cap:
                oldest = next((p for p in waiting if p is not self), None)
                if oldest is not None:
                    oldest._headers_done()  # out of the queue now: it closes next turn
                    closed.count(evicted=True)
                    oldest.transport.close()
            self._await_headers()

        def data_received(self, data: bytes) -> None:
            self._partial = True
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._headers_done()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._partial = False
                self._await_headers()  # the next request on a kept-alive connection

        def connection_lost(self, exc: Exception | None) -> None:
            self._headers_done()
            super().connection_lost(exc)

        def _await_headers(self) -> None:
            waiting[self] = None
            self._deadline = self.loop.call_later(header_timeout_s, self._timed_out)

        def _headers_done(self) -> None:
            waiting.pop(self, None)
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _timed_out(self) -> None:
            self._deadline = None
            waiting.pop(self, None)
            if self.transport.is_closing():
                return
            closed.count(evicted=False)
            if self._partial:  # a request begun and not finished; an idle one just closes
                self.transport.write(TIMED_OUT)
            self.transport.close()

    return Guarded


def forwarded(trusted: Sequence[str]) -> dict[str, Any]:
    """uvicorn's proxy settings: X-Forwarded-For believed from ``trusted`` alone. Its
    default believes 127.0.0.1 (or FORWARDED_ALLOW_IPS), so any local process could put
    any address into the audit record."""
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": list(trusted)}

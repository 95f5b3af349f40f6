"""A rebuild on a live ledger: `ledger serve` on the history while Order Desk keeps
posting (one post every 50 ms on a keep-alive connection) and `ledger rebuild` runs
beside it. Reported: every post's status and latency. The swap holds the write lock for
a while; a post that waits longer than the busy timeout gets a 503 (and spends one of
Order Desk's five retries), one that waits longer than 30 s is given up by Order Desk.
"""

from __future__ import annotations

import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .ingest import cached_pool
from .pool import read_pool
from .procs import ledger_server, run_measured
from .replay import _env

INTERVAL_S = 0.05
ORDER_OFFSET = 90_000_000  # orders of their own: no other part posts these


def _answer(sock: socket.socket) -> str:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(v) for k, _, v in (x.partition(b":") for x in lines[1:])
                  if k.strip().lower() == b"content-length")  # fmt: skip
    while len(body) < length:
        body += sock.recv(65536)
    return lines[0].split(b" ")[1].decode()


def _post_steadily(
    port: int, requests: list[bytes], stop: threading.Event, out: list[tuple[float, str]]
) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        for request in requests:
            if stop.is_set():
                return
            started = time.perf_counter()
            try:
                sock.sendall(request)
                status = _answer(sock)
            except OSError as exc:
                status = type(exc).__name__
                sock.close()
                sock = socket.create_connection(("127.0.0.1", port), timeout=60)
            took = time.perf_counter() - started
            out.append((took * 1000, status))
            time.sleep(max(0.0, INTERVAL_S - took))
    finally:
        sock.close()


def live_rebuild_section(db: Path, pools: Path, logs: Path, timeout: float) -> dict[str, Any]:
    posts: list[tuple[float, str]] = []
    requests = read_pool(cached_pool(pools, 4_000, ORDER_OFFSET, 0.0).path)
    with ledger_server(db, logs / "live-rebuild-serve.log") as server:
        port = int(server.base.rsplit(":", 1)[1])
        stop = threading.Event()
        poster = threading.Thread(target=_post_steadily, args=(port, requests, stop, posts))
        poster.start()
        try:
            time.sleep(2)  # posting before the rebuild starts, and after it ends
            args = [sys.executable, "-m", "ledger", "rebuild", "--db", str(db)]
            rebuilt = run_measured(args, _env(db), logs / "live-rebuild.log", timeout)
            time.sleep(2)
        finally:
            stop.set()
            poster.join()
    latencies = sorted(ms for ms, _ in posts)
    statuses: dict[str, int] = {}
    for _, status in posts:
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "rebuild_s": rebuilt["seconds"],
        "posts": len(posts),
        "statuses": statuses,
        "p50_ms": statistics.median(latencies) if latencies else 0.0,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] if latencies else 0.0,
        "max_ms": latencies[-1] if latencies else 0.0,
    }

"""A rebuild on a live ledger: `ledger serve` on the history while Order Desk keeps
posting (one post every 50 ms on a keep-alive connection) and `ledger rebuild` runs
beside it. Reported: every post's status and latency. The swap holds the write lock for
a while; a post that waits longer than the busy timeout gets a 503 (and spends one of
Order Desk's five retries), one that waits longer than 30 s is given up by Order Desk.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ledger.testing import ledger_env

from .ingest import cached_pool
from .load import read_answer
from .pool import read_pool
from .procs import ledger_server, run_measured
from .stats import percentile

INTERVAL_S = 0.05
ORDER_OFFSET = 90_000_000  # orders of their own: no other part posts these


async def _post_steadily(
    port: int, requests: list[bytes], stop: threading.Event, out: list[tuple[float, str]]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request in requests:
            if stop.is_set():
                return
            started = time.perf_counter()
            writer.write(request)
            try:
                status = str(await asyncio.wait_for(read_answer(reader), timeout=60))
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                status = type(exc).__name__
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            took = time.perf_counter() - started
            out.append((took * 1000, status))
            await asyncio.sleep(max(0.0, INTERVAL_S - took))
    finally:
        writer.close()


def live_rebuild_section(db: Path, pools: Path, logs: Path, timeout: float) -> dict[str, Any]:
    posts: list[tuple[float, str]] = []
    requests = read_pool(cached_pool(pools, 4_000, ORDER_OFFSET, 0.0).path)
    with ledger_server(db, logs / "live-rebuild-serve.log") as server:
        port = int(server.base.rsplit(":", 1)[1])
        stop = threading.Event()
        poster = threading.Thread(
            target=asyncio.run, args=(_post_steadily(port, requests, stop, posts),)
        )
        poster.start()
        try:
            time.sleep(2)  # posting before the rebuild starts, and after it ends
            args = [sys.executable, "-m", "ledger", "rebuild", "--db", str(db)]
            rebuilt = run_measured(args, ledger_env(db), logs / "live-rebuild.log", timeout)
            time.sleep(2)
        finally:
            stop.set()
            poster.join()
    latencies = [ms for ms, _ in posts]
    return {
        "rebuild_s": rebuilt["seconds"],
        "posts": len(posts),
        "statuses": dict(Counter(status for _, status in posts)),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=0.0),
    }

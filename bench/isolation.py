"""Isolation: signed posts at a steady 50/s while readers and strangers do their worst.

One ``ledger serve`` on a copy of the history; the probe (``ledger.testing.Probe``) posts
a new signed order every 20 ms for ``seconds`` in each phase, in this order:

- ``quiet``: nothing beside it (the baseline, measured in the same run);
- ``readers``: three readers, each streaming the events CSV and loading heavy ``?sql=``
  pages (300 cells of 60 KB JSON) in turn;
- ``floods``: junk of the kinds issue 16 lists at once: 5 MB bodies of ``&`` with and
  without a store id, wrong-hash posts of a million ``%25``, refused posts with 12 KB
  headers, and 300 connections that never finish their headers.

Each load runs in a process of its own, so the probe's own process measures the server,
not its neighbours' use of the interpreter.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import socket
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx

from ledger.testing import STORE_ID, Probe

from .procs import ledger_server

RATE = 50
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
HEAVY_SQL = (
    "with recursive n(i) as (select 1 union all select i + 1 from n where i < 300)"
    ' select \'{"id":"\' || i || \'","note":"\' || hex(randomblob(30000)) || \'"}\' as payload'
    " from n"
)


def _until(stop: Event, step: Callable[[], object]) -> None:
    while not stop.is_set():
        with contextlib.suppress(httpx.HTTPError, OSError):
            step()


def reader(stop: Event, datasette: str) -> None:
    with httpx.Client(base_url=datasette, timeout=120) as client:

        def step() -> None:
            with client.stream("GET", "/ledger/events.csv?_stream=on&_size=max") as csv:
                for _ in csv.iter_bytes():
                    if stop.is_set():
                        return
            client.get("/ledger", params={"sql": HEAVY_SQL})

        _until(stop, step)


def junk(stop: Event, base: str, kind: str) -> None:
    five_mb = 5_000_000
    bodies = {
        "ampersands": (b"&" * five_mb, FORM),
        "ampersands-store": (b"&" * five_mb, FORM | {"X-ORDER-DESK-STORE-ID": STORE_ID}),
        "percents": (
            b"order=" + quote_plus("%25" * (five_mb // 6)).encode(),
            FORM | {"X-ORDER-DESK-STORE-ID": STORE_ID, "X-ORDER-DESK-HASH": "0" * 64},
        ),
        "long-headers": (
            b"order=1",
            {"Content-Type": "text/plain; x=" + "j" * 12_000, "X-ORDER-DESK-STORE-ID": "s" * 3_000},
        ),
    }
    content, headers = bodies[kind]
    with httpx.Client(timeout=60) as client:
        _until(stop, lambda: client.post(f"{base}/orderdesk", content=content, headers=headers))


def _still_open(s: socket.socket) -> bool:
    try:
        s.recv(1024)  # an answer (408) or the end: the server has closed it
    except BlockingIOError:
        return True
    except OSError:
        pass
    s.close()
    return False


def half_requests(stop: Event, base: str, count: int = 300) -> None:
    """Keep ``count`` connections open that never finish their headers."""
    port = int(base.rsplit(":", 1)[1])
    held: list[socket.socket] = []
    while not stop.is_set():
        held = [s for s in held if _still_open(s)]
        while len(held) < count and not stop.is_set():
            with contextlib.suppress(OSError):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"POST /orderdesk HTTP/1.1\r\nHost: x\r\n")
                s.setblocking(False)
                held.append(s)
        time.sleep(0.2)
    for s in held:
        s.close()


Load = tuple[Callable[..., None], tuple[Any, ...]]


def _phase(base: str, pid: int, seconds: float, loads: list[Load]) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    procs = [context.Process(target=fn, args=(stop, *args), daemon=True) for fn, args in loads]
    for p in procs:
        p.start()
    time.sleep(2 if procs else 0)  # the loads under way before the probe begins
    try:
        with Probe(base, rate=RATE, watch_pid=pid, limit_s=seconds) as probe:
            time.sleep(seconds)
    finally:
        stop.set()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    return {
        "posts": len(probe.posts),
        "non_200": len(probe.failures()),
        "p50_ms": probe.quantile_ms(0.5),
        "p99_ms": probe.quantile_ms(0.99),
        "max_ms": probe.slowest_s() * 1000,
        "receiver_peak_rss_mb": probe.peak_rss_mb,
    }


def isolation_section(db: Path, logs: Path, seconds: float) -> dict[str, Any]:
    with ledger_server(db, logs / "isolation-serve.log") as server:
        base, datasette = server.base, f"http://127.0.0.1:{server.extra_port}"
        phases: dict[str, list[Load]] = {
            "quiet": [],
            "readers": [(reader, (datasette,))] * 3,
            "floods": [
                (junk, (base, "ampersands")), (junk, (base, "ampersands-store")),
                (junk, (base, "percents")), (junk, (base, "long-headers")),
                (half_requests, (base,)),
            ],
        }  # fmt: skip
        results = {name: _phase(base, server.pid, seconds, loads) for name, loads in phases.items()}
    quiet = results["quiet"]["p99_ms"] or 1.0
    for name in ("readers", "floods"):
        results[name]["p99_vs_quiet"] = results[name]["p99_ms"] / quiet
    return {"rate_per_s": RATE, "seconds": seconds, "phases": results}

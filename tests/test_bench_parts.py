"""Parts of the benchmark harness that its quick run cannot show are right."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import statistics
from pathlib import Path

import pytest

from bench.history import cache_name, generate
from bench.load import _client
from bench.orders import OrderFactory, history_order
from bench.stats import percentile


def test_percentile_interpolates_like_the_linear_method() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100, shuffled below
    values = values[::2] + values[1::2]
    linear = statistics.quantiles(values, n=100, method="inclusive")
    for p in (1, 50, 90, 99):
        assert percentile(values, p) == pytest.approx(linear[p - 1])
    assert percentile(values, 99) == pytest.approx(99.01)  # not the maximum
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 99) == 0.0


def test_the_python_load_client_gives_up_on_a_stuck_server() -> None:
    """A server that accepts connections and never answers: every connection ends as a
    socket error once the duration and the grace for a stuck request have passed."""
    request = b"POST /orderdesk HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    with socket.socket() as stuck:
        stuck.bind(("127.0.0.1", 0))
        stuck.listen(8)  # the kernel completes the connections; nothing reads or answers
        port = stuck.getsockname()[1]
        load = _client("127.0.0.1", port, [request] * 10, 3, duration_s=0.2, stuck_s=0.3)
        # the outer bound only turns a hang into a failure
        result = asyncio.run(asyncio.wait_for(load, timeout=60))
    assert (result["requests"], result["socket_errors"]) == (0, 3)


def _generated(path: Path, **seed: int) -> list[bytes]:
    generate(path, orders=5, block=2, progress=False, **seed)
    conn = sqlite3.connect(path)
    try:
        return [
            row[0].encode()
            for row in conn.execute(
                "SELECT payload FROM events WHERE type = 'OrderSnapshotReceived' ORDER BY seq"
            )
        ]
    finally:
        conn.close()


def test_the_history_seed_drives_the_generated_orders(tmp_path: Path) -> None:
    default = _generated(tmp_path / "default.db")
    # seed 1 (the default) is what the generator always wrote: cached histories stay valid
    assert default == [OrderFactory().payload(n, stage) for n, stage in history_order(5, 2)]
    assert _generated(tmp_path / "one.db", seed=1) == default
    other = _generated(tmp_path / "two.db", seed=2)
    assert other == _generated(tmp_path / "two-again.db", seed=2)
    assert other == [OrderFactory(2).payload(n, stage) for n, stage in history_order(5, 2)]
    assert len(other) == len(default) and set(other).isdisjoint(default)
    assert cache_name(5, 2, 1) != cache_name(5, 2, 2)

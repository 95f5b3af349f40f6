"""The benchmark harness: its quick mode runs end to end (so it never rots), and the
parts of it that a quick run cannot show are right."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import statistics
import subprocess
import sys
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
    assert cache_name(5, 2, 1) != cache_name(5, 2, 1, sign_every=1)


ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_bench_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--client", "python", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    for section in ("machine", "config", "history", "ingest", "growth", "rebuild", "readside",
                    "isolation", "memory", "targets"):  # fmt: skip
        assert section in results, section
    ingest = results["ingest"]
    assert set(ingest["summary"]) == {
        "baseline", "fresh", "dup30", "growth", "no-projection", "no-fsync", "no-signing"
    }  # fmt: skip
    for variant, by_concurrency in ingest["summary"].items():
        for stats in by_concurrency.values():
            assert stats["requests"] > 0, variant
            assert stats["non_200"] == 0, variant
            assert stats["socket_errors"] == 0, variant
    for by_concurrency in ingest["summary"].values():
        for stats in by_concurrency.values():
            assert 0 < stats["p50_ms"] <= stats["p99_ms"]
    fresh = [r for r in ingest["runs"] if r["variant"] == "fresh"]
    assert all(r["db_deliveries_added"] >= r["requests"] for r in fresh)
    assert all(r["db_orders_added"] == r["db_events_added"] > 0 for r in fresh)
    # the ablations log every post, and the one without projections projects nothing
    for variant, orders in (
        ("no-projection", lambda r: 0),
        ("no-fsync", lambda r: r["db_events_added"]),
        ("no-signing", lambda r: r["db_events_added"]),
    ):
        runs = [r for r in ingest["runs"] if r["variant"] == variant]
        assert all(r["db_deliveries_added"] >= r["requests"] > 0 for r in runs), variant
        assert all(r["db_orders_added"] == orders(r) for r in runs), variant
    assert results["memory"]["serve_peak_rss_mb_by_variant"].keys() == {"fresh", "dup30", "growth"}
    dup = [r for r in ingest["runs"] if r["variant"] == "dup30"]
    assert all(r["db_events_added"] <= r["db_deliveries_added"] for r in dup)
    # a retry repeats a post at least 100 requests later: some must have been answered
    assert sum(r["db_events_added"] for r in dup) < sum(r["db_deliveries_added"] for r in dup)
    rebuild = results["rebuild"]
    floor_events = rebuild["runs"]["floor"][rebuild["floor_parser"]][0]["events"]
    assert floor_events == results["history"]["events"] > 0, "the floor read every event"
    assert rebuild["verify_output"].startswith(f"intact: {floor_events} events")
    assert rebuild["rebuild_s"] > 0 and rebuild["floor_s"] > 0 and rebuild["verify_s"] > 0
    live = results["live_rebuild"]  # posts before, during and after a rebuild: all answered
    assert live["posts"] >= 40 and live["statuses"] == {"200": live["posts"]}
    phases = results["isolation"]["phases"]  # the probe posted through every phase
    assert set(phases) == {"quiet", "readers", "floods"}
    assert all(p["posts"] > 0 and p["p50_ms"] <= p["p99_ms"] for p in phases.values())
    pages = results["readside"]["pages"]
    assert {"order_lookup_row", "orders_table", "orders_facet", "order_history"} <= set(pages)
    assert all(p["statuses"] == {"200": p["samples"]} for p in pages.values())
    # canned queries are timed with arguments that find rows (every generated order
    # ends shipped or canceled, so open_orders_not_updated rightly finds none)
    assert pages["query:history_of_order"]["rows_first_page"] > 0
    assert pages["query:history_of_sku"]["rows_first_page"] > 0
    assert pages["query:history_of_sku (last page)"]["rows_first_page"] > 0
    assert {"chart:orders-count", "chart:outcomes"} <= set(pages)
    assert results["readside"]["orders_csv"]["rows"] == results["history"]["orders"]
    assert results["memory"]["serve_peak_rss_mb"] > 0
    assert out.with_suffix(".md").read_text().startswith("# orderdesk-ledger benchmark")

"""The benchmark harness's quick mode runs end to end, so it never rots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
                    "memory", "targets"):  # fmt: skip
        assert section in results, section
    ingest = results["ingest"]
    assert set(ingest["summary"]) == {"baseline", "fresh", "dup30", "growth"}
    for variant, by_concurrency in ingest["summary"].items():
        for stats in by_concurrency.values():
            assert stats["requests"] > 0, variant
            assert stats["non_200"] == 0, variant
            assert stats["socket_errors"] == 0, variant
    assert all(v > 0 for v in ingest["ratios"]["fresh_vs_baseline"].values())
    fresh = [r for r in ingest["runs"] if r["variant"] == "fresh"]
    assert all(r["db_deliveries_added"] >= r["requests"] for r in fresh)
    dup = [r for r in ingest["runs"] if r["variant"] == "dup30"]
    assert all(r["db_events_added"] <= r["db_deliveries_added"] for r in dup)
    # a retry repeats a post at least 100 requests later: some must have been answered
    assert sum(r["db_events_added"] for r in dup) < sum(r["db_deliveries_added"] for r in dup)
    rebuild = results["rebuild"]
    assert rebuild["events"] == results["history"]["events"] > 0
    assert rebuild["rebuild_s"] > 0 and rebuild["floor_s"] > 0 and rebuild["verify_s"] > 0
    assert rebuild["verify_output"].startswith("intact")
    pages = results["readside"]["pages"]
    assert {"order_lookup_row", "orders_table", "orders_facet", "order_history"} <= set(pages)
    assert all(p["statuses"] == {"200": p["samples"]} for p in pages.values())
    assert results["readside"]["orders_csv"]["rows"] == results["history"]["orders"]
    assert results["memory"]["serve_peak_rss_mb"] > 0
    assert out.with_suffix(".md").read_text().startswith("# orderdesk-ledger benchmark")

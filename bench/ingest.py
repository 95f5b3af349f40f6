"""Ingest runs: the bare baseline endpoint and the real ``POST /orderdesk`` (fresh
database, 30 % duplicates, and a database that already holds the generated history),
each a real server process driven by the load generator on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.db import uri

from .load import run_load
from .pool import Pool, build_pool
from .procs import Server, baseline_server, ledger_server

VARIANTS = ("baseline", "fresh", "dup30", "growth", "no-projection", "no-fsync", "no-signing")
# Not the ledger: `fresh` with one cost taken out (bench/ablated.py), to show how close the
# rest of the path comes to the ratio the target asks for.
ABLATED = {"no-projection": "projection", "no-fsync": "fsync", "no-signing": "signing"}
POOL_VERSION = 2


@dataclass(frozen=True)
class IngestPlan:
    client: str
    concurrencies: tuple[int, ...]
    duration_s: float
    pool_size: int
    repeats: int
    duplicate_fraction: float
    variants: tuple[str, ...] = VARIANTS


def cached_pool(cache: Path, size: int, offset: int, duplicates: float) -> Pool:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"pool-v{POOL_VERSION}-n{size}-o{offset}-d{duplicates:g}.bin"
    meta = path.with_suffix(".meta")
    if path.exists() and meta.exists():
        unique, body, order = meta.read_text().split()
        return Pool(path, size, int(unique), float(body), float(order))
    tmp = path.with_suffix(".tmp")
    pool = build_pool(tmp, size, order_offset=offset, duplicate_fraction=duplicates)
    tmp.replace(path)
    meta.write_text(f"{pool.unique} {pool.mean_body_bytes} {pool.mean_order_bytes}")
    return Pool(path, size, pool.unique, pool.mean_body_bytes, pool.mean_order_bytes)


def _counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(uri(db, mode="ro"), uri=True)
    try:
        events = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        deliveries = conn.execute("SELECT count(*) FROM deliveries").fetchone()[0]
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
        return {"events": int(events), "deliveries": int(deliveries), "orders": int(orders)}
    finally:
        conn.close()


def _drive(server: Server, plan: IngestPlan, pool: Pool, connections: int) -> dict[str, Any]:
    result = run_load(
        plan.client, server.base + "/orderdesk", pool.path, connections, plan.duration_s
    )
    result["server_peak_rss_mb"] = server.peak_rss_mb()
    return result


def one_run(
    variant: str,
    connections: int,
    plan: IngestPlan,
    pool: Pool,
    work: Path,
    growth_db: Path | None,
    logs: Path,
    tag: str,
) -> dict[str, Any]:
    log = logs / f"ingest-{tag}.log"
    # Start every run with nothing left for the kernel to write back: a no-fsync run leaves
    # its WAL dirty, and the writeback would slow the next run's fsyncs.
    os.sync()
    if variant == "baseline":
        with baseline_server(log) as server:
            return _drive(server, plan, pool, connections)
    if variant == "growth":
        assert growth_db is not None
        db = growth_db
    else:
        run_dir = work / f"fresh-{tag}"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        db = run_dir / "ledger.db"
    before = _counts(db) if db.exists() else {"events": 0, "deliveries": 0, "orders": 0}
    try:
        with ledger_server(db, log, ABLATED.get(variant)) as server:
            result = _drive(server, plan, pool, connections)
        after = _counts(db)
    finally:
        if variant != "growth":
            shutil.rmtree(db.parent, ignore_errors=True)
    return result | {
        "db_events_before": before["events"],
        "db_events_added": after["events"] - before["events"],
        "db_deliveries_added": after["deliveries"] - before["deliveries"],
        "db_orders_added": after["orders"] - before["orders"],
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rps": statistics.median(r["rps"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "non_200": sum(r["non_200"] for r in runs),
        "socket_errors": sum(r["socket_errors"] for r in runs),
        "pool_wrapped": sum(r["pool_wrapped"] for r in runs),
        "repeats": len(runs),
        "server_peak_rss_mb": max((r["server_peak_rss_mb"] or 0) for r in runs),
        "rps_runs": [round(r["rps"], 1) for r in runs],
    }


def ingest_section(
    plan: IngestPlan, work: Path, pools: Path, growth_db: Path | None, logs: Path, say: Any = print
) -> dict[str, Any]:
    """Interleaved: for each repeat, for each concurrency, every variant once."""
    unique = cached_pool(pools, plan.pool_size, 10_000_000, 0.0)
    duplicated = cached_pool(pools, plan.pool_size, 20_000_000, plan.duplicate_fraction)
    variants = [v for v in plan.variants if v != "growth" or growth_db is not None]
    runs: list[dict[str, Any]] = []
    growth_index = 0
    for repeat in range(plan.repeats):
        for connections in plan.concurrencies:
            for variant in variants:
                if variant == "dup30":
                    pool = duplicated
                elif variant == "growth":
                    # each growth run appends new orders to the same file: a pool of its own
                    pool = cached_pool(
                        pools, plan.pool_size, 30_000_000 + growth_index * plan.pool_size, 0.0
                    )
                    growth_index += 1
                else:
                    pool = unique
                tag = f"{variant}-c{connections}-r{repeat}"
                result = one_run(variant, connections, plan, pool, work, growth_db, logs, tag)
                result |= {
                    "variant": variant,
                    "concurrency": connections,
                    "repeat": repeat,
                    "pool_requests": pool.requests,
                    "pool_unique": pool.unique,
                }
                runs.append(result)
                say(
                    f"  ingest {tag}: {result['rps']:,.0f} req/s, p50 {result['p50_ms']:.1f} ms,"
                    f" p99 {result['p99_ms']:.1f} ms, non-200 {result['non_200']}"
                )
    summary: dict[str, dict[str, Any]] = {}
    for variant in variants:
        summary[variant] = {}
        for c in plan.concurrencies:
            chosen = [r for r in runs if r["variant"] == variant and r["concurrency"] == c]
            summary[variant][str(c)] = _summary(chosen)

    def ratio(a: str, b: str) -> dict[str, float] | None:
        if a not in summary or b not in summary:
            return None
        return {c: summary[a][c]["rps"] / summary[b][c]["rps"] for c in summary[a]}

    return {
        "client": plan.client,
        "concurrencies": list(plan.concurrencies),
        "duration_s": plan.duration_s,
        "pool_size": plan.pool_size,
        "repeats": plan.repeats,
        "duplicate_fraction": plan.duplicate_fraction,
        "mean_order_bytes": unique.mean_order_bytes,
        "mean_body_bytes": unique.mean_body_bytes,
        "summary": summary,
        "ratios": {
            "fresh_vs_baseline": ratio("fresh", "baseline"),
            "dup30_vs_baseline": ratio("dup30", "baseline"),
            "growth_vs_baseline": ratio("growth", "baseline"),
            "growth_vs_fresh": ratio("growth", "fresh"),
            "no_projection_vs_baseline": ratio("no-projection", "baseline"),
            "no_fsync_vs_baseline": ratio("no-fsync", "baseline"),
            "fresh_vs_no_signing": ratio("fresh", "no-signing"),
        },
        "runs": runs,
    }

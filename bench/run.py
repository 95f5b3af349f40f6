"""The benchmark, every part in one run on one machine; JSON and Markdown results.

    python -m bench.run            # full: 1M-event history, wrk, 3 repeats  (make bench)
    python -m bench.run --quick    # seconds: tiny history, Python client    (make bench-quick)
    python -m bench.run --parts ingest,readside   # only some parts

See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .history import CACHE, ensure_history, working_copy
from .ingest import ABLATED, IngestPlan, ingest_section
from .isolation import isolation_section
from .live_rebuild import live_rebuild_section
from .load import wrk_available
from .procs import ledger_server
from .readside import readside_section
from .replay import replay_section
from .report import markdown, targets

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PARTS = ("ingest", "growth", "replay", "readside", "isolation")


@dataclass(frozen=True)
class Config:
    mode: str
    ingest: IngestPlan  # its variants are chosen per run from the parts
    history_orders: int
    replay_repeats: int
    read_samples: int
    csv_repeats: int
    timeout_s: float
    isolation_s: float


FULL = Config(
    "full", IngestPlan("wrk", (1, 16, 64), 6.0, 30_000, 3, 0.3), 250_000, 1, 200, 3, 3600, 20
)
QUICK = Config("quick", IngestPlan("python", (1, 16), 1.0, 2_500, 1, 0.3), 500, 1, 5, 1, 120, 3)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=HERE.parent, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import uvicorn

    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    try:
        import httptools  # noqa: F401

        http = "httptools"
    except ImportError:
        http = "h11"
    wrk = ""
    if shutil.which("wrk"):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
        wrk = (out.stdout + out.stderr).strip().splitlines()[0] if out.stdout + out.stderr else ""
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "load_avg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "uvicorn": uvicorn.__version__,
        "uvicorn_loop": loop,
        "uvicorn_http": http,
        "wrk": wrk,
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def run(config: Config, parts: tuple[str, ...], out: Path, keep: bool = False) -> dict[str, Any]:
    started = time.perf_counter()
    results: dict[str, Any] = {"config": asdict(config), "machine": machine(), "parts": parts}
    say(f"bench ({config.mode}): parts {', '.join(parts)}; client {config.ingest.client}")
    CACHE.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=CACHE))
    logs = scratch / "logs"
    logs.mkdir()
    try:
        growth_db = None
        if {"growth", "replay", "readside", "isolation"} & set(parts):
            history = ensure_history(config.history_orders)
            took = "cached" if history.generated_s is None else f"{history.generated_s:.0f} s"
            say(f"history: {history.events:,} events ({took}); copying to the work dir")
            work_db = working_copy(history, scratch / "history")
            results["history"] = {
                "events": history.events,
                "orders": history.orders,
                "generated_s": history.generated_s,
                "file_mb": history.path.stat().st_size / 2**20,
            }
            # The read side first: a rebuild closes every movement, and the file as
            # generated has as many unclosed ones as a live file ever has.
            if "readside" in parts:
                say("read side: Datasette pages")
                with ledger_server(work_db, logs / "readside-serve.log") as server:
                    results["readside"] = readside_section(
                        work_db,
                        f"http://127.0.0.1:{server.extra_port}",
                        config.read_samples,
                        config.csv_repeats,
                    )
                    results["readside"]["serve_peak_rss_mb"] = server.peak_rss_mb()
            if "isolation" in parts:
                say("isolation: signed posts at 50/s, quiet, beside readers, beside floods")
                copy = working_copy(history, scratch / "isolation")
                results["isolation"] = isolation_section(copy, logs, config.isolation_s)
                shutil.rmtree(scratch / "isolation", ignore_errors=True)
            if "replay" in parts:
                say("replay: floor, rebuild, verify")
                results["rebuild"] = replay_section(
                    work_db, history.events, config.replay_repeats, logs, config.timeout_s
                )
                say("replay: a rebuild while posts arrive")
                results["live_rebuild"] = live_rebuild_section(
                    work_db, CACHE / "pools", logs, config.timeout_s
                )
            if "growth" in parts:
                growth_db = work_db
        if {"ingest", "growth"} & set(parts):
            variants: tuple[str, ...] = ("fresh",)
            if "ingest" in parts:
                variants = ("baseline", "fresh", "dup30", *ABLATED)
            if growth_db is not None:
                variants += ("growth",)
            plan = replace(config.ingest, variants=variants)
            say(
                f"ingest: {', '.join(variants)} at concurrency "
                f"{', '.join(map(str, plan.concurrencies))}, {plan.repeats} repeat(s)"
            )
            section = ingest_section(plan, scratch, CACHE / "pools", growth_db, logs, say)
            results["ingest"] = section
            if growth_db is not None:
                ratios = section["ratios"]["growth_vs_fresh"]
                runs = [r for r in section["runs"] if r["variant"] == "growth"]
                results["growth"] = {
                    "events_at_start": min(r["db_events_before"] for r in runs),
                    "events_at_end": max(
                        r["db_events_before"] + r["db_events_added"] for r in runs
                    ),
                    "ratio_vs_fresh": ratios,
                    "min_ratio": min(ratios.values()),
                }
            served = [v for v in variants if v != "baseline" and v not in ABLATED]
            rss = [r["server_peak_rss_mb"] or 0 for r in section["runs"] if r["variant"] in served]
            base = [
                r["server_peak_rss_mb"] or 0 for r in section["runs"] if r["variant"] == "baseline"
            ]
            results["memory"] = {
                "serve_peak_rss_mb": max(rss) if rss else None,
                "serve_peak_rss_mb_by_variant": {
                    v: max(
                        (r["server_peak_rss_mb"] or 0) for r in section["runs"] if r["variant"] == v
                    )
                    for v in served
                },
                "baseline_peak_rss_mb": max(base) if base else None,
            }
    finally:
        if keep:
            say(f"kept scratch files in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    results["targets"] = targets(results)
    results["elapsed_s"] = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str) + "\n")
    tmp.replace(out)
    out.with_suffix(".md").write_text(markdown(results))
    say(f"results: {out} and {out.with_suffix('.md')} ({results['elapsed_s']:.0f} s)")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds, no wrk")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"any of {','.join(PARTS)}")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--repeats", type=int, help="ingest repeats (median)")
    parser.add_argument("--duration", type=float, help="seconds per ingest run")
    parser.add_argument("--pool-size", type=int, help="distinct requests per ingest run")
    parser.add_argument("--orders", type=int, help="orders in the history (x4 events)")
    parser.add_argument("--concurrency", help="comma-separated, e.g. 1,16,64")
    parser.add_argument("--out", type=Path, help="JSON path (the .md is written beside it)")
    parser.add_argument("--keep", action="store_true", help="keep scratch databases and logs")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    plan = config.ingest
    client = plan.client if args.client == "auto" else args.client
    if client == "wrk" and not wrk_available():
        say(
            "wrk not found (apt-get install wrk): falling back to the Python client for every"
            " ingest run, baseline included"
        )
        client = "python"
    plan = replace(plan, client=client)
    if args.repeats:
        plan = replace(plan, repeats=args.repeats)
    if args.duration:
        plan = replace(plan, duration_s=args.duration)
    if args.pool_size:
        plan = replace(plan, pool_size=args.pool_size)
    if args.concurrency:
        plan = replace(plan, concurrencies=tuple(int(c) for c in args.concurrency.split(",")))
    config = replace(config, ingest=plan)
    if args.orders:
        config = replace(config, history_orders=args.orders)
    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    out = args.out or RESULTS / ("latest.json" if config.mode == "full" else "quick.json")
    run(config, parts, out, keep=args.keep)


if __name__ == "__main__":
    main()

"""Rebuild and verify over a generated history, against the floor of reading and parsing
every payload. Every measured command is its own process: wall time, and its peak RSS
from ``wait4``."""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
from pathlib import Path
from typing import Any

from ledger.testing import ledger_env

from .procs import run_measured

FLOOR_PARSERS = ("msgspec", "json")  # the first is the floor the ratio uses


def _env(db: Path) -> dict[str, str]:
    env = ledger_env(db)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def floor(db: Path, parser: str, log: Path, timeout: float) -> dict[str, Any]:
    args = [sys.executable, "-m", "bench.floor", "--db", str(db), "--parser", parser]
    measured = run_measured(args, _env(db), log, timeout)
    inner = json.loads(log.read_text().strip().splitlines()[-1])
    return measured | {"events": inner["events"], "inner_seconds": inner["seconds"]}


def ledger_command(db: Path, command: str, log: Path, timeout: float) -> dict[str, Any]:
    args = [sys.executable, "-m", "ledger", command, "--db", str(db)]
    measured: dict[str, Any] = dict(run_measured(args, _env(db), log, timeout, tty=True))
    text = log.read_text(errors="replace")
    # a bar redraws in place: more than one percentage on the terminal
    measured["progress_bar"] = len(re.findall(r"\d+%", text)) > 1
    # the verdict line, not the notes after it (verify says what it could not check)
    final = [line for line in text.replace("\r", "\n").strip().splitlines()
             if not line.startswith("note: ")]  # fmt: skip
    measured["output"] = final[-1][-200:] if final else ""
    return measured


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def replay_section(
    db: Path, events: int, repeats: int, logs: Path, timeout: float
) -> dict[str, Any]:
    """Floor(s), rebuild and verify, each ``repeats`` times, interleaved; medians and ratios."""
    floors: dict[str, list[dict[str, Any]]] = {p: [] for p in FLOOR_PARSERS}
    rebuilds: list[dict[str, Any]] = []
    verifies: list[dict[str, Any]] = []
    for r in range(repeats):
        for parser in FLOOR_PARSERS:
            floors[parser].append(floor(db, parser, logs / f"floor-{parser}-{r}.log", timeout))
        rebuilds.append(ledger_command(db, "rebuild", logs / f"rebuild-{r}.log", timeout))
        verifies.append(ledger_command(db, "verify", logs / f"verify-{r}.log", timeout))
    floor_s = {p: _median(runs, "seconds") for p, runs in floors.items()}
    rebuild_s = _median(rebuilds, "seconds")
    primary = FLOOR_PARSERS[0]
    return {
        "events": events,
        "repeats": repeats,
        "floor_parser": primary,
        "floor_s": floor_s[primary],
        "floor_s_by_parser": floor_s,
        "floor_peak_rss_mb": max(r["peak_rss_mb"] for r in floors[primary]),
        "rebuild_s": rebuild_s,
        "rebuild_events_per_s": events / rebuild_s if rebuild_s else 0.0,
        "rebuild_peak_rss_mb": max(r["peak_rss_mb"] for r in rebuilds),
        "rebuild_progress_bar": all(r["progress_bar"] for r in rebuilds),
        "ratio_rebuild_to_floor": rebuild_s / floor_s[primary],
        "ratio_rebuild_to_floor_by_parser": {p: rebuild_s / s for p, s in floor_s.items()},
        "verify_s": _median(verifies, "seconds"),
        "verify_events_per_s": events / _median(verifies, "seconds"),
        "verify_peak_rss_mb": max(r["peak_rss_mb"] for r in verifies),
        "verify_output": verifies[-1]["output"],
        "runs": {"floor": floors, "rebuild": rebuilds, "verify": verifies},
    }

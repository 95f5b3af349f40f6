"""Targets (from the issue) checked against the results, and the Markdown table."""

from __future__ import annotations

from typing import Any

INGEST_RATIO = 0.5
INGEST_P99_MS = 50.0
GROWTH_RATIO = 0.9
REBUILD_RATIO = 2.0
SERVE_RSS_MB = 250.0
ISOLATION_P99_MS = 50.0


def _target(
    name: str, value: float | None, limit: float, op: str, unit: str = ""
) -> dict[str, Any]:
    ok = None if value is None else (value >= limit if op == ">=" else value <= limit)
    return {"target": name, "value": value, "limit": f"{op} {limit:g}{unit}", "met": ok}


def _target_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    ingest = r.get("ingest")
    if ingest and ingest["ratios"].get("fresh_vs_baseline"):
        ratios = ingest["ratios"]["fresh_vs_baseline"]
        for c in ("16", "64"):
            if c in ratios:
                out.append(
                    _target(
                        f"durable ingest / bare endpoint at c={c}",
                        ratios[c],
                        INGEST_RATIO,
                        ">=",
                        "x",
                    )
                )
        fresh = ingest["summary"].get("fresh", {})
        if "16" in fresh:
            out.append(
                _target(
                    "durable ingest p99 at c=16 (ms)",
                    fresh["16"]["p99_ms"],
                    INGEST_P99_MS,
                    "<=",
                    " ms",
                )
            )
    growth = r.get("growth")
    if growth:
        out.append(
            _target(
                "ingest with the history / fresh (worst concurrency)",
                growth["min_ratio"],
                GROWTH_RATIO,
                ">=",
                "x",
            )
        )
    signing = (ingest or {}).get("ratios", {}).get("fresh_vs_no_signing") or {}
    if "16" in signing:
        out.append(
            _target(
                "ingest with signed heads / without them at c=16", signing["16"], 0.95, ">=", "x"
            )
        )
    rebuild = r.get("rebuild")
    if rebuild:
        # a verify that stopped at a problem was fast and small, and proved nothing
        intact = str(rebuild.get("verify_output", "")).startswith("intact")
        for name, value, limit, unit in (
            ("ledger verify over the history (s)", rebuild["verify_s"], 30, " s"),
            ("ledger verify peak RSS (MB)", rebuild["verify_peak_rss_mb"], 100, " MB"),
        ):
            row = _target(name, value, limit, "<=", unit)
            out.append(row | {"met": row["met"] and intact})
        out.append(
            _target(
                f"rebuild / floor ({rebuild['floor_parser']} parse)",
                rebuild["ratio_rebuild_to_floor"],
                REBUILD_RATIO,
                "<=",
                "x",
            )
        )
        out.append(
            {
                "target": "rebuild shows a progress bar",
                "value": rebuild["rebuild_progress_bar"],
                "limit": "yes",
                "met": rebuild["rebuild_progress_bar"],
            }
        )
    readside = r.get("readside")
    if readside:
        for name, page in readside["pages"].items():
            if page["target_p99_ms"] is None:
                continue
            out.append(
                _target(
                    f"Datasette {name} p99 (ms)", page["p99_ms"], page["target_p99_ms"], "<=", " ms"
                )
                | {"met": page["meets_target"]}
            )
    isolation = r.get("isolation")
    if isolation:
        for name in ("readers", "floods"):
            phase = isolation["phases"][name]
            out.append(
                _target(f"signed posts at 50/s beside {name}: p99 (ms)", phase["p99_ms"],
                        ISOLATION_P99_MS, "<=", " ms") | {"met": phase["p99_ms"]
                        <= ISOLATION_P99_MS and phase["non_200"] == 0}
            )  # fmt: skip
    memory = r.get("memory")
    if memory and memory.get("serve_peak_rss_mb") is not None:
        out.append(
            _target(
                "ledger serve peak RSS under load (MB)",
                memory["serve_peak_rss_mb"],
                SERVE_RSS_MB,
                "<=",
                " MB",
            )
        )
    return out


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown(r: dict[str, Any]) -> str:
    m, cfg = r["machine"], r["config"]
    lines = [
        f"# orderdesk-ledger benchmark ({cfg['mode']})",
        "",
        f"Commit `{m['commit']}`{' (dirty)' if m['dirty'] else ''}; {m['cpus']} CPUs ({m['cpu']});"
        f" Python {m['python']}, SQLite {m['sqlite']}, uvicorn {m['uvicorn']}"
        f" ({m['uvicorn_loop']} + {m['uvicorn_http']}); load generator: "
        f"{r.get('ingest', {}).get('client', cfg['ingest']['client'])}"
        f"{' (' + m['wrk'] + ')' if m['wrk'] and cfg['ingest']['client'] == 'wrk' else ''};"
        f" load average at start {', '.join(f'{x:.2f}' for x in m['load_avg_at_start'])}.",
        "Medians over repeated runs; ratios are real / baseline (same client, same machine).",
        "",
    ]
    if r.get("targets"):
        lines += ["## Targets", "", "| target | value | limit | met |", "|---|---:|---:|:-:|"]
        for t in r["targets"]:
            met = {True: "✅", False: "❌", None: "-"}[t["met"]]
            lines.append(f"| {t['target']} | {_f(t['value'], 2)} | {t['limit']} | {met} |")
        lines.append("")
    ingest = r.get("ingest")
    if ingest:
        lines += [
            "## 1. Ingest (and 2. growth)",
            "",
            f"{ingest['repeats']} repeat(s) x {ingest['duration_s']:g} s (or until the"
            f" {ingest['pool_size']:,}-request pool of unique signed posts is used up);"
            f" order JSON {ingest['mean_order_bytes']:,.0f} B, form body"
            f" {ingest['mean_body_bytes']:,.0f} B. `fresh`: real `POST /orderdesk` on a new"
            f" database (WAL, synchronous=FULL, projections); `dup30`: 30 % byte-identical"
            " repeats; `growth`: on a copy of the generated history; `no-projection`,"
            " `no-fsync` and `no-signing` are not the ledger but `fresh` with that cost taken out"
            " (`bench/ablated.py`), to show how close the rest of the path comes to the"
            " target ratio.",
            "",
            "| variant | conc | req/s | p50 ms | p99 ms | ratio vs baseline | non-200 |"
            " peak RSS MB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        base = ingest["summary"].get("baseline", {})
        for variant, by_c in ingest["summary"].items():
            for c, s in by_c.items():
                ratio = s["rps"] / base[c]["rps"] if c in base and base[c]["rps"] else None
                lines.append(
                    f"| {variant} | {c} | {_f(s['rps'], 0)} | {_f(s['p50_ms'], 2)} |"
                    f" {_f(s['p99_ms'], 2)} | {_f(ratio, 2)} | {s['non_200']} |"
                    f" {_f(s['server_peak_rss_mb'], 0)} |"
                )
        lines.append("")
        growth = r.get("growth")
        if growth:
            ratios = ", ".join(f"c={c}: {v:.2f}" for c, v in growth["ratio_vs_fresh"].items())
            lines += [
                f"Growth: with {growth['events_at_start']:,}-{growth['events_at_end']:,} events"
                f" already in the log, throughput / fresh = {ratios}.",
                "",
            ]
    rebuild = r.get("rebuild")
    if rebuild:
        floors = ", ".join(f"{p} {s:.1f} s" for p, s in rebuild["floor_s_by_parser"].items())
        lines += [
            "## 3. Rebuild and verify",
            "",
            f"Over {rebuild['events']:,} events ({rebuild['repeats']} run(s) each). Peak RSS:"
            " the peaks of the command's process and its direct children (the rebuild's workers,"
            " multiprocessing's resource tracker) summed, an upper bound.",
            "",
            "| what | seconds | events/s | peak RSS MB | ratio |",
            "|---|---:|---:|---:|---:|",
        ]
        for p, s in rebuild["floor_s_by_parser"].items():
            lines.append(
                f"| floor: read + parse ({p}) | {_f(s)} |"
                f" {_f(rebuild['events'] / s, 0)} | "
                f"{_f(rebuild['floor_peak_rss_mb'], 0) if p == rebuild['floor_parser'] else '-'}"
                f" | 1 |"
            )
        ratio_by = rebuild["ratio_rebuild_to_floor_by_parser"]
        lines.append(
            f"| `ledger rebuild` | {_f(rebuild['rebuild_s'])} |"
            f" {_f(rebuild['rebuild_events_per_s'], 0)} | {_f(rebuild['rebuild_peak_rss_mb'], 0)} |"
            f" {' / '.join(f'{v:.2f}x ({p})' for p, v in ratio_by.items())} |"
        )
        verify_rate = _f(rebuild["verify_events_per_s"], 0)
        verify_rss = _f(rebuild["verify_peak_rss_mb"], 0)
        lines.append(
            f"| `ledger verify` | {_f(rebuild['verify_s'])} | {verify_rate} | {verify_rss} | - |"
        )
        lines += ["", f"Floors: {floors}. verify said: `{rebuild['verify_output']}`", ""]
    live = r.get("live_rebuild")
    if live:
        statuses = ", ".join(f"{k} x{v}" for k, v in sorted(live["statuses"].items()))
        lines += [
            f"A rebuild on the live ledger: `ledger serve` on the same file, one post every"
            f" 50 ms, `ledger rebuild` beside it ({_f(live['rebuild_s'])} s). {live['posts']:,}"
            f" posts: {statuses}; latency p50 {_f(live['p50_ms'])} ms, p99"
            f" {_f(live['p99_ms'])} ms, max {_f(live['max_ms'])} ms (Order Desk gives up after"
            " 30 s; a post that waits past the busy timeout gets a 503).",
            "",
        ]
    readside = r.get("readside")
    if readside:
        lines += [
            "## 4. Read side (Datasette from `ledger serve`)",
            "",
            f"{readside['samples_per_page']} sequential requests per page. Views found in the"
            f" file: {', '.join(readside['views_found']) or 'none'}. Movements after the close"
            f" (what reconcile_inventory_drift recounts): {readside['unclosed_movements']:,}.",
            "",
            "| page | p50 ms | p99 ms | target p99 | statuses | example |",
            "|---|---:|---:|---:|---|---|",
        ]
        for name, p in readside["pages"].items():
            statuses = ", ".join(f"{k}x{v}" for k, v in p["statuses"].items())
            lines.append(
                f"| {name} | {_f(p['p50_ms'])} | {_f(p['p99_ms'])} |"
                f" {_target_ms(p['target_p99_ms'])} | {statuses} | `{p['example']}` |"
            )
        csv = readside["orders_csv"]
        lines += [
            "",
            f"Full orders CSV (`_stream=on`): {csv['seconds']:.2f} s for {csv['rows']:,} rows,"
            f" {csv['bytes'] / 2**20:,.1f} MB (status {csv['status']}).",
            "",
        ]
    isolation = r.get("isolation")
    if isolation:
        lines += [
            "## 5. Isolation (signed posts at a steady 50/s)",
            "",
            f"{isolation['seconds']:g} s per phase; `quiet` is the same probe with nothing"
            " beside it (bench/isolation.py says what each load does).",
            "",
            "| phase | posts | non-200 | p50 ms | p99 ms | max ms | p99 / quiet | receiver MB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, p in isolation["phases"].items():
            lines.append(
                f"| {name} | {p['posts']} | {p['non_200']} | {_f(p['p50_ms'])} |"
                f" {_f(p['p99_ms'])} | {_f(p['max_ms'])} | {_f(p.get('p99_vs_quiet'), 2)} |"
                f" {_f(p['receiver_peak_rss_mb'], 0)} |"
            )
        lines.append("")
    memory = r.get("memory")
    if memory:
        by = ", ".join(
            f"{v} {_f(x, 0)} MB" for v, x in memory["serve_peak_rss_mb_by_variant"].items()
        )
        lines += [
            "## 6. Memory",
            "",
            f"`ledger serve` peak RSS (VmHWM) during the ingest runs: "
            f"{_f(memory['serve_peak_rss_mb'], 0)} MB ({by}); bare baseline"
            f" {_f(memory['baseline_peak_rss_mb'], 0)} MB.",
            "",
        ]
    lines.append(f"Total bench time {r['elapsed_s']:.0f} s.")
    return "\n".join(lines) + "\n"

"""Read-side latencies: the Datasette that ``ledger serve`` runs, over a generated history.

Each page is fetched ``samples`` times in sequence over one keep-alive connection
(order pages pick a random order of the history each time); p50/p99 per page.
Reconciliation views are discovered from the file (every SQL view) and canned queries
without parameters from Datasette's database JSON; each one's first page is timed.
The full orders CSV is streamed (``_stream=on``) and timed end to end.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from ledger.db import uri
from ledger.projections.triggers import CLOSED_SEQ_SQL
from ledger.readside.app import default_metadata_path, load_metadata
from ledger.readside.pages import named_params

from .orders import STORE_ID
from .stats import percentile

# (name, URL path template, target p99 in ms or None: reported, no target); {db}, {store}
# and {order} are filled in.
PAGES: list[tuple[str, str, float | None]] = [
    ("order_lookup_row", "/{db}/orders/{store},{order}", 50),
    ("order_lookup_filter", "/{db}/orders?order_id={order}", 50),
    ("orders_table", "/{db}/orders", 100),
    ("events_table", "/{db}/events", 100),
    # a facet page: one more indexed facet clicked on top of the default ones (metadata.yml)
    ("orders_facet", "/{db}/orders?_facet=source_name", 100),
    # every indexed facet at once, and a facet on an unindexed column: each facet is a
    # GROUP BY over every order, so these are reported without a target
    (
        "orders_all_facets",
        "/{db}/orders?_facet=state&_facet=folder_name&_facet=source_name&_facet=payment_status",
        None,
    ),
    ("orders_facet_unindexed", "/{db}/orders?_facet=shipping_country", None),
    ("inventory_table", "/{db}/inventory?_sort_desc=ordered", 100),
    # the other tables' first pages, as the menu opens them
    ("deliveries_table", "/{db}/deliveries", 100),
    ("order_history_table", "/{db}/order_history", 100),
    ("order_items_table", "/{db}/order_items", 100),
    ("shipments_table", "/{db}/shipments", 100),
    ("inventory_movements_table", "/{db}/inventory_movements", 100),
    ("order_history", "/{db}/order_history?store_id={store}&order_id={order}&_sort=seq", 100),
    ("order_events", "/{db}/events?store_id={store}&order_id={order}&_sort=seq", 100),
]


def _order_ids(db: Path, count: int, seed: int = 5) -> list[str]:
    conn = sqlite3.connect(uri(db, mode="ro"), uri=True)
    try:
        low, high = conn.execute("SELECT min(rowid), max(rowid) FROM orders").fetchone()
        rng = random.Random(seed)
        ids: list[str] = []
        while len(ids) < count and low is not None:
            row = conn.execute(
                "SELECT order_id FROM orders WHERE rowid >= ? LIMIT 1", (rng.randint(low, high),)
            ).fetchone()
            if row:
                ids.append(row[0])
        return ids
    finally:
        conn.close()


def _views(db: Path) -> list[str]:
    conn = sqlite3.connect(uri(db, mode="ro"), uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")]
    finally:
        conn.close()


def _canned(client: httpx.Client, db_name: str) -> list[tuple[str, list[str]]]:
    """Every read-only canned query with the names of its parameters."""
    try:
        data = client.get(f"/{db_name}.json").json()
    except (httpx.HTTPError, ValueError):
        return []
    return [
        (query["name"], named_params(query.get("sql") or ""))
        for query in data.get("queries", []) or []
        if not query.get("write")
    ]


def _charts(db_name: str) -> list[tuple[str, str]]:
    """Every chart of every dashboard in metadata.yml, with its SQL."""
    meta = load_metadata(default_metadata_path(), db_name)
    dashboards = (meta.get("plugins") or {}).get("datasette-dashboards") or {}
    return [
        (name, chart["query"])
        for dashboard in dashboards.values()
        for name, chart in (dashboard.get("charts") or {}).items()
        if chart.get("db") == db_name
    ]


def _top_sku(db: Path) -> str:
    conn = sqlite3.connect(uri(db, mode="ro"), uri=True)
    try:
        row = conn.execute("SELECT code FROM inventory ORDER BY ordered DESC LIMIT 1").fetchone()
        return str(row[0]) if row else ""
    finally:
        conn.close()


def _unclosed_movements(db: Path) -> int:
    """The movements reconcile_inventory_drift recounts on each load (after the close)."""
    conn = sqlite3.connect(uri(db, mode="ro"), uri=True)
    try:
        sql = f"SELECT count(*) FROM inventory_movements WHERE seq > coalesce({CLOSED_SEQ_SQL}, 0)"
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def _deep_after_seq(db: Path, code: str) -> str:
    """history_of_sku's after_seq for the SKU's last full page: the most totals to carry."""
    conn = sqlite3.connect(uri(db, mode="ro"), uri=True)
    try:
        row = conn.execute(
            "SELECT seq FROM inventory_movements WHERE code = ?"
            " ORDER BY store_id DESC, seq DESC LIMIT 1 OFFSET 200",
            (code,),
        ).fetchone()
        return str(row[0]) if row else ""
    finally:
        conn.close()


PAGE_BUDGET_S = 15.0  # a slow page gets fewer samples, not a run of hours


def _time_page(client: httpx.Client, paths: list[str]) -> dict[str, Any]:
    times: list[float] = []
    statuses: dict[int, int] = {}
    sizes: list[int] = []
    deadline = time.monotonic() + PAGE_BUDGET_S
    for path in paths:
        if times and time.monotonic() > deadline:
            break
        started = time.perf_counter()
        response = client.get(path)
        body = response.content
        times.append((time.perf_counter() - started) * 1000)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        sizes.append(len(body))
    return {
        "samples": len(times),
        "p50_ms": percentile(times, 50),
        "p99_ms": percentile(times, 99),
        "max_ms": max(times),
        "mean_ms": statistics.fmean(times),
        "statuses": {str(k): v for k, v in statuses.items()},
        "mean_bytes": statistics.fmean(sizes),
        "example": paths[0],
    }


def readside_section(db: Path, datasette: str, samples: int, csv_repeats: int) -> dict[str, Any]:
    db_name = db.stem
    orders = _order_ids(db, max(samples, 1))
    pages: dict[str, Any] = {}
    with httpx.Client(base_url=datasette, timeout=120) as client:
        client.get(f"/{db_name}")  # warm: first request opens the file and reads the schema
        for name, template, target in PAGES:
            paths = [
                template.format(db=db_name, store=STORE_ID, order=quote(orders[i % len(orders)]))
                for i in range(samples)
            ]
            pages[name] = _time_page(client, paths) | {"target_p99_ms": target}
        for view in _views(db):
            pages[f"view:{view}"] = _time_page(client, [f"/{db_name}/{view}"] * samples) | {
                "target_p99_ms": 100
            }
        # each dashboard chart's data, as the dashboard page fetches it (no target)
        for chart, sql in _charts(db_name):
            path = f"/{db_name}.json?{urlencode({'sql': sql, '_shape': 'array'})}"
            pages[f"chart:{chart}"] = _time_page(client, [path] * samples) | {
                "target_p99_ms": None,
                "example": f"/{db_name}.json?sql=<the {chart} chart's SQL>",
            }
        # each canned query with real arguments: an order, the best-selling SKU (its first
        # page, and its last full page, which carries the most totals over), a week
        top = _top_sku(db)
        known = {"order_id": "", "code": top, "days": "7", "after_seq": ""}
        variants = {"": known, " (last page)": known | {"after_seq": _deep_after_seq(db, top)}}
        for query, params in _canned(client, db_name):
            if not set(params) <= known.keys():
                continue  # a query the bench does not know how to fill in
            for suffix, values in variants.items():
                if suffix and "after_seq" not in params:
                    continue
                args = [
                    {p: orders[i % len(orders)] if p == "order_id" else values[p] for p in params}
                    for i in range(samples)
                ]
                paths = [f"/{db_name}/{query}?{urlencode(a)}" for a in args]
                first = client.get(f"/{db_name}/{query}.json?{urlencode(args[0])}").json()
                pages[f"query:{query}{suffix}"] = _time_page(client, paths) | {
                    "rows_first_page": len(first.get("rows") or []),
                    "target_p99_ms": 100,
                }
        csv_runs = []
        for _ in range(csv_repeats):
            started = time.perf_counter()
            size = lines = 0
            with client.stream("GET", f"/{db_name}/orders.csv?_stream=on&_size=max") as response:
                status = response.status_code
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    lines += chunk.count(b"\n")
            csv_runs.append(
                {
                    "seconds": time.perf_counter() - started,
                    "bytes": size,
                    "lines": lines,
                    "status": status,
                }
            )
    for stats in pages.values():
        ok = set(stats["statuses"]) == {"200"}
        target = stats["target_p99_ms"]
        stats["meets_target"] = None if target is None else ok and stats["p99_ms"] <= target
    return {
        "samples_per_page": samples,
        "views_found": _views(db),
        "unclosed_movements": _unclosed_movements(db),
        "pages": pages,
        "orders_csv": {
            "seconds": statistics.median(r["seconds"] for r in csv_runs),
            "rows": csv_runs[-1]["lines"] - 1,
            "bytes": csv_runs[-1]["bytes"],
            "status": csv_runs[-1]["status"],
            "runs": csv_runs,
        },
    }

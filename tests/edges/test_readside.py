"""The read side as its users meet it: real ledger files, real posts, the real Datasette.

Data enters through the receiver (Litestar TestClient over ``create_app``) or through
``ledger.store``; pages are fetched through Datasette's own ASGI client or over HTTP.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import html
import io
import json
import random
import re
import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from datasette.utils import tilde_encode
from datasette_auth_passwords.utils import hash_password
from litestar.testing import TestClient

from ledger.db import connect, uri
from ledger.errors import ConfigError
from ledger.heads import append_head
from ledger.jobs import AppendSnapshot, Job, NameFolder, RecordRejection, run_alone
from ledger.keys import load_signing
from ledger.log import Delivery
from ledger.readside.app import (
    DATASETTE_SETTINGS,
    LedgerDatasette,
    ReadOnlyDatabase,
    load_metadata,
    make_datasette,
)
from ledger.readside.login import password_hash_from
from ledger.readside.sql_views import RECONCILIATION_VIEWS, VIEWS
from ledger.schema import ensure_schema
from ledger.settings import Settings
from ledger.startup import open_ledger
from ledger.testing import ledger_env, order, shipment, snapshot, start_server
from ledger.testing import signed_form as form
from ledger.web import create_app
from tests.helpers import (
    API_KEY,
    DATASETTE_WRITE_SQL,
    STORE_ID,
    name_folders,
    post_order,
    sample,
)

ROOT = Path(__file__).resolve().parents[2]
METADATA = ROOT / "metadata.yml"
PASSWORD = "correct horse battery staple"
USER = "ledger"


# --- building ledgers -----------------------------------------------------------------------


def order_json(
    order_id: str,
    *,
    added: str,
    updated: str,
    items: list[tuple[str, int, int]],
    shipping: int = 500,
    tax: int = 0,
    discount: int = 0,
    total: int | None = None,
    folder_id: int = 48201,
    source: str = "Shopify",
    payment_status: str = "Captured",
    shipped: bool = False,
    note: str = "",
) -> bytes:
    """An Order Desk style payload; ``total`` overrides the correct total (books that
    do not add up)."""
    body = order(
        order_id,
        items=[(code, price, qty) for code, price, qty in items],
        added=added,
        updated=updated,
        shipping_cents=shipping,
        tax_cents=tax,
        discount_cents=discount,
        total_cents=total,
        folder_id=folder_id,
        source_name=source,
        payment_status=payment_status,
        order_notes=[{"content": note}] if note else [],
        order_shipments=[shipment(f"94{order_id}")] if shipped else [],
    )
    return json.dumps(body).encode()


@dataclass
class Ledger:
    db: Path
    settings: Settings


def post_each(client: TestClient, payloads: list[bytes], **kw: Any) -> list[str]:  # type: ignore[type-arg]
    """Post each payload through the receiver (HTTP); its answers as "status text"."""
    answers = []
    for payload in payloads:
        response = client.post("/orderdesk", **form(payload, **kw))
        answers.append(f"{response.status_code} {response.text.strip()}")
    return answers


STALE = order_json(
    "3910457",
    added="2025-03-14 16:05:09",
    updated="2025-03-15 09:00:00",
    items=[("TOTE-NAT-01", 1850, 1), ("PIN-SET-3", 975, 2)],
    shipping=895,
    tax=312,
    note="a late retry of an older state",
)
UNBALANCED = order_json(
    "3920001",
    added="2025-05-07 10:00:00",
    updated="2025-05-07 10:00:00",
    items=[("MUG-350/GRS", 1250, 2)],
    total=9999,
)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    """Samples and a few crafted posts, all through the receiver."""
    db = tmp_path_factory.mktemp("read") / "ledger.db"
    settings = Settings(db_path=db, stores={STORE_ID: API_KEY})
    with TestClient(create_app(settings)) as client:
        answers = post_each(client, [sample("a"), sample("b"), sample("a"), sample("c")])
        answers += post_each(client, [sample("d")], api_key="wrong-key")  # rejected...
        answers += post_each(client, [sample("d"), STALE, UNBALANCED])  # ...then accepted
        answers.append(str(client.get("/orderdesk").status_code))  # wrong method
    assert [a.split()[0] for a in answers] == [
        "200", "200", "200", "200", "403", "200", "200", "200", "405",
    ]  # fmt: skip
    name_folders(settings, {48204: "Canceled", 48203: "Closed"})
    return Ledger(db, settings)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def fetch_all(ds: Any, paths: list[str], **kw: Any) -> dict[str, httpx.Response]:
    return {path: await ds.client.get(path, **kw) for path in paths}


def text_of(response: httpx.Response) -> str:
    return re.sub(r"\s+", " ", response.text)


# --- every page the read side has ---------------------------------------------------------


def crawl_paths(db: Path) -> list[str]:
    """Every page, table, view, row, facet, canned query and CSV export, from the file and
    from metadata.yml, so a new table or view cannot be left out."""
    meta = yaml.safe_load(METADATA.read_text())
    tables_meta = meta["databases"]["ledger"]["tables"]
    queries = meta["databases"]["ledger"]["queries"]
    conn = sqlite3.connect(db)
    try:
        objects = conn.execute(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view')"
            " AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
        first_rows = {}
        for name, kind in objects:
            if kind == "table":
                info = sorted((r[5], r[1]) for r in conn.execute(f"PRAGMA table_info({name})"))
                pks = [column for position, column in info if position]
                row = conn.execute(f"SELECT {', '.join(pks)} FROM {name} LIMIT 1").fetchone()
                if row:
                    first_rows[name] = ",".join(tilde_encode(str(v)) for v in row)
    finally:
        conn.close()
    paths = ["/", "/.json", "/ledger", "/ledger.json", "/-/reconciliation", "/-/dashboards"]
    paths += ["/-/metadata", "/-/metadata.json", "/-/plugins.json", "/-/settings.json"]
    paths += ["/-/versions.json", "/-/databases.json", "/-/actor.json", "/-/threads.json"]
    for name, _kind in objects:
        base = f"/ledger/{name}"
        paths += [base, base + ".json", base + ".csv?_stream=on&_size=max"]
        for facet in (tables_meta.get(name) or {}).get("facets", []):
            paths.append(f"{base}?_facet={facet}")
            paths.append(f"{base}.json?_facet={facet}")
        if name in first_rows:
            paths.append(f"{base}/{first_rows[name]}")
            paths.append(f"{base}/{first_rows[name]}.json")
    params = {"order_id": "3910457", "code": "PIN-SET-3", "days": "1", "after_seq": ""}
    for name, query in queries.items():
        wanted = {p: params[p] for p in re.findall(r"(?<![:\w]):(\w+)", query["sql"])}
        paths += [f"/ledger/{name}", f"/ledger/{name}?{urlencode(wanted)}"]
        paths.append(f"/ledger/{name}.csv?{urlencode(wanted)}")
        paths.append(f"/ledger/{name}.json?{urlencode(wanted)}")
    dashboards = meta["plugins"]["datasette-dashboards"]
    for slug, dashboard in dashboards.items():
        paths.append(f"/-/dashboards/{slug}")
        for chart_slug, chart in dashboard["charts"].items():
            paths.append(f"/-/dashboards/{slug}/{chart_slug}")
            paths.append("/ledger.json?" + urlencode({"sql": chart["query"], "_shape": "objects"}))
    return paths


def file_state(db: Path) -> tuple[str, str, list[str]]:
    """The file's bytes, its WAL's bytes, and its logical content.

    (The -shm file is SQLite's shared-memory index, rewritten by readers: not content.)"""
    wal = Path(f"{db}-wal")
    conn = sqlite3.connect(uri(db, mode="ro"), uri=True)
    try:
        dump = list(conn.iterdump())
    finally:
        conn.close()
    return (
        hashlib.sha256(db.read_bytes()).hexdigest(),
        hashlib.sha256(wal.read_bytes() if wal.exists() else b"").hexdigest(),
        dump,
    )


def test_every_page_view_query_facet_and_export_reads_and_nothing_writes(ledger: Ledger) -> None:
    before = file_state(ledger.db)
    ds = make_datasette(ledger.db, METADATA)
    paths = crawl_paths(ledger.db)
    assert len(paths) > 150
    responses = run(fetch_all(ds, paths))
    broken = {p: r.status_code for p, r in responses.items() if r.status_code != 200}
    assert broken == {}
    for path, response in responses.items():
        if ".json" in path and "_shape" not in path and not path.startswith("/-/"):
            body = response.json()
            assert body.get("ok", True) is not False, (path, body.get("error"))

    async def attempts() -> list[tuple[str, str, int]]:
        got = []
        targets = [
            *("/", "/ledger", "/ledger/orders", "/ledger/events/1", "/-/reconciliation"),
            *("/ledger/history_of_order", "/-/dashboards/ledger", "/-/password-tool"),
            *("/-/login", "/-/logout", "/ledger/reconcile_order_totals", "/ledger.db"),
        ]
        for path in targets:
            for method in ("POST", "PUT", "PATCH", "DELETE"):
                r = await ds.client.request(method, path, data={"sql": "delete from events"})
                got.append((method, path, r.status_code))
        for sql in DATASETTE_WRITE_SQL:
            r = await ds.client.get("/ledger.json?" + urlencode({"sql": sql}))
            got.append(("SQL", sql, r.status_code))
        return got

    refused = run(attempts())
    assert [a for a in refused if a[0] != "SQL" and a[2] != 405] == []
    assert [a for a in refused if a[0] == "SQL" and a[2] != 400] == []
    assert file_state(ledger.db) == before


def test_datasette_write_path_is_closed(ledger: Ledger) -> None:
    ds = make_datasette(ledger.db, METADATA)
    db = ds.get_database("ledger")
    assert isinstance(db, ReadOnlyDatabase) and db.is_mutable
    before = file_state(ledger.db)

    async def write() -> None:
        await db.execute_write("INSERT INTO folders VALUES ('1', 1, 'x', 'y', 1)")

    with pytest.raises(Exception, match="read-only"):
        run(write())
    assert file_state(ledger.db) == before


def test_metadata_refuses_a_writable_canned_query(tmp_path: Path) -> None:
    meta = yaml.safe_load(METADATA.read_text())
    meta["databases"]["ledger"]["queries"]["oops"] = {"sql": "delete from x", "write": True}
    path = tmp_path / "metadata.yml"
    path.write_text(yaml.safe_dump(meta))
    with pytest.raises(ConfigError, match="write"):
        load_metadata(path)


# --- metadata covers the schema -------------------------------------------------------------


def test_every_table_view_and_column_is_described(ledger: Ledger) -> None:
    meta = yaml.safe_load(METADATA.read_text())
    db_meta = meta["databases"]["ledger"]
    assert meta["title"] and db_meta["title"] and db_meta["description_html"]
    tables_meta = db_meta["tables"]
    conn = sqlite3.connect(ledger.db)
    try:
        objects = conn.execute(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view')"
            " AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        missing = []
        for name, _kind in objects:
            table = tables_meta.get(name)
            if table is None:
                missing.append(name)
                continue
            if table.get("hidden"):
                continue
            if not table.get("title") or not table.get("description"):
                missing.append(f"{name}: title/description")
            described = table.get("columns") or {}
            for column in (r[1] for r in conn.execute(f"PRAGMA table_info({name})")):
                if not described.get(column):
                    missing.append(f"{name}.{column}")
    finally:
        conn.close()
    assert missing == []
    assert tables_meta["positions"]["hidden"] is True
    assert set(RECONCILIATION_VIEWS) <= set(VIEWS)
    config = meta["plugins"]["ledger-readside"]
    assert config["reconciliation_views"] == list(RECONCILIATION_VIEWS)
    for name, query in db_meta["queries"].items():
        assert query.get("title") and query.get("description"), name
        assert "write" not in query
    facets = {t: set(m.get("facets", [])) for t, m in tables_meta.items()}
    assert facets["orders"] == {"folder_name", "state"}
    # a default facet counts its column over the table on every load: only kept counts,
    # and tables that stay small (one row per SKU, per folder, per projection issue)
    for table, columns in facets.items():
        if table not in VIEWS and table not in ("inventory", "folders", "projection_issues"):
            assert columns <= set(LedgerDatasette.kept_facets.get(table, ())), table
    # a default facet of the orders page counts every order on each load: from an index
    conn = sqlite3.connect(ledger.db)
    try:
        leading = {
            conn.execute(f"PRAGMA index_info({index})").fetchone()[2]
            for (index,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'orders'"
            )
        }
    finally:
        conn.close()
    assert facets["orders"] | {"source_name", "payment_status"} <= leading


def test_settings_are_real_booleans_and_suggestions_stay_off() -> None:
    from datasette.app import DEFAULT_SETTINGS

    for name, value in DATASETTE_SETTINGS.items():
        assert type(value) is type(DEFAULT_SETTINGS[name]), name
    assert DATASETTE_SETTINGS["suggest_facets"] is False


def copy_db(source: Path, target: Path) -> Path:
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    src.backup(dst)
    src.close()
    dst.close()
    return target


def test_database_named_after_another_file_stem(ledger: Ledger, tmp_path: Path) -> None:
    other = copy_db(ledger.db, tmp_path / "shop.db")
    ds = make_datasette(other, METADATA)
    responses = run(
        fetch_all(
            ds, ["/shop/orders", "/shop/history_of_order?order_id=3910457", "/-/dashboards/ledger"]
        )
    )
    assert {p: r.status_code for p, r in responses.items()} == dict.fromkeys(responses, 200)
    assert "Orders (current)" in responses["/shop/orders"].text
    assert "stale: kept, not applied" in responses["/shop/history_of_order?order_id=3910457"].text
    assert '"db": "shop"' in responses["/-/dashboards/ledger"].text


# --- what the reconciliation views find -----------------------------------------------------


def view_rows(db: Path, view: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(f"SELECT * FROM {view}").fetchall()
    finally:
        conn.close()


def test_reconciliation_views_answer_their_questions(ledger: Ledger) -> None:
    totals = view_rows(ledger.db, "reconcile_order_totals")
    assert [(r["order_id"], r["total_difference_cents"]) for r in totals] == [
        ("3920001", 2500 + 500 - 9999)
    ]
    assert "!= order_total" in totals[0]["problem"]

    stale = view_rows(ledger.db, "reconcile_stale_snapshots")
    assert [
        (r["order_id"], r["snapshot_updated_at"], r["already_had_updated_at"]) for r in stale
    ] == [("3910457", "2025-03-15 09:00:00", "2025-03-17 21:42:30")]

    per_order = {
        r["order_id"]: dict(r) for r in view_rows(ledger.db, "reconcile_deliveries_per_order")
    }
    assert per_order["3910457"]["duplicates"] == 1
    assert per_order["3910457"]["snapshots"] == 3
    assert (
        per_order["3912266"]["rejected_then_seen"] == 1
    )  # the wrong-key post of d, later accepted

    rejected = view_rows(ledger.db, "reconcile_rejected_deliveries")
    assert sorted((r["http_status"], r["same_payload_order_id"]) for r in rejected) == [
        (403, "3912266"), (405, None)
    ]  # fmt: skip
    assert all(r["reason"] for r in rejected)

    daily = {
        (r["day"], r["source_name"]): dict(r)
        for r in view_rows(ledger.db, "reconcile_daily_totals")
    }
    assert daily[("2025-03-14", "Shopify")]["order_total_cents"] == 5007
    assert daily[("2025-05-05", "Etsy")]["canceled_orders"] == 1
    assert daily[("2025-05-05", "Etsy")]["net_cents"] == 0  # fully refunded

    assert view_rows(ledger.db, "reconcile_inventory_drift") == []


def test_inventory_drift_view_finds_a_projection_gone_wrong(ledger: Ledger, tmp_path: Path) -> None:
    broken = copy_db(ledger.db, tmp_path / "ledger.db")
    dst = sqlite3.connect(broken)
    dst.execute("UPDATE inventory SET open = open + 3 WHERE code = 'TOTE-NAT-01'")
    dst.commit()
    dst.close()
    rows = view_rows(broken, "reconcile_inventory_drift")
    assert [(r["code"], r["inventory_open"] - r["movements_open"]) for r in rows] == [
        ("TOTE-NAT-01", 3)
    ]


# The definition reconcile_deliveries_per_order had before it was made fast: it joins every
# delivery to its event, so it reads the whole log, but it is plainly right. The fast view
# must return exactly its rows.
DELIVERIES_PER_ORDER_ORACLE = """
WITH attempts AS (
    SELECT e.store_id, e.order_id, e.seq AS event_seq, d.outcome, d.received_at
    FROM deliveries d JOIN events e ON e.seq = d.seq
    UNION ALL
    SELECT e.store_id, e.order_id, e.seq, d.outcome, d.received_at
    FROM deliveries d JOIN events e ON e.payload_sha256 = d.payload_sha256
    WHERE d.seq IS NULL AND d.outcome = 'rejected' AND e.type = 'OrderSnapshotReceived'
)
SELECT store_id, order_id,
       count(*) AS deliveries,
       count(DISTINCT event_seq) AS snapshots,
       sum(outcome = 'appended') AS appended,
       sum(outcome = 'duplicate') AS duplicates,
       sum(outcome = 'rejected') AS rejected_then_seen,
       min(received_at) AS first_received_at,
       max(received_at) AS last_received_at
FROM attempts
GROUP BY store_id, order_id
HAVING count(*) > count(DISTINCT event_seq)
ORDER BY last_received_at DESC
"""

OTHER_STORE, OTHER_KEY = "70999", "other-api-key"


def _troubled_ledger(db: Path) -> None:
    """Two stores sharing order ids; snapshots posted once, retried, resubmitted, refused
    first (once or twice) and accepted later, refused and never accepted, the same bytes
    in both stores; and delivery rows inserted by hand that the receiver never writes."""
    stores = {STORE_ID: API_KEY, OTHER_STORE: OTHER_KEY}
    settings = Settings(db_path=db, stores=stores)
    open_ledger(settings)
    rng = random.Random(20251128)
    clock = iter(range(10_000))

    def delivery(store_id: str) -> Delivery:
        n = next(clock)
        at = f"2025-06-{1 + n // 1440:02d}T{n // 60 % 24:02d}:{n % 60:02d}:00.000000Z"
        return Delivery(at, "127.0.0.1", "POST", "application/x-www-form-urlencoded", 2000,
                        store_id)  # fmt: skip

    def refuse(store_id: str, payload: bytes | None) -> None:
        sha = hashlib.sha256(payload).hexdigest() if payload is not None else None
        reason = "X-ORDER-DESK-HASH does not match the order"
        RecordRejection(delivery(store_id), 403, reason, sha).run(conn, head)

    conn = connect(db)
    try:
        signing = load_signing(conn, settings)
        conn.execute("BEGIN IMMEDIATE")
        head = signing.read_head(conn)
        posts = []
        for n in range(12):
            order_id = str(4100000 + n % 8)  # orders 0-3 exist in both stores
            store_id, api_key = (STORE_ID, API_KEY) if n < 8 else (OTHER_STORE, OTHER_KEY)
            for version in range(1 + n % 3):
                updated = f"2025-05-{1 + version:02d} 10:00:00"
                payload = order_json(order_id, added="2025-05-01 09:00:00", updated=updated,
                                     items=[(f"SKU-{n}", 1000, 1 + version)])  # fmt: skip
                posts.append((store_id, api_key, payload))
        shared = order_json("4100099", added="2025-05-01 09:00:00",
                            updated="2025-05-01 09:00:00", items=[("SKU-X", 500, 1)])  # fmt: skip
        posts += [(STORE_ID, API_KEY, shared), (OTHER_STORE, OTHER_KEY, shared)]
        rng.shuffle(posts)
        for store_id, api_key, payload in posts:
            for _ in range(rng.choice([0, 0, 0, 1, 2])):  # refused first, then accepted
                refuse(store_id, payload)
            snap = snapshot(payload, store_id, api_key)
            for _ in range(rng.choice([1, 1, 1, 2, 3])):  # then retried or resubmitted
                AppendSnapshot(delivery(store_id), snap).run(conn, head)
        refuse(STORE_ID, shared)  # its bytes are events in both stores
        refuse(STORE_ID, b'{"id": "4100098"}')  # never accepted
        refuse(STORE_ID, None)  # no order field at all
        once = {}
        for order_id in ("4100096", "4100097"):  # posted once, nothing else
            payload = order_json(order_id, added="2025-05-01 09:00:00",
                                 updated="2025-05-01 09:00:00", items=[("SKU-Q", 700, 1)])  # fmt: skip
            snap = snapshot(payload)
            once[order_id] = AppendSnapshot(delivery(STORE_ID), snap).run(conn, head).seq
        # By hand: repeated deliveries of events without an order id (and without an
        # appended delivery), a refused delivery that names a seq, and one carrying the
        # sha of an event that is not a snapshot.
        folder_seqs = [
            NameFolder(store, 48204, "Canceled").run(conn, head)
            for store in (STORE_ID, OTHER_STORE)
        ]
        append_head(conn, signing, head)  # what the receiver wrote is signed; what follows not
        insert = (
            "INSERT INTO deliveries (id, received_at, method, store_id, outcome, http_status,"
            " seq, payload_sha256) VALUES ((SELECT max(id) + 1 FROM deliveries), ?, 'POST', ?,"
            " ?, 200, ?, ?)"
        )

        def by_hand(outcome: str, seq: int | None, sha: str | None = None) -> None:
            conn.execute(insert, (delivery(STORE_ID).received_at, STORE_ID, outcome, seq, sha))

        by_hand("duplicate", folder_seqs[0])
        by_hand("duplicate", folder_seqs[0])
        by_hand("duplicate", folder_seqs[1])
        folder_sha = conn.execute(
            "SELECT payload_sha256 FROM events WHERE seq = ?", (folder_seqs[1],)
        ).fetchone()[0]
        by_hand("rejected", None, folder_sha)
        by_hand("rejected", once["4100097"])
        conn.execute("COMMIT")
    finally:
        conn.close()


def test_deliveries_per_order_returns_what_the_plain_definition_returns(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    _troubled_ledger(db)
    got = view_rows(db, "reconcile_deliveries_per_order")
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        expected = conn.execute(DELIVERIES_PER_ORDER_ORACLE).fetchall()
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    finally:
        conn.close()
    assert [r.keys() for r in got[:1]] == [r.keys() for r in expected[:1]]
    assert sorted(map(tuple, got), key=repr) == sorted(map(tuple, expected), key=repr)
    last = [r["last_received_at"] for r in got]
    assert last == sorted(last, reverse=True)
    # The ledger has every case in it, and orders that do not qualify.
    assert {r["store_id"] for r in got} == {STORE_ID, OTHER_STORE}
    assert any(r["duplicates"] for r in got) and any(r["rejected_then_seen"] for r in got)
    assert any(r["rejected_then_seen"] > 1 for r in got)
    assert [r["deliveries"] for r in got if r["order_id"] is None] == [2]
    assert {"4100097"} <= {r["order_id"] for r in got} - {"4100096"}
    assert 0 < len([r for r in got if r["order_id"] is not None]) < orders


def query_plan(db: Path, view: str) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN SELECT * FROM {view} LIMIT 101")]
    finally:
        conn.close()


def test_deliveries_per_order_reads_through_indexes(ledger: Ledger) -> None:
    """On a million events, a full scan of deliveries or events turns this page from
    milliseconds into seconds (reconcile_inventory_drift's plan: tests/test_closing.py)."""
    per_order = query_plan(ledger.db, "reconcile_deliveries_per_order")
    assert [s for s in per_order if re.match(r"SCAN (d|e|deliveries|events)\b", s)] == []


def test_a_replaced_index_is_dropped_at_start(ledger: Ledger, tmp_path: Path) -> None:
    old = copy_db(ledger.db, tmp_path / "ledger.db")
    conn = connect(old)
    try:
        conn.execute("DROP INDEX read_inventory_movements_sums")
        conn.execute("CREATE INDEX read_inventory_movements_code ON inventory_movements (code)")
        # as a version-4 file had it, from before named steps
        conn.execute("DROP TABLE _sqlite_migrations")
        conn.execute("PRAGMA user_version = 4")
        ensure_schema(conn, ledger.settings)
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        conn.close()
    assert "read_inventory_movements_sums" in names
    assert "read_inventory_movements_code" not in names


def test_open_orders_not_updated_takes_days(ledger: Ledger) -> None:
    ds = make_datasette(ledger.db, METADATA)

    async def ask(days: str) -> list[str]:
        r = await ds.client.get(f"/ledger/open_orders_not_updated.json?days={days}&_shape=array")
        return [row["order_id"] for row in r.json()]

    # Sample c (open, updated 2025-04-02) and the unbalanced one (open, 2025-05-07).
    assert run(ask("1")) == ["3911802", "3920001"]
    assert run(ask("")) == ["3911802", "3920001"]  # default 7 days
    assert run(ask("100000")) == []


# --- complete exports -----------------------------------------------------------------------

BULK_ORDERS = 10_000


def _bulk_ledger(db: Path) -> None:
    """10,000 orders and enough trouble that every reconciliation view has more rows
    than a canned query could export (max_returned_rows = 1,000), in one transaction."""
    settings = Settings(db_path=db, stores={STORE_ID: API_KEY})
    open_ledger(settings)
    conn = connect(db)

    def delivery(n: int) -> Delivery:
        return Delivery(f"2025-06-01T00:00:{n % 60:02d}.000000Z", "127.0.0.1", "POST",
                        "application/x-www-form-urlencoded", 2000, STORE_ID)  # fmt: skip

    try:
        jobs: list[Job] = []
        first_day = date(2021, 1, 1)
        for n in range(BULK_ORDERS):
            day = (first_day + timedelta(days=n % 1500)).isoformat()  # 1,500 days
            added, updated = f"{day} 10:00:00", f"{day} 12:00:00"
            items = [(f"SKU-{n % 3000:04d}", 1000 + n % 7, 1 + n % 3)]
            payload = order_json(str(500000 + n), added=added, updated=updated,
                                 items=items, total=1 if n % 6 == 0 else None,
                                 source=("Shopify", "Etsy")[n % 2])  # fmt: skip
            jobs.append(AppendSnapshot(delivery(n), snapshot(payload)))
            if n % 8 == 0:  # a retry of the same bytes
                jobs.append(AppendSnapshot(delivery(n), snapshot(payload)))
            if n % 7 == 0:  # an older state arriving late
                older = order_json(str(500000 + n), added=added, updated=added, items=items[:1],
                                   total=1 if n % 6 == 0 else None, note="older",
                                   source=("Shopify", "Etsy")[n % 2])  # fmt: skip
                jobs.append(AppendSnapshot(delivery(n), snapshot(older)))
            if n % 9 == 0:
                reason = "X-ORDER-DESK-HASH does not match the order"
                jobs.append(RecordRejection(delivery(n), 403, reason, None))
        run_alone(conn, load_signing(conn, settings), *jobs)
        # A projection bug, simulated, so the always-empty check has rows to export too.
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE inventory SET open = open + 1 WHERE code < 'SKU-1500'")
        conn.execute("COMMIT")
    finally:
        conn.close()


def csv_rows(response: httpx.Response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.text)))[1:]


def test_csv_exports_hold_every_row(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    _bulk_ledger(db)
    conn = sqlite3.connect(db)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    counts = {
        name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
        for name in (*tables, *RECONCILIATION_VIEWS)
    }
    # Default sorts only on unique columns (see metadata.yml: Datasette 0.65 pages a sort on
    # a column with repeated values wrongly).
    tables_meta = yaml.safe_load(METADATA.read_text())["databases"]["ledger"]["tables"]
    for name in tables:
        column = tables_meta[name].get("sort_desc") or tables_meta[name].get("sort")
        if column:
            distinct = conn.execute(f"SELECT count(DISTINCT {column}) FROM {name}").fetchone()
            assert distinct[0] == counts[name], name
    conn.close()
    assert counts["orders"] == BULK_ORDERS
    limit = DATASETTE_SETTINGS["max_returned_rows"]
    big = ("events", "orders", "deliveries", "order_items", "inventory_movements")
    assert all(counts[name] > limit for name in (*big, *RECONCILIATION_VIEWS)), counts
    ds = make_datasette(db, METADATA)
    paths = {name: f"/ledger/{name}.csv?_stream=on&_size=max" for name in counts}
    responses = run(fetch_all(ds, list(paths.values())))
    got = {name: len(csv_rows(responses[path])) for name, path in paths.items()}
    assert got == counts
    # The reason complete exports are views: a canned query's CSV stops at the limit.
    capped = run(ds.client.get("/ledger/open_orders_not_updated.csv?days=1&_stream=on"))
    assert len(csv_rows(capped)) == limit < counts["orders"]


# --- access ---------------------------------------------------------------------------------


def guarded(ledger: Ledger) -> Any:
    return make_datasette(ledger.db, METADATA, hash_password(PASSWORD, iterations=1000))


async def log_in(ds: Any, password: str = PASSWORD) -> httpx.Response:
    page = await ds.client.get("/-/login")
    token = re.search(r'name="csrftoken" value="([^"]+)"', page.text)
    assert token
    cookies = {"ds_csrftoken": page.cookies["ds_csrftoken"]}
    return await ds.client.post(
        "/-/login",
        data={"username": USER, "password": password, "csrftoken": token.group(1)},
        cookies=cookies,
    )


def test_anonymous_access_is_refused_when_a_password_is_set(ledger: Ledger) -> None:
    ds = guarded(ledger)
    paths = [*crawl_paths(ledger.db), "/ledger.json?sql=select+1", "/ledger?sql=select+1"]
    anonymous = run(fetch_all(ds, paths))
    let_in = {p: r.status_code for p, r in anonymous.items() if r.status_code not in (302, 401)}
    assert let_in == {}
    for path, response in anonymous.items():
        if response.status_code == 302:
            assert response.headers["location"] == "/-/login", path
        assert "3910457" not in response.text, path
    # Datasette's own permission checks agree with the gate.
    assert run(ds.permission_allowed(None, "view-instance")) is False
    assert run(ds.permission_allowed(None, "execute-sql", "ledger")) is False
    assert run(ds.permission_allowed({"id": USER}, "execute-sql", "ledger")) is not False
    # Static files and the login form stay public.
    assert run(ds.client.get("/-/login")).status_code == 200
    assert run(ds.client.get("/ledger-static/ledger.css")).status_code == 200

    wrong = run(log_in(ds, "not the password"))
    assert wrong.status_code == 200 and "Invalid username or password" in wrong.text
    assert "ds_actor" not in wrong.cookies

    ok = run(log_in(ds))
    assert ok.status_code == 302
    cookies = {"ds_actor": ok.cookies["ds_actor"]}
    logged_in = run(fetch_all(ds, paths, cookies=cookies))
    assert {p: r.status_code for p, r in logged_in.items() if r.status_code != 200} == {}
    assert "3910457" in logged_in["/ledger/orders"].text


def test_no_page_or_endpoint_shows_the_keys_or_the_password(ledger: Ledger) -> None:
    password_hash = hash_password(PASSWORD, iterations=1000)
    ds = make_datasette(ledger.db, METADATA, password_hash)
    cookies = {"ds_actor": run(log_in(ds)).cookies["ds_actor"]}
    pages = run(fetch_all(ds, crawl_paths(ledger.db), cookies=cookies))
    signing_key = ledger.settings.signing_key_path.read_text().strip()
    for path, response in pages.items():
        for secret in (API_KEY, PASSWORD, password_hash, password_hash.split("$")[-1], signing_key):
            assert secret not in response.text, path


def test_password_options() -> None:
    made = password_hash_from("pw", None)
    assert made and made.startswith("pbkdf2_sha256$")
    assert password_hash_from(None, None) is None
    assert password_hash_from(None, made) == made
    with pytest.raises(ConfigError):
        password_hash_from("  ", None)
    with pytest.raises(ConfigError):
        password_hash_from(None, "plain-text-password")


def test_ledger_serve_guards_datasette_and_logs_no_secret(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    env = ledger_env(db, LEDGER_DATASETTE_PASSWORD=PASSWORD)
    server = start_server(db, "--metadata", str(METADATA), env=env)
    try:
        for payload in (sample("a"), sample("b"), sample("c")):
            assert post_order(server.base, payload).status_code == 200
        with httpx.Client(base_url=server.datasette) as anonymous:
            for path in (
                "/",
                "/ledger/orders",
                "/ledger.json?sql=select+1",
                "/-/dashboards/ledger",
            ):
                assert anonymous.get(path).status_code in (302, 401), path
        with httpx.Client(base_url=server.datasette) as browser:
            page = browser.get("/-/login")
            token = re.search(r'name="csrftoken" value="([^"]+)"', page.text)
            assert token
            r = browser.post("/-/login", data={"username": USER, "password": PASSWORD,
                                              "csrftoken": token.group(1)})  # fmt: skip
            assert r.status_code == 302
            orders = browser.get("/ledger/orders")
            assert orders.status_code == 200 and "3911802" in orders.text
            count = browser.get("/ledger.json?sql=select+count(*)+from+events").json()["rows"]
            assert count == [[3]]
    finally:
        assert server.stop() == 0
    out = server.output()
    assert "Datasette on http://127.0.0.1:" in out
    for secret in (API_KEY, PASSWORD):
        assert secret not in out


# --- checked as a person sees it ----------------------------------------------------------


def test_main_pages_read_as_a_person_expects(ledger: Ledger) -> None:
    ds = make_datasette(ledger.db, METADATA)
    pages = run(
        fetch_all(
            ds,
            [
                "/",
                "/ledger/orders",
                "/ledger/history_of_order?order_id=3910457",
                "/-/reconciliation",
                "/-/dashboards/ledger",
                "/ledger/events/1",
                "/ledger/deliveries",
            ],
        )
    )
    assert {p: r.status_code for p, r in pages.items()} == dict.fromkeys(pages, 200)

    index = text_of(pages["/"])
    assert "Order Desk ledger" in index
    assert 'href="/-/reconciliation"' in index and 'href="/-/dashboards/ledger"' in index

    orders = text_of(pages["/ledger/orders"])
    assert "Orders (current)" in orders
    assert "sorted by seq descending" in orders
    assert orders.index("3920001") < orders.index("3912266") < orders.index("3911802")
    assert '<span class="money" title="5007 cents">$50.07</span>' in orders
    assert "2025-03-17 21:42:30 UTC" in orders
    for facet in ("folder_name", "state", "source_name", "payment_status"):
        assert f'data-column="{facet}"' in orders
    assert ">Canceled<" in orders and ">canceled<" in orders  # d sits in folder 48204
    assert 'href="/ledger/history_of_order?order_id=3910457"' in orders
    assert "What each column means" in orders  # descriptions fold away above the rows

    history = text_of(pages["/ledger/history_of_order?order_id=3910457"])
    assert "The full history of one order" in history
    assert "first snapshot" in history
    assert "folder_id: 48201 → 48203" in history
    effects = re.findall(r'<td class="col-effect[^"]*">([^<]*)</td>', history)
    assert effects == ["applied", "applied", "stale: kept, not applied"]

    recon = text_of(pages["/-/reconciliation"])
    meta = yaml.safe_load(METADATA.read_text())["databases"]["ledger"]
    for name in RECONCILIATION_VIEWS:
        assert meta["tables"][name]["title"] in recon
        assert f'href="/ledger/{name}.csv?_stream=on&amp;_size=max"' in recon
    count = r'recon-count">{} <span class="recon-flag">{}'
    assert re.search("totals do not add up.*?" + count.format(1, "to look at"), recon)
    assert re.search("does not equal the sum.*?" + count.format(0, "✓ none"), recon)
    for query in meta["queries"].values():
        assert query["title"] in recon

    dashboard = text_of(pages["/-/dashboards/ledger"])
    for title in ("Orders and revenue per day", "Top SKUs by units ordered",
                  "Open units per SKU", "Delivery outcomes, the 30 days up to the latest delivery"):  # fmt: skip
        assert title in dashboard
    scripts = re.findall(r'<script src="([^"]+)"', pages["/-/dashboards/ledger"].text)
    assert any("vega-lite" in s for s in scripts)
    assert all(run(ds.client.get(s)).status_code == 200 for s in scripts if s.startswith("/"))

    event = pages["/ledger/events/1"].text
    assert '<details class="payload">' in event and "order 3910457" in event
    exact = '"image": "https:\\/\\/cdn.example.com\\/img\\/tote-natural.jpg"'
    assert exact in html.unescape(event)  # escapes kept as received
    assert "d.open = true" in event  # the row page opens its payload

    deliveries = text_of(pages["/ledger/deliveries"])
    assert 'data-column="outcome"' in deliveries and "rejected" in deliveries


# --- readable values ------------------------------------------------------------------------

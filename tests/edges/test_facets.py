"""Counts the triggers keep, read instead of counted: by the orders page's facets (exactly
what Datasette's own counting gives) and by the dashboard. Real posts, the real Datasette."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from datasette.app import Datasette
from litestar.testing import TestClient

from ledger.db import connect
from ledger.projections.tables import ORDER_FACETS
from ledger.readside.app import (
    DATASETTE_SETTINGS,
    default_metadata_path,
    load_metadata,
    make_datasette,
)
from ledger.settings import Settings
from ledger.testing import encode
from ledger.testing import signed_form as form
from ledger.web import create_app
from tests.helpers import API_KEY, STORE_ID, name_folders, order_body, rows

SOURCES = ["Shopify", "Etsy", "Amazon", None]  # None: the key is left out
PAYMENTS = ["Captured", "Authorized", None]
FOLDERS = [48201, 48203, 48204, 48299]  # 48299 stays unnamed until the end
# state and folder_name are the page's default facets (metadata.yml); one unkept column
EVERY_FACET = "?_facet=source_name&_facet=payment_status&_facet=shipping_country"


def _order(n: int, version: int, folder: int, source: str | None, payment: str | None) -> bytes:
    body = order_body(n, version=version) | {"folder_id": folder}
    if n == 14:  # in the Canceled folder for good: a SKU no open order holds
        body["order_items"][0]["code"] = "ONLY-CANCELED"
    for key, value in (("source_name", source), ("payment_status", payment)):
        if value is not None:
            body[key] = value
    return encode(body)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Orders in every folder, source and payment status, some of each missing; later
    snapshots move some of them, and a folder is named after its orders arrived."""
    settings = Settings(
        db_path=tmp_path_factory.mktemp("facets") / "ledger.db", stores={STORE_ID: API_KEY}
    )
    name_folders(settings, {48201: "New", 48203: "Closed", 48204: "Canceled"})
    posts = [_order(n, 0, FOLDERS[n % 4], SOURCES[n % 4], PAYMENTS[n % 3]) for n in range(40)]
    posts += [_order(n, 1, FOLDERS[(n + 1) % 4], SOURCES[n % 3], "Refunded") for n in range(12)]
    with TestClient(create_app(settings)) as client:
        for payload in posts:
            assert client.post("/orderdesk", **form(payload)).status_code == 200
        assert client.post("/orderdesk", **form(posts[0])).status_code == 200  # duplicate
        assert client.post("/orderdesk", **form(posts[1], api_key="x")).status_code == 403
    name_folders(settings, {48299: "On hold"})
    return settings.db_path


def _facets(ds: Any, query: str) -> dict[str, Any]:
    async def fetch() -> dict[str, Any]:
        response = await ds.client.get(f"/ledger/orders.json{query}")
        assert response.status_code == 200, response.text
        return dict(response.json()["facet_results"])

    return asyncio.run(fetch())


def _stock(db: Path) -> Datasette:
    """Datasette as it comes, with the ledger's metadata: it counts every facet itself."""
    metadata = load_metadata(default_metadata_path(), "ledger")
    return Datasette(files=[str(db)], metadata=metadata, settings=DATASETTE_SETTINGS)


def test_the_kept_counts_are_what_datasette_counts(db: Path) -> None:
    ours = _facets(make_datasette(db), EVERY_FACET)
    assert ours == _facets(_stock(db), EVERY_FACET)
    assert set(ours) == {*ORDER_FACETS, "shipping_country"}
    counts = {name: {r["value"]: r["count"] for r in f["results"]} for name, f in ours.items()}
    assert counts["state"] == dict(rows(db, "SELECT state, count(*) FROM orders GROUP BY 1"))
    assert counts["folder_name"]["On hold"] > 0  # named after its orders arrived
    assert counts["payment_status"]["Refunded"] == 12  # moved by later snapshots
    assert all(len(counts[c]) >= 2 for c in ORDER_FACETS)


def test_the_whole_table_reads_the_kept_counts_and_a_filter_counts_itself(
    db: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "ledger.db"
    shutil.copy(db, copy)
    conn = connect(copy)
    conn.execute("UPDATE order_facets SET orders = orders + 1000")  # visible if read
    conn.close()
    whole = _facets(make_datasette(copy), "")
    assert all(r["count"] > 1000 for f in whole.values() for r in f["results"])
    filtered = _facets(make_datasette(copy), f"?store_id={STORE_ID}")
    assert filtered == _facets(_stock(db), f"?store_id={STORE_ID}")
    assert all(r["count"] < 1000 for f in filtered.values() for r in f["results"])


# The dashboard's charts as first written, scanning whole tables: what the kept counts
# and totals must still say (every delivery here is within the last 30 days).
CHARTS_BY_SCAN = {
    "orders-count": "SELECT count(*) FROM orders WHERE state != 'canceled'",
    "revenue-total": """
        SELECT printf('%,d.%02d', t / 100, t % 100) FROM (
          SELECT coalesce(sum(order_total_cents), 0) AS t FROM orders
          WHERE state != 'canceled')""",
    "top-skus": """
        SELECT i.code, sum(i.quantity) AS units FROM order_items i
        JOIN orders o ON o.store_id = i.store_id AND o.order_id = i.order_id
        WHERE o.state != 'canceled' GROUP BY i.code HAVING units > 0
        ORDER BY units DESC, i.code LIMIT 15""",
    "outcomes": """
        WITH span AS (
          SELECT (julianday(max(received_at)) - julianday(min(received_at))) * 86400
                 AS seconds FROM deliveries),
        bucket AS (
          SELECT CASE WHEN seconds > 40 * 3600 THEN 86400 WHEN seconds > 400 * 60 THEN 3600
                      WHEN seconds > 40 * 60 THEN 600 WHEN seconds > 400 THEN 60
                      WHEN seconds > 40 THEN 10 ELSE 1 END AS seconds FROM span)
        SELECT datetime(CAST(strftime('%s', received_at) AS INTEGER)
                        / (SELECT seconds FROM bucket) * (SELECT seconds FROM bucket),
                        'unixepoch') AS period,
               outcome, count(*) AS deliveries
        FROM deliveries GROUP BY period, outcome ORDER BY period, outcome""",
}


def test_the_dashboard_says_what_scanning_every_row_says(db: Path, tmp_path: Path) -> None:
    metadata = yaml.safe_load(default_metadata_path().read_text())  # type: ignore[union-attr]
    charts = metadata["plugins"]["datasette-dashboards"]["ledger"]["charts"]
    for name, by_scan in CHARTS_BY_SCAN.items():
        assert rows(db, charts[name]["query"]) == rows(db, by_scan), name
    outcomes = {outcome for _, outcome, _ in rows(db, CHARTS_BY_SCAN["outcomes"])}
    assert outcomes == {"appended", "duplicate", "rejected"}
    assert rows(db, CHARTS_BY_SCAN["orders-count"]) != [(0,)]
    skus = dict(rows(db, charts["top-skus"]["query"]))
    assert "ONLY-CANCELED" in dict(rows(db, "SELECT code, ordered FROM inventory"))
    assert "ONLY-CANCELED" not in skus and all(units > 0 for units in skus.values())
    # a delivery older than the 30 days before the latest one is left out of the chart
    old = tmp_path / "old.db"
    shutil.copy(db, old)
    conn = connect(old)
    conn.execute(
        "INSERT INTO deliveries (id, received_at, method, outcome, http_status)"
        " SELECT max(id) + 1, strftime('%Y-%m-%dT%H:%M:%fZ', min(received_at), '-31 days'),"
        " 'POST', 'rejected', 403 FROM deliveries"
    )
    conn.close()
    assert rows(old, charts["outcomes"]["query"]) == rows(db, CHARTS_BY_SCAN["outcomes"])
    assert rows(old, CHARTS_BY_SCAN["outcomes"]) != rows(db, CHARTS_BY_SCAN["outcomes"])

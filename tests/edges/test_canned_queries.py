"""Canned queries as an operator pages through them: real posts, the real Datasette."""

from __future__ import annotations

import asyncio
import html
import re
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from ledger.readside.app import make_datasette
from ledger.readside.pages import MORE_SKU_MOVEMENTS
from ledger.settings import Settings
from ledger.testing import encode
from ledger.testing import signed_form as form
from ledger.web import create_app
from tests.helpers import API_KEY, STORE_ID, name_folders, order_body, rows

OTHER_STORE, OTHER_KEY = "99001", "other-api-key"
SKU = "PIN-SET-3"  # on every order make_order builds
PAGE_ROWS = 200  # metadata.yml's history_of_sku page


def _order(n: int, version: int, pins: int) -> bytes:
    body = order_body(n, version=version)
    body["order_items"][1]["quantity"] = pins
    return encode(body)


@pytest.fixture(scope="module")
def sku_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """More movements of one SKU than a page holds, in two stores, with quantity changes,
    and one event that moves more of them than a page holds."""
    db = tmp_path_factory.mktemp("sku") / "ledger.db"
    settings = Settings(db_path=db, stores={STORE_ID: API_KEY, OTHER_STORE: OTHER_KEY})
    # the other store's orders come first in the log but last on the pages (store order)
    posts = [(OTHER_STORE, OTHER_KEY, _order(n, 0, 2)) for n in range(5)]
    posts += [(STORE_ID, API_KEY, _order(n, 0, 1)) for n in range(190)]
    posts += [(STORE_ID, API_KEY, _order(n, 1, 2 + n % 3)) for n in range(0, 90, 3)]
    with TestClient(create_app(settings)) as client:
        for store, key, payload in posts:
            response = client.post("/orderdesk", **form(payload, store_id=store, api_key=key))
            assert response.status_code == 200, response.text
    # naming the folder they are in cancels 190 orders at one seq: 190 movements of SKU
    name_folders(settings, {48201: "Canceled"})
    return db


def _running_totals(db: Path) -> list[tuple[Any, ...]]:
    """The oracle: every movement of SKU by store and seq, with totals summed in Python."""
    totals: dict[str, list[int]] = {}
    out = []
    for store, seq, *moves in rows(
        db,
        "SELECT store_id, seq, ordered, shipped, canceled, open FROM inventory_movements"
        " WHERE code = ? ORDER BY store_id, seq, order_id",
        (SKU,),
    ):
        total = totals.setdefault(store, [0, 0, 0, 0])
        total[:] = [t + m for t, m in zip(total, moves, strict=True)]
        out.append((store, seq, *total))
    return out


async def _walk(
    db: Path, query: str, max_rows: int = 1000
) -> tuple[list[dict[str, Any]], list[int]]:
    """Follow the "next" links from the first page; the rows of every page, and page sizes.
    A page cut inside one seq is completed from the link to that seq's movements."""
    ds = make_datasette(db, settings={"max_returned_rows": max_rows})
    seen: list[dict[str, Any]] = []
    sizes: list[int] = []
    while query is not None and len(sizes) < 10:
        page = await ds.client.get(f"/ledger/history_of_sku?{query}")
        data = await ds.client.get(f"/ledger/history_of_sku.json?{query}&_shape=array")
        assert page.status_code == data.status_code == 200
        seen += data.json()
        sizes.append(len(data.json()))
        cut = re.search(r'<p class="next-page-note">.*?<a href="([^"]+)">', page.text)
        if cut:
            table = html.unescape(cut.group(1)).replace("?", ".json?", 1)
            rest = await ds.client.get(table + "&_shape=objects&_size=max")
            shown = {(r["store_id"], r["seq"], r["order_id"]) for r in seen}
            seen += [
                {**r, "cut": True}
                for r in rest.json()["rows"]
                if (r["store_id"], r["seq"], r["order_id"]) not in shown
            ]
        link = re.search(r'<p class="next-page"><a href="\?([^"]+)">', page.text)
        query = html.unescape(link.group(1)) if link else None
    return seen, sizes


def test_history_of_sku_pages_carry_running_totals_over(sku_ledger: Path) -> None:
    seen, sizes = asyncio.run(_walk(sku_ledger, f"code={SKU}"))
    expected = _running_totals(sku_ledger)
    # the first page ends within store one; the second takes every movement of the
    # folder naming, more than a page; the third is the other store's
    assert sizes[0] == PAGE_ROWS and sizes[1] > PAGE_ROWS and len(sizes) == 3
    assert sizes[2] == len(
        rows(
            sku_ledger,
            "SELECT 1 FROM inventory_movements WHERE store_id = ? AND code = ?",
            (OTHER_STORE, SKU),
        )
    )
    got = [
        (r["store_id"], r["seq"], r["ordered_after"], r["shipped_after"], r["canceled_after"],
         r["open_after"])
        for r in seen
    ]  # fmt: skip
    assert got == expected
    # the last totals of each store are that store's inventory row
    last = {store: total for store, _, *total in expected}
    inventory = rows(
        sku_ledger,
        "SELECT store_id, ordered, shipped, canceled, open FROM inventory WHERE code = ?",
        (SKU,),
    )
    assert {store: list(total) for store, *total in inventory} == last
    assert {r["cause"] for r in seen} == {"OrderSnapshotReceived", "FolderNamed"}
    assert all(r["moved_at"] for r in seen)


def test_a_page_that_ends_on_the_last_movement_links_no_next_page(sku_ledger: Path) -> None:
    # store one: 190 new orders, 30 changes, then 190 movements at the folder naming's
    # seq; the other store: 5. After the 25th change, exactly one page is left.
    seqs = [
        seq
        for (seq,) in rows(
            sku_ledger,
            "SELECT seq FROM inventory_movements WHERE code = ? AND store_id = ? ORDER BY seq",
            (SKU, STORE_ID),
        )
    ]
    assert len(seqs) == 190 + 30 + 190 and len(set(seqs[220:])) == 1
    seen, sizes = asyncio.run(_walk(sku_ledger, f"code={SKU}&after_seq={seqs[214]}"))
    assert sizes == [PAGE_ROWS], "a full page, and no link to an empty one"
    assert seen[-1]["store_id"] == OTHER_STORE
    # the check seeks the SKU's index to the page's end instead of reading up to it
    plan = rows(
        sku_ledger,
        f"EXPLAIN QUERY PLAN {MORE_SKU_MOVEMENTS}",
        {"code": SKU, "store_id": STORE_ID, "seq": 1},
    )
    assert [r[3] for r in plan if "inventory_movements" in r[3]] == [
        "SEARCH inventory_movements USING COVERING INDEX read_inventory_movements_sums"
        " (code=? AND (store_id,seq)>(?,?))"
    ]


def test_a_page_cut_inside_one_seq_links_the_rest_of_it(sku_ledger: Path) -> None:
    # with 205 rows a page, the second page (20 changes, then the folder naming's 190
    # movements at one seq) is cut inside the naming's seq
    seen, sizes = asyncio.run(_walk(sku_ledger, f"code={SKU}", max_rows=205))
    assert sizes == [PAGE_ROWS, 205, 5]
    assert len([r for r in seen if r.get("cut")]) == 190 - 185
    got = sorted((r["store_id"], r["seq"], r["order_id"]) for r in seen)
    assert got == sorted(
        rows(
            sku_ledger,
            "SELECT store_id, seq, order_id FROM inventory_movements WHERE code = ?",
            (SKU,),
        )
    ), "every movement once: the pages, and the cut seq's link"
    # the page after the cut (the other store) has its own running totals
    after = [
        (r["store_id"], r["seq"], r["ordered_after"], r["shipped_after"], r["canceled_after"],
         r["open_after"])
        for r in seen[-5:]
    ]  # fmt: skip
    assert after == [t for t in _running_totals(sku_ledger) if t[0] == OTHER_STORE]


def test_history_of_sku_starts_over_on_an_unusable_after_seq(sku_ledger: Path) -> None:
    first, _ = asyncio.run(_walk(sku_ledger, f"code={SKU}&after_seq=not-a-number"))
    assert first[0]["seq"] == _running_totals(sku_ledger)[0][1]
    none, sizes = asyncio.run(_walk(sku_ledger, "code=NO-SUCH-SKU"))
    assert (none, sizes) == ([], [0])

"""How values show on the read side's pages: pure functions, no Datasette, no SQLite."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ledger.readside.render import (
    CELL_PRETTY_BYTES,
    CELL_TEXT_CHARS,
    PAGE,
    PAGE_PRETTY_BYTES,
    PageBudget,
    column_kind,
    format_money,
    format_timestamp,
    reindent_json,
    render_value,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values, st.sampled_from([(",", ":"), (", ", ": ")]), st.booleans())
def test_pretty_json_changes_only_whitespace(value: Any, separators: Any, ascii_only: bool) -> None:
    text = json.dumps(value, separators=separators, ensure_ascii=ascii_only)
    pretty = reindent_json(text)
    assert json.loads(pretty) == json.loads(text)
    assert tokens(pretty) == tokens(text)


def tokens(text: str) -> str:
    """The text without whitespace outside strings."""
    return "".join(re.findall(r'"(?:\\.|[^"\\])*"|[^\s"]+', text))


def test_pretty_json_keeps_escapes_and_number_spelling() -> None:
    text = '{"url":"https:\\/\\/x.example\\/a","price":18.50,"e":1E+2,"empty":[],"m":{}}'
    pretty = reindent_json(text)
    assert '"https:\\/\\/x.example\\/a"' in pretty and "18.50" in pretty and "1E+2" in pretty
    assert '"empty": []' in pretty and '"m": {}' in pretty


def test_money_and_time_formats() -> None:
    assert format_money(5007, "$") == "$50.07"
    assert format_money(-1234567, "$") == "-$12,345.67"
    assert format_money(5) == "0.05"
    assert format_timestamp("2026-11-28T02:33:12.347199Z") == "2026-11-28 02:33:12 UTC"
    assert format_timestamp("2025-03-17 21:42:30") == "2025-03-17 21:42:30 UTC"
    assert format_timestamp("yesterday") is None


def test_each_column_renders_by_its_name() -> None:
    assert column_kind("order_total_cents") == "money"
    assert column_kind("received_at") == column_kind("date_added") == "timestamp"
    assert column_kind("payload") == "json"
    assert column_kind("last_seq") == "seq"
    assert column_kind("order_id") == "order"
    assert column_kind("code") == "sku"
    assert column_kind("email") == ""


def _payload(n: int, size: int) -> str:
    return json.dumps({"id": str(n), "note": "x" * size})


def test_a_page_pretty_prints_within_its_budget_then_cuts_with_a_link() -> None:
    payloads = [_payload(n, 60_000) for n in range(50)]
    token = PAGE.set(PageBudget("/ledger/events.json", deadline=time.monotonic() + 60))
    try:
        cells = [render_value(p, "payload", "events", "/ledger", "") for p in payloads]
    finally:
        PAGE.reset(token)
    fits = next(n for n in range(51) if sum(map(len, payloads[: n + 1])) > PAGE_PRETTY_BYTES)
    pretty = [c for c in cells if c is not None and "the whole value" not in c]
    cut = [c for c in cells if c is not None and "the whole value" in c]
    assert len(pretty) == fits and len(cut) == 50 - fits
    assert all('<a href="/ledger/events.json">the whole value</a>' in c for c in cut)
    assert all(len(c) < CELL_TEXT_CHARS + 600 for c in cut)


def test_past_the_page_deadline_cells_are_cut() -> None:
    token = PAGE.set(PageBudget("/x.json", deadline=time.monotonic() - 1))
    try:
        cell = render_value(_payload(1, 5_000), "payload", "events", "/ledger", "")
    finally:
        PAGE.reset(token)
    assert cell is not None and "the whole value" in cell


def test_a_value_over_the_cell_bound_is_cut_even_on_its_own_page() -> None:
    huge = _payload(1, CELL_PRETTY_BYTES)
    cell = render_value(huge, "payload", "events", "/ledger", "")
    assert cell is not None and "more characters" in cell and len(cell) < CELL_TEXT_CHARS + 600
    small = render_value(_payload(1, 10), "payload", "events", "/ledger", "")
    assert small is not None and "&#34;id&#34;: &#34;1&#34;" in small


def test_a_payload_names_the_order_the_row_names() -> None:
    text = json.dumps({"order_items": [{"id": "ITEM-9"}], "id": "ORDER-1"})
    cell = render_value(text, "payload", "events", "/ledger", "", order_id="ORDER-1")
    assert cell is not None and "order ORDER-1 ·" in cell and "ITEM-9 ·" not in cell

"""How values show on the read side's pages: pure functions, no Datasette, no SQLite."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ledger.readside.render import column_kind, format_money, format_timestamp, reindent_json

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

"""Readable values: how the ledger's cells show on a page.

Exports keep the stored values; only the HTML changes (money as money, timestamps with
their zone, JSON pretty-printed without changing a character, links to histories). Pure
functions, and one budget a page's cells share: pretty JSON is bounded per cell and per
page in bytes and time, and past the bound a cell shows the start of its text with a link
to the page's ``.json``, which holds every value whole.
"""

from __future__ import annotations

import functools
import json
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup, escape

TIMESTAMP_COLUMNS = frozenset({"date_added", "date_shipped", "day"})
JSON_COLUMNS = frozenset({"payload", "variation"})
SEQ_COLUMNS = frozenset(
    {"seq", "first_seq", "last_seq", "already_had_seq", "same_payload_seq", "event_seq"}
)
CELL_PRETTY_BYTES = 256 * 1024  # a longer value is shown as text, cut at CELL_TEXT_CHARS
CELL_TEXT_CHARS = 2_000
PAGE_PRETTY_BYTES = 1024 * 1024  # what one page pretty-prints in all; then cells show text
PAGE_PRETTY_S = 0.25
_TS = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]00:?00)?$")


@dataclass
class PageBudget:
    """What one page may spend on pretty JSON: its cells share it, so a page of a thousand
    large payloads costs about what a page of twenty does."""

    full_value: str = ""  # where every value is whole: the page's own .json
    bytes_left: int = PAGE_PRETTY_BYTES
    deadline: float = field(default_factory=lambda: time.monotonic() + PAGE_PRETTY_S)

    def spend(self, size: int) -> bool:
        if size > CELL_PRETTY_BYTES or size > self.bytes_left or time.monotonic() > self.deadline:
            return False
        self.bytes_left -= size
        return True


PAGE: ContextVar[PageBudget | None] = ContextVar("ledger_page_budget", default=None)


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]|[^\s{}\[\],:"]+')


def reindent_json(text: str, indent: str = "  ") -> str:
    """Pretty-print JSON text without re-serialising it: every string, number and
    escape keeps its exact characters; only whitespace between tokens changes.
    Token by token (a regex finds them), not character by character: a table page
    shows fifty payloads."""
    out: list[str] = []
    depth = 0
    tokens = _JSON_TOKEN.findall(text)
    for i, token in enumerate(tokens):
        if token in ("{", "["):
            closing = "}" if token == "{" else "]"
            if i + 1 < len(tokens) and tokens[i + 1] == closing:
                out.append(token)  # an empty map or list stays on one line
                continue
            depth += 1
            out.append(token + "\n" + indent * depth)
        elif token in ("}", "]"):
            if out and out[-1] in ("{", "["):
                out.append(token)
                continue
            depth -= 1
            out.append("\n" + indent * depth + token)
        elif token == ",":
            out.append(",\n" + indent * depth)
        elif token == ":":
            out.append(": ")
        else:
            out.append(token)
    return "".join(out)


def format_money(cents: int, symbol: str = "") -> str:
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{symbol}{whole:,}.{frac:02d}"


def format_timestamp(value: str) -> str | None:
    match = _TS.match(value.strip())
    if not match:
        return None
    return f"{match.group(1)} {match.group(2)} UTC"


@functools.lru_cache(maxsize=4096)
def column_kind(column: str) -> str:
    """How a column's cells render, decided once per column name: the same for every row,
    and render_cell runs for every cell (~15 µs a cell was most of a 1,000-row page)."""
    if column.endswith("_cents"):
        return "money"
    if column in TIMESTAMP_COLUMNS or column.endswith("_at"):
        return "timestamp"
    if column in JSON_COLUMNS:
        return "json"
    if column in SEQ_COLUMNS:
        return "seq"
    if column == "order_id":
        return "order"
    if column == "code":
        return "sku"
    return ""


def render_value(
    value: Any, column: str, table: str | None, db_path: str, currency: str,
    order_id: str | None = None,
) -> Markup | None:  # fmt: skip
    """HTML for one cell, or None to let Datasette render it as usual; ``order_id`` is
    the row's own (a payload's summary names it)."""
    kind = column_kind(column)
    if not kind or isinstance(value, bool):
        return None
    if isinstance(value, int):
        if kind == "money":
            return Markup(
                f'<span class="money" title="{value} cents">'
                f"{escape(format_money(value, currency))}</span>"
            )
        if kind == "seq" and table not in ("events", "deliveries"):
            return Markup(f'<a href="{escape(db_path)}/events/{value}">{value}</a>')
        return None
    if not isinstance(value, str):
        return None
    if kind == "timestamp":
        shown = format_timestamp(value)
        if not shown:
            return None
        text = escape(value)
        return Markup(f'<time datetime="{text}" title="{text}">{escape(shown)}</time>')
    if kind == "json":
        return _render_json(value, column, order_id, PAGE.get() or PageBudget())
    if kind == "order" and value:
        return _link(f"{db_path}/history_of_order", "order_id", value, "history of this order")
    if kind == "sku" and value:  # on its own history too: back to the first page
        return _link(f"{db_path}/history_of_sku", "code", value, "history of this SKU")
    return None


def _link(page: str, param: str, value: str, title: str) -> Markup:
    href = escape(f"{page}?{urlencode({param: value})}")
    return Markup(f'<a href="{href}" title="{title}">{escape(value)}</a>')


def _render_json(
    value: str, column: str, order_id: str | None, budget: PageBudget
) -> Markup | None:
    if not value.lstrip().startswith(("{", "[")):
        return None
    size = len(value.encode("utf-8"))
    if budget.spend(size):
        try:
            json.loads(value)
        except ValueError:
            return None
        pretty = Markup("{}").format(reindent_json(value))
    else:
        pretty = _cut(value, budget.full_value)
    if column != "payload":
        return Markup('<pre class="json">{}</pre>').format(pretty)
    summary = f"{size:,} bytes of JSON"
    if order_id:
        summary = f"order {order_id} · {summary}"
    return Markup(
        '<details class="payload"><summary>{}</summary><pre class="json">{}</pre></details>'
    ).format(summary, pretty)


def _cut(value: str, full_value: str) -> Markup:
    shown = Markup("{}").format(value[:CELL_TEXT_CHARS])
    rest = len(value) - CELL_TEXT_CHARS
    if rest <= 0:
        return shown
    more = f"… {rest:,} more characters"
    if not full_value:
        return shown + Markup("\n{}: the .json and .csv exports hold it all").format(more)
    link = Markup('<a href="{}">the whole value</a>').format(full_value)
    return shown + Markup("\n{} (this page as JSON holds {})").format(more, link)

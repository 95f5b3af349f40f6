"""Where the fold's results go: the rows it implies, and the two sinks that write them.

The live path writes each event's rows at once through ``LiveSink``, reading the order's
state from the tables; ``ledger rebuild`` folds whole orders in memory and hands the same
rows to a ``BulkSink``, which writes each table's rows with one ``executemany``. Both get
their rows from the builders here, so they cannot disagree on what a row holds.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from ..events import StoredEvent
from ..table import Table
from .fold import History, OrderState, Step
from .order_view import NotProjected, OrderView
from .tables import (
    FOLDERS,
    INVENTORY_MOVEMENTS,
    ORDER_HISTORY,
    ORDER_ITEMS,
    ORDERS,
    PROJECTION_ISSUES,
    SHIPMENTS,
    Folder,
    OrderKey,
    OrderStatus,
    Summary,
)

Row = tuple[Any, ...]
KEY = OrderKey._fields

INSERT_ISSUE = PROJECTION_ISSUES.insert_sql(verb="INSERT OR IGNORE")
UPSERT_FOLDER = FOLDERS.upsert_sql(("store_id", "folder_id"))
UPDATE_ORDER = ORDERS.update_sql(ORDERS.column_names[len(KEY) :], KEY)
UPDATE_STATUS = ORDERS.update_sql(OrderStatus._fields, KEY)
LOAD_STATUS = ORDERS.select_sql(OrderStatus._fields, KEY)
LOAD_LINES = ORDER_ITEMS.select_sql(("code", "quantity"), KEY, "ORDER BY line")
LOAD_LAST_RECEIVED = ORDER_HISTORY.select_sql(Summary._fields, KEY, "ORDER BY seq DESC LIMIT 1")
FOLDER_NAME = FOLDERS.select_sql(("name",), ("store_id", "folder_id"))
ORDERS_IN_FOLDER = ORDERS.select_sql(("order_id",), ("store_id", "folder_id"), "ORDER BY order_id")
# An order's lines or shipments as stored, to compare with a snapshot's.
STORED = {
    t.name: t.select_sql(t.column_names, KEY, "ORDER BY line") for t in (ORDER_ITEMS, SHIPMENTS)
}
DELETE = {
    t.name: f"DELETE FROM {t.name} WHERE store_id = ? AND order_id = ?"
    for t in (ORDER_ITEMS, SHIPMENTS)
}


# --- the rows ------------------------------------------------------------------------------


def order_row(store_id: str, order_id: str, status: OrderStatus, view: OrderView) -> Row:
    return (store_id, order_id, *status, *view.fields)


def item_rows(store_id: str, order_id: str, view: OrderView) -> list[Row]:
    return [(store_id, order_id, *item) for item in view.items]


def shipment_rows(store_id: str, order_id: str, view: OrderView) -> list[Row]:
    return [(store_id, order_id, *shipment) for shipment in view.shipments]


def movement_rows(event: StoredEvent, order_id: str, step: Step) -> list[Row]:
    seq, store_id, at = event.seq, event.store_id, event.received_at
    return [(seq, store_id, order_id, code, *units, at) for code, units in step.movements.items()]


def history_row(event: StoredEvent, history: History) -> Row:
    return (event.seq, event.store_id, event.order_id, event.received_at, history.updated_at,
            *history.effect, *history.summary, history.changes)  # fmt: skip


def issue_rows(event: StoredEvent, issues: Sequence[str]) -> list[Row]:
    return [(event.seq, event.store_id, event.order_id, issue) for issue in issues]


def not_projected(exc: Exception) -> str:
    """The issue recorded for an event whose projection failed (live and rebuild alike)."""
    if isinstance(exc, NotProjected):  # left out on purpose: the reason is the message
        return f"not projected: {exc}"
    return f"not projected: {type(exc).__name__}: {exc}"


def folder_row(event: StoredEvent, body: Mapping[str, Any]) -> Folder:
    return Folder(
        event.store_id, int(body["folder_id"]), str(body["name"]), event.received_at, event.seq
    )


# --- the sinks -----------------------------------------------------------------------------


class BulkSink:
    """Rows gathered per statement, written with one executemany each."""

    def __init__(self) -> None:
        self.by_sql: dict[str, list[Row]] = defaultdict(list)
        self.count = 0

    def add(self, sql: str, rows: Sequence[Row]) -> None:
        self.by_sql[sql].extend(rows)
        self.count += len(rows)

    def insert(self, table: Table, rows: Sequence[Row]) -> None:
        self.add(table.insert, rows)

    def write(self, out: sqlite3.Connection) -> None:
        for sql, rows in self.by_sql.items():
            out.executemany(sql, rows)
        self.by_sql.clear()
        self.count = 0


class LiveSink:
    """One event's rows written at once, the order's state read from the tables."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def insert(self, table: Table, rows: Sequence[Row]) -> None:
        self.add(table.insert, rows)

    def add(self, sql: str, rows: Sequence[Row]) -> None:
        # An empty executemany still costs a statement step, and one row goes faster
        # through execute (writer CPU per event: bench/writer_cpu.py).
        if len(rows) == 1:
            self.conn.execute(sql, rows[0])
        elif rows:
            self.conn.executemany(sql, rows)

    def folder_name(self, store_id: str, folder_id: int | None) -> str | None:
        row = self.conn.execute(FOLDER_NAME, (store_id, folder_id)).fetchone()
        return row[0] if row else None

    def orders_in_folder(self, store_id: str, folder_id: int) -> list[str]:
        return [r[0] for r in self.conn.execute(ORDERS_IN_FOLDER, (store_id, folder_id))]

    def load_state(self, store_id: str, order_id: str) -> OrderState | None:
        key = (store_id, order_id)
        row = self.conn.execute(LOAD_STATUS, key).fetchone()
        if row is None:
            return None
        lines = self.conn.execute(LOAD_LINES, key).fetchall()
        last = self.conn.execute(LOAD_LAST_RECEIVED, key).fetchone()
        return OrderState(OrderStatus(*row), tuple(lines), Summary(*last))

    def save_step(self, event: StoredEvent, order_id: str, step: Step, *, is_new: bool) -> None:
        key = (event.store_id, order_id)
        status, view = step.state.status, step.current
        if view is None:
            self.conn.execute(UPDATE_STATUS, (*status, *key))
        elif is_new:  # nothing stored to compare with or delete
            self.conn.execute(ORDERS.insert, order_row(*key, status, view))
            self.add(ORDER_ITEMS.insert, item_rows(*key, view))
            self.add(SHIPMENTS.insert, shipment_rows(*key, view))
        else:
            self.conn.execute(UPDATE_ORDER, (*status, *view.fields, *key))
            self._replace(ORDER_ITEMS, key, item_rows(*key, view))
            self._replace(SHIPMENTS, key, shipment_rows(*key, view))
        self.add(INVENTORY_MOVEMENTS.insert, movement_rows(event, order_id, step))

    def _replace(self, table: Table, key: tuple[str, str], rows: list[Row]) -> None:
        """Make an order's lines (or shipments) the snapshot's. Most snapshots move a folder
        or add a shipment and leave the lines as they were: equal rows are not rewritten."""
        if self.conn.execute(STORED[table.name], key).fetchall() == rows:
            return
        self.conn.execute(DELETE[table.name], key)
        self.add(table.insert, rows)

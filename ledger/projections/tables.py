"""The projection tables, each declared once by the typed rows the projections build.

A row type's fields are its table's columns, in order; a table made of several row types
has their columns one after the other. The fold and the order view build these rows, the
sinks write them, and the DDL and SQL come from the same declarations (``Table``).
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

from ..table import Column, Table

OPEN, SHIPPED, CANCELED = "open", "shipped", "canceled"
STATES = (OPEN, SHIPPED, CANCELED)


class OrderKey(NamedTuple):
    store_id: str
    order_id: str


class OrderStatus(NamedTuple):
    """What the fold keeps of an order from one event to the next (columns of orders)."""

    seq: int  # the event holding the current snapshot
    order_updated_at: str | None
    state: str
    folder_id: int | None
    folder_name: str | None
    shipments_count: int
    snapshots_seen: int
    stale_snapshots: int
    first_seq: int
    last_seq: int


class OrderFields(NamedTuple):
    """What the current snapshot says of the order (columns of orders)."""

    date_added: str | None
    source_name: str | None
    source_id: str | None
    email: str | None
    customer_name: str | None
    customer_city: str | None
    customer_country: str | None
    shipping_name: str | None
    shipping_city: str | None
    shipping_state: str | None
    shipping_country: str | None
    shipping_method: str | None
    payment_type: str | None
    payment_status: str | None
    product_total_cents: int | None
    shipping_total_cents: int | None
    handling_total_cents: int | None
    tax_total_cents: int | None
    discount_total_cents: int | None
    order_total_cents: int | None
    refund_total_cents: int | None
    processor_balance_cents: int | None
    items_total_cents: int | None
    totals_problem: str | None
    quantity_total: int | None
    weight_total: str | None
    items_count: int


class Item(NamedTuple):
    """One line of an order's current snapshot (columns of order_items after the key)."""

    line: int
    item_id: str | None
    code: str
    name: str | None
    quantity: int
    price_cents: int | None
    weight: str | None
    category_code: str | None
    variation: str | None


class Shipment(NamedTuple):
    """One shipment of an order's current snapshot (columns of shipments after the key)."""

    line: int
    shipment_id: str | None
    tracking_number: str | None
    carrier_code: str | None
    shipment_method: str | None
    date_shipped: str | None
    cost_cents: int | None
    weight: str | None
    tracking_url: str | None


class SkuKey(NamedTuple):
    store_id: str
    code: str


class Units(NamedTuple):
    """Per SKU: units ordered (not canceled), shipped, canceled, open, and orders holding it."""

    ordered: int
    shipped: int
    canceled: int
    open: int
    orders: int


class LastMoved(NamedTuple):
    last_movement_at: str | None


class MovementKey(NamedTuple):
    seq: int
    store_id: str
    order_id: str
    code: str


class MovedAt(NamedTuple):
    moved_at: str


class HistoryKey(NamedTuple):
    seq: int
    store_id: str
    order_id: str
    received_at: str
    order_updated_at: str | None


class Effect(NamedTuple):
    applied: int
    stale: int


class Summary(NamedTuple):
    """What order_history compares between consecutive snapshots of an order."""

    folder_id: int | None
    payment_status: str | None
    order_total_cents: int | None
    lines: str
    shipments: str


class Changes(NamedTuple):
    changes: str


class Folder(NamedTuple):
    store_id: str
    folder_id: int
    name: str
    named_at: str
    seq: int


class Issue(NamedTuple):
    seq: int
    store_id: str
    order_id: str | None
    issue: str


class DayKey(NamedTuple):
    day: str
    store_id: str
    source_name: str


class DayCounts(NamedTuple):
    orders: int
    canceled_orders: int


class FacetCount(NamedTuple):
    facet: str
    value: str
    orders: int


class Position(NamedTuple):
    name: str
    seq: int


# The order columns daily_totals sums: every money column Order Desk sends but the
# processor's balance, which is not a sale.
DAILY_MONEY = tuple(
    c for c in OrderFields._fields if c.endswith("_total_cents") and c != "items_total_cents"
)
# The orders columns whose facet counts order_facets keeps (TEXT columns, all indexed).
ORDER_FACETS = ("state", "folder_name", "source_name", "payment_status")

ORDERS = Table(
    "orders",
    (OrderKey, OrderStatus, OrderFields),
    primary_key=OrderKey._fields,
    checks={"state": f"state IN ({', '.join(repr(s) for s in STATES)})"},
    indexes={
        "orders_folder": "orders (store_id, folder_id)",
        "orders_order_id": "orders (order_id)",
        "orders_state": "orders (state, order_updated_at)",
    },
)
ORDER_ITEMS = Table(
    "order_items", (OrderKey, Item), primary_key=(*OrderKey._fields, "line"), without_rowid=True
)
SHIPMENTS = Table(
    "shipments",
    (OrderKey, Shipment),
    primary_key=(*OrderKey._fields, "line"),
    without_rowid=True,
    indexes={"shipments_tracking": "shipments (tracking_number)"},
)
INVENTORY = Table(
    "inventory", (SkuKey, Units, LastMoved), primary_key=SkuKey._fields, without_rowid=True
)
INVENTORY_MOVEMENTS = Table(
    "inventory_movements",
    (MovementKey, Units, MovedAt),
    primary_key=MovementKey._fields,
    without_rowid=True,
)
# Per SKU, the sums of the movements up to the seq the positions row 'movements_closed'
# holds: counted from the movements when they were closed (closing.close_movements).
MOVEMENTS_CLOSED = Table(
    "movements_closed", (SkuKey, Units), primary_key=SkuKey._fields, without_rowid=True
)
ORDER_HISTORY = Table(
    "order_history",
    (HistoryKey, Effect, Summary, Changes),
    primary_key=("seq",),
    indexes={"order_history_order_store": "order_history (order_id, store_id, seq)"},
)
FOLDERS = Table("folders", (Folder,), primary_key=("store_id", "folder_id"), without_rowid=True)
PROJECTION_ISSUES = Table(
    "projection_issues", (Issue,), primary_key=("seq", "issue"), without_rowid=True
)
# One row per day (of date_added), store and source: the sums a payout is matched against,
# kept by triggers on orders. '' stands for a missing day or source (a key cannot be NULL).
DAILY_TOTALS = Table(
    "daily_totals",
    (DayKey, DayCounts, tuple(Column(c, "INTEGER", True) for c in DAILY_MONEY)),
    primary_key=DayKey._fields,
    without_rowid=True,
)
# How many current orders hold each value of the ORDER_FACETS columns, kept by triggers on
# orders: the orders page shows them without grouping every order on each load. No row
# for NULL: a facet leaves NULL out.
ORDER_FACET_COUNTS = Table(
    "order_facets", (FacetCount,), primary_key=("facet", "value"), without_rowid=True
)
# Up to which seq each projection has read the log (PROJECTED), and up to which seq the
# inventory movements are closed (CLOSED).
POSITIONS = Table("positions", (Position,), primary_key=("name",), without_rowid=True)

# In the order they are created; dropped and rebuilt together.
PROJECTION_TABLES = (
    FOLDERS,
    ORDERS,
    ORDER_ITEMS,
    SHIPMENTS,
    INVENTORY,
    INVENTORY_MOVEMENTS,
    MOVEMENTS_CLOSED,
    ORDER_HISTORY,
    PROJECTION_ISSUES,
    DAILY_TOTALS,
    ORDER_FACET_COUNTS,
    POSITIONS,
)
PROJECTED = "projections"
CLOSED = "movements_closed"


def create_projection_tables(conn: sqlite3.Connection, *, indexes: bool = True) -> None:
    """The projection tables, without their triggers; their secondary indexes unless a
    bulk load comes first (an index built over a filled table is a sort, not a million
    scattered inserts)."""
    for table in PROJECTION_TABLES:
        conn.execute(table.create_sql())
        for statement in table.index_sql() if indexes else ():
            conn.execute(statement)


def drop_projections(conn: sqlite3.Connection) -> None:
    """Drop every projection table (their indexes and triggers go with them)."""
    for table in PROJECTION_TABLES:
        conn.execute(f"DROP TABLE IF EXISTS main.{table.name}")

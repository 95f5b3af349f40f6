"""The database shape, declared as data and applied idempotently at every start."""

from __future__ import annotations

import sqlite3

PROJECTION_TABLES = (
    "folders",
    "orders",
    "order_items",
    "shipments",
    "inventory",
    "inventory_movements",
    "order_history",
    "projection_issues",
    "checkpoints",
)

LOG_DDL = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    received_at TEXT NOT NULL,
    store_id TEXT NOT NULL,
    order_id TEXT,
    order_updated_at TEXT,
    payload TEXT NOT NULL,
    payload_sha256 TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
) STRICT;
-- The dedup key; sha first, so a delivery's sha finds its event without a store id.
CREATE UNIQUE INDEX IF NOT EXISTS events_sha_store ON events (payload_sha256, store_id);
-- Order id first: lookups by order id alone, and the order-by-order replay of rebuilds.
CREATE INDEX IF NOT EXISTS events_order_store ON events (order_id, store_id, seq);
CREATE INDEX IF NOT EXISTS events_received ON events (received_at);

CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    remote_addr TEXT,
    method TEXT NOT NULL,
    content_type TEXT,
    body_bytes INTEGER,
    store_id TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('appended', 'duplicate', 'rejected')),
    http_status INTEGER NOT NULL,
    reason TEXT,
    signature_variant TEXT,
    payload_sha256 TEXT,
    order_id TEXT,
    seq INTEGER REFERENCES events (seq)
) STRICT;
CREATE INDEX IF NOT EXISTS deliveries_seq ON deliveries (seq);
CREATE INDEX IF NOT EXISTS deliveries_received ON deliveries (received_at);
CREATE INDEX IF NOT EXISTS deliveries_outcome ON deliveries (outcome, received_at);
"""


def _append_only(table: str, key_check: str) -> str:
    # INSERT OR REPLACE deletes the old row without firing DELETE triggers unless
    # recursive_triggers is on, so the BEFORE INSERT trigger refuses the conflict itself.
    return f"""
CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS {table}_no_replace BEFORE INSERT ON {table}
WHEN {key_check}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: the row exists already'); END;
"""


TRIGGERS_DDL = (
    _append_only(
        "events",
        "EXISTS (SELECT 1 FROM events WHERE seq = NEW.seq"
        " OR (store_id = NEW.store_id AND payload_sha256 = NEW.payload_sha256))",
    )
    + _append_only("deliveries", "EXISTS (SELECT 1 FROM deliveries WHERE id = NEW.id)")
    + """
CREATE TRIGGER IF NOT EXISTS events_gapless BEFORE INSERT ON events
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM events)
  OR NEW.prev_hash IS NOT coalesce(
       (SELECT hash FROM events ORDER BY seq DESC LIMIT 1), printf('%064d', 0))
BEGIN SELECT RAISE(ABORT, 'events: seq must follow the last seq and prev_hash its hash'); END;
"""
)

PROJECTION_DDL = """
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS folders (
    store_id TEXT NOT NULL,
    folder_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    named_at TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (store_id, folder_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS orders (
    store_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    order_updated_at TEXT,
    date_added TEXT,
    state TEXT NOT NULL CHECK (state IN ('open', 'shipped', 'canceled')),
    folder_id INTEGER,
    folder_name TEXT,
    source_name TEXT,
    source_id TEXT,
    email TEXT,
    customer_name TEXT,
    customer_city TEXT,
    customer_country TEXT,
    shipping_name TEXT,
    shipping_city TEXT,
    shipping_state TEXT,
    shipping_country TEXT,
    shipping_method TEXT,
    payment_type TEXT,
    payment_status TEXT,
    product_total_cents INTEGER,
    shipping_total_cents INTEGER,
    handling_total_cents INTEGER,
    tax_total_cents INTEGER,
    discount_total_cents INTEGER,
    order_total_cents INTEGER,
    refund_total_cents INTEGER,
    processor_balance_cents INTEGER,
    quantity_total INTEGER,
    weight_total TEXT,
    items_count INTEGER NOT NULL,
    shipments_count INTEGER NOT NULL,
    snapshots_seen INTEGER NOT NULL,
    stale_snapshots INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    PRIMARY KEY (store_id, order_id)
) STRICT;
CREATE INDEX IF NOT EXISTS orders_folder ON orders (store_id, folder_id);
CREATE INDEX IF NOT EXISTS orders_order_id ON orders (order_id);
CREATE INDEX IF NOT EXISTS orders_state ON orders (state, order_updated_at);

CREATE TABLE IF NOT EXISTS order_items (
    store_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    item_id TEXT,
    code TEXT NOT NULL,
    name TEXT,
    quantity INTEGER NOT NULL,
    price_cents INTEGER,
    weight TEXT,
    category_code TEXT,
    variation TEXT,
    PRIMARY KEY (store_id, order_id, line)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS order_items_code ON order_items (store_id, code);

CREATE TABLE IF NOT EXISTS shipments (
    store_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    shipment_id TEXT,
    tracking_number TEXT,
    carrier_code TEXT,
    shipment_method TEXT,
    date_shipped TEXT,
    cost_cents INTEGER,
    weight TEXT,
    tracking_url TEXT,
    PRIMARY KEY (store_id, order_id, line)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS shipments_tracking ON shipments (tracking_number);

CREATE TABLE IF NOT EXISTS inventory (
    store_id TEXT NOT NULL,
    code TEXT NOT NULL,
    ordered INTEGER NOT NULL,
    shipped INTEGER NOT NULL,
    canceled INTEGER NOT NULL,
    open INTEGER NOT NULL,
    orders INTEGER NOT NULL,
    last_movement_at TEXT,
    PRIMARY KEY (store_id, code)
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS inventory_movements (
    seq INTEGER NOT NULL,
    store_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    code TEXT NOT NULL,
    ordered INTEGER NOT NULL,
    shipped INTEGER NOT NULL,
    canceled INTEGER NOT NULL,
    open INTEGER NOT NULL,
    orders INTEGER NOT NULL,
    moved_at TEXT NOT NULL,
    PRIMARY KEY (seq, store_id, order_id, code)
) STRICT, WITHOUT ROWID;


CREATE TABLE IF NOT EXISTS order_history (
    seq INTEGER PRIMARY KEY,
    store_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    order_updated_at TEXT,
    applied INTEGER NOT NULL,
    stale INTEGER NOT NULL,
    folder_id INTEGER,
    payment_status TEXT,
    order_total_cents INTEGER,
    lines TEXT NOT NULL,
    shipments TEXT NOT NULL,
    changes TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS order_history_order_store ON order_history (order_id, store_id, seq);

CREATE TABLE IF NOT EXISTS projection_issues (
    seq INTEGER NOT NULL,
    store_id TEXT NOT NULL,
    order_id TEXT,
    issue TEXT NOT NULL,
    PRIMARY KEY (seq, issue)
) STRICT, WITHOUT ROWID;
"""


INVENTORY_TRIGGER = """
-- Inventory is the running sum of movements, kept by SQLite itself; a SKU that no
-- current order holds any more leaves the table (its movements stay).
CREATE TRIGGER IF NOT EXISTS inventory_follows_movements AFTER INSERT ON inventory_movements
BEGIN
  INSERT INTO inventory (store_id, code, ordered, shipped, canceled, open, orders, last_movement_at)
  VALUES (NEW.store_id, NEW.code, NEW.ordered, NEW.shipped, NEW.canceled, NEW.open, NEW.orders,
          NEW.moved_at)
  ON CONFLICT (store_id, code) DO UPDATE SET
    ordered = ordered + excluded.ordered, shipped = shipped + excluded.shipped,
    canceled = canceled + excluded.canceled, open = open + excluded.open,
    orders = orders + excluded.orders,
    last_movement_at = max(last_movement_at, excluded.last_movement_at);
  DELETE FROM inventory WHERE store_id = NEW.store_id AND code = NEW.code AND orders = 0
    AND ordered = 0 AND shipped = 0 AND canceled = 0 AND open = 0;
END;
"""


def connect(
    path: str, *, readonly: bool = False, busy_timeout_ms: int = 10_000
) -> sqlite3.Connection:
    """A connection in autocommit mode: every write transaction says BEGIN IMMEDIATE itself."""
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA recursive_triggers = ON")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
    return conn


def ensure_projection_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(PROJECTION_DDL + INVENTORY_TRIGGER)


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create whatever is missing; safe to run at every start and from several processes."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _statements(LOG_DDL + TRIGGERS_DDL + PROJECTION_DDL + INVENTORY_TRIGGER):
            conn.execute(statement)
        from .views import ensure_views

        ensure_views(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """Split a script into statements (triggers hold semicolons inside BEGIN...END)."""
    out: list[str] = []
    buf = ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n;"):
                out.append(buf.strip())
            buf = ""
    return out

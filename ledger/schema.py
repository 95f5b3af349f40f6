"""The database shape, declared as data and applied idempotently at every start."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from .errors import NewerSchema
from .settings import DEFAULT_BUSY_TIMEOUT_MS
from .store import CLOSED_SEQ_SQL as _CLOSED
from .store import checkpoint, close_movements

PROJECTION_TABLES = (
    "folders",
    "orders",
    "order_items",
    "shipments",
    "inventory",
    "inventory_movements",
    "movements_closed",
    "order_history",
    "projection_issues",
    "daily_totals",
    "order_facets",
    "checkpoints",
)

# The file's shape. A file of an older version keeps its log; at the next start its
# projections are upgraded in place where a step says how (UPGRADES_IN_PLACE), or else
# dropped and rebuilt from the log (see ``ensure_schema``).
SCHEMA_VERSION = 4

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
    items_total_cents INTEGER,
    totals_problem TEXT,
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

-- Per SKU, the sums of the movements up to the seq the checkpoints row 'movements_closed'
-- holds: counted from the movements when they were closed (store.close_movements).
CREATE TABLE IF NOT EXISTS movements_closed (
    store_id TEXT NOT NULL,
    code TEXT NOT NULL,
    ordered INTEGER NOT NULL,
    shipped INTEGER NOT NULL,
    canceled INTEGER NOT NULL,
    open INTEGER NOT NULL,
    orders INTEGER NOT NULL,
    PRIMARY KEY (store_id, code)
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

-- One row per day (of date_added), store and source: the sums a payout is matched against,
-- kept by triggers on orders. '' stands for a missing day or source (a key cannot be NULL).
CREATE TABLE IF NOT EXISTS daily_totals (
    day TEXT NOT NULL,
    store_id TEXT NOT NULL,
    source_name TEXT NOT NULL,
    orders INTEGER NOT NULL,
    canceled_orders INTEGER NOT NULL,
    product_total_cents INTEGER NOT NULL,
    shipping_total_cents INTEGER NOT NULL,
    handling_total_cents INTEGER NOT NULL,
    tax_total_cents INTEGER NOT NULL,
    discount_total_cents INTEGER NOT NULL,
    order_total_cents INTEGER NOT NULL,
    refund_total_cents INTEGER NOT NULL,
    PRIMARY KEY (day, store_id, source_name)
) STRICT, WITHOUT ROWID;

-- How many current orders hold each value of the columns the orders page facets by
-- (ORDER_FACETS), kept by triggers on orders: the page shows them without grouping every
-- order on each load. No row for NULL: a facet leaves NULL out.
CREATE TABLE IF NOT EXISTS order_facets (
    facet TEXT NOT NULL,
    value TEXT NOT NULL,
    orders INTEGER NOT NULL,
    PRIMARY KEY (facet, value)
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS projection_issues (
    seq INTEGER NOT NULL,
    store_id TEXT NOT NULL,
    order_id TEXT,
    issue TEXT NOT NULL,
    PRIMARY KEY (seq, issue)
) STRICT, WITHOUT ROWID;
"""


INVENTORY_TRIGGERS = """
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

CLOSED_MOVEMENTS_TRIGGERS = f"""
-- A closed movement is counted in movements_closed (store.close_movements): it cannot
-- change, and none can join the closed ones. INSERT OR REPLACE and UPDATE OR REPLACE
-- delete the old row without firing DELETE triggers unless recursive_triggers is on, so
-- the INSERT and UPDATE triggers look at the new row's seq too.
CREATE TRIGGER IF NOT EXISTS inventory_movements_closed_no_update
BEFORE UPDATE ON inventory_movements WHEN OLD.seq <= {_CLOSED} OR NEW.seq <= {_CLOSED}
BEGIN SELECT RAISE(ABORT, 'inventory_movements: a closed movement cannot change'); END;
CREATE TRIGGER IF NOT EXISTS inventory_movements_closed_no_delete
BEFORE DELETE ON inventory_movements WHEN OLD.seq <= {_CLOSED}
BEGIN SELECT RAISE(ABORT, 'inventory_movements: a closed movement cannot change'); END;
CREATE TRIGGER IF NOT EXISTS inventory_movements_closed_no_insert
BEFORE INSERT ON inventory_movements WHEN NEW.seq <= {_CLOSED}
BEGIN SELECT RAISE(ABORT, 'inventory_movements: movements up to this seq are closed'); END;
"""


DAILY_MONEY = ("product", "shipping", "handling", "tax", "discount", "order", "refund")


def _daily_upsert(row: str, sign: str) -> str:
    """Add (sign '+') or take away (sign '-') one orders row's share of its day's totals."""
    money = [f"{sign}coalesce({row}.{m}_total_cents, 0)" for m in DAILY_MONEY]
    sums = [f"{m}_total_cents = {m}_total_cents + excluded.{m}_total_cents" for m in DAILY_MONEY]
    return f"""
  INSERT INTO daily_totals VALUES (
    coalesce(date({row}.date_added), ''), {row}.store_id, coalesce({row}.source_name, ''),
    {sign}1, {sign}({row}.state = 'canceled'), {", ".join(money)})
  ON CONFLICT (day, store_id, source_name) DO UPDATE SET
    orders = orders + excluded.orders, canceled_orders = canceled_orders + excluded.canceled_orders,
    {", ".join(sums)};"""


_DAILY_CHANGED = " OR ".join(
    f"OLD.{c} IS NOT NEW.{c}"
    for c in (
        "date_added",
        "store_id",
        "source_name",
        "state",
        *(f"{m}_total_cents" for m in DAILY_MONEY),
    )
)

DAILY_TOTALS_TRIGGERS = f"""
-- Daily totals follow the orders table inside the same transaction, so they are
-- exactly the sums over the current orders, live and after a rebuild alike.
CREATE TRIGGER IF NOT EXISTS daily_totals_add AFTER INSERT ON orders
BEGIN{_daily_upsert("NEW", "+")}
END;
CREATE TRIGGER IF NOT EXISTS daily_totals_move AFTER UPDATE ON orders WHEN {_DAILY_CHANGED}
BEGIN{_daily_upsert("OLD", "-")}{_daily_upsert("NEW", "+")}
  DELETE FROM daily_totals WHERE orders = 0 AND day = coalesce(date(OLD.date_added), '')
    AND store_id = OLD.store_id AND source_name = coalesce(OLD.source_name, '');
END;
"""

# The orders columns whose facet counts order_facets keeps (TEXT columns, all indexed).
ORDER_FACETS = ("state", "folder_name", "source_name", "payment_status")


def _facet_count(row: str, column: str, step: str) -> str:
    """Count one orders row in (step '+1') or out of (step '-1') its value of ``column``."""
    return f"""
  INSERT INTO order_facets SELECT '{column}', {row}.{column}, {step}
    WHERE {row}.{column} IS NOT NULL
  ON CONFLICT (facet, value) DO UPDATE SET orders = orders + excluded.orders;"""


def _facet_move(column: str) -> str:
    return f"""
CREATE TRIGGER IF NOT EXISTS order_facets_{column} AFTER UPDATE OF {column} ON orders
WHEN OLD.{column} IS NOT NEW.{column}
BEGIN{_facet_count("OLD", column, "-1")}{_facet_count("NEW", column, "+1")}
  DELETE FROM order_facets WHERE facet = '{column}' AND value = OLD.{column} AND orders = 0;
END;"""


ORDER_FACETS_TRIGGERS = f"""
CREATE TRIGGER IF NOT EXISTS order_facets_add AFTER INSERT ON orders
BEGIN{"".join(_facet_count("NEW", c, "+1") for c in ORDER_FACETS)}
END;{"".join(_facet_move(c) for c in ORDER_FACETS)}
"""

# What a bulk load needs: the triggers that compute (the guards of closed movements would
# only be evaluated for every movement, ~1.3 s over 1.6M); the live file has both.
COMPUTING_TRIGGERS = INVENTORY_TRIGGERS + DAILY_TOTALS_TRIGGERS + ORDER_FACETS_TRIGGERS
PROJECTION_TRIGGERS = COMPUTING_TRIGGERS + CLOSED_MOVEMENTS_TRIGGERS


def connect(
    path: str, *, readonly: bool = False, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
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


def create_projection_tables(conn: sqlite3.Connection, *, indexes: bool = True) -> None:
    """The projection tables, without their triggers; their secondary indexes unless a
    bulk load comes first (an index built over a filled table is a sort, not a million
    scattered inserts)."""
    for statement in _statements(PROJECTION_DDL):
        if indexes or _is_create_table(statement):
            conn.execute(statement)


def _is_create_table(statement: str) -> bool:
    code = "\n".join(line for line in statement.splitlines() if not line.startswith("--"))
    return code.lstrip().startswith("CREATE TABLE")


def create_projection_triggers(conn: sqlite3.Connection, *, guards: bool = True) -> None:
    for statement in _statements(PROJECTION_TRIGGERS if guards else COMPUTING_TRIGGERS):
        conn.execute(statement)


def ensure_schema(conn: sqlite3.Connection) -> bool:
    """Create whatever is missing; safe to run at every start and from several processes.

    Returns True when the file was of an older version that no step upgrades in place:
    its projections were dropped (the log is never touched) and must be rebuilt from it.
    """
    from .views import ensure_views

    conn.execute("BEGIN IMMEDIATE")
    try:
        version = file_version(conn)
        has_log = _has_table(conn, "events")  # a new file has no version to come from
        while has_log and version in UPGRADES_IN_PLACE:
            UPGRADES_IN_PLACE[version](conn)
            version += 1
        older = has_log and version < SCHEMA_VERSION
        if older:
            drop_projections(conn)
        for statement in _statements(LOG_DDL + TRIGGERS_DDL):
            conn.execute(statement)
        create_projection_tables(conn)
        create_projection_triggers(conn)
        ensure_views(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return older


def _count_order_facets(conn: sqlite3.Connection) -> None:
    """Version 2 to 3: order_facets, counted once from the orders; its triggers keep it
    from then on (created with the others)."""
    create_projection_tables(conn)
    for column in ORDER_FACETS:
        conn.execute(
            f"INSERT INTO order_facets SELECT '{column}', {column}, count(*) FROM orders"
            f" WHERE {column} IS NOT NULL GROUP BY {column}"
        )


def _close_movements(conn: sqlite3.Connection) -> None:
    """Version 3 to 4: movements_closed, with every projected movement closed."""
    create_projection_tables(conn)
    close_movements(conn, checkpoint(conn))


# From a version, the step that brings its projections to the next one without a
# rebuild (a version without a step has its projections rebuilt from the log).
UPGRADES_IN_PLACE: dict[int, Callable[[sqlite3.Connection], None]] = {
    2: _count_order_facets,
    3: _close_movements,
}


def file_version(conn: sqlite3.Connection) -> int:
    """The file's schema version; a file from a newer ledger is refused."""
    version = int(conn.execute("PRAGMA main.user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise NewerSchema(
            f"the file is of schema version {version}; this ledger knows up to"
            f" {SCHEMA_VERSION}: upgrade orderdesk-ledger"
        )
    return version


def drop_projections(conn: sqlite3.Connection) -> None:
    """Drop every projection table (their indexes and triggers go with them)."""
    for table in PROJECTION_TABLES:
        conn.execute(f"DROP TABLE IF EXISTS main.{table}")


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


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

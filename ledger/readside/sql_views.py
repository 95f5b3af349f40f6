"""The read side's SQL views and indexes, declared as data and ensured at every start.

The views are the reconciliation pack: each answers one question an operator,
accountant or auditor asks of the ledger. They are views (not canned queries)
because Datasette streams every row of a view as CSV, while a canned query's
export stops at ``max_returned_rows``. Their titles and descriptions live in
``metadata.yml``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection

from ..db import database
from ..events import ORDER_SNAPSHOT
from ..projections.triggers import CLOSED_SEQ_SQL

_SNAPSHOT = f"'{ORDER_SNAPSHOT}'"

VIEWS: dict[str, str] = {
    # Operator: what came in today.
    "orders_today": """
SELECT o.store_id, o.order_id, o.date_added, o.order_updated_at, o.state, o.folder_name,
       o.source_name, o.payment_status, o.customer_name, o.shipping_city, o.shipping_country,
       o.items_count, o.quantity_total, o.order_total_cents, o.seq
FROM orders o
WHERE o.rowid IN (  -- two index ranges; an OR would scan every order
    SELECT rowid FROM orders WHERE order_updated_at >= date('now')
    UNION
    SELECT rowid FROM orders WHERE date_added >= date('now'))
ORDER BY o.order_updated_at DESC, o.seq DESC
""",
    # 1. Orders whose totals do not add up (the projection names the problem, see
    # order_view.totals_problem; a partial index holds just those orders).
    "reconcile_order_totals": """
SELECT store_id, order_id, order_updated_at, state, folder_name, source_name,
       items_total_cents, product_total_cents,
       items_total_cents - coalesce(product_total_cents, 0) AS items_difference_cents,
       shipping_total_cents, handling_total_cents, tax_total_cents, discount_total_cents,
       coalesce(product_total_cents, 0) + coalesce(shipping_total_cents, 0)
         + coalesce(handling_total_cents, 0) + coalesce(tax_total_cents, 0)
         - coalesce(discount_total_cents, 0) AS computed_total_cents,
       order_total_cents,
       coalesce(product_total_cents, 0) + coalesce(shipping_total_cents, 0)
         + coalesce(handling_total_cents, 0) + coalesce(tax_total_cents, 0)
         - coalesce(discount_total_cents, 0) - coalesce(order_total_cents, 0)
         AS total_difference_cents,
       totals_problem AS problem,
       seq
FROM orders INDEXED BY read_orders_totals_problem  -- never a scan, whatever the plan
WHERE totals_problem IS NOT NULL
ORDER BY order_updated_at DESC, seq DESC
""",
    # 2. Snapshots that arrived stale.
    "reconcile_stale_snapshots": """
SELECT h.seq, h.received_at, h.store_id, h.order_id,
       h.order_updated_at AS snapshot_updated_at,
       (SELECT p.order_updated_at FROM order_history p
         WHERE p.store_id = h.store_id AND p.order_id = h.order_id AND p.applied = 1
           AND p.seq < h.seq
         ORDER BY p.order_updated_at DESC, p.seq DESC LIMIT 1) AS already_had_updated_at,
       (SELECT p.seq FROM order_history p
         WHERE p.store_id = h.store_id AND p.order_id = h.order_id AND p.applied = 1
           AND p.seq < h.seq
         ORDER BY p.order_updated_at DESC, p.seq DESC LIMIT 1) AS already_had_seq,
       o.order_updated_at AS current_updated_at,
       h.changes
FROM order_history h
LEFT JOIN orders o ON o.store_id = h.store_id AND o.order_id = h.order_id
WHERE h.stale = 1
ORDER BY h.seq DESC
""",
    # 3a. Retries and duplicates per order. An order is listed when one of its events has
    # two attempts. The writer gives an event one 'appended' delivery at most (in the
    # transaction that appends it), so the second attempt is a duplicate or a rejected
    # one: the view starts from those few (outcome index) and reads only their orders'
    # events and deliveries, not the whole log. The HAVING still decides, so an order
    # reached this way that does not qualify is dropped.
    "reconcile_deliveries_per_order": f"""
WITH rejected_seen AS (  -- refused attempts whose exact bytes are in the log after all
    SELECT e.store_id, e.order_id, e.seq AS event_seq, d.outcome, d.received_at
    FROM deliveries d JOIN events e ON e.payload_sha256 = d.payload_sha256
    WHERE d.seq IS NULL AND d.outcome = 'rejected' AND e.type = {_SNAPSHOT}
),
touched AS (
    SELECT e.store_id, e.order_id
    FROM deliveries d JOIN events e ON e.seq = d.seq
    WHERE d.outcome IN ('duplicate', 'rejected')
    UNION
    SELECT store_id, order_id FROM rejected_seen
),
attempts AS (
    SELECT e.store_id, e.order_id, e.seq AS event_seq, d.outcome, d.received_at
    FROM touched t  -- IS, not =: GROUP BY puts events without an order id together too
    JOIN events e ON e.order_id IS t.order_id AND e.store_id = t.store_id
    JOIN deliveries d ON d.seq = e.seq
    UNION ALL
    SELECT * FROM rejected_seen
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
""",
    # 3b. Every rejected delivery, with its reason.
    "reconcile_rejected_deliveries": f"""
SELECT d.id, d.received_at, d.remote_addr, d.method, d.content_type, d.body_bytes,
       d.store_id AS claimed_store_id, d.http_status, d.reason, d.payload_sha256,
       (SELECT e.seq FROM events e
         WHERE e.payload_sha256 = d.payload_sha256 AND e.type = {_SNAPSHOT}
         ORDER BY e.seq LIMIT 1) AS same_payload_seq,
       (SELECT e.order_id FROM events e
         WHERE e.payload_sha256 = d.payload_sha256 AND e.type = {_SNAPSHOT}
         ORDER BY e.seq LIMIT 1) AS same_payload_order_id
FROM deliveries d
WHERE d.outcome = 'rejected'
ORDER BY d.id DESC
""",
    # 5. Daily totals per store and source, to match payouts (kept by triggers on orders).
    "reconcile_daily_totals": """
SELECT nullif(day, '') AS day, store_id, nullif(source_name, '') AS source_name,
       orders, canceled_orders, product_total_cents, shipping_total_cents,
       handling_total_cents, tax_total_cents, discount_total_cents, order_total_cents,
       refund_total_cents, order_total_cents - refund_total_cents AS net_cents
FROM daily_totals
ORDER BY daily_totals.day DESC, store_id, daily_totals.source_name
""",
    # 6. Inventory that does not equal the sum of its movements (always empty): the closed
    # movements' sums plus a recount of the movements since (closing.close_movements).
    "reconcile_inventory_drift": f"""
WITH moved AS (
    SELECT store_id, code, sum(ordered) AS ordered, sum(shipped) AS shipped,
           sum(canceled) AS canceled, sum(open) AS open, sum(orders) AS orders
    FROM (
        SELECT store_id, code, ordered, shipped, canceled, open, orders FROM movements_closed
        UNION ALL
        SELECT store_id, code, ordered, shipped, canceled, open, orders
        FROM inventory_movements
        WHERE seq > coalesce({CLOSED_SEQ_SQL}, 0)
    )
    GROUP BY store_id, code
),
skus AS (
    SELECT store_id, code FROM inventory
    UNION
    SELECT store_id, code FROM moved WHERE ordered OR shipped OR canceled OR open OR orders
)
SELECT s.store_id, s.code,
       i.ordered AS inventory_ordered, m.ordered AS movements_ordered,
       i.shipped AS inventory_shipped, m.shipped AS movements_shipped,
       i.canceled AS inventory_canceled, m.canceled AS movements_canceled,
       i.open AS inventory_open, m.open AS movements_open,
       i.orders AS inventory_orders, m.orders AS movements_orders
FROM skus s
LEFT JOIN inventory i ON i.store_id = s.store_id AND i.code = s.code
LEFT JOIN moved m ON m.store_id = s.store_id AND m.code = s.code
WHERE coalesce(i.ordered, 0) != coalesce(m.ordered, 0)
   OR coalesce(i.shipped, 0) != coalesce(m.shipped, 0)
   OR coalesce(i.canceled, 0) != coalesce(m.canceled, 0)
   OR coalesce(i.open, 0) != coalesce(m.open, 0)
   OR coalesce(i.orders, 0) != coalesce(m.orders, 0)
ORDER BY s.store_id, s.code
""",
}

# The reconciliation views in the order the reconciliation page lists them.
RECONCILIATION_VIEWS = (
    "reconcile_order_totals",
    "reconcile_stale_snapshots",
    "reconcile_deliveries_per_order",
    "reconcile_rejected_deliveries",
    "reconcile_daily_totals",
    "reconcile_inventory_drift",
)

# Indexes the read side needs (lookups by order id or SKU without a store id, and
# links from a delivery to the event with the same payload).
INDEXES: dict[str, str] = {
    # A refused post's bytes, to find whether they were accepted later. Only refused
    # deliveries: the others reach their event by seq, and an index on every delivery's
    # random sha cost each post one more scattered page.
    "read_rejected_sha": "deliveries (payload_sha256) WHERE outcome = 'rejected'",
    "read_order_history_stale": "order_history (seq) WHERE stale = 1",
    # By SKU without a store id, and covering the sums: history_of_sku finds a page and
    # sums every movement before it in index order, without reading the table.
    "read_inventory_movements_sums": (
        "inventory_movements (code, store_id, seq, ordered, shipped, canceled, open, orders)"
    ),
    "read_orders_date_added": "orders (date_added)",
    "read_orders_updated": "orders (order_updated_at)",  # with date_added: orders_today
    # a filtered orders page counts its facets from these (state: orders_state); the
    # whole table's counts are kept in order_facets
    "read_orders_folder_name": "orders (folder_name)",
    "read_orders_source_name": "orders (source_name)",
    "read_orders_payment_status": "orders (payment_status)",
    "read_orders_seq": "orders (seq)",
    # only the orders whose totals do not add up: reconcile_order_totals, newest first
    "read_orders_totals_problem": (
        "orders (order_updated_at DESC, seq DESC) WHERE totals_problem IS NOT NULL"
    ),
}


def create_read_indexes(conn: sqlite3.Connection, tables: Collection[str] | None = None) -> None:
    """The read-side indexes; only those on ``tables`` when it is given."""
    for name, target in INDEXES.items():
        if tables is None or target.split(" ", 1)[0] in tables:
            conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")


def ensure_views(conn: sqlite3.Connection) -> None:
    """Recreate the views and the read-side indexes (idempotent, inside a transaction)."""
    create_read_indexes(conn)
    db = database(conn)
    # after the indexes: a view may name one (INDEXED BY); an unchanged view is left be
    for name, select in VIEWS.items():
        db.create_view(name, select.strip(), replace=True)

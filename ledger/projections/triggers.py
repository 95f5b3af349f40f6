"""Projections SQLite keeps itself, by triggers, in the transaction that writes their source.

``inventory`` follows the movements, ``daily_totals`` and ``order_facets`` follow
``orders``; the closed movements are guarded against change. A rebuild loads the tables
with the computing triggers only and adds the guards at the swap (``guards=False``).
"""

from __future__ import annotations

import sqlite3

from .tables import DAILY_MONEY, ORDER_FACETS, Units

CLOSED_SEQ_SQL = "(SELECT seq FROM positions WHERE name = 'movements_closed')"

_UNITS = Units._fields


def _inventory_triggers() -> str:
    values = ", ".join(f"NEW.{u}" for u in _UNITS)
    sums = ", ".join(f"{u} = {u} + excluded.{u}" for u in _UNITS)
    zero = " AND ".join(f"{u} = 0" for u in _UNITS)
    return f"""
-- Inventory is the running sum of movements, kept by SQLite itself; a SKU that no
-- current order holds any more leaves the table (its movements stay).
CREATE TRIGGER IF NOT EXISTS inventory_follows_movements AFTER INSERT ON inventory_movements
BEGIN
  INSERT INTO inventory (store_id, code, {", ".join(_UNITS)}, last_movement_at)
  VALUES (NEW.store_id, NEW.code, {values}, NEW.moved_at)
  ON CONFLICT (store_id, code) DO UPDATE SET {sums},
    last_movement_at = max(last_movement_at, excluded.last_movement_at);
  DELETE FROM inventory WHERE store_id = NEW.store_id AND code = NEW.code AND {zero};
END;
"""


CLOSED_MOVEMENTS_TRIGGERS = f"""
-- A closed movement is counted in movements_closed (closing.close_movements): it cannot
-- change, and none can join the closed ones. INSERT OR REPLACE and UPDATE OR REPLACE
-- delete the old row without firing DELETE triggers unless recursive_triggers is on, so
-- the INSERT and UPDATE triggers look at the new row's seq too.
CREATE TRIGGER IF NOT EXISTS inventory_movements_closed_no_update
BEFORE UPDATE ON inventory_movements WHEN OLD.seq <= {CLOSED_SEQ_SQL} OR NEW.seq <= {CLOSED_SEQ_SQL}
BEGIN SELECT RAISE(ABORT, 'inventory_movements: a closed movement cannot change'); END;
CREATE TRIGGER IF NOT EXISTS inventory_movements_closed_no_delete
BEFORE DELETE ON inventory_movements WHEN OLD.seq <= {CLOSED_SEQ_SQL}
BEGIN SELECT RAISE(ABORT, 'inventory_movements: a closed movement cannot change'); END;
CREATE TRIGGER IF NOT EXISTS inventory_movements_closed_no_insert
BEFORE INSERT ON inventory_movements WHEN NEW.seq <= {CLOSED_SEQ_SQL}
BEGIN SELECT RAISE(ABORT, 'inventory_movements: movements up to this seq are closed'); END;
"""


def _daily_upsert(row: str, sign: str) -> str:
    """Add (sign '+') or take away (sign '-') one orders row's share of its day's totals."""
    money = [f"{sign}coalesce({row}.{m}, 0)" for m in DAILY_MONEY]
    sums = [f"{m} = {m} + excluded.{m}" for m in DAILY_MONEY]
    return f"""
  INSERT INTO daily_totals VALUES (
    coalesce(date({row}.date_added), ''), {row}.store_id, coalesce({row}.source_name, ''),
    {sign}1, {sign}({row}.state = 'canceled'), {", ".join(money)})
  ON CONFLICT (day, store_id, source_name) DO UPDATE SET
    orders = orders + excluded.orders, canceled_orders = canceled_orders + excluded.canceled_orders,
    {", ".join(sums)};"""


_DAILY_CHANGED = " OR ".join(
    f"OLD.{c} IS NOT NEW.{c}"
    for c in ("date_added", "store_id", "source_name", "state", *DAILY_MONEY)
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
COMPUTING_TRIGGERS = _inventory_triggers() + DAILY_TOTALS_TRIGGERS + ORDER_FACETS_TRIGGERS
PROJECTION_TRIGGERS = COMPUTING_TRIGGERS + CLOSED_MOVEMENTS_TRIGGERS


def create_projection_triggers(conn: sqlite3.Connection, *, guards: bool = True) -> None:
    from ..db import database

    database(conn).executescript(PROJECTION_TRIGGERS if guards else COMPUTING_TRIGGERS)

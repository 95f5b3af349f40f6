"""Closing the inventory movements, so the drift check recounts only what came after.

Every ``close_every`` events (a Settings tunable) the movements up to the projected seq
are summed per SKU into ``movements_closed``, by SQL from the movements themselves (not
by the trigger that keeps ``inventory``); from then on triggers refuse to change a
closed movement. So ``reconcile_inventory_drift`` reads at most one interval of
movements however long the log grows.
"""

from __future__ import annotations

import sqlite3

from ..db import savepoint
from .positions import position, set_position
from .tables import CLOSED, MOVEMENTS_CLOSED, SkuKey, Units

_UNITS = Units._fields
_KEY = ", ".join(SkuKey._fields)
# ``WHERE`` before ``ON CONFLICT``: without it SQLite could read the upsert as a join.
CLOSE_MOVEMENTS = f"""
INSERT INTO {MOVEMENTS_CLOSED.name} ({_KEY}, {", ".join(_UNITS)})
SELECT {_KEY}, {", ".join(f"sum({u})" for u in _UNITS)}
FROM inventory_movements WHERE seq > ? AND seq <= ? GROUP BY {_KEY}
ON CONFLICT ({_KEY}) DO UPDATE SET
{", ".join(f"{u} = {u} + excluded.{u}" for u in _UNITS)}
"""


def close_movements(conn: sqlite3.Connection, through: int) -> int:
    """Close the inventory movements up to seq ``through``; returns the seq they are
    closed up to."""
    # The closed seq, the sums and the new seq as one, in a caller's transaction or not:
    # sums added twice would show as drift.
    with savepoint(conn, "close"):
        closed = position(conn, CLOSED)
        if through > closed:
            conn.execute(CLOSE_MOVEMENTS, (closed, through))
            set_position(conn, CLOSED, through)
    return max(through, closed)

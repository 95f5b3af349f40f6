"""How far each projection has read the log, kept in the transaction that projects."""

from __future__ import annotations

import sqlite3

from .tables import POSITIONS, PROJECTED

SET_POSITION = POSITIONS.upsert_sql(("name",))
GET_POSITION = "SELECT seq FROM positions WHERE name = ?"


def position(conn: sqlite3.Connection, name: str = PROJECTED) -> int:
    """The seq up to which ``name`` has read the log (0: nothing yet)."""
    row = conn.execute(GET_POSITION, (name,)).fetchone()
    return int(row[0]) if row else 0


def set_position(conn: sqlite3.Connection, name: str, seq: int) -> None:
    conn.execute(SET_POSITION, (name, seq))

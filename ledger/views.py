"""Views, declared as data: name -> SELECT. Recreated at every start so they follow the code."""

from __future__ import annotations

import sqlite3

VIEWS: dict[str, str] = {}


def ensure_views(conn: sqlite3.Connection) -> None:
    for name, select in VIEWS.items():
        conn.execute(f"DROP VIEW IF EXISTS {name}")
        conn.execute(f"CREATE VIEW {name} AS {select}")

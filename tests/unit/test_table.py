"""A table declared once: DDL, SQL and rows derived from typed rows (real SQLite in memory)."""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

from ledger.log import LOG_TABLES
from ledger.projections.tables import ORDERS, PROJECTION_TABLES
from ledger.table import Table


class Key(NamedTuple):
    store_id: str
    code: str


class Counts(NamedTuple):
    units: int
    note: str | None


THINGS = Table("things", (Key, Counts), primary_key=Key._fields, without_rowid=True,
               checks={"units": "units >= 0"}, indexes={"things_units": "things (units)"})  # fmt: skip


def test_columns_types_and_constraints_come_from_the_rows() -> None:
    assert THINGS.column_names == ("store_id", "code", "units", "note")
    conn = sqlite3.connect(":memory:")
    conn.execute(THINGS.create_sql())
    for statement in THINGS.index_sql():
        conn.execute(statement)
    info = [(r[1], r[2], r[3], r[5]) for r in conn.execute("PRAGMA table_info(things)")]
    assert info == [("store_id", "TEXT", 1, 1), ("code", "TEXT", 1, 2),
                    ("units", "INTEGER", 1, 0), ("note", "TEXT", 0, 0)]  # fmt: skip
    conn.execute(THINGS.insert, ("1", "A", 2, None))
    conn.execute(THINGS.upsert_sql(Key._fields), ("1", "A", 5, "more"))
    assert conn.execute("SELECT * FROM things").fetchall() == [("1", "A", 5, "more")]
    try:
        conn.execute(THINGS.insert, ("1", "B", -1, None))
        raise AssertionError("the CHECK is part of the table")
    except sqlite3.IntegrityError:
        pass


def test_every_declared_table_is_created_by_sqlite_as_declared() -> None:
    conn = sqlite3.connect(":memory:")
    for table in (*LOG_TABLES, *PROJECTION_TABLES):
        conn.execute(table.create_sql())
        names = tuple(r[1] for r in conn.execute(f"PRAGMA table_info({table.name})"))
        assert names == table.column_names, table.name
        assert conn.execute(f"SELECT strict FROM pragma_table_list('{table.name}')").fetchone() == (
            1,
        )
    assert ORDERS.rowid_key is None and LOG_TABLES[0].rowid_key == "seq"

"""A table declared once: its columns are the fields of typed rows, and its DDL, its
insert SQL and its column lists are derived from them when the module is imported.

A column is ``name: int`` (INTEGER NOT NULL), ``name: int | None`` (INTEGER), ``str`` or
``str | None`` (TEXT), in the order of the rows' fields. A row type is a NamedTuple, so
the tuples the projections build are the rows SQLite binds, with no dict per row.

sqlite-utils creates tables from a column dict too, but it cannot say WITHOUT ROWID and
has CHECK constraints only as a private argument; the projections need both (see
``projections/tables.py``). It is used for what it does well: introspection, views,
full-text search and migrations (``schema.py``, ``migrations.py``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

SQL_TYPES: Mapping[type, str] = {int: "INTEGER", str: "TEXT"}


class Column(NamedTuple):
    name: str
    sql_type: str
    not_null: bool

    def ddl(self, checks: Mapping[str, str], references: Mapping[str, str]) -> str:
        parts = [self.name, self.sql_type]
        if self.not_null:
            parts.append("NOT NULL")
        if self.name in checks:
            parts.append(f"CHECK ({checks[self.name]})")
        if self.name in references:
            parts.append(f"REFERENCES {references[self.name]}")
        return " ".join(parts)


RowType = type[tuple[Any, ...]] | tuple[Column, ...]


def columns_of(row: RowType) -> tuple[Column, ...]:
    """The columns a NamedTuple row type declares, in field order (or columns as such)."""
    if isinstance(row, tuple):
        return row
    hints = typing.get_type_hints(row)
    found = []
    for name in row._fields:  # type: ignore[attr-defined]
        hint = hints[name]
        args = typing.get_args(hint)
        optional = isinstance(hint, types.UnionType) and type(None) in args
        base = next(a for a in args if a is not type(None)) if optional else hint
        found.append(Column(name, SQL_TYPES[base], not optional))
    return tuple(found)


@dataclass(frozen=True)
class Table:
    """One table: columns from ``rows`` (one or more row types, concatenated in order)."""

    name: str
    rows: Sequence[RowType]
    primary_key: tuple[str, ...]
    without_rowid: bool = False
    checks: Mapping[str, str] = field(default_factory=dict)
    references: Mapping[str, str] = field(default_factory=dict)
    # index name -> what follows ON: "table (columns) [WHERE ...]", "UNIQUE table (...)"
    indexes: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def columns(self) -> tuple[Column, ...]:
        return tuple(c for row in self.rows for c in columns_of(row))

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @cached_property
    def rowid_key(self) -> str | None:
        """The column that is the rowid itself: a lone INTEGER primary key."""
        if len(self.primary_key) != 1:
            return None
        column = next(c for c in self.columns if c.name == self.primary_key[0])
        return column.name if column.sql_type == "INTEGER" and not self.without_rowid else None

    def create_sql(self, name: str | None = None) -> str:
        """CREATE TABLE, under ``name`` if given (a scratch copy of the same shape)."""
        lines = []
        for c in self.columns:
            if c.name == self.rowid_key:  # NULL means "the next rowid" here, so no NOT NULL
                lines.append(f"{c.name} INTEGER PRIMARY KEY")
            else:
                lines.append(c.ddl(self.checks, self.references))
        if self.rowid_key is None:
            lines.append(f"PRIMARY KEY ({', '.join(self.primary_key)})")
        options = "STRICT, WITHOUT ROWID" if self.without_rowid else "STRICT"
        body = ",\n    ".join(lines)
        return f"CREATE TABLE IF NOT EXISTS {name or self.name} (\n    {body}\n) {options}"

    def index_sql(self) -> list[str]:
        """CREATE INDEX for each of ``indexes``; one whose target starts "UNIQUE " is unique."""
        out = []
        for name, on in self.indexes.items():
            unique, target = ("UNIQUE ", on[7:]) if on.startswith("UNIQUE ") else ("", on)
            out.append(f"CREATE {unique}INDEX IF NOT EXISTS {name} ON {target}")
        return out

    @cached_property
    def insert(self) -> str:
        """INSERT of whole rows, built once (the live path inserts per event)."""
        return self.insert_sql()

    def insert_sql(self, into: str | None = None, *, verb: str = "INSERT") -> str:
        names = self.column_names
        return (
            f"{verb} INTO {into or self.name} ({', '.join(names)})"
            f" VALUES ({', '.join('?' * len(names))})"
        )

    def upsert_sql(self, key: Sequence[str]) -> str:
        """Insert, or on a conflict over ``key`` set every other column to the new row's."""
        others = [n for n in self.column_names if n not in key]
        updates = ", ".join(f"{n} = excluded.{n}" for n in others)
        return f"{self.insert_sql()} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"

    def update_sql(self, columns: Sequence[str], key: Sequence[str]) -> str:
        """UPDATE ``columns`` of the row ``key`` names; parameters: the columns, then the key."""
        sets = ", ".join(f"{c} = ?" for c in columns)
        return f"UPDATE {self.name} SET {sets} WHERE {' AND '.join(f'{k} = ?' for k in key)}"

    def select_sql(self, columns: Sequence[str], key: Sequence[str], rest: str = "") -> str:
        """SELECT ``columns`` of the rows ``key`` names, then ``rest`` (ORDER BY, LIMIT)."""
        where = " AND ".join(f"{k} = ?" for k in key)
        return f"SELECT {', '.join(columns)} FROM {self.name} WHERE {where} {rest}".rstrip()

"""Replay the whole log through the live fold into a scratch file, then either swap the
result in atomically or report how it differs.

Events are replayed order by order (the index on order id, store, seq gives them in that
order without sorting), through the same fold and row builders as live appends
(``replay.py``), into a ``BulkSink``; past ``parallel_from`` events ranges of orders are
folded in one worker process per CPU. Movements are staged and then inserted in seq
order, so the triggers that keep ``inventory`` see them exactly as they saw them live.
Every index is built in the scratch file, outside the live file's lock, and the swap
copies tables and index b-trees whole.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..db import connect, immediate, read_snapshot, uri
from ..events import FOLDER_NAMED
from ..log import iter_events, last_seq
from ..readside.sql_views import create_read_indexes, ensure_views
from ..settings import Settings
from . import apply, catch_up
from .closing import close_movements
from .order_view import SQL_INTEGER
from .positions import position, set_position
from .replay import STAGED, FolderNames, default_workers, order_ranges, replayer
from .scratch import scratch_file
from .sink import (
    UPSERT_FOLDER,
    BulkSink,
)
from .tables import (
    CLOSED,
    INVENTORY_MOVEMENTS,
    PROJECTED,
    PROJECTION_TABLES,
    MovementKey,
    create_projection_tables,
    drop_projections,
)

log = logging.getLogger("ledger")
Progress = Callable[[int], None]
FLUSH_ROWS = 50_000
MOVEMENTS = INVENTORY_MOVEMENTS.name
MOVEMENT_KEY = ", ".join(MovementKey._fields)  # the order live inserts them in
COPY = "INSERT INTO main.{table} SELECT * FROM scratch.{table}"  # the swap's, whole records


@dataclass(frozen=True)
class Difference:
    table: str
    only_live: int
    only_rebuilt: int
    examples: list[tuple[str, tuple[object, ...]]]


@dataclass(frozen=True)
class Scratch:
    """What to project into the scratch file: events 1..until, the movements up to
    ``close_through`` closed, and every index the live tables have if ``indexes``."""

    path: Path
    until: int
    close_through: int
    indexes: bool = False


def _project_into(
    scratch: Scratch,
    live: sqlite3.Connection,
    settings: Settings,
    progress: Progress | None,
    workers: int,
) -> None:
    out = sqlite3.connect(scratch.path, isolation_level=None)
    try:
        out.execute("PRAGMA journal_mode = OFF")  # a scratch file: on any failure it is discarded
        out.execute("PRAGMA synchronous = OFF")
        _create_tables(out)
        with immediate(out):
            try:
                fits = _fold_in_bulk(out, live, scratch.until, settings, progress, workers)
            except (sqlite3.IntegrityError, OverflowError):  # a sum SQLite refused
                fits = False
        if not fits:
            _fold_event_by_event(out, live, scratch.until)
        with immediate(out):
            if scratch.until:
                set_position(out, PROJECTED, scratch.until)
            close_movements(out, scratch.close_through)
            if scratch.indexes:  # built here, outside the live file's lock; the swap copies them
                create_projection_tables(out)
                create_read_indexes(out, [t.name for t in PROJECTION_TABLES])
    finally:
        out.close()


def _create_tables(out: sqlite3.Connection) -> None:
    from .triggers import create_projection_triggers

    # Only the tables and their primary keys: nothing here reads by another index.
    create_projection_tables(out, indexes=False)
    create_projection_triggers(out, guards=False)  # the live file gets them at the swap
    out.execute(f"CREATE TABLE IF NOT EXISTS {STAGED} AS SELECT * FROM {MOVEMENTS} LIMIT 0")


def _fold_in_bulk(
    out: sqlite3.Connection,
    live: sqlite3.Connection,
    until: int,
    settings: Settings,
    progress: Progress | None,
    workers: int,
) -> bool:
    """Fold the log order by order and write the rows in bulk; False if the events' reach
    says a sum kept over many orders may have overflowed live, where this cannot tell."""
    folder_events = list(iter_events(live, until=until, kind=FOLDER_NAMED))
    folders = FolderNames(folder_events)
    sink = BulkSink()
    sink.add(UPSERT_FOLDER, folders.rows())
    done, moved = len(folders.events), 0
    ranges = order_ranges(live, until, settings.orders_per_task)
    with replayer(str(settings.db_path), until, folder_events, workers) as replay:
        for replayed in replay(ranges):
            for sql, found in replayed.rows.items():
                sink.add(sql, found)
            done, moved = done + replayed.events, moved + replayed.reach
            if sink.count >= FLUSH_ROWS:
                sink.write(out)
                if progress:
                    progress(done)
                    done = 0
    sink.write(out)
    out.execute(f"INSERT INTO {MOVEMENTS} SELECT * FROM {STAGED} ORDER BY {MOVEMENT_KEY}")
    if progress:
        progress(done)
    return moved < SQL_INTEGER


def _fold_event_by_event(out: sqlite3.Connection, live: sqlite3.Connection, until: int) -> None:
    """Every event through the live path itself, in seq order, into emptied tables: then
    an event whose sums SQLite refused is recorded as live recorded it. Its savepoint must
    undo what it wrote, so this needs a journal (in memory: the file is scratch)."""
    log.warning("a sum over many orders may not fit SQLite's integers: replaying event by event")
    out.execute("PRAGMA journal_mode = MEMORY")
    drop_projections(out)
    _create_tables(out)
    with immediate(out):
        for event in iter_events(live, until=until):
            apply(out, event)


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> str:
    names = [row[1] for row in conn.execute(f"PRAGMA {schema}.table_info({table})")]
    return ", ".join(f'"{n}"' for n in names)


def _compare(conn: sqlite3.Connection) -> list[Difference]:
    found = []
    for table in (t.name for t in PROJECTION_TABLES):
        cols = _columns(conn, "scratch", table)
        live_only = f"SELECT {cols} FROM main.{table} EXCEPT SELECT {cols} FROM scratch.{table}"
        rebuilt_only = f"SELECT {cols} FROM scratch.{table} EXCEPT SELECT {cols} FROM main.{table}"
        a = conn.execute(f"SELECT count(*) FROM ({live_only})").fetchone()[0]
        b = conn.execute(f"SELECT count(*) FROM ({rebuilt_only})").fetchone()[0]
        if a or b:
            examples = [("live", tuple(r)) for r in conn.execute(f"{live_only} LIMIT 3")]
            examples += [("rebuilt", tuple(r)) for r in conn.execute(f"{rebuilt_only} LIMIT 3")]
            found.append(Difference(table, a, b, examples))
    return found


def event_count(db_path: Path) -> int:
    conn = connect(db_path, readonly=True)
    try:
        return last_seq(conn)
    finally:
        conn.close()


def check(
    settings: Settings, progress: Progress | None = None, workers: int | None = None
) -> list[Difference]:
    """Rebuild into a scratch file and compare with the live tables; change nothing."""
    from ..schema import require_current

    with scratch_file(settings.db_path) as path:
        live = connect(settings.db_path, readonly=True, busy_timeout_ms=settings.busy_timeout_ms)
        try:
            live.execute("ATTACH ? AS scratch", (uri(path),))
            with read_snapshot(live):  # one snapshot of the log and the live tables
                require_current(live)
                until = position(live, PROJECTED)
                workers = default_workers(until, settings) if workers is None else workers
                closed = position(live, CLOSED)  # closed as live, to compare
                _project_into(Scratch(path, until, closed), live, settings, progress, workers)
                return _compare(live)
        finally:
            live.close()


def rebuild(
    settings: Settings, progress: Progress | None = None, workers: int | None = None
) -> int:
    """Recompute every projection from the log; swap them in in one transaction."""
    from ..schema import refuse_newer

    with scratch_file(settings.db_path) as path:
        conn = connect(settings.db_path, busy_timeout_ms=settings.busy_timeout_ms)
        try:
            conn.execute("ATTACH ? AS scratch", (uri(path),))
            with read_snapshot(conn):
                refuse_newer(conn)  # a newer file's projections are not ours to replace
                until = last_seq(conn)
                workers = default_workers(until, settings) if workers is None else workers
                scratch = Scratch(path, until, close_through=until, indexes=True)
                _project_into(scratch, conn, settings, progress, workers)
            with immediate(conn):
                _swap(conn)
                catch_up(conn)  # events appended while the scratch copy was built
            return position(conn)
        finally:
            conn.close()


def _swap(conn: sqlite3.Connection) -> None:
    """New tables, whatever shape the old ones had, with the scratch file's indexes.

    Into empty tables of the same shape and indexes, INSERT ... SELECT * copies the rows
    and every index b-tree as they are (SQLite's transfer optimisation), without sorting;
    the triggers come after the copy, because inventory and daily totals arrive whole.
    """
    from .triggers import create_projection_triggers

    drop_projections(conn)
    create_projection_tables(conn)
    create_read_indexes(conn, [t.name for t in PROJECTION_TABLES])
    for table in PROJECTION_TABLES:
        conn.execute(COPY.format(table=table.name))
    create_projection_triggers(conn)
    ensure_views(conn)

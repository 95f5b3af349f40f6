"""Replay the whole log through the live projection code into a scratch file,
then either swap the result in atomically or report how it differs."""

from __future__ import annotations

import heapq
import json
import multiprocessing
import os
import sqlite3
import tempfile
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

from . import project
from .errors import OlderSchema
from .schema import (
    PROJECTION_TABLES,
    SCHEMA_VERSION,
    connect,
    create_projection_tables,
    create_projection_triggers,
    drop_projections,
    file_version,
)
from .settings import DEFAULT_BUSY_TIMEOUT_MS
from .store import (
    CHECKPOINT,
    FOLDER_NAMED,
    INSERT_HISTORY,
    INSERT_ISSUE,
    INSERT_ITEM,
    INSERT_MOVEMENT,
    INSERT_ORDER,
    INSERT_SHIPMENT,
    MOVEMENTS_CLOSED,
    ORDER_SNAPSHOT,
    UPSERT_FOLDER,
    StoredEvent,
    catch_up,
    checkpoint,
    close_movements,
    folder_row,
    history_row,
    issue_rows,
    item_rows,
    iter_events,
    movement_rows,
    not_projected,
    order_row,
    shipment_rows,
)
from .verify import parse_order
from .views import create_read_indexes, ensure_views

Progress = Callable[[int], None]
FLUSH_ROWS = 50_000
STAGE_MOVEMENT = INSERT_MOVEMENT.format(table="temp.staged_movements")
COPY = "INSERT INTO main.{table} SELECT * FROM scratch.{table}"  # the swap's, whole records


@dataclass(frozen=True)
class Difference:
    table: str
    only_live: int
    only_rebuilt: int
    examples: list[tuple[str, tuple[object, ...]]]


@contextmanager
def _scratch_file(beside: Path) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(
        prefix=f".{beside.name}.rebuild-", suffix=".db", dir=beside.parent or "."
    )
    os.close(fd)
    try:
        yield Path(name)
    finally:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(name + suffix).unlink(missing_ok=True)


class _Rows:
    """Rows gathered per statement, written with one executemany each."""

    def __init__(self) -> None:
        self.by_sql: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self.count = 0

    def add(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self.by_sql[sql].extend(rows)
        self.count += len(rows)

    def write(self, out: sqlite3.Connection) -> None:
        for sql, rows in self.by_sql.items():
            out.executemany(sql, rows)
        self.by_sql.clear()
        self.count = 0


class _FolderNames:
    """Each folder's name as of any seq, from the FolderNamed events (few: kept in memory)."""

    def __init__(self, events: list[StoredEvent]) -> None:
        self.events = events
        self.bodies = {e.seq: json.loads(e.payload) for e in events}
        self._by_store: dict[str, list[StoredEvent]] = defaultdict(list)
        self._history: dict[tuple[str, int], list[tuple[int, str]]] = defaultdict(list)
        for e in events:
            folder_id, name = self.named(e)
            self._by_store[e.store_id].append(e)
            self._history[(e.store_id, folder_id)].append((e.seq, name))

    def named(self, event: StoredEvent) -> tuple[int, str]:
        body = self.bodies[event.seq]
        return int(body["folder_id"]), str(body["name"])

    def of_store(self, store_id: str) -> list[StoredEvent]:
        return self._by_store.get(store_id, [])

    def at(self, store_id: str, folder_id: int | None, seq: int) -> str | None:
        named = self._history.get((store_id, folder_id)) if folder_id is not None else None
        if not named:
            return None
        i = bisect_left(named, (seq, ""))
        return named[i - 1][1] if i else None


def _replay_order(
    store_id: str, order_id: str, events: Iterable[StoredEvent], folders: _FolderNames, rows: _Rows
) -> int:
    """One order's events, with the folder namings between them, through the live fold."""
    state: project.OrderState | None = None
    current: project.OrderView | None = None
    count = 0
    snapshots = list(events)  # one order's: a handful
    # A naming before the order's first snapshot finds no order to rename (most of them).
    namings = [f for f in folders.of_store(store_id) if f.seq > snapshots[0].seq]
    merged = heapq.merge(snapshots, namings, key=lambda e: e.seq) if namings else snapshots
    for event in merged:
        if event.type == FOLDER_NAMED:
            folder_id, folder_name = folders.named(event)
            if state is not None and state.folder_id == folder_id:
                step = project.rename_folder(state, folder_name)
                rows.add(STAGE_MOVEMENT, movement_rows(event, order_id, step))
                state = step.state
            continue
        count += 1
        try:
            view = project.view_order(parse_order(event.payload))
            name = folders.at(store_id, view.fields["folder_id"], event.seq)
            step = project.take_snapshot(state, event.seq, event.order_updated_at, view, name)
        except Exception as exc:  # the same rule as the live path: record, skip, go on
            rows.add(INSERT_ISSUE, [(event.seq, store_id, order_id, not_projected(exc))])
            continue
        rows.add(INSERT_ISSUE, issue_rows(event, view.issues))
        rows.add(INSERT_HISTORY, [history_row(event, step)])
        rows.add(STAGE_MOVEMENT, movement_rows(event, order_id, step))
        state, current = step.state, step.current or current
    if state is not None and current is not None:
        rows.add(INSERT_ORDER, [order_row(store_id, order_id, state, current)])
        rows.add(INSERT_ITEM, item_rows(store_id, order_id, current))
        rows.add(INSERT_SHIPMENT, shipment_rows(store_id, order_id, current))
    return count


# Below this many events a pool of processes costs more than it saves.
PARALLEL_FROM = 50_000
ORDERS_PER_TASK = 2_000


def default_workers(events: int) -> int:
    return (os.cpu_count() or 1) if events >= PARALLEL_FROM else 0


def _project_into(
    scratch: Path,
    live: sqlite3.Connection,
    db_path: Path,
    until: int,
    progress: Progress | None,
    workers: int,
    *,
    close_through: int,
    indexes: bool = False,
) -> None:
    """Project events 1..until into fresh tables in ``scratch``, with the movements up to
    ``close_through`` closed, and with every index the live tables have if ``indexes``.

    Events are replayed order by order (the index on order id, store, seq gives them in
    that order without sorting), through the same fold as live appends. Orders are
    independent of each other, so with ``workers`` the folds of ranges of orders run in
    that many processes, each reading the log itself; rows come back in range order.
    Movements are staged and then inserted in seq order, so the triggers that keep
    ``inventory`` see them exactly as they saw them live.
    """
    out = sqlite3.connect(scratch, isolation_level=None)
    try:
        out.execute("PRAGMA journal_mode = OFF")  # a scratch file: on any failure it is discarded
        out.execute("PRAGMA synchronous = OFF")
        # Only the tables and their primary keys: nothing here reads by another index.
        create_projection_tables(out, indexes=False)
        create_projection_triggers(out, guards=False)  # the live file gets them at the swap
        out.execute(
            "CREATE TEMP TABLE staged_movements AS SELECT * FROM inventory_movements LIMIT 0"
        )
        folder_events = list(iter_events(live, until=until, kind=FOLDER_NAMED))
        folders = _FolderNames(folder_events)
        rows = _Rows()
        out.execute("BEGIN")
        rows.add(UPSERT_FOLDER, [folder_row(e, folders.bodies[e.seq]) for e in folders.events])
        done = len(folders.events)
        ranges = _order_ranges(live, until)
        with _replayer(str(db_path), until, folder_events, workers) as replay:
            for by_sql, count in replay(ranges):
                for sql, found in by_sql.items():
                    rows.add(sql, found)
                done += count
                if rows.count >= FLUSH_ROWS:
                    rows.write(out)
                    if progress:
                        progress(done)
                        done = 0
        rows.write(out)
        out.execute(
            "INSERT INTO inventory_movements SELECT * FROM temp.staged_movements"
            " ORDER BY seq, store_id, order_id, code"
        )
        if until:
            out.execute("INSERT INTO checkpoints (name, seq) VALUES (?, ?)", (CHECKPOINT, until))
        close_movements(out, close_through)
        if indexes:  # built here, outside the live file's lock; the swap copies them whole
            create_projection_tables(out)
            create_read_indexes(out, PROJECTION_TABLES)
        out.execute("COMMIT")
        if progress:
            progress(done)
    finally:
        out.close()


OrderRange = tuple[str, str]
Replayed = tuple[dict[str, list[tuple[Any, ...]]], int]


def _order_ranges(live: sqlite3.Connection, until: int) -> Iterator[OrderRange]:
    """Consecutive ranges of ORDERS_PER_TASK order ids, from the index alone."""
    cursor = live.execute(
        "SELECT DISTINCT order_id FROM events WHERE order_id IS NOT NULL AND +seq <= ?"
        " ORDER BY order_id",
        (until,),
    )
    first = last = None
    count = 0
    for (order_id,) in cursor:
        first = order_id if first is None else first
        last = order_id
        count += 1
        if count == ORDERS_PER_TASK:
            yield first, last
            first, count = None, 0
    if first is not None and last is not None:
        yield first, last


# One per process: the worker's read connection and what every range needs.
_worker: dict[str, Any] = {}


def _init_worker(db_path: str, until: int, folder_events: list[StoredEvent]) -> None:
    _worker.update(
        conn=connect(db_path, readonly=True), until=until, folders=_FolderNames(folder_events)
    )


def _replay_range(orders: OrderRange) -> Replayed:
    rows = _Rows()
    count = 0
    snapshots = iter_events(
        _worker["conn"], until=_worker["until"], kind=ORDER_SNAPSHOT, by_order=True, orders=orders
    )
    for (store_id, order_id), events in groupby(snapshots, key=lambda e: (e.store_id, e.order_id)):
        assert order_id is not None
        count += _replay_order(store_id, order_id, events, _worker["folders"], rows)
    return dict(rows.by_sql), count


@contextmanager
def _replayer(
    db_path: str, until: int, folder_events: list[StoredEvent], workers: int
) -> Iterator[Callable[[Iterable[OrderRange]], Iterator[Replayed]]]:
    """Replay ranges of orders in this process, or in a pool of ``workers`` processes."""
    if workers <= 0:
        _init_worker(db_path, until, folder_events)
        try:
            yield lambda ranges: map(_replay_range, ranges)
        finally:
            _worker.pop("conn").close()
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, _init_worker, (db_path, until, folder_events)) as pool:
        yield lambda ranges: pool.imap(_replay_range, ranges)


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> str:
    names = [row[1] for row in conn.execute(f"PRAGMA {schema}.table_info({table})")]
    return ", ".join(f'"{n}"' for n in names)


def _compare(conn: sqlite3.Connection) -> list[Difference]:
    found = []
    for table in PROJECTION_TABLES:
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
    conn = connect(str(db_path), readonly=True)
    try:
        return int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
    finally:
        conn.close()


def check(
    db_path: Path, progress: Progress | None = None, workers: int | None = None
) -> list[Difference]:
    """Rebuild into a scratch file and compare with the live tables; change nothing."""
    with _scratch_file(db_path) as scratch:
        live = connect(str(db_path), readonly=True)
        try:
            live.execute("ATTACH ? AS scratch", (str(scratch),))
            live.execute("BEGIN")  # one snapshot of the log and the live tables
            if file_version(live) < SCHEMA_VERSION:
                raise OlderSchema(
                    "the file's projections are of an older schema version: `ledger rebuild`"
                    " (or the next `ledger serve`) rebuilds them in the current one"
                )
            until = checkpoint(live)
            workers = default_workers(until) if workers is None else workers
            closed = checkpoint(live, MOVEMENTS_CLOSED)  # closed as live, to compare
            _project_into(scratch, live, db_path, until, progress, workers, close_through=closed)
            differences = _compare(live)
            live.execute("COMMIT")
            return differences
        finally:
            live.close()


def rebuild(
    db_path: Path,
    progress: Progress | None = None,
    workers: int | None = None,
    *,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
) -> int:
    """Recompute every projection from the log; swap them in in one transaction."""
    with _scratch_file(db_path) as scratch:
        conn = connect(str(db_path), busy_timeout_ms=busy_timeout_ms)
        try:
            conn.execute("ATTACH ? AS scratch", (str(scratch),))
            conn.execute("BEGIN")
            file_version(conn)  # a newer file's projections are not ours to replace
            until = int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
            workers = default_workers(until) if workers is None else workers
            _project_into(
                scratch, conn, db_path, until, progress, workers, close_through=until, indexes=True
            )
            conn.execute("COMMIT")
            conn.execute("BEGIN IMMEDIATE")
            try:
                # New tables, whatever shape the old ones had, with the scratch file's
                # indexes. Into empty tables of the same shape and indexes, INSERT ... SELECT *
                # copies the rows and every index b-tree as they are (SQLite's transfer
                # optimisation), without sorting; the triggers come after the copy, because
                # inventory and daily totals arrive whole.
                drop_projections(conn)
                create_projection_tables(conn)
                create_read_indexes(conn, PROJECTION_TABLES)
                for table in PROJECTION_TABLES:
                    conn.execute(COPY.format(table=table))
                create_projection_triggers(conn)
                ensure_views(conn)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")  # of this shape now
                catch_up(conn)  # events appended while the scratch copy was built
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return checkpoint(conn)
        finally:
            conn.close()

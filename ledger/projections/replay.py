"""The rebuild's fold: each order's events replayed through the live fold into rows.

Orders are independent of each other, so ranges of orders can be folded in worker
processes, each reading the log itself (``replayer``); the rows come back in range order
for ``rebuild.py`` to write. Folder names are the only state orders share: the few
FolderNamed events are read once and kept in memory (``FolderNames``).
"""

from __future__ import annotations

import heapq
import json
import multiprocessing
import os
import sqlite3
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import groupby
from typing import Any, NamedTuple

from ..db import connect
from ..events import FOLDER_NAMED, ORDER_SNAPSHOT, StoredEvent
from ..log import iter_events
from ..settings import Settings
from .fold import OrderState, reach, rename_folder, take_snapshot
from .order_view import OrderView, view_of
from .sink import (
    BulkSink,
    Row,
    folder_row,
    history_row,
    issue_rows,
    item_rows,
    movement_rows,
    not_projected,
    order_row,
    shipment_rows,
)
from .tables import (
    INVENTORY_MOVEMENTS,
    ORDER_HISTORY,
    ORDER_ITEMS,
    ORDERS,
    PROJECTION_ISSUES,
    SHIPMENTS,
)

STAGED = "temp.staged_movements"
# Movements wait in a temporary table, to be inserted in seq order: the triggers that keep
# inventory must see them as they saw them live.
STAGE_MOVEMENT = INVENTORY_MOVEMENTS.insert_sql(into=STAGED)


class FolderNames:
    """Each folder's name as of any seq, from the FolderNamed events (few: kept in memory)."""

    def __init__(self, events: list[StoredEvent]) -> None:
        self.events = events
        self.bodies = {e.seq: json.loads(e.payload) for e in events}
        self._by_store: dict[str, list[StoredEvent]] = defaultdict(list)
        self._history: dict[tuple[str, int], list[tuple[int, str]]] = defaultdict(list)
        for e in events:
            folder = folder_row(e, self.bodies[e.seq])
            self._by_store[e.store_id].append(e)
            self._history[(e.store_id, folder.folder_id)].append((e.seq, folder.name))

    def rows(self) -> list[Row]:
        return [folder_row(e, self.bodies[e.seq]) for e in self.events]

    def of_store(self, store_id: str) -> list[StoredEvent]:
        return self._by_store.get(store_id, [])

    def at(self, store_id: str, folder_id: int | None, seq: int) -> str | None:
        named = self._history.get((store_id, folder_id)) if folder_id is not None else None
        if not named:
            return None
        i = bisect_left(named, (seq, ""))
        return named[i - 1][1] if i else None


class Folded(NamedTuple):
    events: int  # snapshots folded
    reach: int  # fold.reach summed over them


def _replay_order(
    store_id: str,
    order_id: str,
    events: Iterable[StoredEvent],
    folders: FolderNames,
    sink: BulkSink,
) -> Folded:
    """One order's events, with the folder namings between them, through the live fold."""
    state: OrderState | None = None
    current: OrderView | None = None
    count = moved = 0
    snapshots = list(events)  # one order's: a handful
    # A naming before the order's first snapshot finds no order to rename (most of them).
    namings = [f for f in folders.of_store(store_id) if f.seq > snapshots[0].seq]
    merged = heapq.merge(snapshots, namings, key=lambda e: e.seq) if namings else snapshots
    for event in merged:
        if event.type == FOLDER_NAMED:
            folder = folder_row(event, folders.bodies[event.seq])
            if state is not None and state.status.folder_id == folder.folder_id:
                step = rename_folder(state, folder.name)
                sink.add(STAGE_MOVEMENT, movement_rows(event, order_id, step))
                state, moved = step.state, moved + reach(step)
            continue
        count += 1
        try:
            view = view_of(event.payload)
            name = folders.at(store_id, view.folder_id, event.seq)
            step = take_snapshot(state, event.seq, view, name)
        except Exception as exc:  # the same rule as the live path: record, skip, go on
            sink.insert(PROJECTION_ISSUES, issue_rows(event, [not_projected(exc)]))
            continue
        assert step.history is not None
        sink.insert(PROJECTION_ISSUES, issue_rows(event, view.issues))
        sink.insert(ORDER_HISTORY, [history_row(event, step.history)])
        sink.add(STAGE_MOVEMENT, movement_rows(event, order_id, step))
        state, current, moved = step.state, step.current or current, moved + reach(step)
    if state is not None and current is not None:
        sink.insert(ORDERS, [order_row(store_id, order_id, state.status, current)])
        sink.insert(ORDER_ITEMS, item_rows(store_id, order_id, current))
        sink.insert(SHIPMENTS, shipment_rows(store_id, order_id, current))
    return Folded(count, moved)


def default_workers(events: int, settings: Settings) -> int:
    """Below ``parallel_from`` events a pool of processes costs more than it saves."""
    return (os.cpu_count() or 1) if events >= settings.parallel_from else 0


OrderRange = tuple[str, str]


class Replayed(NamedTuple):
    """A range of orders folded: its rows by statement, and what ``Folded`` counts."""

    rows: dict[str, list[Row]]
    events: int
    reach: int


def order_ranges(live: sqlite3.Connection, until: int, per_task: int) -> Iterator[OrderRange]:
    """Consecutive ranges of ``per_task`` order ids, from the index alone."""
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
        if count == per_task:
            yield first, last
            first, count = None, 0
    if first is not None and last is not None:
        yield first, last


# One per process: the worker's read connection and what every range needs.
_worker: dict[str, Any] = {}


def _init_worker(db_path: str, until: int, folder_events: list[StoredEvent]) -> None:
    _worker.update(
        conn=connect(db_path, readonly=True), until=until, folders=FolderNames(folder_events)
    )


def _replay_range(orders: OrderRange) -> Replayed:
    sink = BulkSink()
    count = moved = 0
    snapshots = iter_events(
        _worker["conn"], until=_worker["until"], kind=ORDER_SNAPSHOT, by_order=True, orders=orders
    )
    for (store_id, order_id), events in groupby(snapshots, key=lambda e: (e.store_id, e.order_id)):
        assert order_id is not None
        folded = _replay_order(store_id, order_id, events, _worker["folders"], sink)
        count, moved = count + folded.events, moved + folded.reach
    return Replayed(dict(sink.by_sql), count, moved)


@contextmanager
def replayer(
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

"""Projections: the current orders, their lines and shipments, inventory and history,
derived from the log in the same transaction as each event, with the position reached.

``apply`` is the one dispatch on event type for the live path; ``rebuild`` replays the
log through the same fold (``fold.py``) and the same row builders (``sink.py``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from ..db import savepoint
from ..events import FOLDER_NAMED, ORDER_SNAPSHOT, StoredEvent
from ..log import iter_events
from .fold import rename_folder, take_snapshot
from .order_view import view_of
from .positions import position, set_position
from .sink import (
    INSERT_ISSUE,
    UPSERT_FOLDER,
    LiveSink,
    folder_row,
    history_row,
    issue_rows,
    not_projected,
)
from .tables import ORDER_HISTORY, PROJECTED


def _snapshot(sink: LiveSink, event: StoredEvent) -> None:
    assert event.order_id is not None
    view = view_of(event.payload)
    sink.add(INSERT_ISSUE, issue_rows(event, view.issues))
    prior = sink.load_state(event.store_id, event.order_id)
    name = sink.folder_name(event.store_id, view.folder_id)
    step = take_snapshot(prior, event.seq, view, name)
    assert step.history is not None
    sink.insert(ORDER_HISTORY, [history_row(event, step.history)])
    sink.save_step(event, event.order_id, step, is_new=prior is None)


def _folder_named(sink: LiveSink, event: StoredEvent) -> None:
    folder = folder_row(event, json.loads(event.payload))
    sink.add(UPSERT_FOLDER, [folder])
    for order_id in sink.orders_in_folder(event.store_id, folder.folder_id):
        prior = sink.load_state(event.store_id, order_id)
        assert prior is not None
        sink.save_step(event, order_id, rename_folder(prior, folder.name), is_new=False)


PROJECT: dict[str, Callable[[LiveSink, StoredEvent], Any]] = {
    ORDER_SNAPSHOT: _snapshot,
    FOLDER_NAMED: _folder_named,
}


def apply(conn: sqlite3.Connection, event: StoredEvent) -> None:
    """Project one event, inside the caller's transaction. A projection bug never loses
    the event: the event stays in the log, its projection is undone and the failure is
    recorded as an issue, the same way on every rebuild."""
    sink = LiveSink(conn)
    project = PROJECT.get(event.type)
    try:
        with savepoint(conn, "project"):
            if project is not None:
                project(sink, event)
    except sqlite3.OperationalError:
        raise  # the database itself failed: nothing may be acknowledged
    except Exception as exc:
        sink.add(INSERT_ISSUE, issue_rows(event, [not_projected(exc)]))
    set_position(conn, PROJECTED, event.seq)


def catch_up(conn: sqlite3.Connection) -> int:
    """Project any events past the projected position (inside the caller's transaction)."""
    count = 0
    for event in list(iter_events(conn, position(conn))):
        apply(conn, event)
        count += 1
    return count

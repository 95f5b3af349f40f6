"""The one module that writes: deliveries, events and the projections they drive.

Every write happens inside a transaction that the caller opened with
``BEGIN IMMEDIATE``; the projection of an event is written in the same
transaction as the event, together with the projection's checkpoint.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import payload, project
from .chain import GENESIS, EventFields, link, payload_digest
from .verify import Snapshot, parse_order

ORDER_SNAPSHOT = "OrderSnapshotReceived"
FOLDER_NAMED = "FolderNamed"
CHECKPOINT = "projections"
# The checkpoints row up to whose seq the inventory movements are closed (close_movements),
# and that seq in SQL (NULL before the first close), for the triggers and views that ask.
MOVEMENTS_CLOSED = "movements_closed"
CLOSED_SEQ_SQL = f"(SELECT seq FROM checkpoints WHERE name = '{MOVEMENTS_CLOSED}')"
# What reconcile_inventory_drift recounts on each load is the movements of at most this
# many events (on the bench's 1M-event file 13,119 movements took 87 ms p99, so half of
# the 10,000 first chosen), and a close takes a few milliseconds.
CLOSE_EVERY = 5_000


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Delivery:
    """What the receiver knows about one POST attempt before judging it."""

    received_at: str
    remote_addr: str | None
    method: str
    content_type: str | None
    body_bytes: int | None
    store_id: str | None


@dataclass(frozen=True)
class Outcome:
    outcome: str
    status: int
    seq: int | None
    reason: str | None = None


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    type: str
    received_at: str
    store_id: str
    order_id: str | None
    order_updated_at: str | None
    payload: str


@dataclass
class Head:
    seq: int
    hash: str


def read_head(conn: sqlite3.Connection) -> Head:
    row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    return Head(row[0], row[1]) if row else Head(0, GENESIS)


def _insert_delivery(
    conn: sqlite3.Connection,
    d: Delivery,
    outcome: Outcome,
    *,
    payload_sha256: str | None = None,
    order_id: str | None = None,
    variant: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO deliveries (received_at, remote_addr, method, content_type, body_bytes,"
        " store_id, outcome, http_status, reason, signature_variant, payload_sha256, order_id, seq)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            d.received_at, d.remote_addr, d.method, d.content_type, d.body_bytes, d.store_id,
            outcome.outcome, outcome.status, outcome.reason, variant, payload_sha256, order_id,
            outcome.seq,
        ),
    )  # fmt: skip


def record_rejection(
    conn: sqlite3.Connection,
    d: Delivery,
    status: int,
    reason: str,
    payload_sha256: str | None = None,
) -> Outcome:
    outcome = Outcome("rejected", status, None, reason)
    _insert_delivery(conn, d, outcome, payload_sha256=payload_sha256)
    return outcome


def _append_event(
    conn: sqlite3.Connection, key: bytes, head: Head, event: StoredEvent, sha: str
) -> None:
    fields = EventFields(
        event.seq, event.type, event.received_at, event.store_id, event.order_id,
        event.order_updated_at, sha, head.hash,
    )  # fmt: skip
    digest = link(key, fields)
    conn.execute(
        "INSERT INTO events (seq, type, received_at, store_id, order_id, order_updated_at,"
        " payload, payload_sha256, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            event.seq, event.type, event.received_at, event.store_id, event.order_id,
            event.order_updated_at, event.payload, sha, head.hash, digest,
        ),
    )  # fmt: skip
    head.seq, head.hash = event.seq, digest


def record_snapshot(
    conn: sqlite3.Connection, key: bytes, head: Head, d: Delivery, snap: Snapshot
) -> Outcome:
    """Append the snapshot unless the store already has these exact bytes."""
    row = conn.execute(
        "SELECT seq FROM events WHERE store_id = ? AND payload_sha256 = ?",
        (snap.store_id, snap.payload_sha256),
    ).fetchone()
    if row:
        outcome = Outcome("duplicate", 200, row[0], f"duplicate of seq {row[0]}")
    else:
        event = StoredEvent(
            head.seq + 1, ORDER_SNAPSHOT, d.received_at, snap.store_id, snap.order_id,
            snap.order_updated_at, snap.payload,
        )  # fmt: skip
        _append_event(conn, key, head, event, snap.payload_sha256)
        apply_event(conn, event)
        outcome = Outcome("appended", 200, event.seq)
    _insert_delivery(
        conn, d, outcome, payload_sha256=snap.payload_sha256, order_id=snap.order_id,
        variant=snap.signature_variant,
    )  # fmt: skip
    return outcome


@dataclass(frozen=True)
class AppendSnapshot:
    """The writer job for a verified post."""

    delivery: Delivery
    snapshot: Snapshot

    def run(self, conn: sqlite3.Connection, key: bytes, head: Head) -> Outcome:
        return record_snapshot(conn, key, head, self.delivery, self.snapshot)


@dataclass(frozen=True)
class RecordRejection:
    """The writer job for a refused post: a delivery row, nothing else."""

    delivery: Delivery
    status: int
    reason: str
    payload_sha256: str | None

    def run(self, conn: sqlite3.Connection, key: bytes, head: Head) -> Outcome:
        return record_rejection(conn, self.delivery, self.status, self.reason, self.payload_sha256)


def record_folder_name(
    conn: sqlite3.Connection, key: bytes, head: Head, store_id: str, folder_id: int, name: str
) -> int:
    at = utcnow()
    payload = json.dumps({"folder_id": folder_id, "name": name, "named_at": at}, ensure_ascii=False)
    event = StoredEvent(head.seq + 1, FOLDER_NAMED, at, store_id, None, None, payload)
    _append_event(conn, key, head, event, payload_digest(payload))
    apply_event(conn, event)
    return event.seq


# --- projections: the same fold for live appends and for rebuilds ---------------------------

ORDER_STATE_COLUMNS = (
    "seq", "order_updated_at", "state", "folder_id", "folder_name", "shipments_count",
    "snapshots_seen", "stale_snapshots", "first_seq", "last_seq",
)  # fmt: skip
SNAPSHOT_COLUMNS = tuple(k for k in project.VIEW_FIELDS if k not in ORDER_STATE_COLUMNS)
ORDER_COLUMNS = ("store_id", "order_id", *ORDER_STATE_COLUMNS, *SNAPSHOT_COLUMNS)


@functools.cache  # _replace_rows asks per event
def insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


INSERT_ORDER = insert_sql("orders", ORDER_COLUMNS)
UPDATE_ORDER = (
    f"UPDATE orders SET {', '.join(f'{c} = ?' for c in ORDER_COLUMNS[2:])}"
    " WHERE store_id = ? AND order_id = ?"
)
UPDATE_ORDER_STATE = (
    f"UPDATE orders SET {', '.join(f'{c} = ?' for c in ORDER_STATE_COLUMNS)}"
    " WHERE store_id = ? AND order_id = ?"
)
ITEM_COLUMNS = (
    "store_id", "order_id", "line", "item_id", "code", "name", "quantity", "price_cents",
    "weight", "category_code", "variation",
)  # fmt: skip
SHIPMENT_COLUMNS = (
    "store_id", "order_id", "line", "shipment_id", "tracking_number", "carrier_code",
    "shipment_method", "date_shipped", "cost_cents", "weight", "tracking_url",
)  # fmt: skip
INSERT_ITEM = insert_sql("order_items", ITEM_COLUMNS)
INSERT_SHIPMENT = insert_sql("shipments", SHIPMENT_COLUMNS)
INSERT_HISTORY = (
    "INSERT INTO order_history (seq, store_id, order_id, received_at, order_updated_at, applied,"
    " stale, folder_id, payment_status, order_total_cents, lines, shipments, changes)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
INSERT_MOVEMENT = (
    "INSERT INTO {table} (seq, store_id, order_id, code, ordered, shipped, canceled, open, orders,"
    " moved_at) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
LIVE_MOVEMENT = INSERT_MOVEMENT.format(table="inventory_movements")
INSERT_ISSUE = (
    "INSERT OR IGNORE INTO projection_issues (seq, store_id, order_id, issue) VALUES (?,?,?,?)"
)
UPSERT_FOLDER = (
    "INSERT INTO folders (store_id, folder_id, name, named_at, seq) VALUES (?,?,?,?,?)"
    " ON CONFLICT (store_id, folder_id) DO UPDATE SET name = excluded.name,"
    " named_at = excluded.named_at, seq = excluded.seq"
)


def order_row(
    store_id: str, order_id: str, s: project.OrderState, view: project.OrderView
) -> tuple[Any, ...]:
    state = (s.seq, s.updated_at, s.state, s.folder_id, s.folder_name, s.shipments_count,
             s.snapshots_seen, s.stale_snapshots, s.first_seq, s.last_seq)  # fmt: skip
    return (store_id, order_id, *state, *(view.fields[c] for c in SNAPSHOT_COLUMNS))


def item_rows(store_id: str, order_id: str, view: project.OrderView) -> list[tuple[Any, ...]]:
    return [(store_id, order_id, *item) for item in view.items]


def shipment_rows(store_id: str, order_id: str, view: project.OrderView) -> list[tuple[Any, ...]]:
    return [(store_id, order_id, *shipment) for shipment in view.shipments]


def movement_rows(event: StoredEvent, order_id: str, step: project.Step) -> list[tuple[Any, ...]]:
    return [
        (
            event.seq,
            event.store_id,
            order_id,
            code,
            *units,
            event.received_at,
        )
        for code, units in step.movements.items()
    ]


def history_row(event: StoredEvent, step: project.Step) -> tuple[Any, ...]:
    assert step.history is not None
    return (event.seq, event.store_id, event.order_id, event.received_at, event.order_updated_at,
            *step.history)  # fmt: skip


def issue_rows(event: StoredEvent, issues: tuple[str, ...]) -> list[tuple[Any, ...]]:
    return [(event.seq, event.store_id, event.order_id, issue) for issue in issues]


def folder_row(event: StoredEvent, body: Mapping[str, Any]) -> tuple[Any, ...]:
    return (event.store_id, int(body["folder_id"]), str(body["name"]), event.received_at, event.seq)


def apply_event(conn: sqlite3.Connection, event: StoredEvent) -> None:
    """Project one event. A projection bug never loses the event: the event stays in the
    log, its projection is skipped and the failure is recorded as an issue, the same way
    on every rebuild."""
    conn.execute("SAVEPOINT project")
    try:
        if event.type == ORDER_SNAPSHOT:
            _apply_snapshot(conn, event, parse_order(event.payload))
        elif event.type == FOLDER_NAMED:
            _apply_folder_named(conn, event, json.loads(event.payload))
    except sqlite3.OperationalError:
        raise  # the database itself failed: nothing may be acknowledged
    except Exception as exc:
        conn.execute("ROLLBACK TO project")
        conn.execute(INSERT_ISSUE, (event.seq, event.store_id, event.order_id, not_projected(exc)))
    conn.execute("RELEASE project")
    _set_checkpoint(conn, CHECKPOINT, event.seq)


def _set_checkpoint(conn: sqlite3.Connection, name: str, seq: int) -> None:
    conn.execute(
        "INSERT INTO checkpoints (name, seq) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
        (name, seq),
    )


def not_projected(exc: Exception) -> str:
    return f"not projected: {type(exc).__name__}: {exc}"


def load_state(conn: sqlite3.Connection, store_id: str, order_id: str) -> project.OrderState | None:
    key = (store_id, order_id)
    row = conn.execute(
        f"SELECT {', '.join(ORDER_STATE_COLUMNS)} FROM orders WHERE store_id = ? AND order_id = ?",
        key,
    ).fetchone()
    if row is None:
        return None
    lines = conn.execute(
        "SELECT code, quantity FROM order_items WHERE store_id = ? AND order_id = ? ORDER BY line",
        key,
    ).fetchall()
    last = conn.execute(
        "SELECT folder_id, payment_status, order_total_cents, lines, shipments FROM order_history"
        " WHERE store_id = ? AND order_id = ? ORDER BY seq DESC LIMIT 1",
        key,
    ).fetchone()
    seq, updated, state, folder_id, folder_name, shipments, seen, stale, first, last_seq = row
    return project.OrderState(
        seq, updated, state, folder_id, folder_name, shipments, tuple(lines),
        project.Summary(*last), seen, stale, first, last_seq,
    )  # fmt: skip


def _apply_snapshot(conn: sqlite3.Connection, event: StoredEvent, body: payload.Order) -> None:
    assert event.order_id is not None
    view = project.view_order(body)
    _insert_rows(conn, INSERT_ISSUE, issue_rows(event, view.issues))
    folder = conn.execute(
        "SELECT name FROM folders WHERE store_id = ? AND folder_id = ?",
        (event.store_id, view.fields["folder_id"]),
    ).fetchone()
    prior = load_state(conn, event.store_id, event.order_id)
    step = project.take_snapshot(
        prior, event.seq, event.order_updated_at, view, folder[0] if folder else None
    )
    conn.execute(INSERT_HISTORY, history_row(event, step))
    _save_step(conn, event, event.order_id, step, is_new=prior is None)


def _apply_folder_named(
    conn: sqlite3.Connection, event: StoredEvent, body: Mapping[str, Any]
) -> None:
    folder = folder_row(event, body)
    conn.execute(UPSERT_FOLDER, folder)
    affected = conn.execute(
        "SELECT order_id FROM orders WHERE store_id = ? AND folder_id = ? ORDER BY order_id",
        (event.store_id, folder[1]),
    ).fetchall()
    for (order_id,) in affected:
        prior = load_state(conn, event.store_id, order_id)
        assert prior is not None
        _save_step(conn, event, order_id, project.rename_folder(prior, folder[2]), is_new=False)


def _save_step(
    conn: sqlite3.Connection, event: StoredEvent, order_id: str, step: project.Step, *, is_new: bool
) -> None:
    key = (event.store_id, order_id)
    if step.current is not None:
        row = order_row(*key, step.state, step.current)
        items, shipments = item_rows(*key, step.current), shipment_rows(*key, step.current)
        if is_new:  # nothing stored to compare with or delete
            conn.execute(INSERT_ORDER, row)
            _insert_rows(conn, INSERT_ITEM, items)
            _insert_rows(conn, INSERT_SHIPMENT, shipments)
        else:
            conn.execute(UPDATE_ORDER, (*row[2:], *key))
            _replace_rows(conn, "order_items", ITEM_COLUMNS, key, items)
            _replace_rows(conn, "shipments", SHIPMENT_COLUMNS, key, shipments)
    else:
        s = step.state
        conn.execute(
            UPDATE_ORDER_STATE,
            (s.seq, s.updated_at, s.state, s.folder_id, s.folder_name, s.shipments_count,
             s.snapshots_seen, s.stale_snapshots, s.first_seq, s.last_seq, *key),
        )  # fmt: skip
    _insert_rows(conn, LIVE_MOVEMENT, movement_rows(event, order_id, step))


def _insert_rows(conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    if rows:  # an empty executemany still costs a statement step
        conn.executemany(sql, rows)


def _replace_rows(
    conn: sqlite3.Connection,
    table: str,
    columns: tuple[str, ...],
    key: tuple[str, str],
    rows: list[tuple[Any, ...]],
) -> None:
    """Make an order's lines (or shipments) the snapshot's. Most snapshots move a folder
    or add a shipment and leave the lines as they were: equal rows are not rewritten."""
    where = "WHERE store_id = ? AND order_id = ?"
    stored = conn.execute(f"SELECT {', '.join(columns)} FROM {table} {where} ORDER BY line", key)
    if stored.fetchall() == rows:
        return
    conn.execute(f"DELETE FROM {table} {where}", key)
    _insert_rows(conn, insert_sql(table, columns), rows)


def checkpoint(conn: sqlite3.Connection, name: str = CHECKPOINT) -> int:
    row = conn.execute("SELECT seq FROM checkpoints WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else 0


# ``WHERE`` before ``ON CONFLICT``: without it SQLite could read the upsert as a join.
CLOSE_MOVEMENTS = f"""
INSERT INTO movements_closed (store_id, code, {", ".join(project.BUCKETS)})
SELECT store_id, code, {", ".join(f"sum({b})" for b in project.BUCKETS)}
FROM inventory_movements WHERE seq > ? AND seq <= ? GROUP BY store_id, code
ON CONFLICT (store_id, code) DO UPDATE SET
{", ".join(f"{b} = {b} + excluded.{b}" for b in project.BUCKETS)}
"""


def close_movements(conn: sqlite3.Connection, through: int) -> int:
    """Close the inventory movements up to seq ``through``; returns the seq they are
    closed up to.

    Their sums per SKU are counted here by SQL from the movements themselves, not by the
    trigger that keeps ``inventory``, and added to ``movements_closed``; from then on a
    closed movement cannot change (triggers refuse it). So reconcile_inventory_drift
    recounts only the movements after the close, however long the log grows.
    """
    # The closed seq, the sums and the new seq as one, in a caller's transaction or not:
    # sums added twice would show as drift.
    conn.execute("SAVEPOINT close")
    try:
        closed = checkpoint(conn, MOVEMENTS_CLOSED)
        if through > closed:
            conn.execute(CLOSE_MOVEMENTS, (closed, through))
            _set_checkpoint(conn, MOVEMENTS_CLOSED, through)
    except BaseException:
        # An I/O error may have rolled the whole transaction back: keep the first error.
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK TO close")
                conn.execute("RELEASE close")
        raise
    conn.execute("RELEASE close")
    return max(through, closed)


def iter_events(
    conn: sqlite3.Connection,
    after: int = 0,
    until: int | None = None,
    kind: str | None = None,
    *,
    by_order: bool = False,
    orders: tuple[str, str] | None = None,
    chunk: int = 2000,
) -> Iterator[StoredEvent]:
    """Stream events (never the whole log in memory), in seq order or order by order;
    ``orders`` limits them to an inclusive range of order ids."""
    # Order by order, '+' keeps the seq range from steering SQLite off the order index;
    # in seq order the range is what finds the first row (catch_up reads a few events).
    seq = "+seq" if by_order else "seq"
    where: list[str] = [f"{seq} > ?"]
    params: list[object] = [after]
    if orders is not None:
        where.append("order_id BETWEEN ? AND ?")
        params.extend(orders)
    if until is not None:
        where.append(f"{seq} <= ?")
        params.append(until)
    if kind is not None:
        where.append("type = ?")
        params.append(kind)
    cursor = conn.execute(
        "SELECT seq, type, received_at, store_id, order_id, order_updated_at, payload FROM events"
        f" WHERE {' AND '.join(where)}"
        f" ORDER BY {'order_id, store_id, seq' if by_order else 'seq'}",
        params,
    )
    while rows := cursor.fetchmany(chunk):
        for row in rows:
            yield StoredEvent(*row)


def catch_up(conn: sqlite3.Connection) -> int:
    """Project any events past the checkpoint (inside the caller's write transaction)."""
    count = 0
    for event in list(iter_events(conn, checkpoint(conn))):
        apply_event(conn, event)
        count += 1
    return count

"""The one module that writes: deliveries, events and the projections they drive.

Every write happens inside a transaction that the caller opened with
``BEGIN IMMEDIATE``; the projection of an event is written in the same
transaction as the event, together with the projection's checkpoint.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from . import project
from .chain import GENESIS, EventFields, link, payload_digest
from .verify import Snapshot, parse_order

ORDER_SNAPSHOT = "OrderSnapshotReceived"
FOLDER_NAMED = "FolderNamed"
CHECKPOINT = "projections"


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
        apply_event(conn, event, snap.order)
        outcome = Outcome("appended", 200, event.seq)
    _insert_delivery(
        conn, d, outcome, payload_sha256=snap.payload_sha256, order_id=snap.order_id,
        variant=snap.signature_variant,
    )  # fmt: skip
    return outcome


def record_folder_name(
    conn: sqlite3.Connection, key: bytes, head: Head, store_id: str, folder_id: int, name: str
) -> int:
    at = utcnow()
    payload = json.dumps({"folder_id": folder_id, "name": name, "named_at": at}, ensure_ascii=False)
    event = StoredEvent(head.seq + 1, FOLDER_NAMED, at, store_id, None, None, payload)
    _append_event(conn, key, head, event, payload_digest(payload))
    apply_event(conn, event, json.loads(payload))
    return event.seq


# --- projections: the same code for live appends and for rebuilds -------------------------


def apply_event(conn: sqlite3.Connection, event: StoredEvent, body: Mapping[str, Any]) -> None:
    """Project one event. A projection bug never loses the event: the event stays in the
    log, its projection is skipped and the failure is recorded as an issue, the same way
    on every rebuild."""
    conn.execute("SAVEPOINT project")
    try:
        if event.type == ORDER_SNAPSHOT:
            _apply_snapshot(conn, event, body)
        elif event.type == FOLDER_NAMED:
            _apply_folder_named(conn, event, body)
    except sqlite3.OperationalError:
        raise  # the database itself failed: nothing may be acknowledged
    except Exception as exc:
        conn.execute("ROLLBACK TO project")
        conn.execute(
            "INSERT OR IGNORE INTO projection_issues (seq, store_id, order_id, issue)"
            " VALUES (?,?,?,?)",
            (
                event.seq,
                event.store_id,
                event.order_id,
                f"not projected: {type(exc).__name__}: {exc}",
            ),
        )
    conn.execute("RELEASE project")
    conn.execute(
        "INSERT INTO checkpoints (name, seq) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
        (CHECKPOINT, event.seq),
    )


def parse_stored(event: StoredEvent) -> Mapping[str, Any]:
    return parse_order(event.payload) if event.type == ORDER_SNAPSHOT else json.loads(event.payload)


def _folder_name(conn: sqlite3.Connection, store_id: str, folder_id: int | None) -> str | None:
    row = conn.execute(
        "SELECT name FROM folders WHERE store_id = ? AND folder_id = ?", (store_id, folder_id)
    ).fetchone()
    return row[0] if row else None


def _current_buckets(
    conn: sqlite3.Connection, store_id: str, order_id: str, state: str
) -> project.Buckets:
    items = conn.execute(
        "SELECT code, quantity FROM order_items WHERE store_id = ? AND order_id = ?",
        (store_id, order_id),
    ).fetchall()
    return project.buckets(items, state)


def _apply_snapshot(conn: sqlite3.Connection, event: StoredEvent, body: Mapping[str, Any]) -> None:
    assert event.order_id is not None
    key = (event.store_id, event.order_id)
    current = conn.execute(
        "SELECT seq, order_updated_at, state FROM orders WHERE store_id = ? AND order_id = ?", key
    ).fetchone()
    view = project.view_order(body)
    applies = project.supersedes(
        (event.order_updated_at, event.seq), (current[1], current[0]) if current else None
    )
    for issue in view.issues:
        conn.execute(
            "INSERT OR IGNORE INTO projection_issues (seq, store_id, order_id, issue)"
            " VALUES (?,?,?,?)",
            (event.seq, event.store_id, event.order_id, issue),
        )
    _write_history(conn, event, view, applies)
    if not applies:
        conn.execute(
            "UPDATE orders SET snapshots_seen = snapshots_seen + 1,"
            " stale_snapshots = stale_snapshots + 1, last_seq = max(last_seq, ?)"
            " WHERE store_id = ? AND order_id = ?",
            (event.seq, *key),
        )
        return
    before = _current_buckets(conn, *key, current[2]) if current else {}
    folder_name = _folder_name(conn, event.store_id, view.fields["folder_id"])
    state = project.state_of(folder_name, len(view.shipments))
    _replace_order(conn, event, view, state, folder_name, is_new=current is None)
    after = project.buckets(((i.code, i.quantity) for i in view.items), state)
    _move(conn, event, event.order_id, before, after)


def _replace_order(
    conn: sqlite3.Connection,
    event: StoredEvent,
    view: project.OrderView,
    state: str,
    folder_name: str | None,
    *,
    is_new: bool,
) -> None:
    key = (event.store_id, event.order_id)
    row = {
        "store_id": event.store_id, "order_id": event.order_id, "seq": event.seq,
        "order_updated_at": event.order_updated_at, "state": state, "folder_name": folder_name,
        **view.fields,
    }  # fmt: skip
    if is_new:
        row |= {
            "snapshots_seen": 1,
            "stale_snapshots": 0,
            "first_seq": event.seq,
            "last_seq": event.seq,
        }
        cols = ", ".join(row)
        conn.execute(
            f"INSERT INTO orders ({cols}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
        )
    else:
        sets = ", ".join(f"{c} = ?" for c in row)
        conn.execute(
            f"UPDATE orders SET {sets}, snapshots_seen = snapshots_seen + 1,"
            " last_seq = max(last_seq, ?)"
            " WHERE store_id = ? AND order_id = ?",
            (*row.values(), event.seq, *key),
        )
    conn.execute("DELETE FROM order_items WHERE store_id = ? AND order_id = ?", key)
    conn.execute("DELETE FROM shipments WHERE store_id = ? AND order_id = ?", key)
    conn.executemany(
        "INSERT INTO order_items (store_id, order_id, line, item_id, code, name, quantity,"
        " price_cents, weight, category_code, variation) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        [(*key, *asdict(i).values()) for i in view.items],
    )
    conn.executemany(
        "INSERT INTO shipments (store_id, order_id, line, shipment_id, tracking_number,"
        " carrier_code, shipment_method, date_shipped, cost_cents, weight, tracking_url)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        [(*key, *asdict(s).values()) for s in view.shipments],
    )


def _write_history(
    conn: sqlite3.Connection, event: StoredEvent, view: project.OrderView, applies: bool
) -> None:
    previous = conn.execute(
        "SELECT folder_id, payment_status, order_total_cents, lines, shipments FROM order_history"
        " WHERE store_id = ? AND order_id = ? ORDER BY seq DESC LIMIT 1",
        (event.store_id, event.order_id),
    ).fetchone()
    now = {
        "folder_id": view.fields["folder_id"],
        "payment_status": view.fields["payment_status"],
        "order_total_cents": view.fields["order_total_cents"],
        "lines": project.lines_summary(view.items),
        "shipments": project.shipments_summary(view.shipments),
    }
    before = dict(zip(project.HISTORY_FIELDS, previous, strict=True)) if previous else None
    conn.execute(
        "INSERT INTO order_history (seq, store_id, order_id, received_at, order_updated_at,"
        " applied, stale, folder_id, payment_status, order_total_cents, lines, shipments, changes)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            event.seq, event.store_id, event.order_id, event.received_at, event.order_updated_at,
            int(applies), int(not applies), *now.values(), project.changes(before, now),
        ),
    )  # fmt: skip


def _apply_folder_named(
    conn: sqlite3.Connection, event: StoredEvent, body: Mapping[str, Any]
) -> None:
    folder_id, name = int(body["folder_id"]), str(body["name"])
    conn.execute(
        "INSERT INTO folders (store_id, folder_id, name, named_at, seq) VALUES (?,?,?,?,?)"
        " ON CONFLICT (store_id, folder_id) DO UPDATE SET name = excluded.name,"
        " named_at = excluded.named_at, seq = excluded.seq",
        (event.store_id, folder_id, name, event.received_at, event.seq),
    )
    affected = conn.execute(
        "SELECT order_id, state, shipments_count FROM orders WHERE store_id = ? AND folder_id = ?"
        " ORDER BY order_id",
        (event.store_id, folder_id),
    ).fetchall()
    for order_id, old_state, shipments in affected:
        new_state = project.state_of(name, shipments)
        conn.execute(
            "UPDATE orders SET folder_name = ?, state = ? WHERE store_id = ? AND order_id = ?",
            (name, new_state, event.store_id, order_id),
        )
        if new_state != old_state:
            before = _current_buckets(conn, event.store_id, order_id, old_state)
            after = _current_buckets(conn, event.store_id, order_id, new_state)
            _move(conn, event, order_id, before, after)


def _move(
    conn: sqlite3.Connection,
    event: StoredEvent,
    order_id: str,
    before: project.Buckets,
    after: project.Buckets,
) -> None:
    for code, d in project.movements(before, after).items():
        deltas = tuple(d[b] for b in project.BUCKETS)
        conn.execute(
            "INSERT INTO inventory_movements (seq, store_id, order_id, code, ordered, shipped,"
            " canceled, open, orders, moved_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (event.seq, event.store_id, order_id, code, *deltas, event.received_at),
        )
        conn.execute(
            "INSERT INTO inventory (store_id, code, ordered, shipped, canceled, open, orders,"
            " last_movement_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (store_id, code) DO UPDATE SET"
            " ordered = ordered + excluded.ordered, shipped = shipped + excluded.shipped,"
            " canceled = canceled + excluded.canceled, open = open + excluded.open,"
            " orders = orders + excluded.orders,"
            " last_movement_at = max(coalesce(last_movement_at, ''), excluded.last_movement_at)",
            (event.store_id, code, *deltas, event.received_at),
        )
        # A SKU no current order holds any more leaves the table (its movements stay).
        conn.execute(
            "DELETE FROM inventory WHERE store_id = ? AND code = ? AND orders = 0 AND ordered = 0"
            " AND shipped = 0 AND canceled = 0 AND open = 0",
            (event.store_id, code),
        )


def checkpoint(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM checkpoints WHERE name = ?", (CHECKPOINT,)).fetchone()
    return int(row[0]) if row else 0


def iter_events(conn: sqlite3.Connection, after_seq: int = 0, chunk: int = 2000):  # type: ignore[no-untyped-def]
    cursor = conn.execute(
        "SELECT seq, type, received_at, store_id, order_id, order_updated_at, payload"
        " FROM events WHERE seq > ? ORDER BY seq",
        (after_seq,),
    )
    while rows := cursor.fetchmany(chunk):
        for row in rows:
            yield StoredEvent(*row)


def catch_up(conn: sqlite3.Connection) -> int:
    """Project any events past the checkpoint (inside the caller's write transaction)."""
    count = 0
    for event in list(iter_events(conn, checkpoint(conn))):
        apply_event(conn, event, parse_stored(event))
        count += 1
    return count

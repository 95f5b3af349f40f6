"""The log: ``events`` and ``deliveries``, declared once, appended to and read, never changed.

Both tables are STRICT and append-only, enforced by SQLite itself (``LOG_TRIGGERS``)
whatever connection writes and whatever its pragmas: UPDATE, DELETE and INSERT OR
REPLACE are refused; a new event must take the next seq and link to the hash of the one
before, a new delivery the next id. Both are chained (``chain.py``), and every batch that
appends to them is signed (``heads.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from .chain import GENESIS, delivery_link, event_link
from .events import StoredEvent
from .table import Table

OUTCOMES = ("appended", "duplicate", "rejected")


class EventLink(NamedTuple):
    """How an event is tied into the log: its payload's hash and the chain."""

    payload_sha256: str
    prev_hash: str
    hash: str


EVENTS = Table(
    "events",
    (StoredEvent, EventLink),
    primary_key=("seq",),
    indexes={
        # The dedup key; sha first, so a delivery's sha finds its event without a store id.
        "events_sha_store": "UNIQUE events (payload_sha256, store_id)",
        # Order id first: lookups by order id alone, and the order-by-order replay of rebuilds.
        "events_order_store": "events (order_id, store_id, seq)",
        "events_received": "events (received_at)",
    },
)
# What each event's hash covers: every stored field but the payload (its sha stands in
# for it) and the hash itself.
CHAINED = tuple(c for c in EVENTS.column_names if c not in ("payload", "hash"))
assert (*StoredEvent._fields[:-1], *EventLink._fields[:-1]) == CHAINED, "append_event's order"


class DeliveryId(NamedTuple):
    id: int


class Delivery(NamedTuple):
    """What the receiver knows about one POST attempt before judging it, its headers as
    they came (``record_delivery`` keeps them to a bound)."""

    received_at: str
    remote_addr: str | None
    method: str
    content_type: str | None
    body_bytes: int | None
    store_id: str | None


class HeaderLengths(NamedTuple):
    """A header value longer than HEADER_BOUND characters is kept to the bound, and its
    length here says how long it was (None: kept whole)."""

    content_type_length: int | None
    store_id_length: int | None


# Each attempt costs at most about half a kilobyte, however long the headers it sent.
HEADER_BOUND = 100


def _bounded(value: str | None) -> tuple[str | None, int | None]:
    if value is None or len(value) <= HEADER_BOUND:
        return value, None
    return value[:HEADER_BOUND], len(value)


def bounded(delivery: Delivery) -> tuple[Delivery, HeaderLengths]:
    """The delivery as it is recorded, and the lengths of what was cut."""
    content_type, content_type_length = _bounded(delivery.content_type)
    store_id, store_id_length = _bounded(delivery.store_id)
    kept = delivery._replace(content_type=content_type, store_id=store_id)
    return kept, HeaderLengths(content_type_length, store_id_length)


class Verdict(NamedTuple):
    """What became of a delivery; the writer answers the post with it."""

    outcome: str
    http_status: int
    reason: str | None = None
    signature_variant: str | None = None
    payload_sha256: str | None = None
    order_id: str | None = None
    seq: int | None = None


class DeliveryLink(NamedTuple):
    hash: str | None  # None only on deliveries from before the chain (a legacy prefix)


DELIVERIES = Table(
    "deliveries",
    (DeliveryId, Delivery, Verdict, DeliveryLink, HeaderLengths),
    primary_key=("id",),
    checks={"outcome": f"outcome IN ({', '.join(repr(o) for o in OUTCOMES)})"},
    references={"seq": "events (seq)"},
    indexes={
        "deliveries_seq": "deliveries (seq)",
        "deliveries_received": "deliveries (received_at)",
        "deliveries_outcome": "deliveries (outcome, received_at)",
    },
)
DELIVERY_CHAINED = tuple(c for c in DELIVERIES.column_names if c != "hash")
LOG_TABLES = (EVENTS, DELIVERIES)


def append_only(table: str, key_check: str) -> str:
    # INSERT OR REPLACE deletes the old row without firing DELETE triggers unless
    # recursive_triggers is on, so the BEFORE INSERT trigger refuses the conflict itself.
    return f"""
CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS {table}_no_replace BEFORE INSERT ON {table}
WHEN {key_check}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: the row exists already'); END;
"""


def gapless(table: str, key: str) -> str:
    return f"""
CREATE TRIGGER IF NOT EXISTS {table}_gapless BEFORE INSERT ON {table}
WHEN NEW.{key} IS NOT (SELECT coalesce(max({key}), 0) + 1 FROM {table})
BEGIN SELECT RAISE(ABORT, '{table}: {key} must follow the last {key}'); END;
"""


LOG_TRIGGERS = (
    append_only(
        "events",
        "EXISTS (SELECT 1 FROM events WHERE seq = NEW.seq"
        " OR (store_id = NEW.store_id AND payload_sha256 = NEW.payload_sha256))",
    )
    + append_only("deliveries", "EXISTS (SELECT 1 FROM deliveries WHERE id = NEW.id)")
    + gapless("deliveries", "id")
    + """
CREATE TRIGGER IF NOT EXISTS events_gapless BEFORE INSERT ON events
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM events)
  OR NEW.prev_hash IS NOT coalesce(
       (SELECT hash FROM events ORDER BY seq DESC LIMIT 1), printf('%064d', 0))
BEGIN SELECT RAISE(ABORT, 'events: seq must follow the last seq and prev_hash its hash'); END;
"""
)

INSERT_EVENT = EVENTS.insert_sql()
INSERT_DELIVERY = (
    f"INSERT INTO deliveries ({', '.join(DELIVERIES.column_names)})"
    f" VALUES ({', '.join(':' + c for c in DELIVERIES.column_names)})"
)
_RECORDED = ("id", *Delivery._fields, *HeaderLengths._fields, *Verdict._fields)
assert set(_RECORDED) == set(DELIVERY_CHAINED), "record_delivery sets every column"
FIND_DUPLICATE = "SELECT seq FROM events WHERE store_id = ? AND payload_sha256 = ?"


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Head:
    """The last event and the last delivery of the log, moved on by every append."""

    seq: int
    hash: str
    delivery_id: int
    delivery_hash: str

    def moved(self, since: Head) -> bool:
        return (self.seq, self.delivery_id) != (since.seq, since.delivery_id)

    def copy(self) -> Head:
        return Head(self.seq, self.hash, self.delivery_id, self.delivery_hash)

    def reset(self, to: Head) -> None:
        """Back to ``to``: a job that failed alone appended nothing."""
        self.seq, self.hash, self.delivery_id, self.delivery_hash = (
            to.seq, to.hash, to.delivery_id, to.delivery_hash)  # fmt: skip


LAST_EVENT = "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
LAST_DELIVERY = "SELECT id, hash FROM deliveries ORDER BY id DESC LIMIT 1"


def read_head(conn: sqlite3.Connection, legacy_deliveries: str = GENESIS) -> Head:
    """The log's head; a delivery from before the chain has no hash, and the chain goes
    on from ``legacy_deliveries``, the digest the anchor signed for them."""
    event = conn.execute(LAST_EVENT).fetchone() or (0, GENESIS)
    delivery = conn.execute(LAST_DELIVERY).fetchone() or (0, GENESIS)
    return Head(event[0], event[1], delivery[0], delivery[1] or legacy_deliveries)


def append_event(conn: sqlite3.Connection, head: Head, event: StoredEvent, sha: str) -> None:
    """Append ``event`` after ``head`` (its seq must be the next) and move the head on."""
    digest = event_link(dict(zip(CHAINED, (*event[:-1], sha, head.hash), strict=True)))
    conn.execute(INSERT_EVENT, (*event, sha, head.hash, digest))
    head.seq, head.hash = event.seq, digest


def record_delivery(
    conn: sqlite3.Connection, head: Head, delivery: Delivery, verdict: Verdict
) -> None:
    """Append a delivery after ``head``, chained to the one before, and move the head on."""
    kept, lengths = bounded(delivery)
    values = (head.delivery_id + 1, *kept, *lengths, *verdict)
    row: dict[str, Any] = dict(zip(_RECORDED, values, strict=True))
    row["hash"] = delivery_link(row, head.delivery_hash)
    conn.execute(INSERT_DELIVERY, row)
    head.delivery_id, head.delivery_hash = row["id"], row["hash"]


def find_duplicate(conn: sqlite3.Connection, store_id: str, sha: str) -> int | None:
    """The seq of the store's event with these exact payload bytes, if there is one."""
    row = conn.execute(FIND_DUPLICATE, (store_id, sha)).fetchone()
    return int(row[0]) if row else None


def last_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])


READ_EVENTS = f"SELECT {', '.join(StoredEvent._fields)} FROM events"


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
        f"{READ_EVENTS} WHERE {' AND '.join(where)}"
        f" ORDER BY {'order_id, store_id, seq' if by_order else 'seq'}",
        params,
    )
    while rows := cursor.fetchmany(chunk):
        for row in rows:
            yield StoredEvent(*row)

"""Re-check the whole log: payload hashes, the keyed chain, and links from deliveries."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from .chain import GENESIS, EventFields, link


@dataclass(frozen=True)
class Problem:
    seq: int
    what: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.what}"


@dataclass(frozen=True)
class Report:
    events: int
    head_seq: int
    head_hash: str
    problem: Problem | None

    @property
    def intact(self) -> bool:
        return self.problem is None


def _rows(conn: sqlite3.Connection) -> Iterator[tuple[EventFields, str, str]]:
    cursor = conn.execute(
        "SELECT seq, type, received_at, store_id, order_id, order_updated_at, payload_sha256,"
        " prev_hash, hash, payload FROM events ORDER BY seq"
    )
    while rows := cursor.fetchmany(2000):
        for row in rows:
            yield EventFields(*row[:8]), row[8], row[9]


def check_event(
    key: bytes, fields: EventFields, digest: str, payload: str, expected_seq: int, prev: str
) -> str | None:
    """What is wrong with one event given its predecessor, or None."""
    if fields.seq != expected_seq:
        return f"expected seq {expected_seq} here: events before it were deleted"
    if hashlib.sha256(payload.encode("utf-8")).hexdigest() != fields.payload_sha256:
        return "payload does not match its payload_sha256 (payload edited)"
    if fields.prev_hash != prev:
        return "prev_hash does not match the previous event's hash (chain broken)"
    if not hmac.compare_digest(link(key, fields), digest):
        return "hash does not match the event's fields (edited, or forged without the chain key)"
    return None


def verify_log(conn: sqlite3.Connection, key: bytes) -> Report:
    expected, prev, count = 1, GENESIS, 0
    for fields, digest, payload in _rows(conn):
        what = check_event(key, fields, digest, payload, expected, prev)
        if what:
            return Report(
                count,
                expected - 1,
                prev,
                Problem(expected if fields.seq > expected else fields.seq, what),
            )
        expected, prev, count = fields.seq + 1, digest, count + 1
    orphan = conn.execute(
        "SELECT min(seq) FROM deliveries"
        " WHERE seq IS NOT NULL AND seq NOT IN (SELECT seq FROM events)"
    ).fetchone()[0]
    if orphan is not None:
        return Report(
            count,
            expected - 1,
            prev,
            Problem(orphan, "a delivery names this seq but the event is gone"),
        )
    missing = conn.execute(
        "SELECT min(seq) FROM events WHERE type = 'OrderSnapshotReceived' AND seq NOT IN"
        " (SELECT seq FROM deliveries WHERE outcome = 'appended' AND seq IS NOT NULL)"
    ).fetchone()[0]
    if missing is not None:
        return Report(
            count,
            expected - 1,
            prev,
            Problem(missing, "no delivery appended this event (row inserted by hand)"),
        )
    return Report(count, expected - 1, prev, None)

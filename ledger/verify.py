"""``ledger verify``: re-check the whole log, its payload hashes, the keyed chain, and the
deliveries' links to the events they appended."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from .chain import GENESIS, link
from .events import ORDER_SNAPSHOT
from .log import CHAINED


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


READ = f"SELECT {', '.join(CHAINED)}, hash, payload FROM events ORDER BY seq"
ORPHAN = (
    "SELECT min(seq) FROM deliveries WHERE seq IS NOT NULL AND seq NOT IN (SELECT seq FROM events)"
)
UNDELIVERED = (
    f"SELECT min(seq) FROM events WHERE type = '{ORDER_SNAPSHOT}' AND seq NOT IN"
    " (SELECT seq FROM deliveries WHERE outcome = 'appended' AND seq IS NOT NULL)"
)


def _rows(conn: sqlite3.Connection) -> Iterator[tuple[tuple[object, ...], str, str]]:
    cursor = conn.execute(READ)
    width = len(CHAINED)
    while rows := cursor.fetchmany(2000):
        for row in rows:
            yield row[:width], row[width], row[width + 1]


def check_event(
    key: bytes, fields: tuple[object, ...], digest: str, payload: str, expected_seq: int, prev: str
) -> str | None:
    """What is wrong with one event given its predecessor, or None."""
    seq, sha, prev_hash = fields[0], fields[-2], fields[-1]
    if seq != expected_seq:
        return f"expected seq {expected_seq} here: events before it were deleted"
    if hashlib.sha256(payload.encode("utf-8")).hexdigest() != sha:
        return "payload does not match its payload_sha256 (payload edited)"
    if prev_hash != prev:
        return "prev_hash does not match the previous event's hash (chain broken)"
    if not hmac.compare_digest(link(key, fields), digest):
        return "hash does not match the event's fields (edited, or forged without the chain key)"
    return None


def verify_log(conn: sqlite3.Connection, key: bytes) -> Report:
    expected, prev, count = 1, GENESIS, 0
    for fields, digest, payload in _rows(conn):
        what = check_event(key, fields, digest, payload, expected, prev)
        if what:
            seq = int(fields[0])  # type: ignore[call-overload]
            return Report(
                count, expected - 1, prev, Problem(expected if seq > expected else seq, what)
            )
        expected, prev, count = int(fields[0]) + 1, digest, count + 1  # type: ignore[call-overload]
    for sql, what in (
        (ORPHAN, "a delivery names this seq but the event is gone"),
        (UNDELIVERED, "no delivery appended this event (row inserted by hand)"),
    ):
        found = conn.execute(sql).fetchone()[0]
        if found is not None:
            return Report(count, expected - 1, prev, Problem(found, what))
    return Report(count, expected - 1, prev, None)

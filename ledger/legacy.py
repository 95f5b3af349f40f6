"""Files from before signed heads: their HMAC chain checked once, their prefix digested.

Such a file chained its events with an HMAC under a secret key beside it, and its
deliveries not at all. At the upgrade the whole chain is checked once with that key, and
the anchor the first signed head stands on records a digest of every event and every
delivery so far (``chain.Shadow``). From then on nothing needs the old key: ``ledger
verify`` recomputes the digests from the file, and any edit of the prefix changes them.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from collections.abc import Iterator
from typing import Any

from .chain import GENESIS, Shadow, legacy_link
from .errors import ChainKeyError
from .heads import Anchor
from .log import CHAINED, DELIVERY_CHAINED

READ_EVENTS = f"SELECT {', '.join(CHAINED)}, hash, payload FROM events ORDER BY seq"


def _rows(conn: sqlite3.Connection, sql: str) -> Iterator[tuple[Any, ...]]:
    cursor = conn.execute(sql)
    while rows := cursor.fetchmany(2000):
        yield from rows


def event_problem(fields: tuple[Any, ...], payload: str, expected: int, prev: str) -> str | None:
    """What is wrong with one event of a chain, given its predecessor, or None (its hash
    is checked by the caller: keyed here, recomputed for signed files)."""
    seq, sha, prev_hash = fields[0], fields[-2], fields[-1]
    if seq != expected:
        return f"expected seq {expected} here: events before it were deleted"
    if hashlib.sha256(payload.encode("utf-8")).hexdigest() != sha:
        return "payload does not match its payload_sha256 (payload edited)"
    if prev_hash != prev:
        return "prev_hash does not match the previous event's hash (chain broken)"
    return None


def events_digest(conn: sqlite3.Connection, key: bytes | None) -> tuple[int, str]:
    """The events and the digest an anchor signs for them; with ``key``, each event's
    HMAC is checked on the way and the first bad one raises."""
    shadow, expected, prev = Shadow(), 1, GENESIS
    for row in _rows(conn, READ_EVENTS):
        fields, digest, payload = row[: len(CHAINED)], row[-2], row[-1]
        what = event_problem(fields, payload, expected, prev)
        if what is None and key and not hmac.compare_digest(legacy_link(key, fields), digest):
            what = "hash does not match the event's fields under the chain key"
        if what:
            raise ChainKeyError(
                f"the log does not verify with its chain key at seq {expected}: {what};"
                " refusing to sign over it"
            )
        shadow.add({**dict(zip(CHAINED, fields, strict=True)), "hash": digest})
        expected, prev = expected + 1, digest
    return shadow.rows, shadow.hexdigest()


def deliveries_digest(conn: sqlite3.Connection) -> tuple[int, str]:
    # The columns the file has at its upgrade: one added later is null in every row so
    # far, and a null is not part of a row's digest.
    present = {r[1] for r in conn.execute("PRAGMA table_info(deliveries)")}
    columns = [c for c in DELIVERY_CHAINED if c in present]
    shadow = Shadow()
    for row in _rows(conn, f"SELECT {', '.join(columns)} FROM deliveries ORDER BY id"):
        if row[0] != shadow.rows + 1:
            raise ChainKeyError(f"deliveries skip from id {shadow.rows} to {row[0]}")
        shadow.add(dict(zip(columns, row, strict=True)))
    return shadow.rows, shadow.hexdigest()


def anchor_for(conn: sqlite3.Connection, key: bytes | None) -> Anchor:
    """The anchor for what the file holds now (nothing, in a new file)."""
    events, e_digest = events_digest(conn, key)
    deliveries, d_digest = deliveries_digest(conn)
    return Anchor(events, e_digest, deliveries, d_digest)

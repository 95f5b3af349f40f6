"""What a write does: the jobs the writer runs, each inside its own savepoint.

A job appends to the log and projects what it appended in the same transaction, so the
projections and their position never lag the log they are derived from. The writer
process runs the receiver's jobs in batches; commands run theirs in a transaction of
their own (``run_alone``).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, NamedTuple, Protocol

from . import projections
from .chain import payload_digest
from .db import immediate
from .events import FOLDER_NAMED, ORDER_SNAPSHOT, StoredEvent
from .log import (
    Delivery,
    Head,
    Verdict,
    append_event,
    find_duplicate,
    read_head,
    record_delivery,
    utcnow,
)
from .post import Snapshot


class Job(Protocol):
    """One write; runs inside its own savepoint of the caller's transaction."""

    def run(self, conn: sqlite3.Connection, key: bytes, head: Head) -> Any: ...


class AppendSnapshot(NamedTuple):
    """A verified post: appended unless the store already has these exact bytes."""

    delivery: Delivery
    snapshot: Snapshot

    def run(self, conn: sqlite3.Connection, key: bytes, head: Head) -> Verdict:
        snap, at = self.snapshot, self.delivery.received_at
        seq = find_duplicate(conn, snap.store_id, snap.payload_sha256)
        if seq is not None:
            outcome, reason = "duplicate", f"duplicate of seq {seq}"
        else:
            seq, outcome, reason = head.seq + 1, "appended", None
            event = StoredEvent(seq, ORDER_SNAPSHOT, at, snap.store_id, snap.order_id,
                                snap.order_updated_at, snap.payload)  # fmt: skip
            append_event(conn, key, head, event, snap.payload_sha256)
            projections.apply(conn, event)
        verdict = Verdict(outcome, 200, reason, snap.signature_variant, snap.payload_sha256,
                          snap.order_id, seq)  # fmt: skip
        record_delivery(conn, self.delivery, verdict)
        return verdict


class RecordRejection(NamedTuple):
    """A refused post: a delivery row saying why, nothing else."""

    delivery: Delivery
    status: int
    reason: str
    payload_sha256: str | None

    def run(self, conn: sqlite3.Connection, key: bytes, head: Head) -> Verdict:
        verdict = Verdict("rejected", self.status, self.reason, payload_sha256=self.payload_sha256)
        record_delivery(conn, self.delivery, verdict)
        return verdict


class NameFolder(NamedTuple):
    """A folder id of a store given a name; returns the seq of its FolderNamed event."""

    store_id: str
    folder_id: int
    name: str

    def run(self, conn: sqlite3.Connection, key: bytes, head: Head) -> int:
        at = utcnow()
        body = {"folder_id": self.folder_id, "name": self.name, "named_at": at}
        payload = json.dumps(body, ensure_ascii=False)
        event = StoredEvent(head.seq + 1, FOLDER_NAMED, at, self.store_id, None, None, payload)
        append_event(conn, key, head, event, payload_digest(payload))
        projections.apply(conn, event)
        return event.seq


def run_alone(conn: sqlite3.Connection, key: bytes, *jobs: Job) -> list[Any]:
    """Run ``jobs`` in one write transaction of their own, after the log's head."""
    with immediate(conn):
        head = read_head(conn)
        return [job.run(conn, key, head) for job in jobs]

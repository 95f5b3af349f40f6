"""What a write does: the jobs the writer runs, and the batch that signs them.

A job appends to the log and projects what it appended in the same transaction, so the
projections and their position never lag the log they are derived from. A batch of jobs
is one transaction that first checks the log's head follows from its last signed head
and ends by signing the new head (``write_batch``): the writer process runs the
receiver's jobs so, commands theirs (``run_alone``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from . import projections
from .chain import payload_digest
from .db import immediate
from .events import FOLDER_NAMED, ORDER_SNAPSHOT, StoredEvent
from .heads import Signing, append_head, check_follows, last_head
from .log import Delivery, Head, Verdict, append_event, find_duplicate, record_delivery, utcnow
from .post import Snapshot


class Job(Protocol):
    """One write; runs inside its own savepoint of the caller's transaction."""

    def run(self, conn: sqlite3.Connection, head: Head) -> Any: ...


class AppendSnapshot(NamedTuple):
    """A verified post: appended unless the store already has these exact bytes."""

    delivery: Delivery
    snapshot: Snapshot

    def run(self, conn: sqlite3.Connection, head: Head) -> Verdict:
        snap, at = self.snapshot, self.delivery.received_at
        seq = find_duplicate(conn, snap.store_id, snap.payload_sha256)
        if seq is not None:
            outcome, reason = "duplicate", f"duplicate of seq {seq}"
        else:
            seq, outcome, reason = head.seq + 1, "appended", None
            event = StoredEvent(seq, ORDER_SNAPSHOT, at, snap.store_id, snap.order_id,
                                snap.order_updated_at, snap.payload)  # fmt: skip
            append_event(conn, head, event, snap.payload_sha256)
            projections.apply(conn, event)
        verdict = Verdict(outcome, 200, reason, snap.signature_variant, snap.payload_sha256,
                          snap.order_id, seq)  # fmt: skip
        record_delivery(conn, head, self.delivery, verdict)
        return verdict


class Rehearse(NamedTuple):
    """A verified post while its store rehearses: what production would have done, told
    and kept as a delivery answered 400 (Order Desk lets the merchant re-run a post it
    did not count as delivered); nothing else is written."""

    delivery: Delivery
    snapshot: Snapshot

    def run(self, conn: sqlite3.Connection, head: Head) -> Verdict:
        snap = self.snapshot
        seq = find_duplicate(conn, snap.store_id, snap.payload_sha256)
        would = f"a duplicate of seq {seq}" if seq is not None else "appended"
        reason = (f"rehearsal: signature ok ({snap.signature_variant}), store {snap.store_id},"
                  f" order {snap.order_id}: would be {would}")  # fmt: skip
        verdict = Verdict("rejected", 400, reason, snap.signature_variant, snap.payload_sha256,
                          snap.order_id)  # fmt: skip
        record_delivery(conn, head, self.delivery, verdict)
        return verdict


class RecordRejection(NamedTuple):
    """A refused post: a delivery row saying why, nothing else."""

    delivery: Delivery
    status: int
    reason: str
    payload_sha256: str | None

    def run(self, conn: sqlite3.Connection, head: Head) -> Verdict:
        verdict = Verdict("rejected", self.status, self.reason, payload_sha256=self.payload_sha256)
        record_delivery(conn, head, self.delivery, verdict)
        return verdict


class NameFolder(NamedTuple):
    """A folder id of a store given a name; returns the seq of its FolderNamed event."""

    store_id: str
    folder_id: int
    name: str

    def run(self, conn: sqlite3.Connection, head: Head) -> int:
        at = utcnow()
        body = {"folder_id": self.folder_id, "name": self.name, "named_at": at}
        payload = json.dumps(body, ensure_ascii=False)
        event = StoredEvent(head.seq + 1, FOLDER_NAMED, at, self.store_id, None, None, payload)
        append_event(conn, head, event, payload_digest(payload))
        projections.apply(conn, event)
        return event.seq


RunOne = Callable[[sqlite3.Connection, Job, Head], Any]


def _run(conn: sqlite3.Connection, job: Job, head: Head) -> Any:
    return job.run(conn, head)


def write_batch(
    conn: sqlite3.Connection, signing: Signing, jobs: Sequence[Job], run_one: RunOne = _run
) -> list[Any]:
    """Run ``jobs`` in one write transaction after the log's head, and sign the head they
    leave (if they moved it). ``run_one`` runs one job: the writer isolates each in a
    savepoint. Refuses (StorageUnavailable) when the log holds rows that no signed head
    accounts for."""
    with immediate(conn):
        signing.refresh(conn)
        head = signing.read_head(conn)
        check_follows(head, last_head(conn))
        before = head.copy()
        results = [run_one(conn, job, head) for job in jobs]
        if head.moved(before):
            append_head(conn, signing, head)
    return results


def run_alone(conn: sqlite3.Connection, signing: Signing, *jobs: Job) -> list[Any]:
    """Run ``jobs`` as one signed batch of their own (a command's writes)."""
    return write_batch(conn, signing, jobs)

"""The writer's checkpoints: off the commit path, and the WAL stays bounded."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time

import pytest

from ledger import writer
from ledger.committer import BatchCommitter
from ledger.jobs import AppendSnapshot
from ledger.log import Delivery, read_head, utcnow
from ledger.settings import Settings
from ledger.startup import open_ledger
from ledger.testing import encode, snapshot
from tests.helpers import STORE_ID


def job(n: int) -> AppendSnapshot:
    payload = encode({"id": str(n), "date_updated": "2025-01-01 00:00:00", "pad": "x" * 3000})
    delivery = Delivery(utcnow(), "127.0.0.1", "POST", None, len(payload), STORE_ID)
    return AppendSnapshot(delivery, snapshot(payload))


def test_checkpoints_run_beside_the_committer_and_the_wal_stays_bounded(
    settings: Settings,
) -> None:
    # the limit alone, first
    settings = settings.with_(wal_limit_bytes=512 * 1024, checkpoint_every_s=3600.0)
    db = settings.db_path
    open_ledger(settings)
    committer = BatchCommitter(settings)
    try:
        conn = committer.open()
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        before = db.stat().st_size
        assert all(ok for ok, _ in committer.commit([job(n) for n in range(1000, 1008)]))
        assert db.stat().st_size == before, "below the limit a commit copies nothing back"
        biggest = 0
        for start in range(0, 400, 8):
            results = committer.commit([job(n) for n in range(start, start + 8)])
            assert all(ok for ok, _ in results)
            committer.maintain()  # as the writer process does after sending the answers
            biggest = max(biggest, os.path.getsize(f"{db}-wal"))
        # one batch of eight ~3 KB events writes well under 512 KB of WAL
        assert biggest < 2 * settings.wal_limit_bytes
    finally:
        committer.close()

    committer = BatchCommitter(settings.with_(checkpoint_every_s=0.05))
    try:
        committer.open()
        before = db.stat().st_size
        assert committer.commit([job(n) for n in range(400, 408)])[0][0]
        # committed pages live in the WAL until a checkpoint copies them into the file
        deadline = time.monotonic() + 10
        while db.stat().st_size == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert db.stat().st_size > before, "the background checkpoint copied the new pages"
    finally:
        committer.close()
    conn = sqlite3.connect(db)
    try:
        assert read_head(conn).seq == 416
    finally:
        conn.close()


def test_a_request_cancelled_while_it_waits_does_not_stall_the_others(
    settings: Settings,
) -> None:
    """A request task cancelled while it waits (as uvicorn does past a graceful-shutdown
    timeout) leaves its job to the batch; the other requests of its batch, and later ones,
    are still answered."""
    open_ledger(settings)
    w = writer.Writer(settings)
    w.start()
    blocker = sqlite3.connect(settings.db_path, isolation_level=None)

    async def scenario() -> list[int]:
        blocker.execute("BEGIN IMMEDIATE")  # the first batch waits for this lock
        first = asyncio.ensure_future(w.run(job(1)))
        await asyncio.sleep(0.2)  # the dispatcher has handed that batch to the child
        cancelled = asyncio.ensure_future(w.run(job(2)))
        neighbour = asyncio.ensure_future(w.run(job(3)))
        await asyncio.sleep(0.1)  # both queued: they make the next batch together
        cancelled.cancel()
        blocker.execute("ROLLBACK")
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        outcomes = [await asyncio.wait_for(f, timeout=10) for f in (first, neighbour)]
        later = await asyncio.wait_for(w.run(job(4)), timeout=10)
        return [o.seq for o in (*outcomes, later)]

    try:
        assert asyncio.run(scenario()) == [1, 3, 4]
    finally:
        blocker.close()
        w.stop()
    conn = sqlite3.connect(settings.db_path)
    try:  # the cancelled request's job stands
        rows = conn.execute("SELECT seq, order_id FROM events").fetchall()
        assert rows == [(1, "1"), (2, "2"), (3, "3"), (4, "4")]
    finally:
        conn.close()

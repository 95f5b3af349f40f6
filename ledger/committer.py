"""The writer process: the only write connection, one transaction per batch of jobs.

It commits each batch it is sent with one durable ``synchronous=FULL`` commit, each job
inside its own savepoint, and sends back one result per job. Between batches it bounds
the WAL and closes the inventory movements when due, after the answers are sent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sqlite3
import threading
from multiprocessing.connection import Connection
from typing import Any

from .db import connect, immediate, savepoint
from .errors import LedgerError, StorageUnavailable
from .heads import Signing
from .jobs import Job, write_batch
from .keys import load_signing
from .log import Head
from .projections.closing import close_movements
from .projections.positions import position
from .projections.tables import CLOSED, PROJECTED
from .settings import Settings

log = logging.getLogger("ledger.writer")


def writer_process(pipe: Connection, settings: Settings) -> None:
    """Commit each batch received on ``pipe`` and send back one result per job."""
    # The server decides when to stop; a Ctrl-C for the whole process group must not
    # interrupt a batch half-way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    committer = BatchCommitter(settings)
    try:
        committer.open()
    except (sqlite3.Error, LedgerError) as exc:
        pipe.send(str(exc))
        return
    pipe.send("ready")
    while True:
        try:
            jobs = pipe.recv()
        except (EOFError, OSError):
            break  # the server is gone
        if jobs is None:
            break
        pipe.send(committer.commit(jobs))
        committer.maintain()  # after the answers: they never wait for upkeep
    committer.close()


class Checkpointer:
    """Copies committed WAL pages back into the database beside the committer.

    SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold. On
    a large file that means writing ~1,000 pages to scattered places of the file, and
    fsyncing it, while every request of the batch waits. A PASSIVE checkpoint from a
    second connection does the same work without blocking the writer, and sqlite3
    releases the GIL while it runs.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        every, path = self._settings.checkpoint_every_s, self._settings.db_path
        while not self._stop.wait(every):
            try:
                conn = conn or connect(path, busy_timeout_ms=self._settings.busy_timeout_ms)
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # the committer reports storage faults itself
                log.warning("background checkpoint failed: %s", exc)
                with contextlib.suppress(sqlite3.Error):
                    if conn is not None:
                        conn.close()
                conn = None
        if conn is not None:
            conn.close()


class BatchCommitter:
    """One write connection; one transaction per batch, one savepoint per job.

    Past ``wal_limit_bytes`` of WAL it finishes a checkpoint itself, so that the WAL starts
    over from its beginning (a checkpoint running beside a busy writer never catches up
    with it) and the file stays bounded.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._wal_path = f"{settings.db_path}-wal"
        self._signing: Signing | None = None
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None

    def open(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = connect(self._settings.db_path, busy_timeout_ms=self._settings.busy_timeout_ms)
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # the Checkpointer's job
            # Each job's savepoint and each statement with triggers journal the pages they
            # touch; past 64 KiB that sub-journal spills to a temporary file, and those writes
            # were ~20% of the writer's CPU. In memory it is bounded by the batch: at most
            # batch_max posts of ~15 pages each (~20 MB); folder namings, which can touch
            # every order, are written by the CLI on its own connection, not here.
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute(f"PRAGMA journal_size_limit = {self._settings.wal_limit_bytes}")
            self._signing = load_signing(conn, self._settings)
            self._conn = conn
        if self._checkpointer is None:
            self._checkpointer = Checkpointer(self._settings)
            self._checkpointer.start()
        return self._conn

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()  # which rolls back what a failed batch left open
        self._conn = None

    def maintain(self) -> None:
        """Upkeep between batches: bound the WAL, close the inventory movements when due.
        Committed answers stand whatever happens here; a failure is retried next time."""
        for step in (self._bound_wal, self._close_movements):
            if self._conn is None:
                return
            try:
                step(self._conn)
            except sqlite3.Error as exc:  # one step failing does not skip the other
                log.warning("upkeep after a batch failed (%s): %s", step.__name__, exc)

    def _bound_wal(self, conn: sqlite3.Connection) -> None:
        try:
            size = os.path.getsize(self._wal_path)
        except OSError:
            return
        if size > self._settings.wal_limit_bytes:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _close_movements(self, conn: sqlite3.Connection) -> None:
        # Read from the file, not remembered: a rebuild swapped in meanwhile closes anew.
        if position(conn, PROJECTED) - position(conn, CLOSED) < self._settings.close_every:
            return
        with immediate(conn):
            close_movements(conn, position(conn, PROJECTED))

    def commit(self, jobs: list[Job]) -> list[tuple[bool, Any]]:
        try:
            # After a failure the connection is opened anew, so a fault that clears
            # (disk space freed, file system writable again) clears here too.
            conn = self.open()
            assert self._signing is not None
            return write_batch(conn, self._signing, jobs, self._one)
        except sqlite3.Error as exc:
            log.error("batch of %d not committed: %s", len(jobs), exc)
            self.close()
            return [(False, StorageUnavailable(f"database unavailable: {exc}"))] * len(jobs)
        except LedgerError as exc:  # the log or its key is not what a writer may sign
            log.error("batch of %d not committed: %s", len(jobs), exc)
            self.close()
            return [(False, StorageUnavailable(str(exc)))] * len(jobs)

    def _one(self, conn: sqlite3.Connection, job: Job, head: Head) -> tuple[bool, Any]:
        saved = head.copy()
        try:
            with savepoint(conn, "job"):
                value = job.run(conn, head)
        except sqlite3.OperationalError:
            raise  # disk full, I/O: the whole batch is unrecordable
        except Exception as exc:
            head.reset(saved)
            log.exception("a write failed and was rolled back alone")
            # Not acknowledged, so the sender retries; and plain enough to cross the pipe.
            return False, StorageUnavailable(f"not recorded: {type(exc).__name__}: {exc}")
        return True, value

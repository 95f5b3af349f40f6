"""Group commit in a writer process: the only write connection, batches of requests.

Requests that arrive together share one durable ``synchronous=FULL`` commit; each still
gets its answer only after that commit. Each request runs inside its own savepoint, so
one request's failure never fails its neighbours.

The writer is a child process, not a thread: projecting an event is Python work, and in
a thread it would take the interpreter lock from the event loop that reads the next
requests. A dispatcher thread in the server hands the child whatever has queued up
while the previous batch was being committed, and resolves the requests' futures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import sqlite3
import threading
from collections import defaultdict
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from . import store
from .errors import StorageUnavailable
from .schema import connect
from .settings import DEFAULT_BUSY_TIMEOUT_MS

log = logging.getLogger("ledger.writer")


class Job(Protocol):
    """One request's write; runs in the writer process inside its own savepoint."""

    def run(self, conn: sqlite3.Connection, key: bytes, head: store.Head) -> Any: ...


@dataclass
class _Queued:
    job: Job
    future: asyncio.Future[Any]


_STOP = object()
Settled = tuple["asyncio.Future[Any]", tuple[bool, Any]]  # a future and its job's result


class Writer:
    def __init__(
        self,
        db_path: str,
        chain_key: bytes,
        batch_max: int = 256,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    ) -> None:
        self._args = (db_path, chain_key, busy_timeout_ms)
        self._batch_max = batch_max
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._child: multiprocessing.process.BaseProcess | None = None
        self._pipe: Connection | None = None

    def start(self) -> None:
        self._spawn()
        self._thread = threading.Thread(target=self._dispatch, name="ledger-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish every queued job, then stop the child."""
        if self._thread:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        self._reap()

    async def run(self, job: Job) -> Any:
        """The job's result, once the batch it joined is durable."""
        if self._thread is None:
            raise StorageUnavailable("the writer is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put(_Queued(job, future))
        return await future

    def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        parent, child = context.Pipe()
        self._child = context.Process(
            target=writer_process, args=(child, *self._args), name="ledger-writer", daemon=True
        )
        self._child.start()
        child.close()
        self._pipe = parent
        ready = parent.recv()
        if ready != "ready":
            self._reap()
            raise StorageUnavailable(f"the writer could not open the database: {ready}")

    def _reap(self) -> None:
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                self._pipe.send(None)
            self._pipe.close()
            self._pipe = None
        if self._child is not None:
            self._child.join(timeout=30)
            if self._child.is_alive():
                self._child.kill()
            self._child = None

    def _dispatch(self) -> None:
        stopping = False
        while not stopping:
            batch: list[_Queued] = []
            item = self._queue.get()
            while True:
                if item is _STOP:
                    stopping = True
                else:
                    batch.append(item)
                if len(batch) >= self._batch_max:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    results = self._commit_remotely([q.job for q in batch])
                except Exception as exc:  # never let the dispatcher die: requests would hang
                    log.exception("writer batch failed")
                    self._reap()
                    results = [(False, StorageUnavailable(f"writer failed: {exc}"))] * len(batch)
                self._settle(batch, results)

    def _commit_remotely(self, jobs: list[Job]) -> list[tuple[bool, Any]]:
        try:
            if self._pipe is None:
                self._spawn()
            assert self._pipe is not None
            self._pipe.send(jobs)
            results: list[tuple[bool, Any]] = self._pipe.recv()
            return results
        except (OSError, EOFError, StorageUnavailable) as exc:
            # The child died (killed, out of memory): nothing of this batch is
            # acknowledged, and the next batch gets a new child.
            log.error("writer process lost: %s", exc)
            self._reap()
            return [(False, StorageUnavailable(f"writer unavailable: {exc}"))] * len(jobs)

    @staticmethod
    def _settle(batch: list[_Queued], results: list[tuple[bool, Any]]) -> None:
        """Wake each waiting event loop once per batch, not once per request."""
        by_loop: dict[asyncio.AbstractEventLoop, list[Settled]] = defaultdict(list)
        for queued, result in zip(batch, results, strict=True):
            by_loop[queued.future.get_loop()].append((queued.future, result))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, settled)


def _resolve(settled: list[Settled]) -> None:
    for future, (ok, value) in settled:
        if future.done():  # its request was cancelled meanwhile; the job stands
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


# --- the child process --------------------------------------------------------------------


def writer_process(pipe: Connection, db_path: str, key: bytes, busy_timeout_ms: int) -> None:
    """Commit each batch received on ``pipe`` and send back one result per job."""
    # The server decides when to stop; a Ctrl-C for the whole process group must not
    # interrupt a batch half-way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    committer = BatchCommitter(db_path, key, busy_timeout_ms)
    try:
        committer.open()
    except sqlite3.Error as exc:
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


# Past this much WAL the committer finishes the checkpoint itself, so that the WAL
# starts over from its beginning (a checkpoint running beside a busy writer never
# catches up with it) and the file stays bounded.
WAL_LIMIT_BYTES = 64 * 1024 * 1024
CHECKPOINT_EVERY_S = 0.2


class Checkpointer:
    """Copies committed WAL pages back into the database beside the committer.

    SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold. On
    a large file that means writing ~1,000 pages to scattered places of the file, and
    fsyncing it, while every request of the batch waits. A PASSIVE checkpoint from a
    second connection does the same work without blocking the writer, and sqlite3
    releases the GIL while it runs.
    """

    def __init__(self, db_path: str, busy_timeout_ms: int) -> None:
        self._db_path = db_path
        self._busy_timeout_ms = busy_timeout_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        while not self._stop.wait(CHECKPOINT_EVERY_S):
            try:
                conn = conn or connect(self._db_path, busy_timeout_ms=self._busy_timeout_ms)
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
    """One write connection; one transaction per batch, one savepoint per job."""

    def __init__(self, db_path: str, key: bytes, busy_timeout_ms: int) -> None:
        self._db_path = db_path
        self._wal_path = db_path + "-wal"
        self._key = key
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None

    def open(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = connect(self._db_path, busy_timeout_ms=self._busy_timeout_ms)
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # the Checkpointer's job
            # Each job's savepoint and each statement with triggers journal the pages they
            # touch; past 64 KiB that sub-journal spills to a temporary file, and those writes
            # were ~20% of the writer's CPU. In memory it is bounded by the batch: at most
            # batch_max posts of ~15 pages each (~20 MB); folder namings, which can touch
            # every order, are written by the CLI on its own connection, not here.
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
            self._conn = conn
        if self._checkpointer is None:
            self._checkpointer = Checkpointer(self._db_path, self._busy_timeout_ms)
            self._checkpointer.start()
        return self._conn

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                self._conn.close()
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
                with contextlib.suppress(sqlite3.Error):
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")

    def _bound_wal(self, conn: sqlite3.Connection) -> None:
        try:
            size = os.path.getsize(self._wal_path)
        except OSError:
            return
        if size > WAL_LIMIT_BYTES:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    @staticmethod
    def _close_movements(conn: sqlite3.Connection) -> None:
        # Read from the file, not remembered: a rebuild swapped in meanwhile closes anew.
        if store.checkpoint(conn) - store.checkpoint(conn, store.MOVEMENTS_CLOSED) < (
            store.CLOSE_EVERY
        ):
            return
        conn.execute("BEGIN IMMEDIATE")
        store.close_movements(conn, store.checkpoint(conn))
        conn.execute("COMMIT")

    def commit(self, jobs: list[Job]) -> list[tuple[bool, Any]]:
        results: list[tuple[bool, Any]] = []
        try:
            # After a failure the connection is opened anew, so a fault that clears
            # (disk space freed, file system writable again) clears here too.
            conn = self.open()
            conn.execute("BEGIN IMMEDIATE")
            head = store.read_head(conn)
            for job in jobs:
                results.append(self._one(conn, job, head))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("batch of %d not committed: %s", len(jobs), exc)
            self.close()
            return [(False, StorageUnavailable(f"database unavailable: {exc}"))] * len(jobs)
        return results

    def _one(self, conn: sqlite3.Connection, job: Job, head: store.Head) -> tuple[bool, Any]:
        saved = (head.seq, head.hash)
        conn.execute("SAVEPOINT job")
        try:
            value = job.run(conn, self._key, head)
        except sqlite3.OperationalError:
            raise  # disk full, I/O: the whole batch is unrecordable
        except Exception as exc:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            head.seq, head.hash = saved
            log.exception("a write failed and was rolled back alone")
            # Not acknowledged, so the sender retries; and plain enough to cross the pipe.
            return False, StorageUnavailable(f"not recorded: {type(exc).__name__}: {exc}")
        conn.execute("RELEASE job")
        return True, value

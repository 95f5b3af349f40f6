"""Group commit: one thread owns the write connection and commits batches of requests.

Requests that arrive together share one durable ``synchronous=FULL`` commit; each
still gets its answer only after that commit. Each request runs inside its own
savepoint, so one request's failure never fails its neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from . import store
from .errors import StorageUnavailable
from .schema import connect

log = logging.getLogger("ledger.writer")

Work = Callable[[sqlite3.Connection, bytes, store.Head], Any]


@dataclass
class _Job:
    work: Work
    future: Future[Any]


_STOP = object()


class Writer:
    def __init__(
        self, db_path: str, chain_key: bytes, batch_max: int = 256, busy_timeout_ms: int = 10_000
    ) -> None:
        self._db_path = db_path
        self._busy_timeout_ms = busy_timeout_ms
        self._key = chain_key
        self._batch_max = batch_max
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None

    def start(self) -> None:
        self._conn = self._connect()  # fail at start, not at the first post
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish every queued job, then close."""
        if self._thread:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        if self._conn:
            self._conn.close()
            self._conn = None

    def submit(self, work: Work) -> Future[Any]:
        if self._thread is None:
            raise StorageUnavailable("the writer is not running")
        future: Future[Any] = Future()
        self._queue.put(_Job(work, future))
        return future

    async def run(self, work: Work) -> Any:
        return await asyncio.wrap_future(self.submit(work))

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[_Job] = []
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
                self._commit(batch)

    def _commit(self, batch: list[_Job]) -> None:
        results: list[tuple[bool, Any]] = []
        try:
            # After a failure the connection is opened anew, so a fault that clears
            # (disk space freed, file system writable again) clears here too.
            conn = self._conn = self._conn or self._connect()
            conn.execute("BEGIN IMMEDIATE")
            head = store.read_head(conn)
            for job in batch:
                results.append(self._one(conn, job, head))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("batch of %d not committed: %s", len(batch), exc)
            self._discard_connection()
            for job in batch:
                job.future.set_exception(StorageUnavailable(f"database unavailable: {exc}"))
            return
        for job, (ok, value) in zip(batch, results, strict=True):
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)

    def _connect(self) -> sqlite3.Connection:
        return connect(self._db_path, busy_timeout_ms=self._busy_timeout_ms)

    def _discard_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                self._conn.close()
        self._conn = None

    def _one(self, conn: sqlite3.Connection, job: _Job, head: store.Head) -> tuple[bool, Any]:
        saved = (head.seq, head.hash)
        conn.execute("SAVEPOINT job")
        try:
            value = job.work(conn, self._key, head)
        except sqlite3.OperationalError:
            raise  # disk full, I/O: the whole batch is unrecordable
        except Exception as exc:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            head.seq, head.hash = saved
            log.exception("a write failed and was rolled back alone")
            return False, exc
        conn.execute("RELEASE job")
        return True, value

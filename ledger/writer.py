"""Group commit: the receiver's side of the writer process (``committer.py``).

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
import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from .committer import writer_process
from .errors import StorageUnavailable
from .jobs import Job
from .settings import Settings

log = logging.getLogger("ledger.writer")


@dataclass
class _Queued:
    job: Job
    future: asyncio.Future[Any]


_STOP = object()
Settled = tuple["asyncio.Future[Any]", tuple[bool, Any]]  # a future and its job's result


class Writer:
    def __init__(self, settings: Settings, on_batch: Callable[[int], None] | None = None) -> None:
        self._args = (settings,)
        self._on_batch = on_batch  # told each batch's size as it is taken
        self._batch_max = settings.batch_max
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

    def alive(self) -> bool:
        return self._child is not None and self._child.is_alive()

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
                if self._on_batch is not None:
                    self._on_batch(len(batch))
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

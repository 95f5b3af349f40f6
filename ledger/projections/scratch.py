"""The rebuild's scratch file beside the ledger, never left behind: removed when the rebuild
ends, a SIGTERM included, and when one was killed outright, by the next rebuild or start.

A rebuild holds an exclusive ``flock`` on its scratch file for as long as it uses it (the
kernel lets go when the process dies), so a sweep removes only files no live process
holds, never a running rebuild's. ``flock`` and SQLite's own POSIX locks do not interact.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import NoReturn

log = logging.getLogger("ledger")
SIBLINGS = ("", "-journal", "-wal", "-shm")
ATTEMPTS = 3  # a sweep can take a name away only in the instant before its lock


def _prefix(beside: Path) -> str:
    return f".{beside.name}.rebuild-"


@contextlib.contextmanager
def scratch_file(beside: Path) -> Iterator[Path]:
    """A new, locked scratch file beside ``beside`` for the block, then removed."""
    remove_stale(beside)
    with _terminate_unwinds():
        fd, path = _create_locked(beside)
        try:
            yield path
        finally:
            _remove(path)
            os.close(fd)


def remove_stale(beside: Path) -> list[Path]:
    """Remove the scratch files of rebuilds that were killed: those no process holds."""
    removed = []
    for path in sorted((beside.parent or Path(".")).glob(_prefix(beside) + "*.db")):
        with contextlib.suppress(FileNotFoundError), _opened(path) as fd:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a running rebuild's
            if _is(fd, path):
                size = os.fstat(fd).st_size
                _remove(path)
                removed.append(path)
                log.warning("removed %s (%d bytes), left by a rebuild that was killed", path, size)
    return removed


def _create_locked(beside: Path) -> tuple[int, Path]:
    for _ in range(ATTEMPTS):
        fd, name = tempfile.mkstemp(
            prefix=_prefix(beside), suffix=".db", dir=beside.parent or Path(".")
        )
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _is(fd, Path(name)):  # not swept away between its creation and the lock
            return fd, Path(name)
        os.close(fd)
    raise OSError(f"could not create a scratch file beside {beside}")


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDONLY)
    try:
        yield fd
    finally:
        os.close(fd)


def _is(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _remove(path: Path) -> None:
    for suffix in SIBLINGS:
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextlib.contextmanager
def _terminate_unwinds() -> Iterator[None]:
    """SIGTERM (``systemctl stop``, ``timeout``) ends a process without running its
    ``finally`` blocks; while a scratch file exists it raises SystemExit instead. Only in
    the main thread, and only where nothing else handles SIGTERM (``ledger serve``'s
    event loop does, and stops in its own way)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return
    signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _exit(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(128 + signum)  # the exit status a shell gives a process killed by it

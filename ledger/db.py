"""Connections and transactions: the one module that opens the file and says BEGIN.

Every write transaction is ``BEGIN IMMEDIATE``: a deferred transaction that later
upgrades to a write fails at once with "database is locked" instead of waiting on the
busy timeout. Savepoints nest inside it, one per unit that must fail alone.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import sqlite_utils

# How long a write (a batch of posts, a folder naming, a rebuild's swap) waits for a lock
# another process holds; posts then get a 503, commands fail with 'database is locked'.
# Order Desk gives up on an answer after 30 s and every 503 spends one of its five
# retries; a rebuild's swap holds the lock for seconds (docs/performance.md#rebuild).
DEFAULT_BUSY_TIMEOUT_MS = 20_000


def uri(path: str | Path, *, mode: str | None = None, immutable: bool = False) -> str:
    """A ``file:`` URI that opens exactly ``path``: a ``#``, ``?`` or ``%`` in the name
    would otherwise start the query or fragment part, and open another file."""
    query = []
    if mode:
        query.append(f"mode={mode}")
    if immutable:
        query.append("immutable=1")
    return f"file:{quote(str(path), safe='/')}" + (f"?{'&'.join(query)}" if query else "")


def connect(
    path: str | Path,
    *,
    readonly: bool = False,
    immutable: bool = False,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
) -> sqlite3.Connection:
    """A connection in autocommit mode: every write transaction says BEGIN IMMEDIATE itself
    (``immediate``). ``immutable`` reads a file no process writes (a copy, read-only media)
    without creating ``-wal`` or ``-shm`` files beside it."""
    readonly = readonly or immutable
    address = uri(path, mode="ro" if readonly else None, immutable=immutable)
    try:
        conn = sqlite3.connect(address, uri=True, isolation_level=None, check_same_thread=False)
    except sqlite3.OperationalError as exc:  # SQLite's message names no file
        raise sqlite3.OperationalError(f"{path}: {exc}{_why_not(Path(path))}") from None
    conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    conn.execute("PRAGMA foreign_keys = ON")
    # INSERT OR REPLACE deletes without firing DELETE triggers unless this is on.
    conn.execute("PRAGMA recursive_triggers = ON")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")  # a 200 promises the post survives a crash
    return conn


def _why_not(path: Path) -> str:
    if not path.parent.is_dir():
        return f" (there is no directory {path.parent})"
    return "" if path.exists() else " (there is no such file)"


@contextlib.contextmanager
def connection(path: str | Path, **options: object) -> Iterator[sqlite3.Connection]:
    """``connect`` for the length of a block."""
    conn = connect(path, **options)  # type: ignore[arg-type]
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def evidence(path: str | Path) -> Iterator[sqlite3.Connection]:
    """A file opened to be checked, changing nothing beside it: one with no ``-wal``
    beside it (a stopped copy, read-only media) immutable; a live one read-only through
    its WAL, so every committed batch of a running writer is seen."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file")
    live = Path(f"{path}-wal").exists()
    with connection(path, readonly=True, immutable=not live) as conn:
        yield conn


def _undo(conn: sqlite3.Connection, *statements: str) -> None:
    # An I/O error or a full disk may have rolled the whole transaction back already;
    # undoing then fails too, and would hide the error that matters.
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            for statement in statements:
                conn.execute(statement)


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction: committed if the block ends, rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        _undo(conn, "ROLLBACK")
        raise


@contextlib.contextmanager
def writing(path: str | Path, busy_timeout_ms: int) -> Iterator[sqlite3.Connection]:
    """A connection for the length of a block, all of it one write transaction."""
    with connection(path, busy_timeout_ms=busy_timeout_ms) as conn, immediate(conn):
        yield conn


@contextlib.contextmanager
def read_snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One consistent read of the file for the length of the block (writers go on)."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        _undo(conn, "ROLLBACK")


@contextlib.contextmanager
def savepoint(conn: sqlite3.Connection, name: str) -> Iterator[None]:
    """A unit inside a transaction that fails alone: undone if the block raises, which
    re-raises for the caller to decide (a projection records an issue, a batch fails)."""
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        _undo(conn, f"ROLLBACK TO {name}", f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")


def database(conn: sqlite3.Connection) -> sqlite_utils.Database:
    """sqlite-utils over one of these connections; its writes join the open transaction."""
    # connect() already turned recursive_triggers on; no plugin may touch the connection.
    return sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)

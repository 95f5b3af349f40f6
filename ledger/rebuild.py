"""Replay the whole log through the live projection code into a scratch file,
then either swap the result in atomically or report how it differs."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .schema import PROJECTION_TABLES, connect, ensure_projection_schema
from .store import apply_event, catch_up, checkpoint, iter_events, parse_stored

Progress = Callable[[int], None]
COMMIT_EVERY = 20_000


@dataclass(frozen=True)
class Difference:
    table: str
    only_live: int
    only_rebuilt: int
    examples: list[tuple[str, tuple[object, ...]]]


@contextmanager
def _scratch_file(beside: Path) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(
        prefix=f".{beside.name}.rebuild-", suffix=".db", dir=beside.parent or "."
    )
    os.close(fd)
    try:
        yield Path(name)
    finally:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(name + suffix).unlink(missing_ok=True)


def _project_into(
    scratch: Path, live: sqlite3.Connection, until: int, progress: Progress | None
) -> None:
    """Apply events 1..until, read in ``live``'s open read transaction, to fresh tables."""
    out = sqlite3.connect(scratch, isolation_level=None)
    try:
        out.execute("PRAGMA journal_mode = OFF")  # a scratch file: on any failure it is discarded
        out.execute("PRAGMA synchronous = OFF")
        ensure_projection_schema(out)
        out.execute("BEGIN")
        done = 0
        for event in iter_events(live):
            if event.seq > until:
                break
            apply_event(out, event, parse_stored(event))
            done += 1
            if done % COMMIT_EVERY == 0:
                out.execute("COMMIT")
                out.execute("BEGIN")
                if progress:
                    progress(COMMIT_EVERY)
        out.execute("COMMIT")
        if progress:
            progress(done % COMMIT_EVERY)
    finally:
        out.close()


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> str:
    names = [row[1] for row in conn.execute(f"PRAGMA {schema}.table_info({table})")]
    return ", ".join(f'"{n}"' for n in names)


def _compare(conn: sqlite3.Connection) -> list[Difference]:
    found = []
    for table in PROJECTION_TABLES:
        cols = _columns(conn, "scratch", table)
        live_only = f"SELECT {cols} FROM main.{table} EXCEPT SELECT {cols} FROM scratch.{table}"
        rebuilt_only = f"SELECT {cols} FROM scratch.{table} EXCEPT SELECT {cols} FROM main.{table}"
        a = conn.execute(f"SELECT count(*) FROM ({live_only})").fetchone()[0]
        b = conn.execute(f"SELECT count(*) FROM ({rebuilt_only})").fetchone()[0]
        if a or b:
            examples = [("live", tuple(r)) for r in conn.execute(f"{live_only} LIMIT 3")]
            examples += [("rebuilt", tuple(r)) for r in conn.execute(f"{rebuilt_only} LIMIT 3")]
            found.append(Difference(table, a, b, examples))
    return found


def event_count(db_path: Path) -> int:
    conn = connect(str(db_path), readonly=True)
    try:
        return int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
    finally:
        conn.close()


def check(db_path: Path, progress: Progress | None = None) -> list[Difference]:
    """Rebuild into a scratch file and compare with the live tables; change nothing."""
    with _scratch_file(db_path) as scratch:
        live = connect(str(db_path), readonly=True)
        try:
            live.execute("ATTACH ? AS scratch", (str(scratch),))
            live.execute("BEGIN")  # one snapshot of the log and the live tables
            _project_into(scratch, live, checkpoint(live), progress)
            differences = _compare(live)
            live.execute("COMMIT")
            return differences
        finally:
            live.close()


def rebuild(db_path: Path, progress: Progress | None = None) -> int:
    """Recompute every projection from the log; swap them in in one transaction."""
    with _scratch_file(db_path) as scratch:
        conn = connect(str(db_path))
        try:
            conn.execute("ATTACH ? AS scratch", (str(scratch),))
            conn.execute("BEGIN")
            until = int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
            _project_into(scratch, conn, until, progress)
            conn.execute("COMMIT")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for table in PROJECTION_TABLES:
                    cols = _columns(conn, "scratch", table)
                    conn.execute(f"DELETE FROM main.{table}")
                    conn.execute(
                        f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM scratch.{table}"
                    )
                catch_up(conn)  # events appended while the scratch copy was built
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return checkpoint(conn)
        finally:
            conn.close()

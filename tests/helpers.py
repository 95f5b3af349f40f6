"""Helpers the test layers share, over ``ledger.testing`` (shared with bench/ and docs/)."""

from __future__ import annotations

import contextlib
import logging
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.db import connection
from ledger.jobs import AppendSnapshot, NameFolder, run_alone
from ledger.keys import load_signing
from ledger.log import Delivery, utcnow
from ledger.schema import SCHEMA_VERSION
from ledger.settings import Settings
from ledger.startup import open_ledger
from ledger.testing import (
    API_KEY,
    STORE_ID,
    address,
    encode,
    item,
    order,
    running_server,
    signed_form,
    snapshot,
)

SAMPLES = Path(__file__).parent / "samples"


def sample(name: str) -> bytes:
    return next(SAMPLES.glob(f"{name}*.json")).read_bytes()


def post_order(base: str, order_bytes: bytes, **form_args: Any) -> httpx.Response:
    """One signed post of ``order_bytes`` to a running receiver at ``base``."""
    return httpx.post(f"{base}/orderdesk", timeout=30, **signed_form(order_bytes, **form_args))


def name_folders(settings: Settings, folders: dict[int, str]) -> None:
    """Record the folder names (id -> name), in order, in one transaction."""
    open_ledger(settings)
    with connection(settings.db_path) as conn:
        jobs = (NameFolder(STORE_ID, i, name) for i, name in folders.items())
        run_alone(conn, load_signing(conn, settings), *jobs)


def append_signed(settings: Settings, payloads: list[bytes]) -> None:
    """Append straight to the file (no HTTP) through the same checks and jobs the
    receiver uses."""
    open_ledger(settings)
    delivery = Delivery(utcnow(), None, "POST", None, None, STORE_ID)
    jobs = [
        AppendSnapshot(delivery._replace(body_bytes=len(raw)), snapshot(raw)) for raw in payloads
    ]
    with connection(settings.db_path) as conn:
        run_alone(conn, load_signing(conn, settings), *jobs)


def make_order(n: int, *, version: int = 0, pad: int = 0) -> bytes:
    """A distinct order ``n``; ``version`` makes later snapshots of it, ``pad`` a bigger one."""
    return encode(order_body(n, version=version, pad=pad))


def order_body(n: int, *, version: int = 0, pad: int = 0) -> dict[str, Any]:
    """``make_order``'s order object, to change before encoding."""
    return order(
        str(500000 + n),
        items=[item(f"SKU-{n % 7}", 950, 1 + n % 3), item("PIN-SET-3", 400, 1, price="4.00")],
        updated=f"2025-06-01 10:{version // 60:02d}:{version % 60:02d}",
        added="2025-06-01 09:00:00",
        email=f"buyer{n}@example.com",
        shipping=address("Ana", f"Buyer {n}", city="Köln", country="DE"),
        note="x" * pad or None,
    )


RAW_POST_HEAD = (
    b"POST /orderdesk HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"X-ORDER-DESK-STORE-ID: " + STORE_ID.encode() + b"\r\n"
)


def raw_request(
    base: str,
    request: bytes,
    *,
    pause: float = 0.0,
    rest: bytes = b"",
    close_write: bool = False,
    timeout: float = 10,
) -> bytes:
    """Send ``request`` as bytes on a socket (then, after ``pause`` s, ``rest``; with
    ``close_write``, end the sending side) and return the start of the answer."""
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        if pause:
            time.sleep(pause)
            with contextlib.suppress(OSError):
                s.sendall(rest)
        if close_write:
            s.shutdown(socket.SHUT_WR)
        return s.recv(4096)


# Writes and schema changes sent to Datasette as SQL: every one must be refused.
DATASETTE_WRITE_SQL = [
    "delete from events",
    "update orders set state = 'open'",
    "insert into folders values ('1', 1, 'x', 'y', 1)",
    "drop table deliveries",
    "with x as (select 1) insert into folders select '1', 2, 'x', 'y', 1 from x",
    "with x as (select 1) delete from deliveries",
    "pragma journal_mode = delete",
    "attach database '/tmp/x.db' as x",
    "vacuum",
    "create table evil (x)",
    "DROP TABLE events",
    "ALTER TABLE events ADD COLUMN note TEXT",
    "ALTER TABLE events RENAME TO old_events",
    "DROP TRIGGER events_no_update",
    "UPDATE events SET payload = '{}'",
    "DELETE FROM deliveries",
    "INSERT INTO deliveries (received_at, method, outcome, http_status) VALUES ('t', 'POST', 'rejected', 400)",
    "PRAGMA recursive_triggers = OFF",
    "ATTACH DATABASE '/tmp/x.db' AS x",
    "VACUUM",
]


def rows(
    db: Path, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()
) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def ledger(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def as_older_version(db: Path, version: int, *undo: str) -> None:
    """Make the file look like one of an older schema version: run ``undo``, set it, and
    forget the named steps (files of those versions had none)."""
    conn = sqlite3.connect(db)
    for statement in undo:
        conn.execute(statement)
    conn.execute("DROP TABLE IF EXISTS _sqlite_migrations")
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


def upgraded_at_start(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """Open the file as a start does; it must reach this version. Every file from before
    the step ``instants_and_bounds_refolded`` has its projections rebuilt from the log (the
    in-place steps before it are recorded without running)."""
    with caplog.at_level(logging.WARNING, logger="ledger"):
        open_ledger(settings)
    assert "rebuilding them from the log" in caplog.text
    assert rows(settings.db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


__all__ = ["API_KEY", "STORE_ID"]


@contextlib.contextmanager
def serving(db: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``ledger serve`` as a process for the block; yields the receiver's base URL."""
    with running_server(db, *args, env=env) as served:
        yield served.base

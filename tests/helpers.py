"""Shared test helpers: sign and post exactly as Order Desk (and `ledger send`) does."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.schema import SCHEMA_VERSION, connect
from ledger.send import multipart, signed_headers, urlencoded
from ledger.settings import Settings
from ledger.startup import open_ledger
from ledger.store import read_head, record_folder_name
from ledger.verify import Snapshot, sign, verify_post

SAMPLES = Path(__file__).parent / "samples"
STORE_ID = "70412"
API_KEY = "test-api-key"


def sample(name: str) -> bytes:
    return next(SAMPLES.glob(f"{name}*.json")).read_bytes()


def form(
    order: bytes,
    *,
    store_id: str = STORE_ID,
    api_key: str = API_KEY,
    as_multipart: bool = False,
    legacy: bool = False,
    headers: dict[str, str] | None = None,
    drop: Iterable[str] = (),
) -> dict[str, Any]:
    """Keyword arguments for an httpx/TestClient post of ``order``, signed; ``headers``
    replace or add headers, ``drop`` leaves some out."""
    body, content_type = multipart(order) if as_multipart else urlencoded(order)
    signed = signed_headers(order, store_id, api_key, legacy=legacy)
    sent = signed | {"Content-Type": content_type} | (headers or {})
    for name in drop:
        del sent[name]
    return {"content": body, "headers": sent}


def post_order(base: str, order: bytes, **form_args: Any) -> httpx.Response:
    """One signed post of ``order`` to a running receiver at ``base``."""
    return httpx.post(f"{base}/orderdesk", timeout=30, **form(order, **form_args))


def signed_snapshot(order: bytes, store_id: str = STORE_ID, api_key: str = API_KEY) -> Snapshot:
    """``order`` signed and verified as the receiver does, ready for ``store.record_snapshot``."""
    return verify_post(order, store_id, sign(api_key, order), {store_id: api_key})


def name_folders(settings: Settings, folders: dict[int, str]) -> None:
    """Record the folder names (id -> name), in order, in one transaction."""
    key = open_ledger(settings)
    conn = connect(str(settings.db_path))
    try:
        conn.execute("BEGIN IMMEDIATE")
        for folder_id, name in folders.items():
            record_folder_name(conn, key, read_head(conn), STORE_ID, folder_id, name)
        conn.execute("COMMIT")
    finally:
        conn.close()


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ledger_env(db: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERDESK_", "LEDGER_"))}
    return (
        env
        | {
            "LEDGER_DB": str(db),
            "ORDERDESK_STORE_ID": STORE_ID,
            "ORDERDESK_API_KEY": API_KEY,
        }
        | extra
    )


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


@dataclass
class Server:
    """`ledger serve` as a real process on 127.0.0.1."""

    proc: subprocess.Popen[str]
    base: str  # the receiver
    datasette: str

    def stop(self) -> int:
        """SIGTERM, then wait (SIGKILL only if it hangs); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def output(self) -> str:
        return self.proc.stdout.read() if self.proc.stdout else ""


def start_server(db: Path, *extra_args: str, env: dict[str, str] | None = None) -> Server:
    port, ds_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledger", "serve", "--port", str(port),
         "--datasette-port", str(ds_port), *extra_args],
        env=env or ledger_env(db),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    server = Server(proc, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ds_port}")
    try:
        wait_healthy(server.base, proc)
        wait_listening(ds_port, proc)
    except BaseException:
        server.stop()
        raise
    return server


@contextmanager
def running_server(db: Path, *extra_args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """A started server for the block; yields the receiver's base URL."""
    server = start_server(db, *extra_args, env=env)
    try:
        yield server.base
    finally:
        server.stop()


def wait_listening(port: int, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def wait_healthy(base: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"ledger serve exited with {proc.returncode}: {out}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("ledger serve did not become healthy")


def make_order(n: int, *, version: int = 0, pad: int = 0) -> bytes:
    """A distinct, realistic order payload; ``version`` makes later snapshots of it."""
    body = {
        "id": str(500000 + n),
        "email": f"buyer{n}@example.com",
        "folder_id": 48201,
        "date_updated": f"2025-06-01 10:{version // 60:02d}:{version % 60:02d}",
        "order_total": f"{10 + n % 90}.{n % 100:02d}",
        "shipping": {
            "first_name": "Ana",
            "last_name": f"Buyer {n}",
            "city": "Köln",
            "country": "DE",
        },
        "order_items": [
            {"code": f"SKU-{n % 7}", "quantity": 1 + n % 3, "price": 9.5},
            {"code": "PIN-SET-3", "quantity": 1, "price": "4.00"},
        ],
        "order_shipments": [],
        "note": "x" * pad,
    }
    import json

    return json.dumps(body, ensure_ascii=False).replace("/", "\\/").encode("utf-8")


def as_older_version(db: Path, version: int, *undo: str) -> None:
    """Make the file look like one of an older schema version: run ``undo``, set it."""
    conn = sqlite3.connect(db)
    for statement in undo:
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


def upgraded_in_place(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """Open the file as a start does; it must reach this version without a rebuild."""
    with caplog.at_level(logging.WARNING, logger="ledger"):
        open_ledger(settings)
    assert "rebuilding" not in caplog.text
    assert rows(settings.db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]

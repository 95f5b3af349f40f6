"""The event log itself: append-only from any connection, gapless, deduplicated, verifiable."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from litestar.testing import TestClient

from ledger.chain import link, load_key
from ledger.db import connect
from ledger.schema import ensure_schema
from ledger.settings import Settings
from ledger.testing import ledger_env
from ledger.testing import signed_form as form
from tests.helpers import DATASETTE_WRITE_SQL, SAMPLES, ledger, rows


@pytest.fixture
def filled(client: TestClient, settings: Settings) -> Path:  # type: ignore[type-arg]
    for path in sorted(SAMPLES.glob("*.json")):
        assert client.post("/orderdesk", **form(path.read_bytes())).status_code == 200
    client.post("/orderdesk", **form(b"not json"))  # a rejected delivery too
    return settings.db_path


REFUSED = [
    "UPDATE events SET payload = '{}' WHERE seq = 2",
    "DELETE FROM events WHERE seq = 4",
    "INSERT OR REPLACE INTO events SELECT * FROM events WHERE seq = 1",
    "REPLACE INTO events (seq, type, received_at, store_id, order_id, order_updated_at, payload,"
    " payload_sha256, prev_hash, hash) SELECT seq, type, received_at, store_id, order_id,"
    " order_updated_at, '{}', payload_sha256, prev_hash, hash FROM events WHERE seq = 1",
    "INSERT INTO events SELECT * FROM events WHERE seq = 1",
    "UPDATE deliveries SET outcome = 'appended' WHERE outcome = 'rejected'",
    "DELETE FROM deliveries",
    "INSERT OR REPLACE INTO deliveries SELECT * FROM deliveries WHERE id = 1",
]


@pytest.mark.parametrize("sql", REFUSED)
@pytest.mark.parametrize("recursive_triggers", [False, True])
def test_log_tables_refuse_changes_on_a_plain_connection(
    filled: Path, sql: str, recursive_triggers: bool
) -> None:
    before = rows(filled, "SELECT * FROM events"), rows(filled, "SELECT * FROM deliveries")
    conn = sqlite3.connect(filled)  # plain sqlite3: none of the ledger's pragmas
    conn.execute(f"PRAGMA recursive_triggers = {int(recursive_triggers)}")
    with pytest.raises(sqlite3.DatabaseError, match=r"append-only|must follow"):
        conn.execute(sql)
    conn.commit()
    conn.close()
    assert (
        rows(filled, "SELECT * FROM events"),
        rows(filled, "SELECT * FROM deliveries"),
    ) == before


def test_seq_must_follow_and_link_to_the_head(filled: Path) -> None:
    conn = sqlite3.connect(filled)
    head = conn.execute("SELECT hash FROM events WHERE seq = 4").fetchone()[0]
    insert = (
        "INSERT INTO events (seq, type, received_at, store_id, order_id, order_updated_at, payload,"
        " payload_sha256, prev_hash, hash) VALUES (?, 'OrderSnapshotReceived', 't', '70412', 'x',"
        " NULL, '{}', ?, ?, 'h')"
    )
    with pytest.raises(sqlite3.DatabaseError, match="must follow"):
        conn.execute(insert, (6, "a" * 64, head))  # a gap
    with pytest.raises(sqlite3.DatabaseError, match="must follow"):
        conn.execute(insert, (5, "b" * 64, "0" * 64))  # not linked to the head
    conn.close()


def test_schema_setup_is_idempotent(filled: Path) -> None:
    before = rows(filled, "SELECT type, name, sql FROM sqlite_master ORDER BY name")
    conn = connect(filled)
    ensure_schema(conn)
    ensure_schema(conn)
    conn.close()
    assert rows(filled, "SELECT type, name, sql FROM sqlite_master ORDER BY name") == before


def test_tables_are_strict_and_durable(filled: Path) -> None:
    conn = connect(filled)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    for table in ("events", "deliveries"):
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        assert sql.rstrip().endswith("STRICT")
    conn.close()


def test_the_dedup_key_is_unique_without_any_trigger(filled: Path, tmp_path: Path) -> None:
    """The unique index on (payload_sha256, store_id) refuses a second copy of an event's
    bytes by itself, whatever happened to the triggers."""
    conn = sqlite3.connect(filled)
    _drop_triggers(conn)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute(
            "INSERT INTO events SELECT seq + 100, type, received_at, store_id, order_id,"
            " order_updated_at, payload, payload_sha256, prev_hash, hash FROM events WHERE seq = 1"
        )
    conn.close()


# --- ledger verify against a tampered copy -------------------------------------------------


def _drop_triggers(conn: sqlite3.Connection) -> None:
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")


def _edit_payload(conn: sqlite3.Connection, key: bytes) -> None:
    conn.execute("UPDATE events SET payload = replace(payload, '50.07', '5.07') WHERE seq = 2")


def _edit_timestamp(conn: sqlite3.Connection, key: bytes) -> None:
    conn.execute("UPDATE events SET received_at = '2020-01-01T00:00:00.000000Z' WHERE seq = 3")


def _delete_row(conn: sqlite3.Connection, key: bytes) -> None:
    conn.execute("DELETE FROM events WHERE seq = 2")


def _delete_last_row(conn: sqlite3.Connection, key: bytes) -> None:
    conn.execute("DELETE FROM events WHERE seq = 4")


def _forge_at_end(conn: sqlite3.Connection, key: bytes) -> None:
    """A forger who knows the scheme but not the chain key, and covers with a delivery."""
    seq, prev = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    payload = '{"id":"999","order_total":1000000}'
    import hashlib

    sha = hashlib.sha256(payload.encode()).hexdigest()
    at = "2026-01-01T00:00:00.000000Z"
    fields = (seq + 1, "OrderSnapshotReceived", at, "70412", "999", None, sha, prev)
    forged_hash = link(b"guessed-key-guessed-key", fields)
    conn.execute(
        "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            seq + 1,
            "OrderSnapshotReceived",
            at,
            "70412",
            "999",
            None,
            payload,
            sha,
            prev,
            forged_hash,
        ),
    )
    conn.execute(
        "INSERT INTO deliveries (received_at, method, outcome, http_status, seq)"
        " VALUES ('2026-01-01T00:00:00.000000Z', 'POST', 'appended', 200, ?)",
        (seq + 1,),
    )


TAMPERING: list[tuple[Callable[[sqlite3.Connection, bytes], None], int, str]] = [
    (_edit_payload, 2, "payload edited"),
    (_edit_timestamp, 3, "hash does not match"),
    (_delete_row, 2, "were deleted"),
    (_delete_last_row, 4, "event is gone"),
    (_forge_at_end, 5, "forged without the chain key"),
]


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "what"), TAMPERING, ids=[t[0].__name__ for t in TAMPERING]
)
def test_verify_catches_tampering(
    filled: Path, tmp_path: Path, tamper: Callable[..., None], bad_seq: int, what: str
) -> None:
    env = ledger_env(filled)
    intact = ledger("verify", env=env)
    assert intact.returncode == 0, intact.stderr
    assert intact.stdout.startswith("intact: 4 events, head seq 4")

    copy = tmp_path / "copy.db"
    conn = sqlite3.connect(filled)
    conn.execute("VACUUM INTO ?", (str(copy),))
    conn.close()
    shutil.copy(filled.with_name(filled.name + ".key"), copy.with_name("copy.db.key"))
    conn = sqlite3.connect(copy)
    _drop_triggers(conn)
    tamper(conn, load_key(filled.with_name(filled.name + ".key")))
    conn.commit()
    conn.close()

    result = ledger("verify", "--db", str(copy), env=env)
    assert result.returncode == 1
    assert f"first bad seq {bad_seq}:" in result.stderr
    assert what in result.stderr
    assert "Traceback" not in result.stderr


def test_verify_without_the_key_is_a_clear_error(filled: Path, tmp_path: Path) -> None:
    result = ledger("verify", "--key-file", str(tmp_path / "nope.key"), env=ledger_env(filled))
    assert result.returncode == 1
    assert "chain key file" in result.stderr and "not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_datasette_refuses_schema_and_data_changes(filled: Path) -> None:
    import asyncio

    from ledger.readside.app import make_datasette

    before = (
        rows(filled, "SELECT type, name, sql FROM sqlite_master"),
        rows(filled, "SELECT * FROM events"),
    )
    ds = make_datasette(filled)

    async def attempt() -> list[int]:
        statuses = []
        for sql in DATASETTE_WRITE_SQL:
            response = await ds.client.get("/ledger.json", params={"sql": sql})
            statuses.append(response.status_code)
            post = await ds.client.post("/ledger", data={"sql": sql})
            statuses.append(post.status_code)
        return statuses

    statuses = asyncio.run(attempt())
    assert all(400 <= s < 500 for s in statuses), statuses
    after = (
        rows(filled, "SELECT type, name, sql FROM sqlite_master"),
        rows(filled, "SELECT * FROM events"),
    )
    assert after == before

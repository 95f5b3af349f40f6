"""The event log itself: append-only from any connection, gapless, deduplicated, verifiable."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from litestar.testing import TestClient

from ledger.db import connect
from ledger.schema import ensure_schema
from ledger.settings import Settings
from ledger.testing import signed_form as form
from tests.helpers import DATASETTE_WRITE_SQL, SAMPLES, rows


@pytest.fixture
def filled(client: TestClient, settings: Settings) -> Path:  # type: ignore[type-arg]
    for path in sorted(SAMPLES.glob("*.json")):
        assert client.post("/orderdesk", **form(path.read_bytes())).status_code == 200
    client.post("/orderdesk", **form(b"not json"))  # a rejected delivery too
    return settings.db_path


REFUSED = [
    "UPDATE signed_heads SET size = 0",
    "DELETE FROM signed_heads WHERE id = 1",
    "INSERT OR REPLACE INTO signed_heads SELECT * FROM signed_heads WHERE id = 1",
    "UPDATE log_keys SET vkey = 'x'",
    "DELETE FROM log_keys",
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
    tables = ("events", "deliveries", "signed_heads", "log_keys")
    before = [rows(filled, f"SELECT * FROM {t}") for t in tables]
    conn = sqlite3.connect(filled)  # plain sqlite3: none of the ledger's pragmas
    conn.execute(f"PRAGMA recursive_triggers = {int(recursive_triggers)}")
    with pytest.raises(sqlite3.DatabaseError, match=r"append-only|must follow|states the log"):
        conn.execute(sql)
    conn.commit()
    conn.close()
    assert [rows(filled, f"SELECT * FROM {t}") for t in tables] == before


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


def test_schema_setup_is_idempotent(filled: Path, settings: Settings) -> None:
    before = rows(filled, "SELECT type, name, sql FROM sqlite_master ORDER BY name")
    heads = rows(filled, "SELECT * FROM signed_heads")
    conn = connect(filled)
    ensure_schema(conn, settings)
    ensure_schema(conn, settings)
    conn.close()
    assert rows(filled, "SELECT type, name, sql FROM sqlite_master ORDER BY name") == before
    assert rows(filled, "SELECT * FROM signed_heads") == heads, "a start signs nothing new"


def test_a_head_states_the_log_as_it_is(filled: Path) -> None:
    conn = sqlite3.connect(filled)
    last = conn.execute("SELECT * FROM signed_heads ORDER BY id DESC LIMIT 1").fetchone()
    with pytest.raises(sqlite3.DatabaseError, match="states the log as it is"):
        conn.execute("INSERT INTO signed_heads VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (last[0] + 1, last[1] + 1, *last[2:]))  # fmt: skip
    conn.close()


def test_delivery_ids_are_gapless(filled: Path) -> None:
    conn = sqlite3.connect(filled)
    with pytest.raises(sqlite3.DatabaseError, match="id must follow"):
        conn.execute(
            "INSERT INTO deliveries (id, received_at, method, outcome, http_status)"
            " VALUES (100, 't', 'POST', 'rejected', 400)"
        )
    conn.close()


def test_tables_are_strict_and_durable(filled: Path) -> None:
    conn = connect(filled)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    for table in ("events", "deliveries", "signed_heads", "log_keys"):
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        assert sql.rstrip().endswith("STRICT")
    conn.close()


def test_the_dedup_key_is_unique_without_any_trigger(filled: Path, tmp_path: Path) -> None:
    """The unique index on (payload_sha256, store_id) refuses a second copy of an event's
    bytes by itself, whatever happened to the triggers."""
    conn = sqlite3.connect(filled)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute(
            "INSERT INTO events SELECT seq + 100, type, received_at, store_id, order_id,"
            " order_updated_at, payload, payload_sha256, prev_hash, hash FROM events WHERE seq = 1"
        )
    conn.close()


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

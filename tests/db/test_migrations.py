"""Files written by earlier versions: upgraded at start, the log never rewritten.

``tests/fixtures/v4-hmac.db`` was written by the code at 8d03c3d (schema version 4, its
events chained by an HMAC under ``v4-hmac.db.key``, its deliveries not chained), by
``tests/fixtures/make_v4_hmac.py``.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from ledger.schema import SCHEMA_VERSION
from ledger.settings import Settings
from ledger.startup import open_ledger
from ledger.testing import ledger_env
from tests.helpers import ledger, rows

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def legacy(tmp_path: Path) -> Settings:
    shutil.copy(FIXTURES / "v4-hmac.db", tmp_path / "ledger.db")
    shutil.copy(FIXTURES / "v4-hmac.db.key", tmp_path / "ledger.db.key")
    return Settings(db_path=tmp_path / "ledger.db", stores={"70412": "test-api-key"})


def test_a_file_with_an_hmac_chain_is_signed_at_start_and_then_needs_no_key(
    legacy: Settings, tmp_path: Path
) -> None:
    before = rows(legacy.db_path, "SELECT * FROM events")
    delivered = rows(legacy.db_path, "SELECT * FROM deliveries")
    open_ledger(legacy)
    assert rows(legacy.db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(legacy.db_path, "SELECT * FROM events") == before, "the log is not rewritten"
    width = len(delivered[0])  # columns were added after them; none was changed
    assert [r[:width] for r in rows(legacy.db_path, "SELECT * FROM deliveries")] == delivered
    assert rows(legacy.db_path, "SELECT kind FROM log_keys ORDER BY id") == [("key",), ("anchor",)]
    assert rows(legacy.db_path, "SELECT size, deliveries FROM signed_heads") == [(4, 5)]
    audit = tmp_path / "audit"
    audit.mkdir()
    conn = sqlite3.connect(legacy.db_path)
    conn.execute("VACUUM INTO ?", (str(audit / "ledger.db"),))
    conn.close()
    result = ledger("verify", "--db", str(audit / "ledger.db"), env=ledger_env(audit / "x.db"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("intact: 4 events, 5 deliveries, 1 signed heads")


def test_a_new_post_after_the_upgrade_is_chained_and_signed(legacy: Settings) -> None:
    from litestar.testing import TestClient

    from ledger.testing import signed_form
    from ledger.web import create_app
    from tests.helpers import make_order

    with TestClient(create_app(legacy)) as client:
        assert client.post("/orderdesk", **signed_form(make_order(1))).status_code == 200
        refused = signed_form(make_order(2), api_key="wrong")
        assert client.post("/orderdesk", **refused).status_code == 403
    assert rows(legacy.db_path, "SELECT count(*) FROM deliveries WHERE hash IS NULL") == [(5,)]
    result = ledger("verify", "--all-signatures", env=ledger_env(legacy.db_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("intact: 5 events, 7 deliveries, 3 signed heads")


def test_an_edit_of_the_hmac_era_is_found_without_its_key(legacy: Settings) -> None:
    open_ledger(legacy)
    legacy.chain_key_path.unlink()
    conn = sqlite3.connect(legacy.db_path)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET order_updated_at = '2020-01-01 00:00:00' WHERE seq = 2")
    conn.commit()
    conn.close()
    result = ledger("verify", env=ledger_env(legacy.db_path))
    assert result.returncode == 1
    assert "seq 1..4: differs from what the anchor signed" in result.stderr


def test_the_upgrade_needs_the_old_key_once_and_names_it(legacy: Settings) -> None:
    legacy.chain_key_path.unlink()
    result = ledger("folders", "list", env=ledger_env(legacy.db_path))
    assert result.returncode == 0, "reading needs no key"
    started = ledger("folders", "set", "48201", "New", env=ledger_env(legacy.db_path))
    assert started.returncode == 1
    assert f"{legacy.chain_key_path}" in started.stderr and "Traceback" not in started.stderr


def test_an_hmac_chain_that_does_not_verify_is_not_signed_over(legacy: Settings) -> None:
    conn = sqlite3.connect(legacy.db_path)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET store_id = '70413' WHERE seq = 3")
    conn.commit()
    conn.close()
    started = ledger("folders", "set", "48201", "New", env=ledger_env(legacy.db_path))
    assert started.returncode == 1
    assert "does not verify with its chain key at seq 3" in started.stderr
    assert rows(legacy.db_path, "SELECT name FROM sqlite_master WHERE name = 'signed_heads'") == []

"""An auditor's witness: it keeps heads that extend what it kept, and refuses the rest."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from litestar.testing import TestClient

from ledger.settings import Settings
from ledger.testing import ledger_env, signed_form
from ledger.web import create_app
from tests.db.test_tamper import _drop_triggers, edit_field_and_relink, rewrite_and_resign
from tests.helpers import ledger, make_order


def post(settings: Settings, *numbers: int) -> None:
    with TestClient(create_app(settings)) as client:
        for n in numbers:
            assert client.post("/orderdesk", **signed_form(make_order(n))).status_code == 200


def snapshot_copy(db: Path, to: Path) -> Path:
    conn = sqlite3.connect(db)
    conn.execute("VACUUM INTO ?", (str(to),))
    conn.close()
    return to


def test_a_witness_keeps_a_grown_log_and_refuses_a_rewritten_one(
    settings: Settings, tmp_path: Path
) -> None:
    post(settings, 1, 2)
    env = ledger_env(settings.db_path)
    vkey = ledger("key", "show", env=env).stdout.strip()
    witness = tmp_path / "witness"
    first = ledger("witness", str(snapshot_copy(settings.db_path, tmp_path / "a.db")),
                   "--into", str(witness), "--public-key", vkey, env=env)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("kept 000000000002-000000000002.note")
    post(settings, 3)
    grown = ledger("witness", str(snapshot_copy(settings.db_path, tmp_path / "b.db")),
                   "--into", str(witness), env=env)  # fmt: skip
    assert grown.returncode == 0, grown.stderr
    assert sorted(p.name for p in witness.glob("*.note")) == [
        "000000000002-000000000002.note", "000000000003-000000000003.note",
    ]  # fmt: skip
    assert (witness / "vkey").read_text().strip() == vkey

    for attack in (edit_field_and_relink, rewrite_and_resign):
        forged = snapshot_copy(settings.db_path, tmp_path / f"{attack.__name__}.db")
        conn = sqlite3.connect(forged)
        _drop_triggers(conn)
        attack(conn, settings.db_path.parent)
        conn.commit()
        conn.close()
        refused = ledger("witness", str(forged), "--into", str(witness), env=env)
        assert refused.returncode == 1, attack.__name__
        assert "refused" in refused.stderr and "Traceback" not in refused.stderr
    assert len(list(witness.glob("*.note"))) == 2, "nothing refused was kept"
    checked = ledger("verify", "--public-key", vkey, "--witness", str(witness), env=env)
    assert checked.returncode == 0, checked.stderr
    assert "2 witnessed heads agree" in checked.stdout

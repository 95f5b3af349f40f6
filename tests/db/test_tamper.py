"""The tamper matrix: each attack on a copy of a real file, checked by `ledger verify` with
only the file and the public key, and again with a head kept (`ledger head`) before it.

The file is written through the receiver (signed posts, a refused one, a duplicate) and
a folder naming, in several batches, so it has several signed heads. Each attack works
on a copy whose triggers are dropped where the attack needs it, with the attacker's
means: no key (recompute the unkeyed chain), or the real signing key (re-sign).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from litestar.testing import TestClient

from ledger.chain import delivery_link, event_link
from ledger.heads import SignedHead, note_text
from ledger.keys import read_key
from ledger.log import CHAINED, DELIVERY_CHAINED
from ledger.note import Signer
from ledger.settings import Settings
from ledger.testing import ledger_env, signed_form
from ledger.web import create_app
from tests.helpers import SAMPLES, ledger, name_folders, rows

Attack = Callable[[sqlite3.Connection, Path], None]


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """A ledger of several signed batches; its public key, and a head kept after it."""
    home = tmp_path_factory.mktemp("ledger")
    settings = Settings(db_path=home / "ledger.db", stores={"70412": "test-api-key"})
    samples = sorted(SAMPLES.glob("*.json"))
    with TestClient(create_app(settings)) as client:
        for path in samples:
            assert client.post("/orderdesk", **signed_form(path.read_bytes())).status_code == 200
        refused = signed_form(samples[0].read_bytes(), api_key="wrong")
        assert client.post("/orderdesk", **refused).status_code == 403
        assert client.post("/orderdesk", **signed_form(samples[1].read_bytes())).status_code == 200
    name_folders(settings, {48204: "Canceled"})
    env = ledger_env(settings.db_path)
    vkey = ledger("key", "show", env=env).stdout.strip()
    kept = home / "kept.note"
    kept.write_text(ledger("head", env=env).stdout)
    return settings.db_path, vkey, kept


def copy_of(original: Path, into: Path) -> Path:
    copy = into / "copy.db"
    conn = sqlite3.connect(original)
    conn.execute("VACUUM INTO ?", (str(copy),))
    conn.close()
    return copy


def verify(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return ledger("verify", "--db", str(db), *args, env=ledger_env(db))


def _drop_triggers(conn: sqlite3.Connection) -> None:
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")


def _relink_events(conn: sqlite3.Connection, start: int) -> None:
    """Recompute every event link from ``start`` on, as anyone can (the chain is unkeyed)."""
    prev = conn.execute("SELECT hash FROM events WHERE seq = ?", (start - 1,)).fetchone()
    prev = prev[0] if prev else "0" * 64
    for row in conn.execute(
        f"SELECT {', '.join(CHAINED)} FROM events WHERE seq >= ? ORDER BY seq", (start,)
    ).fetchall():
        fields = (*row[:-1], prev)
        prev = event_link(dict(zip(CHAINED, fields, strict=True)))
        conn.execute(
            "UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", (fields[-1], prev, row[0])
        )


def edit_payload(conn: sqlite3.Connection, _: Path) -> None:
    conn.execute("UPDATE events SET payload = payload || ' ' WHERE seq = 2")


def edit_field_and_relink(conn: sqlite3.Connection, _: Path) -> None:
    conn.execute("UPDATE events SET order_updated_at = '2020-01-01 00:00:00' WHERE seq = 2")
    _relink_events(conn, 2)


def delete_event(conn: sqlite3.Connection, _: Path) -> None:
    conn.execute("DELETE FROM events WHERE seq = 3")


def reorder_timestamp(conn: sqlite3.Connection, _: Path) -> None:
    first, second = conn.execute("SELECT received_at FROM events WHERE seq IN (2, 3) ORDER BY seq")
    conn.execute("UPDATE events SET received_at = ? WHERE seq = 2", second)
    conn.execute("UPDATE events SET received_at = ? WHERE seq = 3", first)


def forge_appended_event(conn: sqlite3.Connection, _: Path) -> None:
    """A forger who knows the scheme (no key needed) and covers with a delivery."""
    seq, prev = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    payload = '{"id":"999","order_total":1000000}'
    sha = hashlib.sha256(payload.encode()).hexdigest()
    fields = (seq + 1, "OrderSnapshotReceived", "2026-01-01T00:00:00.000000Z", "70412", "999",
              None, sha, prev)  # fmt: skip
    link = event_link(dict(zip(CHAINED, fields, strict=True)))
    conn.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)",
                 (*fields[:6], payload, sha, prev, link))  # fmt: skip
    did, dprev = conn.execute("SELECT id, hash FROM deliveries ORDER BY id DESC LIMIT 1").fetchone()
    delivery = dict.fromkeys(DELIVERY_CHAINED) | {
        "id": did + 1, "received_at": "2026-01-01T00:00:00.000000Z", "remote_addr": "127.0.0.1",
        "method": "POST", "body_bytes": 10, "store_id": "70412", "outcome": "appended",
        "http_status": 200, "signature_variant": "standard", "payload_sha256": sha,
        "order_id": "999", "seq": seq + 1,
    }  # fmt: skip
    delivery["hash"] = delivery_link(delivery, dprev)
    names = ", ".join(delivery)
    conn.execute(f"INSERT INTO deliveries ({names}) VALUES ({', '.join('?' * len(delivery))})",
                 tuple(delivery.values()))  # fmt: skip


def truncate_with_deliveries_and_heads(conn: sqlite3.Connection, _: Path) -> None:
    """Cut the log back to an earlier signed head: self-consistent, only a kept head shows."""
    head = conn.execute("SELECT id, size, deliveries FROM signed_heads WHERE size = 3").fetchone()
    conn.execute("DELETE FROM events WHERE seq > ?", (head[1],))
    conn.execute("DELETE FROM deliveries WHERE id > ?", (head[2],))
    conn.execute("DELETE FROM signed_heads WHERE id > ?", (head[0],))


def erase_refused_delivery(conn: sqlite3.Connection, _: Path) -> None:
    conn.execute("DELETE FROM deliveries WHERE outcome = 'rejected'")


def edit_refused_delivery(conn: sqlite3.Connection, _: Path) -> None:
    conn.execute("UPDATE deliveries SET remote_addr = '10.9.9.9' WHERE outcome = 'rejected'")


def delete_signed_head(conn: sqlite3.Connection, _: Path) -> None:
    conn.execute("DELETE FROM signed_heads WHERE id = 2")


def rewrite_and_resign(conn: sqlite3.Connection, home: Path) -> None:
    """Someone with the signing key rewrites history from seq 2 and re-signs every head."""
    edit_field_and_relink(conn, home)
    signer = read_key(home / "ledger.db.signing-key")
    for row in conn.execute("SELECT * FROM signed_heads ORDER BY id").fetchall():
        head = SignedHead(*row)
        hash_ = conn.execute("SELECT coalesce(max(hash), ?) FROM events WHERE seq = ?",
                             ("0" * 64, head.size)).fetchone()[0]  # fmt: skip
        text = note_text(signer.name, head.size, hash_, head.deliveries, head.delivery_hash,
                         head.signed_at)  # fmt: skip
        line = signer.signature_line(text).rstrip("\n")
        conn.execute("UPDATE signed_heads SET hash = ?, signature = ? WHERE id = ?",
                     (hash_, line, head.id))  # fmt: skip


# attack -> (what verify says with the file and the key only, with the kept head too)
MATRIX: dict[Attack, tuple[str | None, str]] = {
    edit_payload: ("seq 2: payload does not match", "seq 2: payload does not match"),
    edit_field_and_relink: ("differs from the log that signed head", "differs from the log"),
    delete_event: ("seq 3: expected seq 3", "seq 3: expected seq 3"),
    reorder_timestamp: ("seq 2: hash does not match", "seq 2: hash does not match"),
    forge_appended_event: ("appended after the last signed head", "appended after the last"),
    truncate_with_deliveries_and_heads: (None, "truncated"),
    erase_refused_delivery: ("deliveries before it were deleted", "deliveries before it were"),
    edit_refused_delivery: ("hash does not match its fields", "hash does not match its fields"),
    delete_signed_head: ("signed heads before it were deleted", "signed heads before it were"),
    rewrite_and_resign: (None, "proof of equivocation"),
}


@pytest.mark.parametrize("attack", list(MATRIX), ids=[a.__name__ for a in MATRIX])
def test_each_attack_is_caught_where_it_can_be(
    original: tuple[Path, str, Path], tmp_path: Path, attack: Attack
) -> None:
    db, vkey, kept = original
    copy = copy_of(db, tmp_path)
    conn = sqlite3.connect(copy)
    _drop_triggers(conn)
    attack(conn, db.parent)
    conn.commit()
    conn.close()
    alone, witnessed = MATRIX[attack]
    for expected, args in (
        (alone, ["--public-key", vkey]),
        (witnessed, ["--public-key", vkey, "--witness", str(kept)]),
    ):
        result = verify(copy, *args)
        assert "Traceback" not in result.stderr
        if expected is None:
            assert result.returncode == 0, (args, result.stderr)
        else:
            assert result.returncode == 1, (args, result.stdout)
            assert expected in result.stderr, (args, result.stderr)


def test_verify_needs_no_key_and_writes_nothing_beside_the_evidence(
    original: tuple[Path, str, Path], tmp_path: Path
) -> None:
    """An auditor's copy in a directory of its own, with no key file: intact; in a
    read-only directory (and an immutable file, where root can make one) the same, and
    no -wal or -shm appears beside it."""
    db, vkey, _ = original
    audit = tmp_path / "audit"
    audit.mkdir()
    copy = copy_of(db, audit)
    assert sorted(p.name for p in audit.iterdir()) == ["copy.db"]
    result = verify(copy, "--public-key", vkey)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("intact: 5 events, 6 deliveries")
    assert "(pinned)" in result.stdout
    audit.chmod(stat.S_IRUSR | stat.S_IXUSR)
    immutable = os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(copy)]).returncode == 0
    try:
        again = verify(copy, "--public-key", vkey)
        assert again.returncode == 0, again.stderr
        assert sorted(p.name for p in audit.iterdir()) == ["copy.db"]
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(copy)], check=True)
        audit.chmod(stat.S_IRWXU)


def test_an_unpinned_key_and_no_witness_are_said(original: tuple[Path, str, Path]) -> None:
    db, _, _ = original
    result = verify(db)
    assert result.returncode == 0
    assert "not pinned" in result.stderr and "no witness given" in result.stderr


def test_the_wrong_pinned_key_fails(original: tuple[Path, str, Path]) -> None:
    db, _, _ = original
    other = Signer.generate("someone-else/ledger").verifier.vkey
    result = verify(db, "--public-key", other)
    assert result.returncode == 1 and "not by the pinned key" in result.stderr


def test_every_signature_checks_with_all_signatures(original: tuple[Path, str, Path]) -> None:
    db, vkey, _ = original
    result = verify(db, "--public-key", vkey, "--all-signatures", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["intact"] and report["signed_heads"] == 8
    assert rows(db, "SELECT count(*) FROM signed_heads") == [(8,)]
    assert base64.b64decode(report["last_head"]["signature"].split()[-1])[:4].hex() in vkey

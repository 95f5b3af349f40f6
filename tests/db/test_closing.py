"""Closed inventory movements: the drift check recounts only what came after the close."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ledger.committer import BatchCommitter
from ledger.jobs import AppendSnapshot, Job
from ledger.log import Delivery, utcnow
from ledger.projections import rebuild
from ledger.settings import Settings
from ledger.startup import open_ledger
from ledger.testing import snapshot
from tests.helpers import (
    STORE_ID,
    as_older_version,
    make_order,
    rows,
    upgraded_at_start,
)

SUMS = "sum(ordered), sum(shipped), sum(canceled), sum(open), sum(orders)"
CLOSED = "SELECT seq FROM positions WHERE name = 'movements_closed'"


def jobs(numbers: range) -> list[Job]:
    delivery = Delivery(utcnow(), "127.0.0.1", "POST", None, 1000, STORE_ID)
    return [AppendSnapshot(delivery, snapshot(make_order(n))) for n in numbers]


def commit(committer: BatchCommitter, numbers: range) -> None:
    """One batch, as the writer process runs it: commit, (answer), then upkeep."""
    assert all(ok for ok, _ in committer.commit(jobs(numbers)))
    committer.maintain()


def closed_oracle(db: Path) -> list[tuple[Any, ...]]:
    """What movements_closed must hold: every movement up to the close, summed per SKU."""
    return rows(
        db,
        f"SELECT store_id, code, {SUMS} FROM inventory_movements"
        f" WHERE seq <= ({CLOSED}) GROUP BY store_id, code ORDER BY store_id, code",
    )


def drift(db: Path) -> list[tuple[Any, ...]]:
    return rows(db, "SELECT code FROM reconcile_inventory_drift")


def written(settings: Settings, every: int = 7) -> Settings:
    """Orders with several SKUs each, committed in batches of four by the real committer,
    which closes the movements every ``every`` events; left with some unclosed."""
    settings = settings.with_(close_every=every)
    db = settings.db_path
    open_ledger(settings)
    committer = BatchCommitter(settings)
    closes = []
    try:
        committer.open()
        for start in range(0, 40, 4):
            commit(committer, range(start, start + 4))
            closes.append(rows(db, CLOSED))
        commit(committer, range(40, 43))  # fewer than a close interval: not closed
    finally:
        committer.close()
    # closed at a batch's end once 7 events or more are open
    assert [c[0][0] if c else 0 for c in closes] == [0, 8, 8, 16, 16, 24, 24, 32, 32, 40]
    assert rows(db, CLOSED) == [(40,)] and rows(db, "SELECT max(seq) FROM events") == [(43,)]
    return settings


def test_the_writer_closes_movements_and_the_drift_view_adds_the_rest(
    settings: Settings,
) -> None:
    settings = written(settings)
    db = settings.db_path
    assert rows(db, "SELECT store_id, code, ordered, shipped, canceled, open, orders"
                " FROM movements_closed ORDER BY store_id, code") == closed_oracle(db) != []  # fmt: skip
    assert rows(db, "SELECT count(*) FROM inventory_movements WHERE seq > 40") != [(0,)]
    assert drift(db) == []
    # the view reads the movements after the close through the primary key, not a scan
    plan = [r[3] for r in rows(db, "EXPLAIN QUERY PLAN SELECT * FROM reconcile_inventory_drift")]
    assert "SEARCH inventory_movements USING PRIMARY KEY (seq>?)" in plan
    assert not [s for s in plan if s.startswith("SCAN inventory_movements")]


def test_a_closed_movement_cannot_change_and_any_drift_shows(
    settings: Settings, tmp_path: Path
) -> None:
    settings = written(settings)
    db = settings.db_path
    conn = sqlite3.connect(db)
    try:
        for tamper in (
            "UPDATE inventory_movements SET open = open + 1 WHERE seq = 40",
            "DELETE FROM inventory_movements WHERE seq = 1",
            # a plain connection: recursive_triggers off, so REPLACE fires no DELETE trigger
            "INSERT OR REPLACE INTO inventory_movements SELECT seq, store_id, order_id, code,"
            " 0, 0, 0, 0, 0, moved_at FROM inventory_movements WHERE seq = 2",
            "INSERT INTO inventory_movements SELECT 3, store_id, order_id, 'LATE', ordered,"
            " shipped, canceled, open, orders, moved_at FROM inventory_movements WHERE seq = 2",
            # an open movement moved into the closed range, over a closed one or beside it
            "UPDATE OR REPLACE inventory_movements SET (seq, order_id, code) = (SELECT seq,"
            " order_id, code FROM inventory_movements WHERE seq = 1 LIMIT 1) WHERE seq = 42",
            "UPDATE inventory_movements SET seq = 2 WHERE seq = 42",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="closed"):
                conn.execute(tamper)
    finally:
        conn.close()
    # seq 42 (order 41, after the close) moved SKU-6; any of the three numbers the view
    # compares, changed by hand, shows
    for tamper in (
        "UPDATE inventory_movements SET ordered = ordered + 2 WHERE seq = 42 AND code = 'SKU-6'",
        "UPDATE movements_closed SET orders = orders - 1 WHERE code = 'SKU-6'",
        "UPDATE inventory SET shipped = shipped + 5 WHERE code = 'SKU-6'",
    ):
        copy = tmp_path / f"tampered-{tamper.split()[1]}.db"
        source, target = sqlite3.connect(db), sqlite3.connect(copy)
        source.backup(target)
        source.close()
        assert target.execute(tamper).rowcount == 1
        target.commit()
        target.close()
        assert drift(copy) == [("SKU-6",)], tamper


def test_rebuild_closes_every_movement_and_check_compares_the_closed_sums(
    settings: Settings,
) -> None:
    settings = written(settings)
    db = settings.db_path
    assert rebuild.check(settings) == [], "closed up to the same seq as live, then compared"
    conn = sqlite3.connect(db)
    conn.execute("UPDATE movements_closed SET ordered = ordered + 1 WHERE code = 'SKU-0'")
    conn.commit()
    conn.close()
    assert [d.table for d in rebuild.check(settings)] == ["movements_closed"]
    rebuild.rebuild(settings)
    assert rows(db, CLOSED) == [(43,)]
    assert rows(db, "SELECT store_id, code, ordered, shipped, canceled, open, orders"
                " FROM movements_closed ORDER BY store_id, code") == closed_oracle(db)  # fmt: skip
    assert drift(db) == []
    with pytest.raises(sqlite3.IntegrityError):
        sqlite3.connect(db).execute("DELETE FROM inventory_movements WHERE seq = 43")


def test_a_version_3_file_gets_its_movements_closed_at_the_upgrade(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = written(settings)
    db = settings.db_path
    # What a version-3 file looked like: no closed movements.
    as_older_version(
        db,
        3,
        "DROP VIEW reconcile_inventory_drift",  # it read movements_closed
        "DROP TABLE movements_closed",
        *(
            f"DROP TRIGGER inventory_movements_closed_no_{v}"
            for v in ("update", "delete", "insert")
        ),
        "DELETE FROM positions WHERE name = 'movements_closed'",
        "ALTER TABLE positions RENAME TO checkpoints",
    )
    upgraded_at_start(settings, caplog)
    assert rows(db, CLOSED) == [(43,)], "every projected movement, closed at the upgrade"
    assert rows(db, "SELECT store_id, code, ordered, shipped, canceled, open, orders"
                " FROM movements_closed ORDER BY store_id, code") == closed_oracle(db) != []  # fmt: skip
    assert drift(db) == []
    assert rebuild.check(settings) == []


def test_a_close_that_fails_is_retried_and_never_half_done(
    settings: Settings,
) -> None:
    settings = written(settings)
    db = settings.db_path
    open_ledger(settings)
    committer = BatchCommitter(settings.with_(busy_timeout_ms=50))
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        committer.open()
        assert all(ok for ok, _ in committer.commit(jobs(range(43, 47))))  # 47: close due
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        committer.maintain()  # logs, gives up; the answers above stood already
        assert rows(db, CLOSED) == [(40,)]
        blocker.execute("ROLLBACK")
        committer.maintain()
        assert rows(db, CLOSED) == [(47,)]
    finally:
        blocker.close()
        committer.close()
    assert rows(db, "SELECT store_id, code, ordered, shipped, canceled, open, orders"
                " FROM movements_closed ORDER BY store_id, code") == closed_oracle(db)  # fmt: skip
    assert drift(db) == []


def test_after_a_rebuild_an_open_writer_closes_from_the_rebuilt_file(
    settings: Settings,
) -> None:
    settings = written(settings)
    db = settings.db_path  # closed up to 40, head 43
    open_ledger(settings)
    committer = BatchCommitter(settings)
    try:
        committer.open()
        rebuild.rebuild(settings)  # closes up to 43
        commit(committer, range(43, 47))  # 47: 4 past the rebuilt close, 7 past the old one
        assert rows(db, CLOSED) == [(43,)]
        commit(committer, range(47, 50))
        assert rows(db, CLOSED) == [(50,)]
    finally:
        committer.close()
    assert drift(db) == []

"""Projections against real processes: a post too big to project, numbers too big to sum,
and a rebuild stopped half-way. Each case is what a signed sender or an operator can do."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ledger.projections.order_view import MAX_ROWS
from ledger.projections.scratch import remove_stale
from ledger.settings import Settings
from ledger.testing import Probe, encode, item, ledger_env, order, running_server
from ledger.testing import signed_form as form
from tests.helpers import API_KEY, STORE_ID, append_signed, as_older_version, ledger, rows


def _post(base: str, order_bytes: bytes) -> httpx.Response:
    # multipart: the body is the payload's own size (url-encoding triples each bracket)
    return httpx.post(f"{base}/orderdesk", timeout=60, **form(order_bytes, as_multipart=True))


def test_a_post_too_big_to_project_holds_no_other_post(tmp_path: Path) -> None:
    """A signed order of 1.6M empty lines (4.8 MB) once held the writer 21.8 s and every
    other post with it. Now it is kept in the log and named in projection_issues, not
    projected; and the largest order that is projected (MAX_ROWS lines, ~5 MB) costs the
    writer well under a second. With a probe posting throughout: no probe post fails or
    waits a second, and the receiving process stays under 250 MB."""
    db = tmp_path / "ledger.db"
    empty_lines = b'{"id":"huge","order_items":[' + b",".join([b"{}"] * 1_600_000) + b"]}"
    fat = [item(f"SKU-{n}", 199, 1, name="x" * 400) for n in range(MAX_ROWS)]
    largest = encode(order("largest", items=fat))
    with running_server(db) as served, Probe(served.base, watch_pid=served.proc.pid) as probe:
        for payload in (empty_lines, largest):
            assert _post(served.base, payload).text.startswith("appended as seq")
    assert probe.failures() == [], probe.summary()
    assert probe.slowest_s() < 1.0, probe.summary()
    assert probe.peak_rss_mb < 250, probe.summary()
    assert len(probe.posts) >= 5, probe.summary()
    assert rows(db, "SELECT order_id, issue FROM projection_issues") == [
        ("huge", "not projected: 1,600,002 brackets, more than 50,000")
    ]
    assert rows(db, "SELECT count(*) FROM order_items WHERE order_id = 'largest'") == [(MAX_ROWS,)]
    assert rows(db, "SELECT count(*) FROM orders WHERE order_id = 'huge'") == [(0,)]
    assert rows(db, "SELECT count(*) FROM events WHERE order_id = 'huge'") == [(1,)]


def test_numbers_too_big_to_sum_are_issues_alike_live_in_rebuild_and_at_start(
    tmp_path: Path,
) -> None:
    """An order whose units summed past 64 bits (9,300 lines of 10**15 - 1) and 95
    same-day orders near 10**15 dollars were projection issues live, but `ledger rebuild`,
    `ledger rebuild --check` and a start that rebuilds failed with a traceback. Now the
    amounts and quantities are bounded in the view, the same code live and in rebuild:
    each such number is an issue, and every command records or reports the same."""
    db = tmp_path / "ledger.db"
    units = {"id": "units", "order_items": [{"code": "A", "quantity": 10**15 - 1}] * 9_300}
    day = [{"id": f"d{n}", "date_added": "2025-03-01 10:00:00", "order_total": 10**15 - 1}
           for n in range(95)]  # fmt: skip
    with running_server(db) as served:
        for body in (units, *day):
            assert _post(served.base, json.dumps(body).encode()).status_code == 200
    issues = "SELECT seq, order_id, issue FROM projection_issues ORDER BY seq, issue"
    live = rows(db, issues)
    assert len(live) == 9_300 + 95
    assert live[-1][2] == f"order_total {10**15 - 1} is out of range"
    env = ledger_env(db)
    for command in (("rebuild", "--check"), ("rebuild",)):
        done = ledger(*command, env=env)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
    assert rows(db, issues) == live
    as_older_version(db, 0)  # a start that must rebuild the projections
    with running_server(db) as served:
        assert "rebuilding them from the log" in served.output()
    assert rows(db, issues) == live
    assert ledger("rebuild", "--check", env=env).stdout.startswith("no difference")


# --- a rebuild stopped half-way leaves nothing behind ------------------------------------


@pytest.fixture(scope="module")
def slow_to_rebuild(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file whose rebuild takes a few seconds: 40 orders of 2,500 lines."""
    db = tmp_path_factory.mktemp("slow") / "ledger.db"
    lines = [(f"SKU-{n}", 100, 1) for n in range(2_500)]
    settings = Settings(db_path=db, stores={STORE_ID: API_KEY})
    append_signed(settings, [encode(order(f"big-{n}", items=lines)) for n in range(40)])
    return db


@pytest.fixture
def db(slow_to_rebuild: Path, tmp_path: Path) -> Path:
    for name in (slow_to_rebuild.name, f"{slow_to_rebuild.name}.signing-key"):
        shutil.copy2(slow_to_rebuild.with_name(name), tmp_path / name)
    return tmp_path / slow_to_rebuild.name


def _rebuilding(db: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ledger", "rebuild"], env=ledger_env(db), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _scratch(db: Path) -> list[Path]:
    return list(db.parent.glob(f".{db.name}.rebuild-*"))


def _scratch_of(db: Path, proc: subprocess.Popen[str], timeout: float = 30) -> Path:
    """The scratch file of the rebuild ``proc``, once it exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := _scratch(db):
            return found[0]
        assert proc.poll() is None, "the rebuild ended before its scratch file was seen"
        time.sleep(0.01)
    raise AssertionError(f"no scratch file after {timeout:g} s")


def test_a_rebuild_stopped_by_sigterm_removes_its_scratch_file(db: Path) -> None:
    """`timeout` and `systemctl stop` send SIGTERM; the rebuild's hidden copy of every
    projection (GBs on a large file) stayed beside the ledger for good."""
    proc = _rebuilding(db)
    _scratch_of(db, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in err
    assert _scratch(db) == []
    checked = ledger("rebuild", "--check", env=ledger_env(db))
    assert checked.stdout.startswith("no difference"), "the live projections are untouched"


@pytest.mark.parametrize("then", ["ledger serve", "ledger rebuild"])
def test_a_killed_rebuilds_scratch_file_is_removed_by_the_next_start_or_rebuild(
    db: Path, then: str
) -> None:
    proc = _rebuilding(db)
    scratch = _scratch_of(db, proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert scratch.exists(), "SIGKILL runs nothing: the file stays"
    if then == "ledger serve":
        with running_server(db) as served:
            assert f"removed {scratch}" in served.output()
    else:
        assert ledger("rebuild", env=ledger_env(db)).returncode == 0
    assert _scratch(db) == []


def test_a_running_rebuilds_scratch_file_is_never_removed(db: Path) -> None:
    """Its lock, not its age, says a rebuild still uses it."""
    proc = _rebuilding(db)
    scratch = _scratch_of(db, proc)
    assert remove_stale(db) == []
    assert scratch.exists()
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out.strip()) == (0, "rebuilt: projections up to seq 40"), err
    assert _scratch(db) == []

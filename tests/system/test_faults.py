"""Promises kept when things go wrong: crashes, two processes, full disks, locks, backups."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import httpx
import pytest

from ledger.testing import ledger_env, start_server
from ledger.testing import signed_form as form
from tests.helpers import API_KEY, ledger, make_order, post_order, rows, serving


def _sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _event_shas(db: Path) -> set[str]:
    return {r[0] for r in rows(db, "SELECT payload_sha256 FROM events")}


def _post_many(
    base: str,
    payloads: Iterable[bytes],
    threads: int,
    deadline: float,
    *,
    answers: list[tuple[bytes, int]] | None = None,
    stop: threading.Event | None = None,
) -> list[tuple[bytes, int]]:
    """Post every item from a pool of threads (until ``stop``); returns (payload, status),
    0 for no answer, appended to ``answers`` as they come."""
    answers = [] if answers is None else answers
    lock = threading.Lock()
    todo = iter(payloads)

    def worker() -> None:
        with httpx.Client(timeout=10) as http:
            while time.monotonic() < deadline and not (stop and stop.is_set()):
                with lock:
                    raw = next(todo, None)
                if raw is None:
                    return
                try:
                    status = http.post(f"{base}/orderdesk", **form(raw)).status_code
                except httpx.HTTPError:
                    status = 0
                with lock:
                    answers.append((raw, status))

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    return answers


@pytest.mark.slow
def test_nothing_acknowledged_is_lost_when_the_server_is_killed(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    payloads = [make_order(n) for n in range(3000)]
    server = start_server(db)
    answers: list[tuple[bytes, int]] = []
    poster = threading.Thread(
        target=_post_many,
        args=(server.base, payloads, 16, time.monotonic() + 60),
        kwargs={"answers": answers},
    )
    poster.start()
    # mid-load on any machine: once some posts are acknowledged, not after a fixed time
    _wait_until(lambda: _acked(answers) >= 300, timeout=60)
    time.sleep(random.uniform(0, 0.2))
    server.proc.send_signal(signal.SIGKILL)
    poster.join(timeout=60)
    server.proc.wait(timeout=10)
    acked = {raw for raw, status in answers if status == 200}
    assert 0 < len(acked) < len(payloads), "the kill must land mid-load"

    env = ledger_env(db)
    assert {_sha(r) for r in acked} <= _event_shas(db)
    intact = ledger("verify", env=env)
    assert intact.returncode == 0, intact.stderr
    with serving(db) as base:  # restart: catches up projections, if needed
        again = _post_many(base, payloads, threads=8, deadline=time.monotonic() + 60)
    assert {status for _, status in again} == {200}
    assert len(again) == len(payloads)
    assert rows(db, "SELECT count(*), count(DISTINCT payload_sha256) FROM events") == [(3000, 3000)]
    assert ledger("verify", env=env).returncode == 0
    assert ledger("rebuild", "--check", env=env).returncode == 0


@pytest.mark.slow
def test_two_processes_on_one_file_never_double_an_event(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    distinct = [make_order(n) for n in range(400)]
    posts = distinct + random.Random(5).choices(distinct, k=170)  # 30% duplicates
    random.Random(6).shuffle(posts)
    first, second = start_server(db), start_server(db)
    base1, base2 = first.base, second.base
    statuses: list[tuple[int, str]] = []

    def post_half(base: str, half: list[bytes]) -> None:
        statuses.extend((s, "") for _, s in _post_many(base, half, 6, time.monotonic() + 60))

    try:
        workers = [
            threading.Thread(target=post_half, args=(base1, posts[0::2])),
            threading.Thread(target=post_half, args=(base2, posts[1::2])),
        ]
        # and the very same new order posted to both at once, many times
        barrier = threading.Barrier(16)

        def same_order(base: str) -> None:
            with httpx.Client(timeout=30) as http:
                barrier.wait(timeout=30)
                r = http.post(f"{base}/orderdesk", **form(make_order(99999)))
                statuses.append((r.status_code, r.text))

        racers = [threading.Thread(target=same_order, args=(b,)) for b in [base1, base2] * 8]
        for t in workers + racers:
            t.start()
        for t in workers + racers:
            t.join(timeout=90)
    finally:
        first.stop()
        second.stop()
    assert {s for s, _ in statuses} == {200}, [t for s, t in statuses if s != 200][:3]
    assert len(statuses) == len(posts) + 16
    assert rows(db, "SELECT count(*) FROM events") == [(len(distinct) + 1,)]
    assert ledger("verify", env=ledger_env(db)).returncode == 0


# --- resource faults ------------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(tmp_path: Path, size: str = "3m") -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_is_a_retryable_503_and_recovers(tmp_path: Path) -> None:
    with small_disk(tmp_path) as disk:
        db = disk / "ledger.db"
        server = start_server(db)
        base = server.base
        try:
            assert post_order(base, make_order(0)).status_code == 200
            filler = disk / "filler"
            with contextlib.suppress(OSError), open(filler, "wb") as fh:
                while True:
                    fh.write(b"\0" * 65536)
            answers = [post_order(base, make_order(n, pad=20000)) for n in range(1, 40)]
            statuses = [r.status_code for r in answers]
            assert 503 in statuses
            first_503 = statuses.index(503)
            assert set(statuses[first_503:]) == {503}, "no 200 while the disk is full"
            assert answers[first_503].headers["retry-after"] == "30"
            assert "retry later" in answers[first_503].text
            acked = [
                make_order(n, pad=20000)
                for n, s in zip(range(1, 40), statuses, strict=True)
                if s == 200
            ]
            filler.unlink()
            recovered = post_order(base, make_order(1000))
            assert recovered.status_code == 200, recovered.text
            refused_again = post_order(base, make_order(first_503 + 1, pad=20000))
            assert refused_again.status_code == 200  # the refused post lands on retry
        finally:
            assert server.stop() == 0
        assert {_sha(r) for r in acked} <= _event_shas(db)
        env = ledger_env(db)
        assert ledger("verify", env=env).returncode == 0
        assert ledger("rebuild", "--check", env=env).returncode == 0


def _chattr(flag: str, *paths: Path) -> None:
    done = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"chattr {flag} is not supported here: {done.stderr.decode().strip()}")


def test_read_only_file_is_a_retryable_503_and_recovers(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    server = start_server(db)
    base = server.base
    files = [db, db.with_name("ledger.db-wal")]
    try:
        assert post_order(base, make_order(0)).status_code == 200
        _chattr("+i", *files)  # immutable: even root's open descriptors cannot write
        try:
            refused = post_order(base, make_order(1))
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "30"
        finally:
            _chattr("-i", *files)
        assert post_order(base, make_order(1)).status_code == 200
    finally:
        server.stop()
    assert rows(db, "SELECT count(*) FROM events") == [(2,)]
    assert ledger("verify", env=ledger_env(db)).returncode == 0


def test_a_locked_database_is_a_retryable_503_and_recovers(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    server = start_server(db, env=ledger_env(db, LEDGER_BUSY_TIMEOUT_MS="300"))
    base = server.base
    try:
        assert post_order(base, make_order(0)).status_code == 200
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            refused = post_order(base, make_order(1))
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "30"
            assert "database is locked" in refused.text
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert post_order(base, make_order(1)).status_code == 200
    finally:
        server.stop()
    assert rows(db, "SELECT count(*) FROM events") == [(2,)]


def test_backup_while_posting_is_a_verified_prefix(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    env = ledger_env(db)
    with serving(db) as base:
        answers: list[tuple[bytes, int]] = []
        stop = threading.Event()
        poster = threading.Thread(
            target=_post_many,
            args=(base, (make_order(n) for n in itertools.count()), 4, time.monotonic() + 60),
            kwargs={"answers": answers, "stop": stop},
        )
        poster.start()
        # posting goes on before, during and after the backup, however fast the machine
        _wait_until(lambda: _acked(answers) >= 50, timeout=30)
        copy = tmp_path / "backup.db"
        taken = ledger("backup", str(copy), env=env)
        after = _acked(answers)
        _wait_until(lambda: _acked(answers) >= after + 20, timeout=30)
        stop.set()
        poster.join(timeout=60)
    assert taken.returncode == 0, taken.stderr
    copied = rows(copy, "SELECT seq, hash FROM events ORDER BY seq")
    live = rows(db, "SELECT seq, hash FROM events ORDER BY seq")
    assert 0 < len(copied) < len(live), "the backup was taken mid-load"
    assert live[: len(copied)] == copied
    assert sorted(p.name for p in tmp_path.glob("backup.db*")) == ["backup.db"], "no key"
    verified = ledger("verify", "--db", str(copy), env=env)
    assert verified.returncode == 0, verified.stderr
    assert ledger("backup", str(copy), env=env).returncode == 1  # never overwrites


# --- secrets --------------------------------------------------------------------------------


def test_the_api_key_never_appears_in_logs_answers_or_pages(tmp_path: Path) -> None:
    server = start_server(tmp_path / "ledger.db")
    base, ds = server.base, server.datasette
    seen = []
    try:
        seen.append(post_order(base, make_order(1)).text)
        seen.append(post_order(base, make_order(2), headers={"X-ORDER-DESK-HASH": "f" * 64}).text)
        seen.append(httpx.get(f"{base}/healthz").text)
        for path in ["/", "/ledger", "/ledger/deliveries", "/ledger/events", "/-/settings.json",
                     "/-/metadata.json", "/-/plugins.json", "/-/versions.json", "/-/databases.json",
                     "/-/threads.json", "/-/actor.json", "/-/config.json"]:  # fmt: skip
            seen.append(httpx.get(f"{ds}{path}", timeout=10).text)
    finally:
        server.stop()
    logs = server.output()
    assert "receiver on" in logs  # the log was captured
    signing_key = (tmp_path / "ledger.db.signing-key").read_text().strip()
    seed = signing_key.rsplit("+", 1)[1]
    for text in [*seen, logs]:
        assert API_KEY not in text
        assert signing_key not in text and seed not in text


def test_a_killed_writer_process_is_replaced(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    server = start_server(db)
    try:
        assert post_order(server.base, make_order(0)).status_code == 200
        (writer,) = [p for p in child_pids(server.proc.pid) if "spawn_main" in cmdline(p)]
        os.kill(writer, signal.SIGKILL)
        _wait_until(lambda: _gone(writer), timeout=10)
        lost = post_order(server.base, make_order(1))
        assert lost.status_code == 503, "not acknowledged: Order Desk will retry"
        assert post_order(server.base, make_order(1)).status_code == 200  # a new writer took over
        assert post_order(server.base, make_order(2)).status_code == 200
    finally:
        assert server.stop() == 0
    assert rows(db, "SELECT count(*) FROM events") == [(3,)]
    assert ledger("verify", env=ledger_env(db)).returncode == 0


def _acked(answers: list[tuple[bytes, int]]) -> int:
    return sum(1 for _, status in list(answers) if status == 200)


def _wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def _gone(pid: int) -> bool:
    """Dead: no process, or a zombie its parent has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def child_pids(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()

"""Nothing a reader or a stranger does slows or stops intake (issue 16).

Each case runs against ``ledger serve`` as a process while a probe posts signed orders:
no probe post may fail or wait longer than a second, and the receiving process stays
under 250 MB.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import pytest

from ledger.db import uri
from ledger.testing import API_KEY, Probe, Served, encode, ledger_env, order, running_server
from ledger.testing import signed_form as form
from tests.helpers import STORE_ID, rows

pytestmark = pytest.mark.slow

SLOWEST_S = 1.0
RECEIVER_MB = 250
FIVE_MB = 5 * 1000 * 1000


def _held(served: Served, probe: Probe) -> None:
    assert probe.posts, "the probe posted nothing"
    assert not probe.failures(), probe.failures()[:3]
    assert probe.slowest_s() <= SLOWEST_S, probe.summary()
    assert probe.peak_rss_mb < RECEIVER_MB, probe.summary()


def _alongside(served: Served, *loads: Callable[[], object], settle_s: float = 0.5) -> Probe:
    """Run ``loads`` (each in a thread, all at once) while a probe posts; the probe."""
    with (
        Probe(served.base, rate=20, watch_pid=served.proc.pid) as probe,
        ThreadPoolExecutor(len(loads)) as pool,
    ):
        time.sleep(settle_s)
        for result in [pool.submit(load) for load in loads]:
            result.result(timeout=120)
        time.sleep(settle_s)
    return probe


def _post(served: Served, content: bytes, headers: dict[str, str]) -> int:
    answer = httpx.post(f"{served.base}/orderdesk", content=content, headers=headers, timeout=60)
    return answer.status_code


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with running_server(tmp_path / "ledger.db") as served:
        yield served


def test_junk_bodies_do_not_hold_signed_posts(served: Served) -> None:
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    ampersands = b"&" * FIVE_MB
    percents = b"order=" + quote_plus("%25" * (FIVE_MB // 6)).encode()
    statuses: list[int] = []

    def junk(content: bytes, headers: dict[str, str]) -> Callable[[], None]:
        return lambda: statuses.extend(_post(served, content, headers) for _ in range(3))

    probe = _alongside(
        served,
        junk(ampersands, form_type),  # no store id, no hash
        junk(ampersands, form_type | {"X-ORDER-DESK-STORE-ID": STORE_ID}),
        junk(percents, form_type | {"X-ORDER-DESK-STORE-ID": STORE_ID, "X-ORDER-DESK-HASH": "0" * 64}),
    )  # fmt: skip
    _held(served, probe)
    assert sorted(set(statuses)) == [400, 403]


def _sql(served: Served, sql: str) -> httpx.Response:
    return httpx.get(f"{served.datasette}/ledger", params={"sql": sql}, timeout=120)


PAYLOAD_CELLS = """
with recursive n(i) as (select 1 union all select i + 1 from n where i < {rows})
select '{{"id":"' || i || '","note":"' || hex(randomblob(30000)) || '"}}' as payload from n
"""


def test_heavy_pages_do_not_hold_signed_posts(served: Served) -> None:
    for n in range(50):  # an events page of fifty large payloads
        padded = encode(order(f"big-{n}", note="x" * 60_000))
        assert httpx.post(f"{served.base}/orderdesk", **form(padded)).status_code == 200
    pages: list[httpx.Response] = []

    def reader() -> None:
        for _ in range(2):
            pages.append(_sql(served, PAYLOAD_CELLS.format(rows=100)))
            pages.append(_sql(served, PAYLOAD_CELLS.format(rows=300)))
            pages.append(httpx.get(f"{served.datasette}/ledger/events", timeout=120))
            with httpx.stream("GET", f"{served.datasette}/ledger/events.csv?_stream=on") as csv:
                for _ in csv.iter_bytes():
                    pass

    probe = _alongside(served, reader, reader, reader)
    _held(served, probe)
    assert {p.status_code for p in pages} == {200}
    # past the page's budget a payload shows its start, with the way to the whole value
    assert "the whole value" in pages[1].text
    assert 'href="/ledger.json?sql=' in pages[1].text


@pytest.mark.parametrize(
    "sql",
    [
        "select length(hex(zeroblob(100000000)))",
        "with recursive n(i) as (select 1 union all select i + 1 from n where i < 200)"
        " select length(group_concat(hex(zeroblob(1000000)))) from n",
    ],
    ids=["zeroblob", "group_concat"],
)
def test_a_query_cannot_grow_the_receiver(served: Served, sql: str) -> None:
    answers: list[httpx.Response] = []
    probe = _alongside(served, lambda: answers.append(_sql(served, sql + " -- 1")),
                       lambda: answers.append(_sql(served, sql + " -- 2")))  # fmt: skip
    _held(served, probe)
    assert [a.status_code for a in answers] == [400, 400]
    assert "string or blob too big" in answers[0].text


def _read_side_pid(served: Served) -> int:
    found = subprocess.run(
        ["pgrep", "-P", str(served.proc.pid), "-f", "ledger.readside.process"],
        capture_output=True, text=True, check=False,
    ).stdout.split()  # fmt: skip
    assert len(found) == 1, found
    return int(found[0])


def _until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.1)


def _answers(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=5).status_code == 200
    return False


def test_a_killed_read_side_is_restarted_and_intake_goes_on(served: Served) -> None:
    first = _read_side_pid(served)
    with Probe(served.base, rate=20, watch_pid=served.proc.pid) as probe:
        os.kill(first, signal.SIGKILL)
        _until(lambda: _answers(f"{served.datasette}/ledger/events.json"))
        time.sleep(0.5)
    _held(served, probe)
    assert _read_side_pid(served) != first
    assert f"read side (pid {first}) stopped with signal SIGKILL; restarting" in served.output()


def test_the_read_side_goes_with_a_killed_receiver(served: Served) -> None:
    child = _read_side_pid(served)
    os.kill(served.proc.pid, signal.SIGKILL)
    served.proc.wait()
    _until(lambda: not Path(f"/proc/{child}").exists() or _zombie(child), timeout=15)


def _zombie(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    return True


def _half_requests(base: str, count: int) -> list[socket.socket]:
    """``count`` connections that begin a post and never finish its headers."""
    port = int(base.rsplit(":", 1)[1])
    held = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"POST /orderdesk HTTP/1.1\r\nHost: x\r\n")
        held.append(s)
    return held


def _closed_by_server(s: socket.socket) -> bool:
    try:
        answer = s.recv(4096)
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return answer == b"" or answer.startswith(b"HTTP/1.1 408")


def test_connections_that_never_finish_their_headers(tmp_path: Path) -> None:
    env = ledger_env(tmp_path / "ledger.db", LEDGER_HEADER_TIMEOUT_S="3")
    with running_server(tmp_path / "ledger.db", env=env, fd_limit=256) as served:
        held: list[socket.socket] = []
        try:
            with Probe(served.base, rate=20, watch_pid=served.proc.pid) as probe:
                for _ in range(6):  # 300 of them, while signed posts arrive
                    held += _half_requests(served.base, 50)
                    time.sleep(0.2)
                time.sleep(1)
            _held(served, probe)
            for s in held:
                s.settimeout(6)
            assert all(_closed_by_server(s) for s in held)
        finally:
            for s in held:
                s.close()
        assert "to make room for new ones" in served.output()


def test_a_refused_post_costs_at_most_half_a_kilobyte(served: Served, tmp_path: Path) -> None:
    """Its row and its index entries, however long its headers; the signed head of the
    batch it joined (~0.3 KB) is shared by the attempts of that batch."""
    db = tmp_path / "ledger.db"
    long_type = "application/x-www-form-urlencoded; junk=" + "j" * 12_000
    refused = {"Content-Type": long_type, "X-ORDER-DESK-STORE-ID": "s" * 3_000}
    known = {"Content-Type": long_type, "X-ORDER-DESK-STORE-ID": STORE_ID}
    _post(served, b"order=1", refused)
    before, heads_before = _bytes_of(db)
    with ThreadPoolExecutor(8) as pool:  # as a flood comes: several at once
        sent = [refused if n % 2 else known for n in range(200)]
        statuses = list(pool.map(lambda headers: _post(served, b"order=1", headers), sent))
    assert set(statuses) == {403}
    _until(lambda: rows(db, "SELECT count(*) FROM deliveries") == [(201,)])
    after, heads_after = _bytes_of(db)
    assert (after - before) / 200 <= 512
    assert (heads_after - heads_before) / 200 <= 400
    kept = rows(db, "SELECT DISTINCT length(content_type), content_type_length,"
                " length(store_id), store_id_length FROM deliveries")  # fmt: skip
    assert sorted(kept) == [(100, len(long_type), 5, None), (100, len(long_type), 100, 3_000)]


def _bytes_of(db: Path) -> tuple[int, int]:
    """Bytes the deliveries (rows and indexes) and the signed heads fill, as a reader sees
    them, the committed pages in the WAL included."""
    conn = sqlite3.connect(uri(db, mode="ro"), uri=True)
    try:
        used = dict(conn.execute(
            "SELECT s.tbl_name = 'signed_heads', sum(d.pgsize - d.unused) FROM dbstat d"
            " JOIN sqlite_schema s ON s.name = d.name"
            " WHERE s.tbl_name IN ('deliveries', 'signed_heads') GROUP BY 1"
        ).fetchall())  # fmt: skip
        return int(used[0]), int(used[1])
    finally:
        conn.close()


def test_each_post_gets_one_log_line_and_no_secret(served: Served) -> None:
    assert httpx.post(f"{served.base}/orderdesk", **form(encode(order("LOG-1")))).status_code == 200
    bad = form(encode(order("LOG-2")), headers={"X-ORDER-DESK-HASH": "0" * 64})
    assert httpx.post(f"{served.base}/orderdesk", **bad).status_code == 403
    _until(lambda: "order='LOG-1'" in served.output() and "rejected 403" in served.output())
    lines = [line for line in served.output().splitlines() if "ledger.web" in line]
    assert any(
        "appended 200 store='70412' order='LOG-1' seq=1" in line and "ms peer=127.0.0.1" in line
        for line in lines
    ), lines
    assert any("rejected 403 store='70412'" in line for line in lines), lines
    assert API_KEY not in served.output()

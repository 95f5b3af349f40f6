"""Projections against real processes: a post too big to project, numbers too big to sum,
and a rebuild stopped half-way. Each case is what a signed sender or an operator can do."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from ledger.projections.order_view import MAX_ROWS
from ledger.testing import Probe, encode, item, ledger_env, order, running_server
from ledger.testing import signed_form as form
from tests.helpers import as_older_version, ledger, rows


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

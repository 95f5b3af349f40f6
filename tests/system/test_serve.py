"""`ledger serve` as a real process on 127.0.0.1: uvicorn, Datasette, signals, ports."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import httpx

from ledger.testing import API_KEY, free_port, ledger_env, running_server, start_server
from ledger.testing import signed_form as form
from tests.helpers import (
    RAW_POST_HEAD,
    SAMPLES,
    ledger,
    make_order,
    post_order,
    raw_request,
    rows,
    sample,
    serving,
)


def test_64_concurrent_identical_posts_make_one_event(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    kwargs = form(sample("a-new-order"))
    barrier = threading.Barrier(64)
    statuses: list[int] = []

    with serving(db) as base:

        def post() -> None:
            with httpx.Client(timeout=30) as http:
                barrier.wait(timeout=30)
                statuses.append(http.post(f"{base}/orderdesk", **kwargs).status_code)

        threads = [threading.Thread(target=post) for _ in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)

    assert statuses == [200] * 64
    assert rows(db, "SELECT count(*) FROM events") == [(1,)]
    assert rows(
        db, "SELECT outcome, count(*) FROM deliveries GROUP BY outcome ORDER BY outcome"
    ) == [
        ("appended", 1),
        ("duplicate", 63),
    ]
    assert rows(db, "SELECT count(DISTINCT seq) FROM deliveries") == [(1,)]


def test_send_posts_the_samples_and_datasette_serves_the_file(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    env = ledger_env(db)
    server = start_server(db)
    base = server.base
    try:
        files = [str(p) for p in sorted(SAMPLES.glob("*.json"))]
        sent = ledger("send", "--url", f"{base}/orderdesk", *files, env=env)
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.splitlines() == [
            f"{f}: 200 appended as seq {n}" for n, f in enumerate(files, 1)
        ]
        legacy = ledger(
            "send", "--url", f"{base}/orderdesk", "--legacy", "--multipart", files[2], env=env
        )
        assert legacy.stdout.strip() == f"{files[2]}: 200 duplicate of seq 3"

        bad = ledger("send", "--url", f"{base}/orderdesk", "--api-key", "wrong", files[0], env=env)
        assert bad.returncode == 1
        assert bad.stdout.strip() == f"{files[0]}: 403 X-ORDER-DESK-HASH does not match the order"

        orders = httpx.get(f"{server.datasette}/ledger/orders.json?_shape=array", timeout=10).json()
        assert sorted(o["order_id"] for o in orders) == ["3910457", "3911802", "3912266"]
    finally:
        server.stop()


def test_sigterm_drains_and_exits_zero(tmp_path: Path) -> None:
    server = start_server(tmp_path / "ledger.db")
    assert post_order(server.base, sample("a-new-order")).status_code == 200
    assert server.stop() == 0  # stop() sends SIGTERM
    out = server.output()
    assert "shutting down" in out
    assert "Traceback" not in out


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = ledger("serve", "--port", str(port), "--datasette-port", str(free_port()),
                        env=ledger_env(tmp_path / "l.db"), timeout=30)  # fmt: skip
    assert result.returncode == 1
    assert f"cannot listen for the receiver on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    env = ledger_env(tmp_path / "l.db")
    del env["ORDERDESK_STORE_ID"], env["ORDERDESK_API_KEY"]
    result = ledger("serve", "--port", str(free_port()), env=env, timeout=30)
    assert result.returncode == 1
    assert "no Order Desk store is configured" in result.stderr
    assert not (tmp_path / "l.db").exists()


def test_a_body_cut_short_is_recorded_as_rejected(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with serving(db) as base:
        cut_short = RAW_POST_HEAD + b"Content-Length: 1000\r\n\r\norder=%7B"
        with contextlib.suppress(OSError):  # the answer, if any, is not the point
            raw_request(base, cut_short, close_write=True, timeout=5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not rows(db, "SELECT 1 FROM deliveries"):
            time.sleep(0.05)
    assert rows(db, "SELECT outcome, http_status, reason FROM deliveries") == [
        ("rejected", 400, "body ended before its announced length")
    ]
    assert rows(db, "SELECT count(*) FROM events") == [(0,)]


def test_signed_heads_leave_the_machine(tmp_path: Path) -> None:
    """GET /head serves the latest signed head; an auditor's `ledger witness URL` keeps it
    (the key pinned on first use, then remembered); `--publish-to` writes heads while the
    server runs and the last one at shutdown; `ledger verify` agrees with all of them."""
    db, witness, published = tmp_path / "ledger.db", tmp_path / "witness", tmp_path / "published"
    env = ledger_env(db)
    server = start_server(db, "--publish-to", str(published), "--publish-every", "0.2")
    try:
        assert post_order(server.base, sample("a-new-order")).status_code == 200
        head = httpx.get(f"{server.base}/head", timeout=10)
        assert head.status_code == 200 and head.text.splitlines()[1] == "1"
        vkey = ledger("key", "show", env=env).stdout.strip()
        first = ledger("witness", f"{server.base}/head", "--into", str(witness), env=env)
        assert first.returncode == 1 and "--public-key" in first.stderr, "no key yet"
        kept = ledger("witness", f"{server.base}/head", "--into", str(witness),
                      "--public-key", vkey, env=env)  # fmt: skip
        assert kept.returncode == 0, kept.stderr
        for name in ("b-updated-shipped-closed", "c-unicode-discount-percent"):
            assert post_order(server.base, sample(name)).status_code == 200
        again = ledger("witness", f"{server.base}/head", "--into", str(witness), env=env)
        assert again.returncode == 0 and again.stdout.startswith("kept 000000000003-")
    finally:
        assert server.stop() == 0
    last = sorted(published.glob("*.note"))[-1]
    assert last.name == "000000000003-000000000003.note", "the head at shutdown was published"
    checked = ledger("verify", "--public-key", vkey, "--witness", str(witness),
                     "--witness", str(published), env=env)  # fmt: skip
    assert checked.returncode == 0, checked.stderr


def test_serve_rehearse_answers_400_and_appends_nothing(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    served = start_server(db, "--rehearse")
    try:
        answer = post_order(served.base, sample("a-new-order"))
    finally:
        served.stop()
    assert answer.status_code == 400
    assert answer.text.startswith("rehearsal: signature ok (standard), store 70412, order")
    assert rows(db, "SELECT count(*) FROM events") == [(0,)]
    assert "rehearsal: posts of every store are answered 400" in served.output()


def test_metrics_count_posts_and_report_the_file(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    db = tmp_path / "ledger.db"
    with running_server(db) as served:
        assert post_order(served.base, sample("a-new-order")).status_code == 200
        assert post_order(served.base, sample("a-new-order")).status_code == 200
        bad = form(sample("d-canceled"), headers={"X-ORDER-DESK-HASH": "0" * 64})
        assert httpx.post(f"{served.base}/orderdesk", **bad).status_code == 403
        scrape = httpx.get(f"{served.base}/metrics", timeout=10)
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scrape.text)
        for s in family.samples
    }
    assert samples[("ledger_posts_total", (("outcome", "appended"), ("status", "200")))] == 1
    assert samples[("ledger_posts_total", (("outcome", "duplicate"), ("status", "200")))] == 1
    assert samples[("ledger_posts_total", (("outcome", "rejected"), ("status", "403")))] == 1
    assert samples[("ledger_post_seconds_count", ())] == 3
    assert samples[("ledger_batch_posts_count", ())] >= 3  # each post, and the refusal's record
    assert samples[("ledger_wal_bytes", ())] > 0
    assert 0 <= samples[("ledger_last_event_age_seconds", ())] < 60
    assert 0 <= samples[("ledger_last_signed_head_age_seconds", ())] < 60
    assert samples[("ledger_process_up", (("process", "writer"),))] == 1
    assert samples[("ledger_process_up", (("process", "read_side"),))] == 1
    assert API_KEY not in scrape.text


def post_from(base: str, source: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """A signed post of ``body`` from the loopback address ``source`` (127.0.0.0/8 is all
    this machine's), with extra ``headers``."""
    kwargs = form(body, headers=headers)
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=30) as http:
        return http.post(f"{base}/orderdesk", **kwargs)


def test_a_forged_x_forwarded_for_counts_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    """By default no X-Forwarded-For is believed, not even from 127.0.0.1 (uvicorn's own
    default, and its FORWARDED_ALLOW_IPS, would): the peer is recorded. With
    LEDGER_TRUSTED_PROXIES, only the proxy's header names the client."""
    db = tmp_path / "ledger.db"
    forged = {"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9"}
    env = ledger_env(db, FORWARDED_ALLOW_IPS="*")
    with running_server(db, env=env) as served:
        assert post_from(served.base, "127.0.0.1", make_order(1), forged).status_code == 200
        assert post_from(served.base, "127.0.0.3", make_order(2), forged).status_code == 200
        assert "/orderdesk for stores 70412," in served.output()
    with running_server(db, env=env | {"LEDGER_TRUSTED_PROXIES": "127.0.0.2"}) as served:
        assert post_from(served.base, "127.0.0.1", make_order(3), forged).status_code == 200
        assert post_from(served.base, "127.0.0.2", make_order(4), forged).status_code == 200
    assert rows(db, "SELECT remote_addr FROM deliveries ORDER BY id") == [
        ("127.0.0.1",), ("127.0.0.3",), ("127.0.0.1",), ("203.0.113.9",)
    ]  # fmt: skip


def test_a_trusted_proxy_that_is_no_address_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    refused = ledger("serve", "--trusted-proxy", "caddy", env=ledger_env(db))
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "Error: --trusted-proxy entry 1 is not an IP address or network:"
        " 'caddy' does not appear to be an IPv4 or IPv6 network"
    )


def test_the_password_is_read_from_the_environment_with_no_terminal(tmp_path: Path) -> None:
    """As under systemd: --datasette-password with no value and no tty reads
    LEDGER_DATASETTE_PASSWORD (click's prompt aborted there)."""
    db = tmp_path / "ledger.db"
    env = ledger_env(db, LEDGER_DATASETTE_PASSWORD="a long passphrase")
    with running_server(db, "--datasette-password", env=env) as served:
        anonymous = httpx.get(f"{served.datasette}/ledger/orders", timeout=10)
        assert anonymous.status_code in (302, 401)
        assert "a long passphrase" not in served.output()


def test_a_file_name_with_uri_characters_is_the_file_written_backed_up_and_served(
    tmp_path: Path,
) -> None:
    """'#', '?' and '%' end or escape a file: URI's path: every connection escapes them,
    so the posts, the key, the backup and the read side all use exactly these files."""
    db = tmp_path / "a#b?c%20d.db"
    env = ledger_env(db)
    copy = tmp_path / "copy#1?.db"
    with running_server(db, env=env) as served:
        assert post_order(served.base, sample("a-new-order")).status_code == 200
        orders = httpx.get(f"{served.datasette}/a~23b~3Fc~2520d/orders.json?_shape=array")
        assert [o["order_id"] for o in orders.json()] == ["3910457"]
        assert ledger("backup", str(copy), env=env).returncode == 0
    assert ledger("verify", "--db", str(copy), env=env).returncode == 0
    assert ledger("rebuild", env=env).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".log")) == sorted(
        [db.name, f"{db.name}.signing-key", copy.name]
        + [f"{db.name}-{s}" for s in ("wal", "shm") if (tmp_path / f"{db.name}-{s}").exists()]
    )
    assert rows(db, "SELECT order_id FROM orders") == [("3910457",)]

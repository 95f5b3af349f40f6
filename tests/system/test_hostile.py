"""Hostile input against the real server process: only documented 4xx, nothing logged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ledger.testing import ledger_env
from tests.helpers import RAW_POST_HEAD, STORE_ID, raw_request, rows, serving

DOCUMENTED = {400, 403, 405, 408, 413}
LIMIT = 20_000
SENT = [0]  # requests the random test made, whatever order the tests run in


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    db = tmp_path_factory.mktemp("hostile") / "ledger.db"
    env = ledger_env(db, LEDGER_MAX_BODY_BYTES=str(LIMIT), LEDGER_BODY_TIMEOUT_S="1")
    with serving(db, env=env) as base:
        yield base, db


# h11 refuses values with surrounding whitespace, so those never reach the server anyway.
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80).map(
    str.strip
)
nested = st.integers(1, 3000).map(lambda n: b'{"id":"1","x":' + b"[" * n + b"]" * n + b"}")
huge_number = st.integers(10, 20000).map(lambda n: b'{"id":"1","n":' + b"9" * n + b"}")
json_object = st.dictionaries(
    st.text(max_size=8), st.text(max_size=8) | st.integers(), max_size=5
).map(lambda d: repr(d).replace("'", '"').encode())
order_value = st.binary(max_size=300) | nested | huge_number | json_object | st.just(b'{"id":"1"}')


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str | None]:
    kind = draw(st.sampled_from(["form", "multipart", "raw", "oversized"]))
    order = draw(order_value)
    if kind == "form":
        extra = draw(st.sampled_from([b"", b"&order=1", b"&x=%ZZ", b"&=&&"]))
        return b"order=" + quote_plus(order).encode() + extra, "application/x-www-form-urlencoded"
    if kind == "multipart":
        boundary = draw(st.sampled_from(["b0undary", "", "x"]))
        body = b'--b0undary\r\nContent-Disposition: form-data; name="order"\r\n\r\n' + order
        body += draw(st.sampled_from([b"\r\n--b0undary--\r\n", b"", b"\r\n--b0undary\r\n"]))
        return (
            body,
            f"multipart/form-data; boundary={boundary}" if boundary else "multipart/form-data",
        )
    if kind == "oversized":
        return b"order=" + b"7" * (
            LIMIT + draw(st.integers(1, 5000))
        ), "application/x-www-form-urlencoded"
    return draw(st.binary(max_size=500)), draw(st.none() | header_text)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=bodies(),
    method=st.sampled_from(["POST"] * 6 + ["GET", "PUT", "PATCH", "DELETE"]),
    store=st.none() | st.just(STORE_ID) | header_text,
    signature=st.none() | header_text | st.text("0123456789abcdef", min_size=64, max_size=64),
)
def test_random_requests_get_only_documented_4xx(
    server: tuple[str, Path],
    body: tuple[bytes, str | None],
    method: str,
    store: str | None,
    signature: str | None,
) -> None:
    base, _ = server
    content, content_type = body
    headers = {
        name: value
        for name, value in [
            ("Content-Type", content_type),
            ("X-ORDER-DESK-STORE-ID", store),
            ("X-ORDER-DESK-HASH", signature),
        ]
        if value is not None
    }
    SENT[0] += 1
    response = httpx.request(
        method, f"{base}/orderdesk", content=content, headers=headers, timeout=10
    )
    assert response.status_code in DOCUMENTED, response.text
    assert response.text.endswith("\n") and response.text.count("\n") == 1


HEAD = RAW_POST_HEAD + b"X-ORDER-DESK-HASH: " + b"0" * 64 + b"\r\n"


def test_a_slow_body_is_408(server: tuple[str, Path]) -> None:
    base, _ = server
    answer = raw_request(
        base, HEAD + b"Content-Length: 100\r\n\r\norder=", pause=2.0, rest=b"x" * 94
    )
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"body not received within 1 s" in answer


def test_an_announced_oversize_is_413_before_reading(server: tuple[str, Path]) -> None:
    base, _ = server
    answer = raw_request(base, HEAD + f"Content-Length: {LIMIT * 100}\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 413")


def test_zz_after_the_storm_the_server_is_up_and_only_rejections_were_logged(
    server: tuple[str, Path],
) -> None:
    base, db = server
    # its own few hostile posts too, so that it means something run alone or first
    for _ in range(3):
        refused = httpx.post(f"{base}/orderdesk", content=b"order=%7B", timeout=5)
        assert refused.status_code in DOCUMENTED
    assert httpx.get(f"{base}/healthz", timeout=5).json()["status"] == "ok"
    assert rows(db, "SELECT count(*) FROM events") == [(0,)]
    outcomes = rows(db, "SELECT outcome, count(*) FROM deliveries GROUP BY outcome")
    assert [o for o, _ in outcomes] == ["rejected"]
    assert outcomes[0][1] >= 3 + SENT[0], "every request of the storm left a delivery row"
    assert rows(
        db, "SELECT count(*) FROM deliveries WHERE http_status NOT IN (400, 403, 405, 408, 413)"
    ) == [(0,)]

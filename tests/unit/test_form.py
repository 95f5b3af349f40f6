"""The exact bytes of the ``order`` form field, taken from raw bodies: no HTTP, no SQLite."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ledger.errors import BadPost
from ledger.form import extract_order, form_unquote, percent_decode
from ledger.send import multipart, urlencoded

ORDER = '{"id":"1","note":"50%25 off, caf\u00e9 / KÃ¶ln"}'.encode()


@hsettings(max_examples=2000, deadline=None)
@given(st.binary(max_size=40) | st.text("%+\\x0aF9zé", max_size=40).map(str.encode))
def test_form_decoding_equals_the_standard_library(value: bytes) -> None:
    assert form_unquote(value) == unquote_to_bytes(value.replace(b"+", b" "))


@pytest.mark.parametrize("build", [urlencoded, multipart], ids=["urlencoded", "multipart"])
def test_the_order_field_comes_back_byte_for_byte(build: object) -> None:
    body, content_type = build(ORDER)  # type: ignore[operator]
    assert extract_order(body, content_type) == ORDER


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"order=1&order=2", "application/x-www-form-urlencoded", "more than one 'order' field"),
        (b"orders=1", "application/x-www-form-urlencoded", "no 'order' field in the form"),
        (b'{"id":"1"}', "application/json", "no 'order' form field"),
        (b"order=1", None, "no 'order' form field"),
        (b"--x\r\n", "multipart/form-data", "multipart body without a boundary"),
        (b"--x\r\nno headers\r\n--x--", "multipart/form-data; boundary=x", "malformed multipart"),
    ],
)
def test_what_is_not_one_order_field_is_a_bad_post(
    body: bytes, content_type: str | None, reason: str
) -> None:
    with pytest.raises(BadPost) as refused:
        extract_order(body, content_type)
    assert refused.value.status == 400 and reason in refused.value.reason


@hsettings(max_examples=1000, deadline=None)
@given(st.binary(max_size=40) | st.text("%+\\x0aF9zé", max_size=40).map(str.encode))
def test_percent_decoding_equals_the_standard_library(value: bytes) -> None:
    assert percent_decode(value) == unquote_to_bytes(value)

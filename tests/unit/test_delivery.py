"""What a delivery keeps of the headers a post sent: pure, no HTTP, no SQLite."""

from __future__ import annotations

from ledger.log import HEADER_BOUND, Delivery


def test_header_values_are_kept_to_a_bound_with_their_length() -> None:
    d = Delivery.of("t", "127.0.0.1", "POST", "text/plain; x=" + "j" * 12_000, 7, "s" * 3_000)
    assert (len(d.content_type or ""), d.content_type_length) == (HEADER_BOUND, 12_014)
    assert (len(d.store_id or ""), d.store_id_length) == (HEADER_BOUND, 3_000)
    short = Delivery.of("t", None, "POST", "application/x-www-form-urlencoded", None, "70412")
    assert (short.content_type, short.content_type_length) == (
        "application/x-www-form-urlencoded",
        None,
    )
    assert (short.store_id, short.store_id_length) == ("70412", None)

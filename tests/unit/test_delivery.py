"""What a delivery keeps of the headers a post sent: pure, no HTTP, no SQLite."""

from __future__ import annotations

from ledger.log import HEADER_BOUND, Delivery, HeaderLengths, bounded


def test_header_values_are_kept_to_a_bound_with_their_length() -> None:
    sent = Delivery("t", "127.0.0.1", "POST", "text/plain; x=" + "j" * 12_000, 7, "s" * 3_000)
    kept, lengths = bounded(sent)
    assert (len(kept.content_type or ""), len(kept.store_id or "")) == (HEADER_BOUND, HEADER_BOUND)
    assert lengths == HeaderLengths(12_014, 3_000)
    assert kept.content_type == (sent.content_type or "")[:HEADER_BOUND]
    short = Delivery("t", None, "POST", "application/x-www-form-urlencoded", None, "70412")
    assert bounded(short) == (short, HeaderLengths(None, None))

"""The chains as an auditor recomputes them, with ten lines of their own (the README's)."""

from __future__ import annotations

import hashlib
import json

from ledger.chain import delivery_link, event_link


def auditors_link(prefix: str, row: dict[str, object]) -> str:
    """The README's formula, written out independently of ledger/chain.py."""
    values = {k: v for k, v in row.items() if v is not None}
    text = json.dumps(values, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(prefix.encode() + text.encode()).hexdigest()


EVENT = {"seq": 7, "type": "OrderSnapshotReceived", "received_at": "2026-12-02T10:00:00.0Z",
         "store_id": "70412", "order_id": "3910457", "order_updated_at": None,
         "payload_sha256": "ab" * 32, "prev_hash": "cd" * 32}  # fmt: skip
DELIVERY = {"id": 3, "received_at": "2026-12-02T10:00:00.0Z", "remote_addr": "203.0.113.9",
            "method": "POST", "content_type": "application/x-www-form-urlencoded",
            "body_bytes": 4511, "store_id": "70412", "outcome": "rejected", "http_status": 403,
            "reason": "Köln: unknown store id", "signature_variant": None,
            "payload_sha256": None, "order_id": None, "seq": None}  # fmt: skip


def test_an_event_link_is_the_published_formula() -> None:
    assert event_link(EVENT) == auditors_link("orderdesk-ledger/chain/v2\n", EVENT)


def test_a_delivery_link_is_the_published_formula() -> None:
    expected = auditors_link(
        "orderdesk-ledger/deliveries/v1\n", {**DELIVERY, "prev_hash": "0" * 64}
    )
    assert delivery_link(DELIVERY, "0" * 64) == expected


def test_a_column_added_later_leaves_earlier_hashes_as_they_were() -> None:
    assert delivery_link({**DELIVERY, "rehearsal": None}, "0" * 64) == delivery_link(
        DELIVERY, "0" * 64
    )
    assert delivery_link({**DELIVERY, "rehearsal": 1}, "0" * 64) != delivery_link(
        DELIVERY, "0" * 64
    )


def test_any_field_and_the_link_itself_change_the_hash() -> None:
    for key in EVENT:
        assert event_link({**EVENT, key: "x"}) != event_link(EVENT), key

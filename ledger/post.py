"""The checks a post must pass before it reaches the writer. Pure functions only.

In the order Order Desk's own sample receiver checks: the store, its signature, then the
order JSON (which only a signed post gets as far as).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import NamedTuple

from .payload import decode_payload, order_identity
from .signature import check_signature, store_api_key


class Snapshot(NamedTuple):
    """A verified order snapshot: the exact text and what the log indexes it by."""

    store_id: str
    payload: str
    payload_sha256: str
    order_id: str
    order_updated_at: str | None
    signature_variant: str


def check_post(
    order: bytes, store_header: str | None, hash_header: str | None, stores: Mapping[str, str]
) -> Snapshot:
    """A genuine snapshot of ``order``, or ``NotSigned`` / ``BadPost`` saying why not."""
    store_id, api_key = store_api_key(stores, store_header)
    variant = check_signature(order, hash_header, api_key)
    payload = decode_payload(order)
    order_id, updated = order_identity(payload)
    return Snapshot(
        store_id=store_id,
        payload=payload,
        payload_sha256=hashlib.sha256(order).hexdigest(),
        order_id=order_id,
        order_updated_at=updated,
        signature_variant=variant,
    )

"""Who signed a post: the store it claims, and the HMAC Order Desk computes with its key."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from .errors import NotSigned
from .form import percent_decode

STANDARD = "standard"
LEGACY = "legacy-rawurldecode"


def sign(api_key: str, message: bytes) -> str:
    return hmac.new(api_key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def check_signature(order: bytes, claimed: str | None, api_key: str) -> str:
    """Return which signing variant matched, or raise ``NotSigned``."""
    if not claimed:
        raise NotSigned("missing X-ORDER-DESK-HASH header")
    claimed = claimed.strip().lower()
    if hmac.compare_digest(sign(api_key, order), claimed):
        return STANDARD
    # Older official samples hashed rawurldecode(order): a second percent-decoding.
    legacy = percent_decode(order)
    if legacy != order and hmac.compare_digest(sign(api_key, legacy), claimed):
        return LEGACY
    raise NotSigned("X-ORDER-DESK-HASH does not match the order")


def store_api_key(stores: Mapping[str, str], store_id: str | None) -> tuple[str, str]:
    """The store id a post claims and that store's API key; fail closed on any other."""
    if not store_id or not store_id.strip():
        raise NotSigned("missing X-ORDER-DESK-STORE-ID header")
    api_key = stores.get(store_id.strip())
    if api_key is None:
        raise NotSigned("unknown store id")
    return store_id.strip(), api_key

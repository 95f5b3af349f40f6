"""Decide whether a post is a genuine Order Desk snapshot. Pure functions only."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import unquote_to_bytes

import msgspec

from .errors import Rejected
from .payload import Order, from_mapping

MAX_DEPTH = 64
STANDARD = "standard"
LEGACY = "legacy-rawurldecode"


@dataclass(frozen=True)
class Snapshot:
    """A verified order snapshot: the exact text and what the log indexes it by."""

    store_id: str
    payload: str
    payload_sha256: str
    order_id: str
    order_updated_at: str | None
    signature_variant: str


def sign(key: str, message: bytes) -> str:
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def check_signature(order: bytes, claimed: str | None, key: str) -> str:
    """Return which signing variant matched, or raise ``Rejected(403)``."""
    if not claimed:
        raise Rejected(403, "missing X-ORDER-DESK-HASH header")
    claimed = claimed.strip().lower()
    if hmac.compare_digest(sign(key, order), claimed):
        return STANDARD
    # Older official samples hashed rawurldecode(order): a second percent-decoding.
    legacy = unquote_to_bytes(order)
    if legacy != order and hmac.compare_digest(sign(key, legacy), claimed):
        return LEGACY
    raise Rejected(403, "X-ORDER-DESK-HASH does not match the order")


def store_key(stores: Mapping[str, str], store_id: str | None) -> tuple[str, str]:
    if not store_id or not store_id.strip():
        raise Rejected(403, "missing X-ORDER-DESK-STORE-ID header")
    key = stores.get(store_id.strip())
    if key is None:
        raise Rejected(403, "unknown store id")
    return store_id.strip(), key


def nesting_depth(text: str) -> int:
    """Deepest bracket nesting outside strings; cheap guard before json.loads."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


# msgspec parses twice as fast as the standard library; numbers with a fraction or an
# exponent become exact Decimals. NaN and Infinity are refused, as JSON requires.
_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_ORDER = msgspec.json.Decoder(Order, float_hook=Decimal)


class _Identity(msgspec.Struct):
    """All the receiver needs of the order: the rest is checked as JSON and skipped."""

    id: Any = None
    date_updated: Any = None


_IDENTITY = msgspec.json.Decoder(_Identity)


def _check_depth(payload: str) -> None:
    # Counting brackets runs at C speed; the exact scan only runs when it could matter.
    brackets = payload.count("[") + payload.count("{")
    if brackets > MAX_DEPTH and nesting_depth(payload) > MAX_DEPTH:
        raise Rejected(400, f"order JSON nests deeper than {MAX_DEPTH} levels")


def _not_json(exc: Exception) -> Rejected:
    return Rejected(400, f"order is not valid JSON: {str(exc).splitlines()[0][:120]}")


def _big_int(digits: str) -> int | Decimal:
    # Python refuses to build ints of more than 4300 digits; a Decimal holds any.
    return int(digits) if len(digits) < 4000 else Decimal(digits)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _decode_huge(payload: str) -> Any:
    """The standard library's parser, for integers msgspec will not build, held to what
    msgspec accepts: no NaN or Infinity, no lone surrogate."""
    try:
        order = json.loads(
            payload, parse_float=Decimal, parse_int=_big_int, parse_constant=_no_constant
        )
        json.dumps(order, ensure_ascii=False, default=str).encode("utf-8")
    except (ValueError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
        raise _not_json(exc) from None
    return order


def parse_order(payload: str) -> Order:
    """Parse the order into the records the projections read, with exact decimals; raise
    ``Rejected(400)`` if unusable."""
    _check_depth(payload)
    try:
        return _ORDER.decode(payload)
    except msgspec.ValidationError:
        pass  # not an object, a nesting the records do not admit, or a huge integer
    except (msgspec.DecodeError, RecursionError) as exc:
        raise _not_json(exc) from None
    try:  # the typed decode stops at its first mismatch: the rest may still be malformed
        order = _DECODER.decode(payload)
    except msgspec.ValidationError:  # an integer too long for Python's int
        order = _decode_huge(payload)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise _not_json(exc) from None
    if not isinstance(order, dict):
        raise Rejected(400, "order JSON is not an object")
    return from_mapping(order)


def order_identity(payload: str) -> tuple[str, str | None]:
    """Check the payload is a JSON object with a usable id, without building it (~1.5 us)."""
    _check_depth(payload)
    try:
        identity = _IDENTITY.decode(payload)
    except msgspec.ValidationError:
        raise Rejected(400, "order JSON is not an object") from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise _not_json(exc) from None
    order_id, updated = identity.id, identity.date_updated
    if isinstance(order_id, bool) or not isinstance(order_id, str | int) or str(order_id) == "":
        raise Rejected(400, "order JSON has no usable 'id'")
    return str(order_id), updated if isinstance(updated, str) and updated else None


def decode_payload(order: bytes) -> str:
    try:
        return order.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "order is not UTF-8") from None


def verify_post(
    order: bytes, store_header: str | None, hash_header: str | None, stores: Mapping[str, str]
) -> Snapshot:
    """Check a post in the order Order Desk's own sample does: store, hash, then JSON."""
    store_id, key = store_key(stores, store_header)
    variant = check_signature(order, hash_header, key)
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

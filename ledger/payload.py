"""An Order Desk order payload: the parts the projections read, as typed records, and
the parsers that check it is a usable JSON object.

msgspec decodes a payload straight into these, skipping every other field in C: a
third faster than building the whole payload as dicts, on the live path and in
``ledger rebuild`` alike. Every field is ``Any`` because payloads drift across eras
(numbers as strings, ``[]`` for an empty map); ``project`` judges the values. A
payload whose nesting the types do not admit (a customer that is a string, a line
that is not an object) is decoded generically and brought into the same records by
``from_mapping``, so the projection sees one shape whatever arrived.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from .errors import BadPost

MAX_DEPTH = 64


class Address(msgspec.Struct, frozen=True):
    first_name: Any = None
    last_name: Any = None
    city: Any = None
    state: Any = None
    country: Any = None


class Line(msgspec.Struct, frozen=True):
    id: Any = None
    code: Any = None
    name: Any = None
    quantity: Any = None
    price: Any = None
    weight: Any = None
    category_code: Any = None
    variation_list: Any = None


class Shipment(msgspec.Struct, frozen=True):
    id: Any = None
    tracking_number: Any = None
    carrier_code: Any = None
    shipment_method: Any = None
    date_shipped: Any = None
    cost: Any = None
    weight: Any = None
    tracking_url: Any = None


class Order(msgspec.Struct):
    date_added: Any = None
    date_updated: Any = None
    folder_id: Any = None
    source_name: Any = None
    source_id: Any = None
    email: Any = None
    shipping_method: Any = None
    payment_type: Any = None
    payment_status: Any = None
    quantity_total: Any = None
    weight_total: Any = None
    product_total: Any = None
    shipping_total: Any = None
    handling_total: Any = None
    tax_total: Any = None
    discount_total: Any = None
    order_total: Any = None
    refund_total: Any = None
    processor_balance: Any = None
    # An empty map arrives as [], hence the list; anything else falls back to from_mapping.
    customer: Address | list[Any] | None = None
    shipping: Address | list[Any] | None = None
    order_items: list[Line] | None = None
    order_shipments: list[Shipment] | None = None


Record = TypeVar("Record", Address, Line, Shipment, Order)


def _record(kind: type[Record], value: Mapping[str, Any]) -> Record:
    return kind(**{name: value.get(name) for name in kind.__struct_fields__})


def _records(kind: type[Record], value: Any) -> Any:
    # Members that are not objects stay as they are, for the projection to report.
    if not isinstance(value, list):
        return value
    return [_record(kind, v) if isinstance(v, dict) else v for v in value]


def from_mapping(order: Mapping[str, Any]) -> Order:
    """The records of a generically decoded order, whatever its nesting."""
    doc = _record(Order, order)
    for name in ("customer", "shipping"):
        value = getattr(doc, name)
        setattr(doc, name, _record(Address, value) if isinstance(value, dict) else value)
    doc.order_items = _records(Line, doc.order_items)
    doc.order_shipments = _records(Shipment, doc.order_shipments)
    return doc


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
        raise BadPost(f"order JSON nests deeper than {MAX_DEPTH} levels")


def _not_json(exc: Exception) -> BadPost:
    return BadPost(f"order is not valid JSON: {str(exc).splitlines()[0][:120]}")


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
    ``BadPost`` if unusable."""
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
        raise BadPost("order JSON is not an object")
    return from_mapping(order)


def order_identity(payload: str) -> tuple[str, str | None]:
    """Check the payload is a JSON object with a usable id, without building it (~1.5 us)."""
    _check_depth(payload)
    try:
        identity = _IDENTITY.decode(payload)
    except msgspec.ValidationError:
        raise BadPost("order JSON is not an object") from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise _not_json(exc) from None
    order_id, updated = identity.id, identity.date_updated
    if isinstance(order_id, bool) or not isinstance(order_id, str | int) or str(order_id) == "":
        raise BadPost("order JSON has no usable 'id'")
    return str(order_id), updated if isinstance(updated, str) and updated else None


def decode_payload(order: bytes) -> str:
    try:
        return order.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPost("order is not UTF-8") from None

"""The parts of an Order Desk payload that the projections read, as typed records.

msgspec decodes a payload straight into these, skipping every other field in C: a
third faster than building the whole payload as dicts, on the live path and in
``ledger rebuild`` alike. Every field is ``Any`` because payloads drift across eras
(numbers as strings, ``[]`` for an empty map); ``project`` judges the values. A
payload whose nesting the types do not admit (a customer that is a string, a line
that is not an object) is decoded generically and brought into the same records by
``from_mapping``, so the projection sees one shape whatever arrived.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec


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

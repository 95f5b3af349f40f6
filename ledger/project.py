"""From one order snapshot to the rows of the read models. Pure functions only.

Order Desk payloads drift across eras: fields go missing, numbers arrive as
strings, empty maps arrive as ``[]``. Nothing here raises on a payload; what it
cannot use becomes an *issue* string that the writer records beside the event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

OPEN, SHIPPED, CANCELED = "open", "shipped", "canceled"
BUCKETS = ("ordered", "shipped", "canceled", "open", "orders")
LIMIT = Decimal(10) ** 15  # beyond any order; keeps cents inside SQLite's 64-bit integers
MONEY_FIELDS = (
    "product_total",
    "shipping_total",
    "handling_total",
    "tax_total",
    "discount_total",
    "order_total",
    "refund_total",
    "processor_balance",
)


@dataclass
class Issues:
    found: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        if text not in self.found:
            self.found.append(text)


def as_map(value: Any) -> Mapping[str, Any]:
    # Order Desk serialises an empty map as [].
    return value if isinstance(value, dict) else {}


def as_list(value: Any, name: str, issues: Issues) -> list[Any]:
    if value is None or value == {} or value == "":
        return []
    if isinstance(value, list):
        return value
    issues.add(f"{name} is not a list")
    return []


def text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def decimal(value: Any, name: str, issues: Issues) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip()) if isinstance(value, str | int | Decimal) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        issues.add(f"{name} {str(value)[:40]!r} is not a number")
        return None
    if abs(number) >= LIMIT:
        issues.add(f"{name} {str(value)[:40]} is out of range")
        return None
    return number


def cents(value: Any, name: str, issues: Issues) -> int | None:
    number = decimal(value, name, issues)
    if number is None:
        return None
    scaled = number * 100
    whole = scaled.to_integral_value()
    if scaled != whole:
        issues.add(f"{name} {value} has fractions of a cent (rounded half-even)")
    return int(whole)


def whole(value: Any, name: str, issues: Issues) -> int | None:
    number = decimal(value, name, issues)
    if number is None:
        return None
    if number != number.to_integral_value():
        issues.add(f"{name} {value} is not a whole number (truncated)")
    return int(number)


def person_name(address: Mapping[str, Any]) -> str | None:
    parts = [text(address.get(k)) or "" for k in ("first_name", "last_name")]
    name = " ".join(p for p in parts if p).strip()
    return name or None


def state_of(folder_name: str | None, shipments: int) -> str:
    """The default rule: a folder named like 'cancel' wins, then any shipment."""
    if folder_name and "cancel" in folder_name.lower():
        return CANCELED
    return SHIPPED if shipments else OPEN


@dataclass(frozen=True)
class Item:
    line: int
    item_id: str | None
    code: str
    name: str | None
    quantity: int
    price_cents: int | None
    weight: str | None
    category_code: str | None
    variation: str | None


@dataclass(frozen=True)
class Shipment:
    line: int
    shipment_id: str | None
    tracking_number: str | None
    carrier_code: str | None
    shipment_method: str | None
    date_shipped: str | None
    cost_cents: int | None
    weight: str | None
    tracking_url: str | None


@dataclass(frozen=True)
class OrderView:
    """What one snapshot says about its order, typed."""

    fields: dict[str, Any]
    items: tuple[Item, ...]
    shipments: tuple[Shipment, ...]
    issues: tuple[str, ...]


def _item(line: int, raw: Any, issues: Issues) -> Item | None:
    if not isinstance(raw, dict):
        issues.add(f"order_items[{line}] is not an object")
        return None
    where = f"order_items[{line}]"
    quantity = whole(raw.get("quantity"), f"{where}.quantity", issues)
    variation = raw.get("variation_list")
    return Item(
        line=line,
        item_id=text(raw.get("id")),
        code=text(raw.get("code")) or "",
        name=text(raw.get("name")),
        quantity=quantity if quantity is not None else 0,
        price_cents=cents(raw.get("price"), f"{where}.price", issues),
        weight=text(raw.get("weight")),
        category_code=text(raw.get("category_code")),
        variation=json.dumps(variation, ensure_ascii=False, sort_keys=True, default=str)
        if isinstance(variation, dict) and variation
        else None,
    )


def _shipment(line: int, raw: Any, issues: Issues) -> Shipment | None:
    if not isinstance(raw, dict):
        issues.add(f"order_shipments[{line}] is not an object")
        return None
    return Shipment(
        line=line,
        shipment_id=text(raw.get("id")),
        tracking_number=text(raw.get("tracking_number")),
        carrier_code=text(raw.get("carrier_code")),
        shipment_method=text(raw.get("shipment_method")),
        date_shipped=text(raw.get("date_shipped")),
        cost_cents=cents(raw.get("cost"), f"order_shipments[{line}].cost", issues),
        weight=text(raw.get("weight")),
        tracking_url=text(raw.get("tracking_url")),
    )


def view_order(order: Mapping[str, Any]) -> OrderView:
    issues = Issues()
    customer, shipping = as_map(order.get("customer")), as_map(order.get("shipping"))
    raw_items = as_list(order.get("order_items"), "order_items", issues)
    raw_shipments = as_list(order.get("order_shipments"), "order_shipments", issues)
    items = tuple(i for n, r in enumerate(raw_items) if (i := _item(n, r, issues)))
    shipments = tuple(s for n, r in enumerate(raw_shipments) if (s := _shipment(n, r, issues)))
    fields: dict[str, Any] = {
        "date_added": text(order.get("date_added")),
        "folder_id": whole(order.get("folder_id"), "folder_id", issues),
        "source_name": text(order.get("source_name")),
        "source_id": text(order.get("source_id")),
        "email": text(order.get("email")),
        "customer_name": person_name(customer),
        "customer_city": text(customer.get("city")),
        "customer_country": text(customer.get("country")),
        "shipping_name": person_name(shipping),
        "shipping_city": text(shipping.get("city")),
        "shipping_state": text(shipping.get("state")),
        "shipping_country": text(shipping.get("country")),
        "shipping_method": text(order.get("shipping_method")),
        "payment_type": text(order.get("payment_type")),
        "payment_status": text(order.get("payment_status")),
        "quantity_total": whole(order.get("quantity_total"), "quantity_total", issues),
        "weight_total": text(order.get("weight_total")),
        "items_count": len(items),
        "shipments_count": len(shipments),
    }
    for name in MONEY_FIELDS:
        fields[f"{name}_cents"] = cents(order.get(name), name, issues)
    return OrderView(fields, items, shipments, tuple(issues.found))


Buckets = dict[str, dict[str, int]]


def buckets(items: Iterable[tuple[str, int]], state: str) -> Buckets:
    """Per SKU: units ordered/shipped/canceled/open and whether the order holds it."""
    out: Buckets = {}
    for code, quantity in items:
        b = out.setdefault(code, dict.fromkeys(BUCKETS, 0))
        b["ordered"] += 0 if state == CANCELED else quantity
        b["shipped"] += quantity if state == SHIPPED else 0
        b["canceled"] += quantity if state == CANCELED else 0
        b["orders"] = 1
    for b in out.values():
        b["open"] = b["ordered"] - b["shipped"]
    return out


def movements(before: Buckets, after: Buckets) -> Buckets:
    """The per-SKU change from one state of an order to the next; zero rows left out."""
    out: Buckets = {}
    for code in sorted(before.keys() | after.keys()):
        old = before.get(code, {})
        new = after.get(code, {})
        delta = {k: new.get(k, 0) - old.get(k, 0) for k in BUCKETS}
        if any(delta.values()):
            out[code] = delta
    return out


def supersedes(new: tuple[str | None, int], current: tuple[str | None, int] | None) -> bool:
    """Latest ``date_updated`` wins, ties go to the higher seq; missing dates sort first."""
    if current is None:
        return True
    return (new[0] or "", new[1]) > (current[0] or "", current[1])


def lines_summary(items: Iterable[Item]) -> str:
    return "; ".join(
        f"{i.quantity} x {i.code or '(no code)'} @ {format_cents(i.price_cents)}" for i in items
    )


def shipments_summary(shipments: Iterable[Shipment]) -> str:
    return "; ".join(
        " ".join(p for p in (s.carrier_code, s.tracking_number, s.date_shipped) if p)
        or "(shipment)"
        for s in shipments
    )


def format_cents(value: int | None) -> str:
    if value is None:
        return "?"
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value) // 100}.{abs(value) % 100:02d}"


HISTORY_FIELDS = ("folder_id", "payment_status", "order_total_cents", "lines", "shipments")


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> str:
    """A one-line account of what differs from the previously received snapshot."""
    if before is None:
        return "first snapshot"
    parts = []
    for name in HISTORY_FIELDS:
        old, new = before.get(name), after.get(name)
        if old != new:
            if name == "order_total_cents":
                old, new = format_cents(old), format_cents(new)
            parts.append(f"{name.removesuffix('_cents')}: {old or '∅'} → {new or '∅'}")
    return "; ".join(parts) or "no tracked change"

"""From one order snapshot to the rows of the read models. Pure functions only.

Order Desk payloads drift across eras: fields go missing, numbers arrive as
strings, empty maps arrive as ``[]``. Nothing here raises on a payload; what it
cannot use becomes an *issue* string that the writer records beside the event.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from . import payload

OPEN, SHIPPED, CANCELED = "open", "shipped", "canceled"
BUCKETS = ("ordered", "shipped", "canceled", "open", "orders")
LIMIT = Decimal(10) ** 15  # beyond any order; keeps cents inside SQLite's 64-bit integers
SMALL = 10**15
SQL_INTEGER = 2**63  # SQLite's INTEGER is signed 64-bit
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


NO_ADDRESS = payload.Address()


def as_address(value: Any) -> payload.Address:
    # Order Desk serialises an empty map as [].
    return value if isinstance(value, payload.Address) else NO_ADDRESS


def as_list(value: Any, name: str, issues: Issues) -> list[Any]:
    if value is None or value == {} or value == "":
        return []
    if isinstance(value, list):
        return value
    issues.add(f"{name} is not a list")
    return []


def text(value: Any) -> str | None:
    if type(value) is str:  # the common case first: this runs ~30 times per snapshot
        return value
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def decimal(value: Any, name: str, issues: Issues) -> Decimal | None:
    kind = type(value)
    number: Decimal | None = None
    if kind is Decimal or kind is int:
        number = Decimal(value)
    elif kind is str:
        if value == "":
            return None
        with contextlib.suppress(InvalidOperation):
            number = Decimal(value.strip())
    elif value is None or kind is bool:
        return None
    if number is None or not number.is_finite():
        issues.add(f"{name} {str(value)[:40]!r} is not a number")
        return None
    if abs(number) >= LIMIT:
        issues.add(f"{name} {str(value)[:40]} is out of range")
        return None
    return number


def cents(value: Any, name: str, issues: Issues) -> int | None:
    kind = type(value)
    if kind is int and -SMALL < value < SMALL:
        return int(value) * 100
    if kind is Decimal and value.is_finite() and -LIMIT < value < LIMIT:
        scaled: Decimal = value.scaleb(2)
        if scaled == scaled.to_integral_value():  # the usual case: whole cents
            return int(scaled)
    number = decimal(value, name, issues)
    if number is None:
        return None
    scaled = number.scaleb(2)
    whole = scaled.to_integral_value()
    if scaled != whole:
        issues.add(f"{name} {value} has fractions of a cent (rounded half-even)")
    return int(whole)


def whole(value: Any, name: str, issues: Issues) -> int | None:
    if type(value) is int and -SMALL < value < SMALL:
        return value
    number = decimal(value, name, issues)
    if number is None:
        return None
    if number != number.to_integral_value():
        issues.add(f"{name} {value} is not a whole number (truncated)")
    return int(number)


def person_name(address: payload.Address) -> str | None:
    parts = [text(address.first_name) or "", text(address.last_name) or ""]
    name = " ".join(p for p in parts if p).strip()
    return name or None


def state_of(folder_name: str | None, shipments: int) -> str:
    """The default rule: a folder named like 'cancel' wins, then any shipment."""
    if folder_name and "cancel" in folder_name.lower():
        return CANCELED
    return SHIPPED if shipments else OPEN


class Item(NamedTuple):
    line: int
    item_id: str | None
    code: str
    name: str | None
    quantity: int
    price_cents: int | None
    weight: str | None
    category_code: str | None
    variation: str | None


class Shipment(NamedTuple):
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


# What json.dumps(..., ensure_ascii=False, sort_keys=True, default=str) builds on every
# call, built once.
VARIATION = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)


def _item(line: int, raw: Any, issues: Issues) -> Item | None:
    if not isinstance(raw, payload.Line):
        issues.add(f"order_items[{line}] is not an object")
        return None
    where = f"order_items[{line}]"
    quantity = whole(raw.quantity, f"{where}.quantity", issues)
    variation = raw.variation_list
    return Item(
        line=line,
        item_id=text(raw.id),
        code=text(raw.code) or "",
        name=text(raw.name),
        quantity=quantity if quantity is not None else 0,
        price_cents=cents(raw.price, f"{where}.price", issues),
        weight=text(raw.weight),
        category_code=text(raw.category_code),
        variation=VARIATION.encode(variation)
        if isinstance(variation, dict) and variation
        else None,
    )


def _shipment(line: int, raw: Any, issues: Issues) -> Shipment | None:
    if not isinstance(raw, payload.Shipment):
        issues.add(f"order_shipments[{line}] is not an object")
        return None
    return Shipment(
        line=line,
        shipment_id=text(raw.id),
        tracking_number=text(raw.tracking_number),
        carrier_code=text(raw.carrier_code),
        shipment_method=text(raw.shipment_method),
        date_shipped=text(raw.date_shipped),
        cost_cents=cents(raw.cost, f"order_shipments[{line}].cost", issues),
        weight=text(raw.weight),
        tracking_url=text(raw.tracking_url),
    )


def view_order(order: payload.Order) -> OrderView:
    issues = Issues()
    customer, shipping = as_address(order.customer), as_address(order.shipping)
    raw_items = as_list(order.order_items, "order_items", issues)
    raw_shipments = as_list(order.order_shipments, "order_shipments", issues)
    items = tuple(i for n, r in enumerate(raw_items) if (i := _item(n, r, issues)))
    shipments = tuple(s for n, r in enumerate(raw_shipments) if (s := _shipment(n, r, issues)))
    fields: dict[str, Any] = {
        "date_added": text(order.date_added),
        "folder_id": whole(order.folder_id, "folder_id", issues),
        "source_name": text(order.source_name),
        "source_id": text(order.source_id),
        "email": text(order.email),
        "customer_name": person_name(customer),
        "customer_city": text(customer.city),
        "customer_country": text(customer.country),
        "shipping_name": person_name(shipping),
        "shipping_city": text(shipping.city),
        "shipping_state": text(shipping.state),
        "shipping_country": text(shipping.country),
        "shipping_method": text(order.shipping_method),
        "payment_type": text(order.payment_type),
        "payment_status": text(order.payment_status),
        "quantity_total": whole(order.quantity_total, "quantity_total", issues),
        "weight_total": text(order.weight_total),
        "items_count": len(items),
        "shipments_count": len(shipments),
    }
    for name in MONEY_FIELDS:
        fields[f"{name}_cents"] = cents(getattr(order, name), name, issues)
    fields["items_total_cents"], unpriced = items_total(items, issues)
    fields["totals_problem"] = totals_problem(fields, unpriced)
    return OrderView(fields, items, shipments, tuple(issues.found))


def items_total(items: Iterable[Item], issues: Issues) -> tuple[int | None, int]:
    """Sum of quantity x price over the priced lines, and how many lines have no price."""
    total = sum(i.quantity * i.price_cents for i in items if i.price_cents is not None)
    unpriced = sum(i.price_cents is None for i in items)
    if abs(total) >= SQL_INTEGER:
        issues.add(f"items total {total} cents is out of range")
        return None, unpriced
    return total, unpriced


def totals_problem(fields: Mapping[str, Any], unpriced: int) -> str | None:
    """Why the order's totals do not add up, or None when they do.

    Kept with the order (and indexed where not None) so that the reconciliation view
    reads the few problem orders instead of summing every line of every order.
    """
    product, total = fields["product_total_cents"], fields["order_total_cents"]
    items = fields["items_total_cents"]
    added = ("product", "shipping", "handling", "tax")
    computed = sum(fields[f"{m}_total_cents"] or 0 for m in added)
    computed -= fields["discount_total_cents"] or 0
    found = []
    if product is None:
        found.append("product_total missing")
    if total is None:
        found.append("order_total missing")
    if unpriced:
        found.append(f"{unpriced} line(s) without a price")
    if items is None:
        found.append("items total out of range")
    elif items != (product or 0):
        found.append("items x price != product_total")
    if computed != (total or 0):
        found.append("product + shipping + handling + tax - discount != order_total")
    return "; ".join(found) or None


VIEW_FIELDS = (
    "date_added", "folder_id", "source_name", "source_id", "email", "customer_name",
    "customer_city", "customer_country", "shipping_name", "shipping_city", "shipping_state",
    "shipping_country", "shipping_method", "payment_type", "payment_status", "quantity_total",
    "weight_total", "items_count", "shipments_count", *(f"{m}_cents" for m in MONEY_FIELDS),
    "items_total_cents", "totals_problem",
)  # fmt: skip
Counts = tuple[int, int, int, int, int]  # units per BUCKETS, in that order
Buckets = dict[str, Counts]
Line = tuple[str, int]  # (code, quantity)
NONE: Counts = (0, 0, 0, 0, 0)


def buckets(lines: Iterable[Line], state: str) -> Buckets:
    """Per SKU: units ordered/shipped/canceled/open and whether the order holds it."""
    units: dict[str, int] = {}
    for code, quantity in lines:
        units[code] = units.get(code, 0) + quantity
    if state == CANCELED:
        return {code: (0, 0, n, 0, 1) for code, n in units.items()}
    if state == SHIPPED:
        return {code: (n, n, 0, 0, 1) for code, n in units.items()}
    return {code: (n, 0, 0, n, 1) for code, n in units.items()}


def movements(before: Buckets, after: Buckets) -> Buckets:
    """The per-SKU change from one state of an order to the next; zero rows left out."""
    out: Buckets = {}
    for code in sorted(before.keys() | after.keys()):
        old, new = before.get(code, NONE), after.get(code, NONE)
        if old != new:
            out[code] = (new[0] - old[0], new[1] - old[1], new[2] - old[2],
                         new[3] - old[3], new[4] - old[4])  # fmt: skip
    return out


def supersedes(new: tuple[str | None, int], current: tuple[str | None, int] | None) -> bool:
    """Latest ``date_updated`` wins, ties go to the higher seq; missing dates sort first."""
    if current is None:
        return True
    return (new[0] or "", new[1]) > (current[0] or "", current[1])


def format_cents(value: int | None) -> str:
    if value is None:
        return "?"
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value) // 100}.{abs(value) % 100:02d}"


class Summary(NamedTuple):
    """What order_history compares between consecutive snapshots of an order."""

    folder_id: int | None
    payment_status: str | None
    order_total_cents: int | None
    lines: str
    shipments: str


def summarize(view: OrderView) -> Summary:
    return Summary(
        view.fields["folder_id"],
        view.fields["payment_status"],
        view.fields["order_total_cents"],
        "; ".join(
            f"{i.quantity} x {i.code or '(no code)'} @ {format_cents(i.price_cents)}"
            for i in view.items
        ),
        "; ".join(
            " ".join(p for p in (s.carrier_code, s.tracking_number, s.date_shipped) if p)
            or "(shipment)"
            for s in view.shipments
        ),
    )


def changes(before: Summary | None, after: Summary) -> str:
    """A one-line account of what differs from the previously received snapshot."""
    if before is None:
        return "first snapshot"
    parts = []
    for name, old, new in zip(Summary._fields, before, after, strict=True):
        if old != new:
            if name == "order_total_cents":
                old, new = format_cents(old), format_cents(new)  # type: ignore[arg-type]
            parts.append(f"{name.removesuffix('_cents')}: {old or '∅'} → {new or '∅'}")
    return "; ".join(parts) or "no tracked change"


# --- the fold: one order's state from one event to the next ----------------------------------


class OrderState(NamedTuple):
    """All the projection needs to know about an order between two of its events."""

    seq: int  # the current snapshot's seq
    updated_at: str | None
    state: str
    folder_id: int | None
    folder_name: str | None
    shipments_count: int
    lines: tuple[Line, ...]
    last_received: Summary  # the snapshot received last (by seq), current or stale
    snapshots_seen: int
    stale_snapshots: int
    first_seq: int
    last_seq: int


class Step(NamedTuple):
    """What one event did to one order."""

    state: OrderState
    current: OrderView | None  # the snapshot that became current, if it did
    history: tuple[Any, ...] | None  # (applied, stale, *summary, changes) for snapshots
    movements: Buckets


def take_snapshot(
    prior: OrderState | None,
    seq: int,
    updated_at: str | None,
    view: OrderView,
    folder_name: str | None,
) -> Step:
    """Fold one snapshot into its order: it becomes current only if it is the newest."""
    summary = summarize(view)
    applies = supersedes((updated_at, seq), (prior.updated_at, prior.seq) if prior else None)
    history = (
        int(applies),
        int(not applies),
        *summary,
        changes(prior.last_received if prior else None, summary),
    )
    if prior is not None and not applies:
        stale = prior._replace(
            last_received=summary,
            snapshots_seen=prior.snapshots_seen + 1,
            stale_snapshots=prior.stale_snapshots + 1,
            last_seq=seq,
        )
        return Step(stale, None, history, {})
    state = state_of(folder_name, len(view.shipments))
    lines = tuple((i.code, i.quantity) for i in view.items)
    after = OrderState(
        seq=seq,
        updated_at=updated_at,
        state=state,
        folder_id=view.fields["folder_id"],
        folder_name=folder_name,
        shipments_count=len(view.shipments),
        lines=lines,
        last_received=summary,
        snapshots_seen=prior.snapshots_seen + 1 if prior else 1,
        stale_snapshots=prior.stale_snapshots if prior else 0,
        first_seq=prior.first_seq if prior else seq,
        last_seq=seq,
    )
    before = buckets(prior.lines, prior.state) if prior else {}
    return Step(after, view, history, movements(before, buckets(lines, state)))


def rename_folder(prior: OrderState, name: str) -> Step:
    """The order's folder got a (new) name: its state may change, and with it inventory."""
    state = state_of(name, prior.shipments_count)
    after = prior._replace(folder_name=name, state=state)
    moved = movements(buckets(prior.lines, prior.state), buckets(prior.lines, state))
    return Step(after, None, None, moved)

"""From one order snapshot to what it says of the order, typed. Pure functions only.

Order Desk payloads drift across eras: fields go missing, numbers arrive as
strings, empty maps arrive as ``[]``. What a payload holds that the view cannot use
becomes an *issue* string recorded beside the event; the only thing raised is
``NotProjected``, for a snapshot too big to project in bounded time (``view_of``).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from .. import payload
from .tables import Item, OrderFields, Shipment

SQL_INTEGER = 2**63  # SQLite's INTEGER is signed 64-bit
# Numbers at or past a bound are issues, not values (None; a quantity counts 0). The
# bounds keep what SQLite sums over many orders far from 2**63 (~9.2e18): an amount under
# 10**12 of its currency (10**14 cents: 40M dollars even in dong) overflows a day's
# totals only past 92,000 such orders on one day of one store and source; a quantity
# under 10**9, on at most MAX_ROWS lines, keeps a SKU's units in one order under 10**13,
# so inventory overflows only past 922,000 such orders. Past even that, live and rebuild
# still agree (rebuild.py). Other numbers (folder ids, quantity_total) are only stored.
MONEY_LIMIT = 10**12
QUANTITY_LIMIT = 10**9
NUMBER_LIMIT = 10**15


# What one snapshot may hold and still be projected. Each line or shipment costs the
# writer ~30 us, so 10,000 keep the slowest post near 0.3 s; past them every other post
# would wait seconds (docs/performance.md). Brackets are counted in the text before it
# is parsed (str.count runs in C): 5 MB of ``{},`` would build 1.6M records first.
MAX_ROWS = 10_000  # order lines and shipments together
MAX_BRACKETS = 5 * MAX_ROWS  # ``{`` and ``[``, those inside strings too


class NotProjected(Exception):
    """A snapshot the projections leave out: it stays in the log, and why is recorded in
    projection_issues, the same way live and on every rebuild."""


@dataclass
class Issues:
    # A dict keeps the order found and answers "seen already?" at once: 10,000 lines
    # with a bad price each would otherwise cost 50M comparisons.
    seen: dict[str, None] = field(default_factory=dict)

    def add(self, text: str) -> None:
        self.seen[text] = None

    @property
    def found(self) -> list[str]:
        return list(self.seen)


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


def decimal(value: Any, name: str, issues: Issues, limit: int = NUMBER_LIMIT) -> Decimal | None:
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
    if abs(number) >= limit:
        issues.add(f"{name} {str(value)[:40]} is out of range")
        return None
    return number


def cents(value: Any, name: str, issues: Issues) -> int | None:
    kind = type(value)
    if kind is int and -MONEY_LIMIT < value < MONEY_LIMIT:
        return int(value) * 100
    if kind is Decimal and value.is_finite() and -MONEY_LIMIT < value < MONEY_LIMIT:
        scaled: Decimal = value.scaleb(2)
        if scaled == scaled.to_integral_value():  # the usual case: whole cents
            return int(scaled)
    number = decimal(value, name, issues, MONEY_LIMIT)
    if number is None:
        return None
    scaled = number.scaleb(2)
    whole_cents = scaled.to_integral_value()
    if scaled != whole_cents:
        issues.add(f"{name} {value} has fractions of a cent (rounded half-even)")
    return int(whole_cents)


def whole(value: Any, name: str, issues: Issues, limit: int = NUMBER_LIMIT) -> int | None:
    if type(value) is int and -limit < value < limit:
        return value
    number = decimal(value, name, issues, limit)
    if number is None:
        return None
    if number != number.to_integral_value():
        issues.add(f"{name} {value} is not a whole number (truncated)")
    return int(number)


# Order Desk's own form, ``YYYY-MM-DD HH:MM:SS`` in UTC, and the ISO 8601 / RFC 3339 forms
# with ``T``, a fraction of a second, ``Z`` or an offset (``+HH:MM``, ``+HHMM``, ``+HH``).
TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[ Tt](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?"
    r"(?:[Zz]|([+-])(\d\d)(?::?(\d\d))?)?"
)
ORDER_DESK_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def instant(value: Any, name: str, issues: Issues) -> str | None:
    """A time as the instant it names, in UTC, written ``YYYY-MM-DD HH:MM:SS[.fraction]``
    (the fraction without trailing zeros), so that comparing the text compares the times;
    Order Desk's own form comes back as it is. None when missing or unreadable (an issue):
    such a snapshot is ordered before every time, ties by seq (``fold.supersedes``)."""
    shown = text(value)
    if not shown:
        return None
    at = utc(shown.strip())
    if at is None:
        issues.add(f"{name} {shown[:40]!r} is not a time (ordered before every time)")
    return at


def utc(shown: str) -> str | None:
    """The instant ``shown`` names, written as ``instant`` says; None if it names none."""
    if ORDER_DESK_TIME.fullmatch(shown):  # nearly every one, and already the instant's form
        try:
            datetime.fromisoformat(shown)  # in C, ~0.2 us: a real day and time?
        except ValueError:
            return None
        return shown
    match = TIME.fullmatch(shown)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    try:
        at = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
        if sign:
            hours, minutes = int(off_h), int(off_m or 0)
            if hours > 23 or minutes > 59:
                return None
            offset = timedelta(hours=hours, minutes=minutes)
            at = at - offset if sign == "+" else at + offset
    except (ValueError, OverflowError):  # no such day or time, or shifted out of the calendar
        return None
    digits = (fraction or "").rstrip("0")
    return at.isoformat(" ") + (f".{digits}" if digits else "")


def person_name(address: payload.Address) -> str | None:
    parts = [text(address.first_name) or "", text(address.last_name) or ""]
    name = " ".join(p for p in parts if p).strip()
    return name or None


class OrderView(NamedTuple):
    """What one snapshot says about its order, typed."""

    fields: OrderFields
    updated_at: str | None  # date_updated as an instant (``instant``): what orders snapshots
    folder_id: int | None
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
    quantity = whole(raw.quantity, f"{where}.quantity", issues, QUANTITY_LIMIT)
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


def view_of(raw: str) -> OrderView:
    """What one payload says of its order; NotProjected if it is beyond the bounds."""
    # Each bracket is a character: a text no longer than the bound cannot exceed it.
    brackets = raw.count("{") + raw.count("[") if len(raw) > MAX_BRACKETS else 0
    if brackets > MAX_BRACKETS:
        raise NotProjected(f"{brackets:,} brackets, more than {MAX_BRACKETS:,}")
    return view_order(payload.parse_order(raw))


def view_order(order: payload.Order) -> OrderView:
    issues = Issues()
    customer, shipping = as_address(order.customer), as_address(order.shipping)
    raw_items = as_list(order.order_items, "order_items", issues)
    raw_shipments = as_list(order.order_shipments, "order_shipments", issues)
    if len(raw_items) + len(raw_shipments) > MAX_ROWS:
        raise NotProjected(
            f"{len(raw_items):,} lines and {len(raw_shipments):,} shipments,"
            f" more than {MAX_ROWS:,} together"
        )
    items = tuple(i for n, r in enumerate(raw_items) if (i := _item(n, r, issues)))
    shipments = tuple(s for n, r in enumerate(raw_shipments) if (s := _shipment(n, r, issues)))
    folder_id = whole(order.folder_id, "folder_id", issues)
    money = Money(
        product=cents(order.product_total, "product_total", issues),
        shipping=cents(order.shipping_total, "shipping_total", issues),
        handling=cents(order.handling_total, "handling_total", issues),
        tax=cents(order.tax_total, "tax_total", issues),
        discount=cents(order.discount_total, "discount_total", issues),
        order=cents(order.order_total, "order_total", issues),
    )
    items_cents, unpriced = items_total(items, issues)
    fields = OrderFields(
        date_added=text(order.date_added),
        source_name=text(order.source_name),
        source_id=text(order.source_id),
        email=text(order.email),
        customer_name=person_name(customer),
        customer_city=text(customer.city),
        customer_country=text(customer.country),
        shipping_name=person_name(shipping),
        shipping_city=text(shipping.city),
        shipping_state=text(shipping.state),
        shipping_country=text(shipping.country),
        shipping_method=text(order.shipping_method),
        payment_type=text(order.payment_type),
        payment_status=text(order.payment_status),
        product_total_cents=money.product,
        shipping_total_cents=money.shipping,
        handling_total_cents=money.handling,
        tax_total_cents=money.tax,
        discount_total_cents=money.discount,
        order_total_cents=money.order,
        refund_total_cents=cents(order.refund_total, "refund_total", issues),
        processor_balance_cents=cents(order.processor_balance, "processor_balance", issues),
        items_total_cents=items_cents,
        totals_problem=totals_problem(money, items_cents, unpriced),
        quantity_total=whole(order.quantity_total, "quantity_total", issues),
        weight_total=text(order.weight_total),
        items_count=len(items),
    )
    updated_at = instant(order.date_updated, "date_updated", issues)
    return OrderView(fields, updated_at, folder_id, items, shipments, tuple(issues.found))


class Money(NamedTuple):
    """The amounts whose sums are checked against each other, in cents."""

    product: int | None
    shipping: int | None
    handling: int | None
    tax: int | None
    discount: int | None
    order: int | None


def items_total(items: Iterable[Item], issues: Issues) -> tuple[int | None, int]:
    """Sum of quantity x price over the priced lines, and how many lines have no price."""
    total = sum(i.quantity * i.price_cents for i in items if i.price_cents is not None)
    unpriced = sum(i.price_cents is None for i in items)
    if abs(total) >= SQL_INTEGER:
        issues.add(f"items total {total} cents is out of range")
        return None, unpriced
    return total, unpriced


def totals_problem(money: Money, items: int | None, unpriced: int) -> str | None:
    """Why the order's totals do not add up, or None when they do.

    Kept with the order (and indexed where not None) so that the reconciliation view
    reads the few problem orders instead of summing every line of every order.
    """
    added = (money.product, money.shipping, money.handling, money.tax)
    computed = sum(m or 0 for m in added) - (money.discount or 0)
    found = []
    if money.product is None:
        found.append("product_total missing")
    if money.order is None:
        found.append("order_total missing")
    if unpriced:
        found.append(f"{unpriced} line(s) without a price")
    if items is None:
        found.append("items total out of range")
    elif items != (money.product or 0):
        found.append("items x price != product_total")
    if computed != (money.order or 0):
        found.append("product + shipping + handling + tax - discount != order_total")
    return "; ".join(found) or None

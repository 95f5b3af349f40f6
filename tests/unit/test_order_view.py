"""What a snapshot says of its order, read from drifting payloads: pure, no SQLite."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger import payload
from ledger.projections.order_view import (
    MAX_BRACKETS,
    MAX_ROWS,
    MONEY_LIMIT,
    QUANTITY_LIMIT,
    Issues,
    NotProjected,
    cents,
    instant,
    view_of,
    view_order,
)
from ledger.projections.sink import not_projected
from ledger.testing import encode, item, order
from tests.helpers import sample


def view(body: bytes | dict[str, object]):  # type: ignore[no-untyped-def]
    text = (body if isinstance(body, bytes) else encode(body)).decode()
    return view_order(payload.parse_order(text))


def test_a_sample_reads_as_the_order_it_is() -> None:
    seen = view(sample("b-updated-shipped-closed"))
    assert seen.folder_id == 48203 and seen.issues == ()
    assert seen.fields.customer_name and seen.fields.order_total_cents
    assert [i.code for i in seen.items] == ["TOTE-NAT-01", "PIN-SET-3"]
    assert [s.tracking_number for s in seen.shipments] == ["9405511899223197428290"]


def test_amounts_become_exact_cents_whether_numbers_or_strings() -> None:
    seen = view(order(items=[item("A", 0, 1, price="19.99")], shipping_cents=0,
                      order_total="19.99", product_total=19.99))  # fmt: skip
    assert seen.items[0].price_cents == 1999
    assert (seen.fields.product_total_cents, seen.fields.order_total_cents) == (1999, 1999)
    assert seen.fields.totals_problem is None


@pytest.mark.parametrize(
    ("value", "expected", "issue"),
    [
        (Decimal("1.005"), 100, "has fractions of a cent (rounded half-even)"),
        ("abc", None, "is not a number"),
        (10**16, None, "is out of range"),
        ("", None, None),
        (None, None, None),
    ],
)
def test_what_is_not_whole_cents_is_an_issue_not_an_error(
    value: object, expected: int | None, issue: str | None
) -> None:
    issues = Issues()
    assert cents(value, "x", issues) == expected
    assert [i for i in issues.found if issue and issue in i] == ([issues.found[0]] if issue else [])


def test_empty_maps_as_lists_and_lines_that_are_not_objects() -> None:
    seen = view({"id": "1", "customer": [], "shipping": [], "order_items": ["x", {"code": "A"}]})
    assert seen.fields.customer_name is None
    assert [i.code for i in seen.items] == ["A"]
    assert seen.issues == ("order_items[0] is not an object",)


def test_totals_that_do_not_add_up_say_why() -> None:
    seen = view(order(items=[("A", 1000, 2)], total_cents=1))
    assert (
        seen.fields.totals_problem
        == "product + shipping + handling + tax - discount != order_total"
    )
    assert view({"id": "1"}).fields.totals_problem == "product_total missing; order_total missing"


def test_a_snapshot_beyond_the_bounds_is_not_projected_and_says_why() -> None:
    lines = [{"code": "A"}] * (MAX_ROWS - 1)
    assert len(view_of(encode({"id": "1", "order_items": lines}).decode()).items) == MAX_ROWS - 1
    with pytest.raises(NotProjected) as too_many:
        view({"id": "1", "order_items": lines, "order_shipments": [{}, {}]})
    assert str(too_many.value) == "9,999 lines and 2 shipments, more than 10,000 together"
    # lines that are not objects are lines too: each would be an issue to record
    with pytest.raises(NotProjected):
        view({"id": "1", "order_items": [1] * (MAX_ROWS + 1)})
    brackets = '{"id":"1","order_items":[' + ",".join(["{}"] * MAX_BRACKETS) + "]}"
    with pytest.raises(NotProjected) as counted:
        view_of(brackets)  # counted in the text, before anything is decoded
    assert str(counted.value) == "50,002 brackets, more than 50,000"
    assert not_projected(counted.value) == "not projected: 50,002 brackets, more than 50,000"
    assert not_projected(ValueError("x")) == "not projected: ValueError: x"


def test_many_distinct_issues_are_each_recorded_once_in_the_order_found() -> None:
    issues = Issues()
    for n in [*range(3), 1]:
        issues.add(f"issue {n}")
    assert issues.found == ["issue 0", "issue 1", "issue 2"]


def test_amounts_and_quantities_past_their_bounds_are_issues() -> None:
    under, at = MONEY_LIMIT - 1, MONEY_LIMIT
    seen = view({"id": "1", "order_total": under, "tax_total": at, "order_items": [
        {"code": "A", "quantity": QUANTITY_LIMIT - 1, "price": f"{at}.00"},
        {"code": "B", "quantity": QUANTITY_LIMIT},
    ]})  # fmt: skip
    assert (seen.fields.order_total_cents, seen.fields.tax_total_cents) == (under * 100, None)
    assert [(i.quantity, i.price_cents) for i in seen.items] == [
        (QUANTITY_LIMIT - 1, None),
        (0, None),
    ]
    assert seen.issues == (
        f"order_items[0].price {at}.00 is out of range",
        f"order_items[1].quantity {QUANTITY_LIMIT} is out of range",
        f"tax_total {at} is out of range",
    )


@pytest.mark.parametrize(
    ("sent", "instant_in_utc"),
    [
        ("2025-03-01 10:00:00", "2025-03-01 10:00:00"),  # Order Desk's own form, UTC
        ("2025-03-01T09:00:00Z", "2025-03-01 09:00:00"),
        ("2025-03-01t09:00:00z", "2025-03-01 09:00:00"),
        ("2025-03-01T11:30:00+02:00", "2025-03-01 09:30:00"),
        ("2025-03-01T05:30:00-0500", "2025-03-01 10:30:00"),
        ("2025-03-01T05:30:00-05", "2025-03-01 10:30:00"),
        ("2025-03-01T23:30:00-01:00", "2025-03-02 00:30:00"),  # the next day in UTC
        ("2025-03-01T10:00:00.250Z", "2025-03-01 10:00:00.25"),  # no trailing zeros
        ("2025-03-01T10:00:00,000+00:00", "2025-03-01 10:00:00"),
        ("2025-03-01T10:00:00.123456789Z", "2025-03-01 10:00:00.123456789"),  # kept whole
        (" 2025-03-01 10:00:00\n", "2025-03-01 10:00:00"),
        (None, None),
        ("", None),
    ],
)
def test_date_updated_is_read_as_an_instant_in_utc(sent: str | None, instant_in_utc: str) -> None:
    issues = Issues()
    assert instant(sent, "date_updated", issues) == instant_in_utc
    assert issues.found == []


@pytest.mark.parametrize(
    "sent",
    ["yesterday", "2025-02-30 10:00:00", "2025-03-01 24:00:00", "2025-03-01", "2025-03-01 10:00",
     "2025-03-01T10:00:00+24:00", "2025-03-01T10:00:00+01:60", "0001-01-01T00:30:00+01:00",
     "20250301T100000Z", 20250301],
)  # fmt: skip
def test_a_date_updated_that_is_not_a_time_is_an_issue(sent: object) -> None:
    issues = Issues()
    assert instant(sent, "date_updated", issues) is None
    assert issues.found == [f"date_updated {str(sent)!r} is not a time (ordered before every time)"]


def test_the_instants_text_order_is_their_time_order() -> None:
    sent = ["2025-03-01T10:00:00.5Z", "2025-03-01 10:00:00", "2025-03-01T10:00:00.49Z",
            "2025-03-01T10:00:01+00:00", "2025-03-01T09:59:59.999-00:00",
            "2025-02-28T23:00:00-10:00"]  # fmt: skip
    instants = [instant(s, "t", Issues()) for s in sent]
    assert sorted(instants) == [instants[i] for i in (5, 4, 1, 2, 0, 3)]  # type: ignore[type-var]

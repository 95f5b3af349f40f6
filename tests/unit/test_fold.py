"""The fold, one order's state from event to event: pure, no SQLite.

The same functions run live and in ``ledger rebuild``; ``tests/db`` checks that the two
paths write the same rows, this checks what the rows say.
"""

from __future__ import annotations

from ledger import payload
from ledger.projections.fold import (
    OrderState,
    buckets,
    changes,
    reach,
    rename_folder,
    summarize,
    supersedes,
    take_snapshot,
)
from ledger.projections.order_view import OrderView, view_order
from ledger.testing import encode, order, shipment

LATER = "2025-03-15 09:00:00"


def view(**fields: object) -> OrderView:
    return view_order(payload.parse_order(encode(order("7", **fields)).decode()))


def first(**fields: object) -> OrderState:
    return take_snapshot(None, 1, view(updated="2025-03-14 09:00:00", **fields), None).state


def test_a_new_order_is_open_and_moves_its_units_into_ordered_and_open() -> None:
    step = take_snapshot(None, 1, view(items=[("MUG", 900, 2)]), None)
    assert step.state.status.state == "open"
    assert (step.state.status.seq, step.state.status.snapshots_seen) == (1, 1)
    assert step.movements == {"MUG": (2, 0, 0, 2, 1)}
    assert step.history is not None and step.history.changes == "first snapshot"
    assert tuple(step.history.effect) == (1, 0)


def test_a_shipment_ships_it_and_a_folder_named_like_cancel_cancels_it() -> None:
    shipped = view(items=[("MUG", 900, 2)], shipments=[shipment("94001")], updated=LATER)
    step = take_snapshot(first(items=[("MUG", 900, 2)]), 2, shipped, None)
    assert step.state.status.state == "shipped"
    assert step.movements == {"MUG": (0, 2, 0, -2, 0)}
    step = take_snapshot(step.state, 3, shipped, "Canceled orders")
    assert step.state.status.state == "canceled"
    assert step.movements == {"MUG": (-2, -2, 2, 0, 0)}


def test_an_older_snapshot_arriving_late_changes_nothing_but_its_counts() -> None:
    current = take_snapshot(first(), 2, view(payment_status="Refunded", updated=LATER), None)
    late = take_snapshot(current.state, 3, view(updated="2025-03-14 12:00:00"), None)
    assert late.current is None and late.movements == {}
    assert late.history is not None and tuple(late.history.effect) == (0, 1)
    status = late.state.status
    assert (status.seq, status.snapshots_seen, status.stale_snapshots, status.last_seq) == (
        2,
        3,
        1,
        3,
    )
    # what the next change compares with
    assert late.state.last_received == summarize(view(updated="2025-03-14 12:00:00"))


def test_latest_date_updated_wins_ties_go_to_the_later_seq_missing_dates_sort_first() -> None:
    assert supersedes(("2025-03-15 09:00:00", 2), ("2025-03-14 09:00:00", 9))
    assert supersedes(("2025-03-14 09:00:00", 9), ("2025-03-14 09:00:00", 2))
    assert not supersedes((None, 9), ("2025-03-14 09:00:00", 2))
    assert supersedes(("2025-03-14 09:00:00", 1), None)


def test_naming_the_folder_moves_the_units_without_a_snapshot() -> None:
    step = rename_folder(first(items=[("MUG", 900, 2), ("MUG", 900, 1)]), "Canceled")
    assert step.state.status.state == "canceled" and step.state.status.folder_name == "Canceled"
    assert step.current is None and step.history is None
    assert step.movements == {"MUG": (-3, 0, 3, -3, 0)}


def test_units_of_one_sku_on_several_lines_add_up() -> None:
    assert buckets([("A", 1), ("A", 2), ("B", 1)], "open") == {
        "A": (3, 0, 0, 3, 1),
        "B": (1, 0, 0, 1, 1),
    }


def test_changes_name_what_differs_from_the_snapshot_received_before() -> None:
    before, after = summarize(view()), summarize(view(payment_status="Refunded", total_cents=100))
    assert (
        changes(before, after) == "payment_status: Captured → Refunded; order_total: 45.00 → 1.00"
    )
    assert changes(before, before) == "no tracked change"


def test_an_events_reach_counts_its_amounts_and_movements_positive() -> None:
    step = take_snapshot(None, 1, view(items=[("MUG", 900, 2)]), None)
    # 2 ordered + 2 open + 1 order; product 18.00, shipping 5.00, order total 23.00
    assert reach(step) == 5 + 1800 + 500 + 2300
    late = take_snapshot(step.state, 2, view(updated="2025-03-13 09:00:00"), None)
    assert reach(late) == 0, "a stale snapshot changes no sum"
    canceled = rename_folder(step.state, "Canceled")
    assert reach(canceled) == 2 + 2 + 2  # ordered -2, canceled +2, open -2

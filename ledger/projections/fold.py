"""The fold: one order's state from one event to the next. Pure functions only.

The live path and ``ledger rebuild`` both fold every event through ``take_snapshot``
and ``rename_folder``, so a rebuild reproduces exactly what was projected live.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain
from operator import attrgetter
from typing import NamedTuple

from .order_view import OrderView
from .tables import (
    CANCELED,
    DAILY_MONEY,
    OPEN,
    SHIPPED,
    Effect,
    OrderStatus,
    Summary,
    Units,
)

BUCKETS = Units._fields
_SUMMED_MONEY = attrgetter(*DAILY_MONEY)
Counts = tuple[int, int, int, int, int]  # units per BUCKETS, in that order
Buckets = dict[str, Counts]
Line = tuple[str, int]  # (code, quantity)
NONE: Counts = (0, 0, 0, 0, 0)


def state_of(folder_name: str | None, shipments: int) -> str:
    """The default rule: a folder named like 'cancel' wins, then any shipment."""
    if folder_name and "cancel" in folder_name.lower():
        return CANCELED
    return SHIPPED if shipments else OPEN


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
    """Latest ``date_updated`` wins, ties go to the higher seq; a missing or unreadable one
    sorts first. Each is an instant as ``order_view.instant`` writes it: text order is
    time order."""
    if current is None:
        return True
    return (new[0] or "", new[1]) > (current[0] or "", current[1])


def format_cents(value: int | None) -> str:
    if value is None:
        return "?"
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value) // 100}.{abs(value) % 100:02d}"


def summarize(view: OrderView) -> Summary:
    return Summary(
        view.folder_id,
        view.fields.payment_status,
        view.fields.order_total_cents,
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


class OrderState(NamedTuple):
    """All the projection needs to know about an order between two of its events."""

    status: OrderStatus
    lines: tuple[Line, ...]
    last_received: Summary  # the snapshot received last (by seq), current or stale


class History(NamedTuple):
    """What order_history records of one snapshot, beside the event's seq, store, order."""

    updated_at: str | None  # the snapshot's date_updated as an instant
    effect: Effect
    summary: Summary
    changes: str


class Step(NamedTuple):
    """What one event did to one order."""

    state: OrderState
    current: OrderView | None  # the snapshot that became current, if it did
    history: History | None  # for snapshots, not for folder namings
    movements: Buckets


def take_snapshot(
    prior: OrderState | None, seq: int, view: OrderView, folder_name: str | None
) -> Step:
    """Fold one snapshot into its order: it becomes current only if it is the newest."""
    summary = summarize(view)
    was = prior.status if prior else None
    updated_at = view.updated_at
    applies = supersedes((updated_at, seq), (was.order_updated_at, was.seq) if was else None)
    history = History(
        updated_at,
        Effect(int(applies), int(not applies)),
        summary,
        changes(prior.last_received if prior else None, summary),
    )
    if prior is not None and was is not None and not applies:
        stale = was._replace(
            snapshots_seen=was.snapshots_seen + 1,
            stale_snapshots=was.stale_snapshots + 1,
            last_seq=seq,
        )
        return Step(prior._replace(status=stale, last_received=summary), None, history, {})
    state = state_of(folder_name, len(view.shipments))
    lines = tuple((i.code, i.quantity) for i in view.items)
    status = OrderStatus(
        seq=seq,
        order_updated_at=updated_at,
        state=state,
        folder_id=view.folder_id,
        folder_name=folder_name,
        shipments_count=len(view.shipments),
        snapshots_seen=was.snapshots_seen + 1 if was else 1,
        stale_snapshots=was.stale_snapshots if was else 0,
        first_seq=was.first_seq if was else seq,
        last_seq=seq,
    )
    before = buckets(prior.lines, was.state) if prior and was else {}
    return Step(
        OrderState(status, lines, summary), view, history, movements(before, buckets(lines, state))
    )


def rename_folder(prior: OrderState, name: str) -> Step:
    """The order's folder got a (new) name: its state may change, and with it inventory."""
    was = prior.status
    state = state_of(name, was.shipments_count)
    after = prior._replace(status=was._replace(folder_name=name, state=state))
    moved = movements(buckets(prior.lines, was.state), buckets(prior.lines, state))
    return Step(after, None, None, moved)


def reach(step: Step) -> int:
    """How far one event can move a sum SQLite keeps over many orders (daily totals,
    inventory, the closed movements), every part counted positive. While the reach of all
    events together is under 2**63 no such sum can overflow, whatever the order of events."""
    units = sum(map(abs, chain.from_iterable(step.movements.values())))
    if step.current is None:  # the order's row, and so its day's totals, did not change
        return units
    money: int = sum(map(abs, filter(None, _SUMMED_MONEY(step.current.fields))))
    return units + money

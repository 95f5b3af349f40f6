"""``ledger verify``: check a copy of the log with no secret, and name the first thing wrong.

It recomputes every payload hash and both chains, checks that each signed head states
the log at its size and that nothing follows the last one, verifies the signature on the
last head (every head's with ``all_signatures``) with the keys the file records, and
that those are the auditor's pinned key and its signed rotations. Heads kept elsewhere
(witnesses) catch what a self-consistent file cannot show: a truncation, or a history
rewritten and re-signed by someone with the key (equivocation, when both are signed).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .chain import GENESIS, Shadow, delivery_link, event_link
from .events import ORDER_SNAPSHOT
from .heads import LAST_HEAD, Anchor, Keys, NoteHead, SignedHead, note, read_note_text
from .legacy import event_problem
from .log import CHAINED, DELIVERY_CHAINED
from .note import Note, NoteError, Verifier, parse_note, parse_vkey

EVENTS = f"SELECT {', '.join(CHAINED)}, hash, payload FROM events ORDER BY seq"
DELIVERIES = f"SELECT {', '.join(DELIVERY_CHAINED)}, hash FROM deliveries ORDER BY id"
HEADS = LAST_HEAD.replace("ORDER BY id DESC LIMIT 1", "ORDER BY id")
ORPHAN = (
    "SELECT min(seq) FROM deliveries WHERE seq IS NOT NULL AND seq NOT IN (SELECT seq FROM events)"
)
UNDELIVERED = (
    f"SELECT min(seq) FROM events WHERE type = '{ORDER_SNAPSHOT}' AND seq NOT IN"
    " (SELECT seq FROM deliveries WHERE outcome = 'appended' AND seq IS NOT NULL)"
)


class Tampered(Exception):
    """The first thing found wrong, and where."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where, self.what = where, what


@dataclass
class Report:
    events: int = 0
    deliveries: int = 0
    heads: int = 0
    last: SignedHead | None = None
    signer: Verifier | None = None
    pinned: bool = False
    witnessed: int = 0
    problem: Tampered | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class Witness:
    """A signed head kept outside the file, and where it came from."""

    source: str
    note: str


def _rows(conn: sqlite3.Connection, sql: str) -> Iterator[tuple[Any, ...]]:
    cursor = conn.execute(sql)
    while rows := cursor.fetchmany(2000):
        yield from rows


def _keys(conn: sqlite3.Connection, pinned: Verifier | None, report: Report) -> Keys:
    """The keys the file records, each statement checked; the pinned key among them."""
    try:
        keys = Keys.read(conn)
    except sqlite3.OperationalError:
        raise Tampered(
            "the file",
            "it has no signed heads: it was written before them, and is upgraded (checked"
            " once with its chain key) by the next start of `ledger serve` beside that key",
        ) from None
    previous: Verifier | None = None
    for row in keys.rows:
        signer = parse_vkey(row.vkey)
        statement = parse_note(row.note)
        needed = [signer] if row.kind != "rotation" or previous is None else [previous, signer]
        for key in needed:
            try:
                if not statement.signed_by(key):
                    raise NoteError(f"not signed by {key.fingerprint}")
            except NoteError as exc:
                raise Tampered(
                    f"log_keys row {row.id}", f"its {row.kind} statement: {exc}"
                ) from None
        previous = signer if row.kind != "anchor" else previous
    vkeys = {r.vkey for r in keys.rows}
    report.signer = keys.current
    if pinned is not None:
        if pinned.vkey not in vkeys:
            raise Tampered(
                "the file",
                f"its heads are signed by {keys.current.fingerprint}, not by the pinned key"
                f" {pinned.fingerprint}",
            )
        report.pinned = True
    else:
        report.warnings.append(
            f"signed by {keys.current.fingerprint}, a key that was not pinned: give the key"
            " the owner handed you (--public-key) to know the heads are theirs"
        )
    return keys


def _events(conn: sqlite3.Connection, anchor: Anchor, wanted: dict[int, str]) -> int:
    """Every event: its payload hash and its link; the legacy prefix against the anchor."""
    expected, prev, legacy = 1, GENESIS, Shadow()
    width = len(CHAINED)
    for row in _rows(conn, EVENTS):
        fields, digest, payload = row[:width], row[width], row[width + 1]
        what = event_problem(fields, payload, expected, prev)
        chained = dict(zip(CHAINED, fields, strict=True))
        if what is None and expected > anchor.events and event_link(chained) != digest:
            what = "hash does not match the event's fields (edited, or its chain recomputed)"
        if what:
            raise Tampered(f"seq {min(int(fields[0]), expected)}", what)
        if expected <= anchor.events:
            legacy.add({**chained, "hash": digest})
            if expected == anchor.events and legacy.hexdigest() != anchor.events_digest:
                raise Tampered(f"seq 1..{expected}", "differs from what the anchor signed")
        if expected in wanted:
            wanted[expected] = digest
        expected, prev = expected + 1, digest
    if expected - 1 < anchor.events:
        raise Tampered(f"seq {expected}", f"the anchor signed {anchor.events} events before it")
    return expected - 1


def _deliveries(conn: sqlite3.Connection, anchor: Anchor, wanted: dict[int, str]) -> int:
    expected, prev, legacy = 1, anchor.chained_deliveries_from, Shadow()
    for row in _rows(conn, DELIVERIES):
        fields, digest = dict(zip(DELIVERY_CHAINED, row[:-1], strict=True)), row[-1]
        if fields["id"] != expected:
            raise Tampered(f"delivery {expected}", "deliveries before it were deleted")
        if expected <= anchor.deliveries:
            legacy.add(fields)
            if expected == anchor.deliveries and legacy.hexdigest() != anchor.deliveries_digest:
                raise Tampered(f"deliveries 1..{expected}", "differ from what the anchor signed")
            digest = anchor.deliveries_digest if expected == anchor.deliveries else digest
        elif delivery_link(fields, prev) != digest:
            raise Tampered(f"delivery {expected}", "hash does not match its fields (edited)")
        if expected in wanted:
            wanted[expected] = digest
        expected, prev = expected + 1, digest
    if expected - 1 < anchor.deliveries:
        raise Tampered(f"delivery {expected}", "the anchor signed more deliveries than there are")
    return expected - 1


def _heads(conn: sqlite3.Connection) -> list[SignedHead]:
    return [SignedHead(*r) for r in _rows(conn, HEADS)]


def _check_heads(
    heads: Sequence[SignedHead], keys: Keys, events: dict[int, str], deliveries: dict[int, str],
    all_signatures: bool,
) -> None:  # fmt: skip
    previous: SignedHead | None = None
    for head in heads:
        where = f"signed head {head.id} (size {head.size})"
        if head.id != (previous.id + 1 if previous else 1):
            raise Tampered(where, "signed heads before it were deleted")
        if previous and (head.size < previous.size or head.deliveries < previous.deliveries):
            raise Tampered(where, "it states a shorter log than the head before it")
        if events.get(head.size, GENESIS) != head.hash:
            raise Tampered(f"seq {head.size}", f"differs from the log that {where} signed")
        if deliveries.get(head.deliveries, GENESIS) != head.delivery_hash:
            raise Tampered(f"delivery {head.deliveries}", f"differs from what {where} signed")
        if all_signatures or head is heads[-1]:
            _check_signature(head, keys, where)
        previous = head


def _check_signature(head: SignedHead, keys: Keys, where: str) -> None:
    signed = parse_note(note(head, keys.origin))
    try:
        if not signed.signed_by(keys.signer_of(head.id)):
            raise NoteError("signed by a key the file does not record")
    except NoteError as exc:
        raise Tampered(where, f"its signature does not verify: {exc}") from None


def _witnessed(
    witnesses: Sequence[Witness], keys: Keys, pinned: Verifier | None,
) -> list[tuple[Witness, Note, NoteHead]]:  # fmt: skip
    trusted = [pinned] if pinned else [parse_vkey(r.vkey) for r in keys.rows]
    found = []
    for w in witnesses:
        try:
            signed = parse_note(w.note)
            if not any([signed.signed_by(k) for k in trusted]):
                raise NoteError("it is not signed by the ledger's key")
            found.append((w, signed, read_note_text(signed.text)))
        except (NoteError, ValueError) as exc:
            raise Tampered(f"witness {w.source}", str(exc)) from None
    return found


def _check_witnesses(
    kept: Sequence[tuple[Witness, Note, NoteHead]], heads: Sequence[SignedHead], keys: Keys,
    events: dict[int, str], deliveries: dict[int, str], report: Report,
) -> None:  # fmt: skip
    by_size = {h.size: h for h in heads}
    for w, _, head in kept:
        if head.size > report.events or head.deliveries > report.deliveries:
            raise Tampered(
                f"witness {w.source}",
                f"it holds a head of {head.size} events and {head.deliveries} deliveries, but"
                f" the log ends at {report.events} and {report.deliveries}: truncated",
            )
        if events.get(head.size, GENESIS) != head.hash or (
            deliveries.get(head.deliveries, GENESIS) != head.delivery_hash
        ):
            own, proof = by_size.get(head.size), ""
            if own is not None:
                _check_signature(own, keys, f"signed head {own.id}")
                proof = " the log's key signed both: proof of equivocation"
            raise Tampered(
                f"seq {head.size}",
                f"the log differs from the head witness {w.source} kept at that size:{proof}"
                " (rewritten)",
            )
        report.witnessed += 1


def verify_log(
    conn: sqlite3.Connection,
    *,
    pinned: Verifier | None = None,
    witnesses: Sequence[Witness] = (),
    all_signatures: bool = False,
) -> Report:
    """Check the whole log; the report names the first problem, if any."""
    report = Report()
    try:
        keys = _keys(conn, pinned, report)
        heads = _heads(conn)
        kept = _witnessed(witnesses, keys, pinned)
        events = {h.size: GENESIS for h in heads} | {k[2].size: GENESIS for k in kept}
        deliveries = {h.deliveries: GENESIS for h in heads} | {
            k[2].deliveries: GENESIS for k in kept
        }
        report.events = _events(conn, keys.anchor, events)
        report.deliveries = _deliveries(conn, keys.anchor, deliveries)
        report.heads, report.last = len(heads), heads[-1] if heads else None
        _check_heads(heads, keys, events, deliveries, all_signatures)
        _check_after_last(report)
        _check_links(conn)
        _check_witnesses(kept, heads, keys, events, deliveries, report)
    except Tampered as exc:
        report.problem = exc
    if not witnesses and report.intact:
        report.warnings.append(
            "no witness given: a truncation, or a rewrite by someone holding the signing key,"
            " is found only against a head kept elsewhere (--witness)"
        )
    return report


def _check_after_last(report: Report) -> None:
    last = report.last
    if last is None:
        raise Tampered("the file", "it has no signed head")
    if report.events > last.size:
        raise Tampered(f"seq {last.size + 1}", "appended after the last signed head (forged)")
    if report.deliveries > last.deliveries:
        raise Tampered(f"delivery {last.deliveries + 1}", "appended after the last signed head")


def _check_links(conn: sqlite3.Connection) -> None:
    for sql, what in (
        (ORPHAN, "a delivery names this seq but the event is gone"),
        (UNDELIVERED, "no delivery appended this event (row inserted by hand)"),
    ):
        found = conn.execute(sql).fetchone()[0]
        if found is not None:
            raise Tampered(f"seq {found}", what)


def pinned_key(value: str) -> Verifier:
    """A verifier key given as such, or as a file that holds one."""
    from pathlib import Path

    text = value
    if "+" not in value or Path(value).exists():
        text = Path(value).read_text().strip()
    return parse_vkey(text)

"""``ledger verify``: check a copy of the log with no secret, and name the first thing wrong.

It recomputes every payload hash and both chains, checks that each signed head states
the log at its size and that nothing follows the last one, verifies the signature on the
last head (every head's with ``all_signatures``) with the keys the file records, and
that those are the auditor's pinned key and its signed rotations. Heads kept elsewhere
(witnesses) catch what a self-consistent file cannot show: a truncation, or a history
rewritten and re-signed by someone with the key (equivocation, when both are signed).

The signed heads are walked in order beside the events and the deliveries, each read once
in order (a merge on their sizes), so what it holds is the last head and a hash for each
witnessed size, however many heads and rows the log has: a quiet ledger signs a head
for nearly every post.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from .chain import GENESIS, Shadow, delivery_link, event_link
from .db import read_snapshot
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


def _event_hashes(conn: sqlite3.Connection, anchor: Anchor) -> Iterator[str]:
    """Every event's hash in seq order, each event checked first (its payload hash, its
    link; the legacy prefix against the anchor): the first bad one raises."""
    expected, prev, legacy = 1, GENESIS, Shadow()
    width = len(CHAINED)
    for row in conn.execute(EVENTS):
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
        yield digest
        expected, prev = expected + 1, digest
    if expected - 1 < anchor.events:
        raise Tampered(f"seq {expected}", f"the anchor signed {anchor.events} events before it")


def _delivery_hashes(conn: sqlite3.Connection, anchor: Anchor) -> Iterator[str | None]:
    """Every delivery's hash in id order, each checked first; a legacy one has none, and
    the last of the legacy prefix stands for it by the anchor's digest."""
    expected, prev, legacy = 1, anchor.chained_deliveries_from, Shadow()
    for row in conn.execute(DELIVERIES):
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
        yield digest
        expected, prev = expected + 1, digest
    if expected - 1 < anchor.deliveries:
        raise Tampered(f"delivery {expected}", "the anchor signed more deliveries than there are")


class ChainCursor:
    """One chain read once, in order, only as far as the signed heads ask: a head is
    compared with the hash at its size as the walk passes it, so memory stays flat
    however many heads and rows the log holds. The hashes at the witnessed sizes (few)
    are kept for the witnesses, checked once the whole log is read."""

    def __init__(self, hashes: Iterator[str | None], witnessed: Iterable[int]) -> None:
        self._hashes = hashes
        self.size = 0
        self._hash: str | None = GENESIS
        self.kept: dict[int, str | None] = dict.fromkeys(witnessed, GENESIS)

    def hash_at(self, size: int) -> str | None:
        """The hash of the chain's first ``size`` rows; GENESIS past its end, as an empty
        log's. ``size`` never goes back: the walk checks the heads' order first."""
        while self.size < size and self._step():
            pass
        return self._hash if self.size == size else GENESIS

    def finish(self) -> int:
        """Check the rest (rows after the last head are checked like any); the length."""
        while self._step():
            pass
        return self.size

    def _step(self) -> bool:
        try:
            digest = next(self._hashes)
        except StopIteration:
            return False
        self.size, self._hash = self.size + 1, digest
        if self.size in self.kept:
            self.kept[self.size] = digest
        return True


def _walk_heads(
    conn: sqlite3.Connection, keys: Keys, events: ChainCursor, deliveries: ChainCursor,
    all_signatures: bool, report: Report,
) -> dict[int, SignedHead]:  # fmt: skip
    """Each signed head in id order against the log at its size (the chains advance with
    it); returns, for each size a witness holds, the last head of that size."""
    own: dict[int, SignedHead] = {}
    for head in map(SignedHead._make, conn.execute(HEADS)):
        _check_order(head, report.last)
        if events.hash_at(head.size) != head.hash:
            raise Tampered(f"seq {head.size}", f"differs from the log that {_where(head)} signed")
        if deliveries.hash_at(head.deliveries) != head.delivery_hash:
            raise Tampered(
                f"delivery {head.deliveries}", f"differs from what {_where(head)} signed"
            )
        if all_signatures:
            _check_signature(head, keys, _where(head))
        if head.size in events.kept:
            own[head.size] = head
        report.heads, report.last = report.heads + 1, head
    return own


def _where(head: SignedHead) -> str:
    return f"signed head {head.id} (size {head.size})"


def _check_order(head: SignedHead, previous: SignedHead | None) -> None:
    if head.id != (previous.id + 1 if previous else 1):
        raise Tampered(_where(head), "signed heads before it were deleted")
    if previous and (head.size < previous.size or head.deliveries < previous.deliveries):
        raise Tampered(_where(head), "it states a shorter log than the head before it")


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
    kept: Sequence[tuple[Witness, Note, NoteHead]], own: dict[int, SignedHead], keys: Keys,
    events: ChainCursor, deliveries: ChainCursor, report: Report,
) -> None:  # fmt: skip
    for w, _, head in kept:
        if head.size > report.events or head.deliveries > report.deliveries:
            raise Tampered(
                f"witness {w.source}",
                f"it holds a head of {head.size} events and {head.deliveries} deliveries, but"
                f" the log ends at {report.events} and {report.deliveries}: truncated",
            )
        if events.kept[head.size] != head.hash or (
            deliveries.kept[head.deliveries] != head.delivery_hash
        ):
            mine, proof = own.get(head.size), ""
            if mine is not None:
                _check_signature(mine, keys, f"signed head {mine.id}")
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
    """Check the whole log, as one snapshot of it; the report names the first problem."""
    report = Report()
    # One read transaction: the heads, the events and the deliveries are read by three
    # statements at once, and a batch a live writer commits between the start of two of
    # them would otherwise be seen in one and not the other (events no head signed).
    with read_snapshot(conn):
        _check_log(conn, pinned, witnesses, all_signatures, report)
    if not witnesses and report.intact:
        report.warnings.append(
            "no witness given: a truncation, or a rewrite by someone holding the signing key,"
            " is found only against a head kept elsewhere (--witness)"
        )
    return report


def _check_log(
    conn: sqlite3.Connection, pinned: Verifier | None, witnesses: Sequence[Witness],
    all_signatures: bool, report: Report,
) -> None:  # fmt: skip
    try:
        keys = _keys(conn, pinned, report)
        kept = _witnessed(witnesses, keys, pinned)
        events = ChainCursor(_event_hashes(conn, keys.anchor), (k[2].size for k in kept))
        deliveries = ChainCursor(
            _delivery_hashes(conn, keys.anchor), (k[2].deliveries for k in kept)
        )
        own = _walk_heads(conn, keys, events, deliveries, all_signatures, report)
        report.events, report.deliveries = events.finish(), deliveries.finish()
        _check_last(report, keys, all_signatures)
        _check_links(conn)
        _check_witnesses(kept, own, keys, events, deliveries, report)
    except Tampered as exc:
        report.problem = exc


def _check_last(report: Report, keys: Keys, all_signatures: bool) -> None:
    """The last head's signature (every head's was checked on the way with
    ``all_signatures``), and that nothing follows it."""
    last = report.last
    if last is None:
        raise Tampered("the file", "it has no signed head")
    if not all_signatures:
        _check_signature(last, keys, _where(last))
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

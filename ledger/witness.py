"""Heads kept outside the ledger's machine: what an auditor's witness keeps, and checks.

A witness directory holds signed heads as ``<size>-<deliveries>.note`` files and the
verifier key it trusts (``vkey``: the one given with ``--public-key``, or the first one
it met). ``ledger witness`` adds the source's latest head only if it extends what the
directory already holds; ``ledger serve --publish-to`` writes the ledger's own heads in
the same layout; ``ledger verify --witness DIR`` checks a file against them.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from .db import evidence
from .errors import LedgerError
from .heads import Keys, NoteHead, last_head, note, read_note_text
from .note import NoteError, Verifier, parse_note, parse_vkey, split_notes
from .verify import Tampered, Witness, verify_log


class WitnessRefused(LedgerError):
    """The source's head does not extend what the witness kept: it is not kept."""


def note_name(head: NoteHead) -> str:
    return f"{head.size:012d}-{head.deliveries:012d}.note"


def kept(directory: Path) -> list[Witness]:
    """The heads a witness directory (or a file of heads one after another) holds."""
    if not directory.exists():
        return []
    paths = sorted(directory.glob("*.note")) if directory.is_dir() else [directory]
    return [Witness(str(p), n) for p in paths for n in split_notes(p.read_text())]


def keep(directory: Path, signed: str) -> Path:
    """Write a signed head into ``directory`` (atomically; an existing one stays)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / note_name(read_note_text(parse_note(signed).text))
    if not target.exists():
        partial = target.with_suffix(".partial")
        partial.write_text(signed)
        os.replace(partial, target)
    return target


def _trusted(directory: Path, pinned: Verifier | None) -> Verifier | None:
    stored = directory / "vkey"
    if stored.exists():
        known = parse_vkey(stored.read_text())
        if pinned is not None and pinned.vkey != known.vkey:
            raise WitnessRefused(
                f"{directory} trusts {known.fingerprint}, not the key given ({pinned.fingerprint})"
            )
        return known
    return pinned


def _remember(directory: Path, key: Verifier) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "vkey").exists():
        (directory / "vkey").write_text(key.vkey + "\n")


def _latest(witnesses: list[Witness]) -> NoteHead | None:
    heads = [read_note_text(parse_note(w.note).text) for w in witnesses]
    return max(heads, key=lambda h: (h.size, h.deliveries), default=None)


def from_copy(source: Path, directory: Path, pinned: Verifier | None) -> str:
    """Check a copy of the ledger file against every head kept, then keep its latest."""
    trusted = _trusted(directory, pinned)
    with evidence(source) as conn:
        first = parse_vkey(Keys.read(conn).rows[0].vkey)
        report = verify_log(conn, pinned=trusted or first, witnesses=kept(directory))
        if not report.intact:
            raise WitnessRefused(f"refused {source}: {report.problem}")
        head = last_head(conn)
        keys = Keys.read(conn)
    assert head is not None
    _remember(directory, trusted or first)
    path = keep(directory, note(head, keys.origin))
    return f"kept {path.name}: {head.size} events, {head.deliveries} deliveries"


def fetch(url: str, timeout: float = 30) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return str(response.read().decode("utf-8"))
    except (urllib.error.URLError, OSError) as exc:
        raise WitnessRefused(f"cannot fetch {url}: {getattr(exc, 'reason', exc)}") from None


def from_url(url: str, directory: Path, pinned: Verifier | None) -> str:
    """Check a head served at ``url`` (``GET /head``): its signature, and that the log it
    states is no shorter than, and at the same size the same as, what was kept."""
    trusted = _trusted(directory, pinned)
    if trusted is None:
        raise WitnessRefused(
            "first use: give the ledger's key with --public-key (`ledger key show` prints it)"
        )
    signed = fetch(url)
    try:
        if not parse_note(signed).signed_by(trusted):
            raise NoteError(f"it is not signed by {trusted.fingerprint}")
        head = read_note_text(parse_note(signed).text)
    except (NoteError, ValueError) as exc:
        raise WitnessRefused(f"refused the head from {url}: {exc}") from None
    _check_extends(directory, head)
    _remember(directory, trusted)
    path = keep(directory, signed)
    return f"kept {path.name}: {head.size} events, {head.deliveries} deliveries"


def _check_extends(directory: Path, head: NoteHead) -> None:
    before = _latest(kept(directory)) if directory.exists() else None
    if before is None:
        return
    if (head.size, head.deliveries) < (before.size, before.deliveries):
        raise WitnessRefused(
            f"refused: the head states {head.size} events and {head.deliveries} deliveries,"
            f" fewer than the {before.size} and {before.deliveries} already kept (truncated)"
        )
    same_size = [read_note_text(parse_note(w.note).text) for w in kept(directory)]
    for old in same_size:
        if old.size == head.size and old.hash != head.hash:
            raise WitnessRefused(
                f"refused: two heads signed by the ledger's key state different logs of"
                f" {head.size} events: proof of equivocation, keep both notes"
            )


def witness(source: str, directory: Path, pinned: Verifier | None) -> str:
    if source.startswith(("http://", "https://")):
        return from_url(source, directory, pinned)
    if not Path(source).exists():
        raise WitnessRefused(f"{source} is neither a URL nor a file")
    return from_copy(Path(source), directory, pinned)


__all__ = ["Tampered", "WitnessRefused", "keep", "kept", "witness"]

"""Signed heads: every committed batch signs what the log holds, in the same transaction.

A signed head is a C2SP signed note laid out like a tlog-checkpoint::

    <origin>
    <number of events = the head seq>
    <base64 of the head event's 32-byte hash>
    deliveries <number of deliveries> <base64 of the head delivery's 32-byte hash>
    time <unix seconds>

    — <origin> <base64(key ID || Ed25519 signature)>

Its third line is the head of a linear chain, not an RFC 6962 Merkle root, so it is not a
tlog-checkpoint for public witnesses. The table keeps what the note is rebuilt from and
the signature; ``note`` rebuilds it. No committed event or delivery is ever unsigned: a
row after the last signed head was appended outside any ledger writer, and the writer
then refuses to sign (``check_follows``).

``log_keys`` records the keys that sign (their verifier keys, each self-signed), their
rotations (signed by the old and the new key) and the anchor: the digest of any prefix
of the log that no signed head covered (a file from before signed heads).
"""

from __future__ import annotations

import base64
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from .chain import GENESIS
from .errors import StorageUnavailable
from .log import Head, append_only, gapless, read_head
from .note import Signer, Verifier, parse_note, parse_vkey
from .table import Table


class SignedHead(NamedTuple):
    id: int
    size: int
    hash: str  # the head event's hash, hex
    deliveries: int
    delivery_hash: str
    signed_at: int  # unix seconds, the note's time line
    signature: str  # the note's signature line, without its newline


class LogKey(NamedTuple):
    id: int
    recorded_at: str
    kind: str
    vkey: str  # the verifier key in force from from_head on
    from_head: int
    note: str  # a signed statement: the key itself, a rotation, or the anchor


SIGNED_HEADS = Table("signed_heads", (SignedHead,), primary_key=("id",))
LOG_KEYS = Table(
    "log_keys",
    (LogKey,),
    primary_key=("id",),
    checks={"kind": "kind IN ('key', 'rotation', 'anchor')"},
)
HEAD_TABLES = (LOG_KEYS, SIGNED_HEADS)

HEAD_TRIGGERS = (
    append_only("signed_heads", "EXISTS (SELECT 1 FROM signed_heads WHERE id = NEW.id)")
    + append_only("log_keys", "EXISTS (SELECT 1 FROM log_keys WHERE id = NEW.id)")
    + gapless("signed_heads", "id")
    + gapless("log_keys", "id")
    + """
CREATE TRIGGER IF NOT EXISTS signed_heads_state_the_log BEFORE INSERT ON signed_heads
WHEN NEW.size IS NOT (SELECT coalesce(max(seq), 0) FROM events)
  OR NEW.deliveries IS NOT (SELECT coalesce(max(id), 0) FROM deliveries)
BEGIN SELECT RAISE(ABORT, 'signed_heads: a head states the log as it is'); END;
"""
)

INSERT_HEAD = SIGNED_HEADS.insert
LAST_HEAD = f"SELECT {', '.join(SignedHead._fields)} FROM signed_heads ORDER BY id DESC LIMIT 1"
KEYS = f"SELECT {', '.join(LogKey._fields)} FROM log_keys ORDER BY id"


def b64(hex_hash: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_hash)).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text, validate=True).hex()


def note_text(origin: str, size: int, hash_: str, deliveries: int, dhash: str, at: int) -> str:
    return f"{origin}\n{size}\n{b64(hash_)}\ndeliveries {deliveries} {b64(dhash)}\ntime {at}\n"


def note(head: SignedHead, origin: str) -> str:
    """The signed note a row of signed_heads stands for."""
    text = note_text(origin, head.size, head.hash, head.deliveries, head.delivery_hash,
                     head.signed_at)  # fmt: skip
    return f"{text}\n{head.signature}\n"


class NoteHead(NamedTuple):
    """What a signed head says, read back from its note's text."""

    origin: str
    size: int
    hash: str
    deliveries: int
    delivery_hash: str
    signed_at: int


def read_note_text(text: str) -> NoteHead:
    try:
        origin, size, hash_, deliveries, at = text.rstrip("\n").split("\n")
        _, count, dhash = deliveries.split(" ")
        return NoteHead(origin, int(size), unb64(hash_), int(count), unb64(dhash),
                        int(at.removeprefix("time ")))  # fmt: skip
    except ValueError:
        raise ValueError("not a signed head of this ledger") from None


@dataclass(frozen=True)
class Keys:
    """The log_keys table read: who signs which heads, and the anchor's facts."""

    rows: tuple[LogKey, ...]

    @classmethod
    def read(cls, conn: sqlite3.Connection) -> Keys:
        return cls(tuple(LogKey(*r) for r in conn.execute(KEYS)))

    @property
    def current(self) -> Verifier:
        return parse_vkey([r for r in self.rows if r.kind != "anchor"][-1].vkey)

    @property
    def origin(self) -> str:
        return self.current.name

    def signer_of(self, head_id: int) -> Verifier:
        """The key that signs head ``head_id``: the last key row in force from it."""
        found = [r for r in self.rows if r.kind != "anchor" and r.from_head <= head_id]
        return parse_vkey(found[-1].vkey)

    @cached_property
    def anchor(self) -> Anchor:
        row = next(r for r in self.rows if r.kind == "anchor")
        return Anchor.parse(parse_note(row.note).text)


@dataclass(frozen=True)
class Anchor:
    """The prefix of the log that no signed head covered, as the first head attests it."""

    events: int  # events 1..events were chained by the legacy HMAC
    events_digest: str
    deliveries: int  # deliveries 1..deliveries carry no hash
    deliveries_digest: str

    def text(self, origin: str) -> str:
        return (
            f"orderdesk-ledger anchor\norigin {origin}\n"
            f"events 1..{self.events} hmac-sha256 digest {self.events_digest}\n"
            f"deliveries 1..{self.deliveries} digest {self.deliveries_digest}\n"
        )

    @classmethod
    def parse(cls, text: str) -> Anchor:
        lines = text.splitlines()
        events, deliveries = lines[2].split(), lines[3].split()
        return cls(int(events[1][3:]), events[-1], int(deliveries[1][3:]), deliveries[-1])

    @property
    def chained_deliveries_from(self) -> str:
        """The hash the first chained delivery links to."""
        return self.deliveries_digest if self.deliveries else GENESIS


def last_head(conn: sqlite3.Connection) -> SignedHead | None:
    row = conn.execute(LAST_HEAD).fetchone()
    return SignedHead(*row) if row else None


COUNT_KEYS = "SELECT count(*) FROM log_keys"


@dataclass
class Signing:
    """What a writer needs to sign its batches: its key, and the log's keys and anchor;
    ``reload`` reads the key again when a rotation recorded a new one."""

    signer: Signer
    keys: Keys
    reload: Callable[[Keys], Signer] | None = None

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        if self.signer.verifier.vkey != self.keys.current.vkey:
            raise StorageUnavailable(
                f"the signing key ({self.signer.verifier.fingerprint}) is not the ledger's"
                f" current key ({self.keys.current.fingerprint}): refusing to sign"
            )

    def refresh(self, conn: sqlite3.Connection) -> None:
        """Follow a rotation another process recorded (one query when there was none)."""
        if conn.execute(COUNT_KEYS).fetchone()[0] == len(self.keys.rows):
            return
        self.keys = Keys.read(conn)
        if self.reload is not None and self.signer.verifier.vkey != self.keys.current.vkey:
            self.signer = self.reload(self.keys)
        self._check()

    def read_head(self, conn: sqlite3.Connection) -> Head:
        return read_head(conn, self.keys.anchor.chained_deliveries_from)


def check_follows(head: Head, signed: SignedHead | None) -> None:
    """Refuse to sign over rows no signed head accounts for: someone appended outside
    any ledger writer (or deleted signed heads), and a signature now would cover it."""
    if signed is None or (head.seq, head.delivery_id) != (signed.size, signed.deliveries):
        covered = (
            f"{signed.size} events and {signed.deliveries} deliveries" if signed else "nothing"
        )
        raise StorageUnavailable(
            f"refusing to sign: the log holds {head.seq} events and {head.delivery_id}"
            f" deliveries but its last signed head covers {covered}; rows were appended"
            " outside any ledger writer (run `ledger verify`)"
        )


def append_head(conn: sqlite3.Connection, signing: Signing, head: Head) -> SignedHead:
    """Sign ``head`` as it stands now and keep the signed head, in the caller's transaction."""
    previous = last_head(conn)
    at = int(time.time())
    text = note_text(signing.keys.origin, head.seq, head.hash, head.delivery_id,
                     head.delivery_hash, at)  # fmt: skip
    line = signing.signer.signature_line(text).rstrip("\n")
    row = SignedHead((previous.id if previous else 0) + 1, head.seq, head.hash,
                     head.delivery_id, head.delivery_hash, at, line)  # fmt: skip
    conn.execute(INSERT_HEAD, row)
    return row

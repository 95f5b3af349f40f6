"""The hash chains over the log, recomputable by anyone. Pure functions, and the legacy key.

An event's ``hash`` is

    SHA-256("orderdesk-ledger/chain/v2\\n" || JSON of the event's row)

over its columns but ``payload`` (its sha256 is a column) and ``hash``, and a delivery's

    SHA-256("orderdesk-ledger/deliveries/v1\\n" || JSON of the delivery's row)

over its columns but ``hash``, with the previous delivery's hash as ``prev_hash``; as
lowercase hex. JSON is an object of the row's non-null values, keys sorted, compact
(``,`` and ``:`` without spaces), UTF-8 unescaped: a column added later, empty on the rows
before it, leaves their hashes as they were. Editing, deleting or reordering
a row changes every hash after it; what says a chain was not rewritten whole is the
signed heads (``heads.py``). Files from before signed heads chained events with an
HMAC keyed by a secret (``legacy_link``); their prefix is attested by a digest in the
anchor (``Shadow``), so nothing needs that key after the upgrade.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import ChainKeyError

GENESIS = "0" * 64
EVENTS_V2 = b"orderdesk-ledger/chain/v2\n"
DELIVERIES_V1 = b"orderdesk-ledger/deliveries/v1\n"


def message(row: Mapping[str, object]) -> bytes:
    """The row as an auditor hashes it: its non-null values, keys sorted, compact."""
    values = {k: v for k, v in row.items() if v is not None}
    return json.dumps(values, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def event_link(row: Mapping[str, object]) -> str:
    """An event's hash from its chained columns (``log.CHAINED``, prev_hash among them)."""
    return hashlib.sha256(EVENTS_V2 + message(row)).hexdigest()


def delivery_link(row: Mapping[str, object], prev: str) -> str:
    """A delivery's hash from its columns (``log.DELIVERY_CHAINED``) and the previous hash."""
    return hashlib.sha256(DELIVERIES_V1 + message({**row, "prev_hash": prev})).hexdigest()


def legacy_link(key: bytes, fields: Sequence[object]) -> str:
    """An event's hash in a file from before signed heads: an HMAC under the chain key over
    its chained values as a JSON list."""
    text = json.dumps(list(fields), ensure_ascii=False, separators=(",", ":"))
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def payload_digest(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Shadow:
    """A running SHA-256 over rows, in order: the digest an anchor signs for a prefix of
    the log that no signed head covered (each row's message, then its stored hash)."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256(b"orderdesk-ledger/legacy-prefix/v1\n")
        self.rows = 0

    def add(self, row: Mapping[str, object]) -> None:
        self._digest.update(message(row) + b"\n")
        self.rows += 1

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def load_legacy_key(path: Path) -> bytes:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise ChainKeyError(
            f"the log's events are chained by the key in {path}, which is not there: restore"
            " it (or point LEDGER_KEY_FILE at it) so that the upgrade to signed heads can"
            " check the log once"
        ) from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ChainKeyError(f"chain key file {path} is not hex") from None
    if len(key) < 16:
        raise ChainKeyError(f"chain key in {path} is too short")
    return key

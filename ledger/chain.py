"""The hash chains over the log, recomputable by anyone. Pure functions, and the legacy key.

An event's ``hash`` is

    SHA-256("orderdesk-ledger/chain/v2\\n" || JSON [seq, type, received_at, store_id,
            order_id, order_updated_at, payload_sha256, prev_hash])

and a delivery's ``hash`` is

    SHA-256("orderdesk-ledger/deliveries/v1\\n" || JSON [id, received_at, remote_addr,
            method, content_type, body_bytes, store_id, outcome, http_status, reason,
            signature_variant, payload_sha256, order_id, seq, previous delivery's hash])

as lowercase hex, where JSON is compact (``,`` and ``:`` without spaces) and UTF-8
(non-ASCII unescaped), with ``null`` for a missing value. Editing, deleting or reordering
a row changes every hash after it; what says a chain was not rewritten whole is the
signed heads (``heads.py``). Files from before signed heads chained events with an
HMAC keyed by a secret (``legacy_link``); their prefix is attested by a digest in the
anchor (``Shadow``), so nothing needs that key after the upgrade.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from pathlib import Path

from .errors import ChainKeyError

GENESIS = "0" * 64
EVENTS_V2 = b"orderdesk-ledger/chain/v2\n"
DELIVERIES_V1 = b"orderdesk-ledger/deliveries/v1\n"


def message(fields: Sequence[object]) -> bytes:
    return json.dumps(list(fields), ensure_ascii=False, separators=(",", ":")).encode()


def event_link(fields: Sequence[object]) -> str:
    """An event's hash from its chained fields (``log.CHAINED``, prev_hash last)."""
    return hashlib.sha256(EVENTS_V2 + message(fields)).hexdigest()


def delivery_link(fields: Sequence[object], prev: str) -> str:
    """A delivery's hash from its columns (``log.DELIVERY_CHAINED``) and the previous hash."""
    return hashlib.sha256(DELIVERIES_V1 + message([*fields, prev])).hexdigest()


def legacy_link(key: bytes, fields: Sequence[object]) -> str:
    """An event's hash in a file from before signed heads: an HMAC under the chain key."""
    return hmac.new(key, message(fields), hashlib.sha256).hexdigest()


def payload_digest(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Shadow:
    """A running SHA-256 over rows, in order: the digest an anchor signs for a prefix of
    the log that no signed head covered (each row's message, then its stored hash)."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256(b"orderdesk-ledger/legacy-prefix/v1\n")
        self.rows = 0

    def add(self, fields: Sequence[object], stored_hash: str | None = None) -> None:
        self._digest.update(message([*fields, stored_hash]) + b"\n")
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

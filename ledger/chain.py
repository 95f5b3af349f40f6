"""The keyed hash chain over the event log. Pure functions only.

Each event's ``hash`` is an HMAC over every stored field of the event and the
previous event's hash. Editing or deleting a row breaks the chain; appending a
forged row needs the chain key, which lives outside the database file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from .errors import ChainKeyError

GENESIS = "0" * 64
CHAINED_FIELDS = (
    "seq",
    "type",
    "received_at",
    "store_id",
    "order_id",
    "order_updated_at",
    "payload_sha256",
    "prev_hash",
)


@dataclass(frozen=True)
class EventFields:
    seq: int
    type: str
    received_at: str
    store_id: str
    order_id: str | None
    order_updated_at: str | None
    payload_sha256: str
    prev_hash: str


def link(key: bytes, event: EventFields) -> str:
    message = json.dumps(
        [getattr(event, name) for name in CHAINED_FIELDS], ensure_ascii=False, separators=(",", ":")
    )
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def payload_digest(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def load_key(path: Path) -> bytes:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise ChainKeyError(f"chain key file {path} not found") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ChainKeyError(f"chain key file {path} is not hex") from None
    if len(key) < 16:
        raise ChainKeyError(f"chain key in {path} is too short")
    return key


def create_key(path: Path) -> bytes:
    """Write a new random key, readable by the owner only; never overwrite one."""
    key = secrets.token_bytes(32)
    with open(path, "x", opener=lambda p, flags: _open_private(p, flags)) as fh:
        fh.write(key.hex() + "\n")
    return key


def _open_private(path: str, flags: int) -> int:
    import os

    return os.open(path, flags, 0o600)

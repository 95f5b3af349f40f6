"""The keyed hash chain over the event log. Pure functions, and the key file.

Each event's ``hash`` is an HMAC over every stored field of the event and the
previous event's hash (``log.CHAINED``). Editing or deleting a row breaks the chain;
appending a forged row needs the chain key, which lives outside the database file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from .errors import ChainKeyError

GENESIS = "0" * 64


def link(key: bytes, fields: Sequence[object]) -> str:
    """The hash of an event whose chained fields (``log.CHAINED``, in order) are ``fields``."""
    message = json.dumps(list(fields), ensure_ascii=False, separators=(",", ":"))
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
    with open(path, "x", opener=lambda p, flags: os.open(p, flags, 0o600)) as fh:
        fh.write(key.hex() + "\n")
    return key

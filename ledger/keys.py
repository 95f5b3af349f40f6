"""The signing key file, and the rows of log_keys that say which key signs the log.

The private key lives in its own file (``<db>.signing-key`` by default), mode 0600, in the
text format Go's note package reads; it is never inside the database and never copied by
``ledger backup``. The database holds only public keys: each one self-signed when it is
recorded, each rotation signed by the old and the new key, so an auditor who pinned the
first key can follow every later one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from pathlib import Path

from .errors import ConfigError, SigningKeyError
from .heads import LOG_KEYS, Anchor, Keys, LogKey, Signing, append_head
from .log import read_head, utcnow
from .note import NoteError, Signer, parse_skey, sign
from .settings import Settings


def new_origin(configured: str | None) -> str:
    """The ledger's identity, the first line of every signed head and its key's name."""
    return configured or f"orderdesk-ledger/{secrets.token_hex(8)}"


def write_key(path: Path, signer: Signer) -> None:
    """Write a new key, readable by the owner only; never overwrite one."""
    try:
        with open(path, "x", opener=lambda p, flags: os.open(p, flags, 0o600)) as fh:
            fh.write(signer.skey + "\n")
    except FileNotFoundError:
        raise ConfigError(
            f"cannot write the signing key {path}: there is no directory {path.parent}"
        ) from None


def read_key(path: Path) -> Signer:
    try:
        return parse_skey(path.read_text())
    except FileNotFoundError:
        raise SigningKeyError(f"the signing key file {path} is not there") from None
    except (OSError, NoteError) as exc:
        raise SigningKeyError(f"cannot read the signing key {path}: {exc}") from None


def key_row(conn: sqlite3.Connection, kind: str, vkey: str, from_head: int, note: str) -> None:
    next_id = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM log_keys").fetchone()[0]
    conn.execute(LOG_KEYS.insert, LogKey(next_id, utcnow(), kind, vkey, from_head, note))


def key_note(signer: Signer) -> str:
    """A key's own statement that it signs this ledger, signed by itself."""
    v = signer.verifier
    return sign(f"orderdesk-ledger key\norigin {v.name}\nvkey {v.vkey}\n", signer)


def start_signing(conn: sqlite3.Connection, signer: Signer, anchor: Anchor) -> Signing:
    """Record the key and the anchor, and sign the first head: the log as it is now (in
    the caller's transaction)."""
    key_row(conn, "key", signer.verifier.vkey, 1, key_note(signer))
    key_row(conn, "anchor", signer.verifier.vkey, 1, sign(anchor.text(signer.name), signer))
    signing = Signing(signer, Keys.read(conn))
    append_head(conn, signing, signing.read_head(conn))
    return signing


def signing_key(settings: Settings, *, create: bool) -> Signer:
    """The ledger's signing key from its file; with ``create``, a new one if there is
    none (another process may have made it first)."""
    path = settings.signing_key_path
    if create and not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first
            write_key(path, Signer.generate(new_origin(settings.origin)))
    return read_key(path)


def _signer_for(path: Path, keys: Keys) -> Signer:
    """The key file's signer; a rotation that stopped half-way left the new key beside it
    (``.next``), which is used if it is the one the file records."""
    signer = read_key(path)
    following = path.with_name(path.name + ".next")
    if signer.verifier.vkey != keys.current.vkey and following.exists():
        return read_key(following)
    return signer


def load_signing(conn: sqlite3.Connection, settings: Settings) -> Signing:
    """How this file's batches are signed, with the key from its file."""
    keys = Keys.read(conn)
    path = settings.signing_key_path
    return Signing(_signer_for(path, keys), keys, lambda k: _signer_for(path, k))


def rotate(conn: sqlite3.Connection, settings: Settings) -> tuple[Signer, Signer]:
    """A new signing key: its rotation note signed by the old and the new key, recorded
    in the caller's transaction; the new key waits in ``.next`` until the caller commits
    and calls ``finish_rotation``."""
    old = load_signing(conn, settings).signer
    new = Signer.generate(old.name)
    next_path = settings.signing_key_path.with_name(settings.signing_key_path.name + ".next")
    next_path.unlink(missing_ok=True)
    write_key(next_path, new)
    head = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM signed_heads").fetchone()[0]
    text = (f"orderdesk-ledger key rotation\norigin {old.name}\nfrom {old.verifier.vkey}\n"
            f"to {new.verifier.vkey}\nat head {head}\n")  # fmt: skip
    key_row(conn, "rotation", new.verifier.vkey, head, sign(text, old, new))
    signing = Signing(new, Keys.read(conn))
    append_head(conn, signing, read_head(conn, signing.keys.anchor.chained_deliveries_from))
    return old, new


def finish_rotation(settings: Settings) -> None:
    path = settings.signing_key_path
    os.replace(path.with_name(path.name + ".next"), path)

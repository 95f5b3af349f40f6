"""C2SP signed notes with Ed25519 keys (c2sp.org/signed-note): sign, open, parse.

A note is UTF-8 text ending in a newline, a blank line, then one signature line per key:
``— <key name> base64(4-byte key ID || signature)``. A verifier key ("vkey") is
``<name>+<key ID hex>+base64(0x01 || public key)``; the signing key file holds the
matching ``PRIVATE+KEY+<name>+<key ID hex>+base64(0x01 || seed)``, the format Go's
golang.org/x/mod/sumdb/note reads, so either side can be checked with the other's tools.
Pure functions over PyCA ``cryptography``; reading and writing key files is ``keys.py``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import LedgerError

ED25519 = b"\x01"
DASH = "\u2014 "  # em dash and a space open every signature line


class NoteError(LedgerError):
    """A note, key or signature that is malformed or does not verify."""


def key_id(name: str, public: bytes) -> bytes:
    """The 4-byte key ID: SHA-256(name || newline || type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4]


def _check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"a key name must be non-empty, without spaces or '+': {name!r}")
    return name


@dataclass(frozen=True)
class Verifier:
    """A public key and its name: checks signature lines of notes."""

    name: str
    public: bytes

    @property
    def id(self) -> bytes:
        return key_id(self.name, self.public)

    @property
    def vkey(self) -> str:
        encoded = base64.b64encode(ED25519 + self.public).decode()
        return f"{self.name}+{self.id.hex()}+{encoded}"

    @property
    def fingerprint(self) -> str:
        """A short, readable digest of the vkey for a person to compare by eye or phone."""
        digest = hashlib.sha256(self.vkey.encode()).hexdigest()[:16]
        return "SHA256:" + ":".join(digest[i : i + 4] for i in range(0, 16, 4))

    def verifies(self, text: str, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, text.encode())
        except InvalidSignature:
            return False
        return True


def parse_vkey(vkey: str) -> Verifier:
    try:
        name, hex_id, encoded = vkey.strip().split("+", 2)  # base64 may hold '+' too
        raw = base64.b64decode(encoded, validate=True)
        claimed = bytes.fromhex(hex_id)
    except (ValueError, binascii.Error):
        raise NoteError(f"not a verifier key (name+id+key): {vkey.strip()[:80]!r}") from None
    if raw[:1] != ED25519 or len(raw) != 33 or len(claimed) != 4:
        raise NoteError("not an Ed25519 verifier key")
    verifier = Verifier(_check_name(name), raw[1:])
    if verifier.id != claimed:
        raise NoteError("the verifier key's id does not match its name and key")
    return verifier


@dataclass(frozen=True)
class Signer:
    """A private key and its name: signs note texts."""

    name: str
    private: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(_check_name(name), Ed25519PrivateKey.generate())

    @property
    def verifier(self) -> Verifier:
        public = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return Verifier(self.name, public)

    @property
    def skey(self) -> str:
        seed = self.private.private_bytes_raw()
        encoded = base64.b64encode(ED25519 + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.id.hex()}+{encoded}"

    def signature_line(self, text: str) -> str:
        signature = self.private.sign(text.encode())
        encoded = base64.b64encode(self.verifier.id + signature).decode()
        return f"{DASH}{self.name} {encoded}\n"


def parse_skey(skey: str) -> Signer:
    try:
        prefix, rest = skey.strip()[:12], skey.strip()[12:]
        name, hex_id, encoded = rest.split("+", 2)
        raw = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        raise NoteError("not a signing key (PRIVATE+KEY+name+id+key)") from None
    if prefix != "PRIVATE+KEY+" or raw[:1] != ED25519 or len(raw) != 33:
        raise NoteError("not an Ed25519 signing key (PRIVATE+KEY+name+id+key)")
    signer = Signer(_check_name(name), Ed25519PrivateKey.from_private_bytes(raw[1:]))
    if signer.verifier.id.hex() != hex_id:
        raise NoteError("the signing key's id does not match its name and key")
    return signer


def sign(text: str, *signers: Signer) -> str:
    """The signed note of ``text`` (which must end in a newline), one line per signer."""
    if not text.endswith("\n") or "\n\n" in text[-2:]:
        raise NoteError("a note's text ends in exactly one newline")
    return text + "\n" + "".join(s.signature_line(text) for s in signers)


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[Signature, ...]

    def signed_by(self, verifier: Verifier) -> bool:
        """Whether ``verifier`` signed it; a bad signature from that key raises."""
        found = False
        for s in self.signatures:
            if (s.name, s.key_id) == (verifier.name, verifier.id):
                if not verifier.verifies(self.text, s.signature):
                    raise NoteError(f"the signature of {verifier.name} on the note does not verify")
                found = True
        return found

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


def parse_note(signed: str) -> Note:
    """Split a signed note into its text and its signatures (nothing is verified)."""
    if any(ord(c) < 0x20 and c != "\n" for c in signed):
        raise NoteError("a note holds no control characters but newlines")
    text, sep, block = signed.rpartition("\n\n")
    if not sep or not block.endswith("\n"):
        raise NoteError("not a signed note: no blank line before the signatures")
    signatures = []
    for line in block.splitlines():
        if not line.startswith(DASH):
            raise NoteError(f"not a signature line: {line[:60]!r}")
        name, _, encoded = line[len(DASH) :].partition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise NoteError("a signature is not base64") from None
        if len(raw) < 5:
            raise NoteError("a signature is too short")
        signatures.append(Signature(name, raw[:4], raw[4:]))
    if len(signatures) > 100:
        raise NoteError("too many signatures on one note")
    return Note(text + "\n", tuple(signatures))


def open_note(signed: str, verifiers: Iterable[Verifier]) -> Note:
    """The note, if at least one of ``verifiers`` signed it (and none of them badly)."""
    note = parse_note(signed)
    if not any([note.signed_by(v) for v in verifiers]):
        raise NoteError("the note is not signed by a known key")
    return note


def split_notes(text: str) -> list[str]:
    """The signed notes one after another in ``text`` (a witness file, ``ledger head``
    output kept over time): each ends with its block of signature lines."""
    notes: list[str] = []
    current: list[str] = []
    signing = False
    for line in text.splitlines(keepends=True):
        if signing and not line.startswith(DASH):
            notes.append("".join(current))
            current, signing = [], False
            if not line.strip():
                continue
        if line.startswith(DASH) and current and current[-1] == "\n":
            signing = True
        current.append(line)
    if "".join(current).strip():
        notes.append("".join(current))
    return notes

"""Named errors of the ledger; the CLI and the receiver each turn them into one line."""

from __future__ import annotations

from typing import ClassVar


class LedgerError(Exception):
    """Base class for errors a user can act on."""


class ConfigError(LedgerError):
    """The configuration is missing or malformed."""


class Rejected(LedgerError):
    """A post that is refused: the receiver answers ``status`` and the one-line reason."""

    status: ClassVar[int]
    # What makes a post get this answer, for the README's table (one line each).
    situations: ClassVar[tuple[str, ...]] = ()

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class BadPost(Rejected):
    status = 400
    situations = (
        "no `order` form field, or more than one; not a form post; over 32 fields",
        "`order` not UTF-8, not JSON, not an object, no `id`, nested deeper than 64",
        "body cut short",
    )


class NotSigned(Rejected):
    status = 403
    situations = (
        "missing or unknown `X-ORDER-DESK-STORE-ID`",
        "missing or wrong `X-ORDER-DESK-HASH`",
    )


class Rehearsed(Rejected):
    """A refusal while the store rehearses: 400, so Order Desk lets the merchant re-run
    the post, with what production would have answered."""

    status = 400
    situations = ("any post while its store rehearses (`--rehearse`): the verdict",)

    @classmethod
    def of(cls, exc: Rejected) -> Rehearsed:
        return cls(f"rehearsal: production would answer {exc.status}: {exc.reason}")


class WrongMethod(Rejected):
    status = 405
    situations = ("GET, PUT, PATCH, DELETE",)


class TooSlow(Rejected):
    status = 408
    situations = ("body not received within the body timeout",)


class TooLarge(Rejected):
    status = 413
    situations = ("body over the configured limit",)


REFUSALS: tuple[type[Rejected], ...] = (
    BadPost,
    NotSigned,
    WrongMethod,
    TooSlow,
    TooLarge,
    Rehearsed,
)


class StorageUnavailable(LedgerError):
    """The database could not durably record a write; the sender should retry."""


class ChainKeyError(LedgerError):
    """The legacy chain key is missing or does not fit the log it should check."""


class SigningKeyError(LedgerError):
    """The signing key is missing, unreadable or not the ledger's."""


class NewerSchema(LedgerError):
    """The file was written by a newer version of the ledger."""


class OlderSchema(LedgerError):
    """The file's projections are of an older version than this ledger's."""


class BackupError(LedgerError):
    """The backup could not be written."""


class SendError(LedgerError):
    """``ledger send`` got no answer: refused, unreachable, untrusted, or not a URL."""

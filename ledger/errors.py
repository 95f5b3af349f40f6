"""Named errors of the ledger; the CLI turns them into one-line messages."""


class LedgerError(Exception):
    """Base class for errors a user can act on."""


class ConfigError(LedgerError):
    """The configuration is missing or malformed."""


class Rejected(LedgerError):
    """A post that is refused, with the HTTP status and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class StorageUnavailable(LedgerError):
    """The database could not durably record a write; the sender should retry."""


class ChainKeyError(LedgerError):
    """The chain key is missing or does not fit the log."""


class NewerSchema(LedgerError):
    """The file was written by a newer version of the ledger."""


class OlderSchema(LedgerError):
    """The file's projections are of an older version than this ledger's."""

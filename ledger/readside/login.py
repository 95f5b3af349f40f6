"""The read side's login: the hash that guards it, made or checked before it starts.

Apart from Datasette itself, so the receiving process checks a configured login without
importing a web framework it does not serve.
"""

from __future__ import annotations

from ..errors import ConfigError


def hash_password(password: str) -> str:
    from datasette_auth_passwords.utils import hash_password as _hash

    return str(_hash(password))


def password_hash_from(password: str | None, configured: str | None) -> str | None:
    """The hash to guard Datasette with: from a password given now, else the configured
    hash (``LEDGER_DATASETTE_PASSWORD_HASH``)."""
    if password is not None:
        if not password.strip():
            raise ConfigError("--datasette-password: an empty password protects nothing")
        return hash_password(password)
    configured = (configured or "").strip()
    if configured and configured.count("$") != 3:
        raise ConfigError(
            "LEDGER_DATASETTE_PASSWORD_HASH is not a pbkdf2_sha256$iterations$salt$hash value"
            " (make one with: datasette hash-password)"
        )
    return configured or None

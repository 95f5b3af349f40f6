"""The read side's login: the hash that guards it, made or checked before it starts.

Apart from Datasette itself, so the receiving process checks a configured login without
importing a web framework it does not serve.
"""

from __future__ import annotations

import ipaddress
import socket

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


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is this machine's loopback. A name that does
    not resolve counts as loopback here: binding to it fails anyway, with its own error."""
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return True
    return all(ipaddress.ip_address(str(a[4][0]).split("%")[0]).is_loopback for a in found)


def require_login_off_loopback(host: str, password_hash: str | None, public: bool) -> None:
    """Datasette shows customers' names, addresses and phone numbers: off loopback only
    behind a login, or when the operator says ``--public-datasette``."""
    if password_hash or public or is_loopback(host):
        return
    raise ConfigError(
        f"Datasette on {host} would show customers' names, addresses and phone numbers to"
        " anyone who reaches it: give it a login (--datasette-password, or a hash in"
        " LEDGER_DATASETTE_PASSWORD_HASH), or say --public-datasette"
    )

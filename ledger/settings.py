"""Settings, read from the environment only when asked (never at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import ConfigError

DEFAULT_MAX_BODY = 5 * 1024 * 1024


def parse_stores(spec: str) -> dict[str, str]:
    """Parse ``"id1:key1,id2:key2"`` into ``{store_id: api_key}``."""
    stores: dict[str, str] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        store_id, sep, key = item.partition(":")
        if not sep or not store_id.strip() or not key:
            raise ConfigError(
                f"ORDERDESK_STORES entry {store_id.strip()!r} is not of the form id:key"
            )
        stores[store_id.strip()] = key
    return stores


# How long a write (a batch of posts, a folder naming, a rebuild's swap) waits for a lock
# another process holds; posts then get a 503, commands fail with 'database is locked'.
# A rebuild's swap holds it ~10.5 s at 1M events on the 2-core machine (11-14 s before it
# copied index b-trees whole); Order Desk gives up on an answer after 30 s, and every 503
# spends one of its five retries.
DEFAULT_BUSY_TIMEOUT_MS = 20_000


@dataclass(frozen=True)
class Settings:
    db_path: Path = Path("ledger.db")
    stores: Mapping[str, str] = field(default_factory=dict)
    key_file: Path | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY
    body_timeout_s: float = 25.0
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
    batch_max: int = 256

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        stores = parse_stores(env.get("ORDERDESK_STORES", ""))
        single_id = env.get("ORDERDESK_STORE_ID", "").strip()
        single_key = env.get("ORDERDESK_API_KEY", "")
        if single_id and single_key:
            stores[single_id] = single_key
        elif single_id or single_key:
            raise ConfigError("set both ORDERDESK_STORE_ID and ORDERDESK_API_KEY, or neither")
        key_file = env.get("LEDGER_KEY_FILE")
        try:
            return cls(
                db_path=Path(env.get("LEDGER_DB", "ledger.db")),
                stores=stores,
                key_file=Path(key_file) if key_file else None,
                max_body_bytes=int(env.get("LEDGER_MAX_BODY_BYTES", DEFAULT_MAX_BODY)),
                body_timeout_s=float(env.get("LEDGER_BODY_TIMEOUT_S", 25.0)),
                busy_timeout_ms=int(env.get("LEDGER_BUSY_TIMEOUT_MS", DEFAULT_BUSY_TIMEOUT_MS)),
            )
        except ValueError as exc:
            raise ConfigError(f"a LEDGER_ number setting is not a number: {exc}") from None

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def chain_key_path(self) -> Path:
        return self.key_file or self.db_path.with_name(self.db_path.name + ".key")

    def require_stores(self) -> None:
        """Fail closed: without a key there is no way to tell a real post from a forged one."""
        if not self.stores:
            raise ConfigError(
                "no Order Desk store is configured: set ORDERDESK_STORE_ID and "
                "ORDERDESK_API_KEY (or ORDERDESK_STORES=id:key,...); "
                "the ledger never accepts unverified posts"
            )

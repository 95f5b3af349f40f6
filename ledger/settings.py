"""Settings: every knob declared once, read from the environment only when asked.

Each field says its environment variable, its command-line option and what it does
(``field(metadata=...)``); ``from_env`` reads them, the CLI builds its options from
them, and the README's configuration table is generated from them (``cog``). Fields
without an environment variable are tunables: passed in by code and tests, not set by
operators.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .db import DEFAULT_BUSY_TIMEOUT_MS
from .errors import ConfigError

DEFAULT_MAX_BODY = 5 * 1024 * 1024


def setting(
    default: Any, help: str, env: str | None = None, option: str | None = None, shown: str = "",
    essential: bool = False,
) -> Any:  # fmt: skip
    """A Settings field: its default, what it does, and where an operator sets it;
    ``essential`` ones are what a deployment decides (the README lists them)."""
    meta = {"help": help, "env": env, "option": option, "shown": shown, "essential": essential}
    if callable(default):
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    db_path: Path = setting(
        Path("ledger.db"), "the ledger's SQLite file", "LEDGER_DB", "--db", essential=True
    )
    stores: Mapping[str, str] = setting(
        dict,
        "the Order Desk stores posts are accepted from, each with its API key",
        "ORDERDESK_STORE_ID, ORDERDESK_API_KEY or ORDERDESK_STORES=id1:key1,id2:key2",
        shown="none",
        essential=True,
    )
    signing_key_file: Path | None = setting(
        None,
        "the key that signs the log's heads (mode 0600, never in the file or a backup), made"
        " at the first start",
        "LEDGER_SIGNING_KEY",
        "--signing-key",
        shown="`<db>.signing-key` beside the database",
        essential=True,
    )
    origin: str | None = setting(
        None,
        "the ledger's name on its signed heads (e.g. `ledger.example.com/orderdesk`), set with"
        " its key",
        "LEDGER_ORIGIN",
        shown="`orderdesk-ledger/<16 hex>`",
        essential=True,
    )
    key_file: Path | None = setting(
        None,
        "the chain key of a file from before signed heads: read once, at its upgrade",
        "LEDGER_KEY_FILE",
        "--key-file",
        shown="`<db>.key` beside the database",
    )
    rehearse: frozenset[str] = setting(
        frozenset,
        "stores (`*`: all) whose posts are checked as in production, answered 400 with the"
        " verdict and not appended",
        "LEDGER_REHEARSE", "--rehearse", shown="none", essential=True,
    )  # fmt: skip
    max_body_bytes: int = setting(
        DEFAULT_MAX_BODY, "largest post accepted (then 413)", "LEDGER_MAX_BODY_BYTES",
        "--max-body-bytes", shown="5 MB",
    )  # fmt: skip
    body_timeout_s: float = setting(
        25.0, "time to receive a post's body (then 408)", "LEDGER_BODY_TIMEOUT_S", shown="25 s"
    )
    header_timeout_s: float = setting(
        5.0, "time to send a request's headers (then the connection is closed)",
        "LEDGER_HEADER_TIMEOUT_S", shown="5 s",
    )  # fmt: skip
    max_connections: int = setting(
        1024, "connections per server; past it the oldest still sending headers are closed",
        "LEDGER_MAX_CONNECTIONS",
    )  # fmt: skip
    busy_timeout_ms: int = setting(
        DEFAULT_BUSY_TIMEOUT_MS,
        "how long a write waits for another process's lock (a rebuild's swap), then 503 +"
        " Retry-After",
        "LEDGER_BUSY_TIMEOUT_MS",
        shown="20,000 ms",
    )
    batch_max: int = setting(256, "most posts one commit holds", "LEDGER_BATCH_MAX")
    datasette_user: str = setting(
        "ledger", "the user Datasette's login knows", "LEDGER_DATASETTE_USER"
    )
    datasette_password_hash: str | None = setting(
        None,
        "put Datasette behind a login: a `datasette hash-password` hash",
        "LEDGER_DATASETTE_PASSWORD_HASH",
        shown="none: no login",
        essential=True,
    )
    trusted_proxies: tuple[str, ...] = setting(
        (),
        "proxies whose `X-Forwarded-For` is believed (IPs, networks); else the peer's",
        "LEDGER_TRUSTED_PROXIES",
        "--trusted-proxy",
        shown="none",
        essential=True,
    )
    # Tunables (no environment variable).
    close_every: int = setting(5_000, "close the inventory movements every this many events")
    wal_limit_bytes: int = setting(
        64 * 1024 * 1024, "past this much WAL the writer finishes a checkpoint itself"
    )
    checkpoint_every_s: float = setting(0.2, "how often the writer's checkpointer runs")
    rebuild_beyond: int = setting(
        10_000, "at start, rebuild rather than catch up past this many unprojected events"
    )
    parallel_from: int = setting(50_000, "a rebuild folds in worker processes from this size")
    orders_per_task: int = setting(2_000, "orders a rebuild worker folds per task")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        found: dict[str, Any] = {"stores": stores_from_env(env)}
        for f in declared():
            name = f.metadata["env"]
            if f.name != "stores" and name and env.get(name, "").strip():
                found[f.name] = _parse(f, name, env[name])
        return cls(**found)

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def chain_key_path(self) -> Path:
        return self.key_file or self.db_path.with_name(self.db_path.name + ".key")

    @property
    def signing_key_path(self) -> Path:
        return self.signing_key_file or self.db_path.with_name(self.db_path.name + ".signing-key")

    def rehearses(self, store_id: str | None) -> bool:
        return "*" in self.rehearse or (store_id or "").strip() in self.rehearse

    def require_stores(self) -> None:
        """Fail closed: without a key there is no way to tell a real post from a forged one."""
        if not self.stores:
            raise ConfigError(
                "no Order Desk store is configured: set ORDERDESK_STORE_ID and "
                "ORDERDESK_API_KEY (or ORDERDESK_STORES=id:key,...); "
                "the ledger never accepts unverified posts"
            )


def declared() -> Iterator[Field[Any]]:
    yield from fields(Settings)


def trusted_proxies(
    entries: Iterable[str], source: str = "LEDGER_TRUSTED_PROXIES"
) -> tuple[str, ...]:
    """Each entry an IP address or network, checked here: uvicorn would take a typo for a
    host name that never matches, and believe no one without saying so."""
    found = []
    for n, entry in enumerate(entries, 1):
        try:
            network = ipaddress.ip_network(entry.strip())
        except ValueError as exc:
            raise ConfigError(
                f"{source} entry {n} is not an IP address or network: {exc}"
            ) from None
        found.append(str(network.network_address) if network.num_addresses == 1 else str(network))
    return tuple(found)


PARSERS: Mapping[str, Callable[[str], Any]] = {
    "tuple[str, ...]": lambda value: trusted_proxies(value.split(",")),
    "Path": Path,
    "Path | None": Path,
    "int": int,
    "float": float,
    "str": str,
    "str | None": str,
    "frozenset[str]": lambda text: frozenset(p.strip() for p in text.split(",") if p.strip()),
}


def _parse(f: Field[Any], env: str, value: str) -> Any:
    try:
        return PARSERS[str(f.type)](value.strip())
    except ValueError:
        raise ConfigError(f"{env} is not a {f.type}: {value!r}") from None


# Order Desk's store ids are numbers; an entry's id is named in an error only if it is
# one (the part before the ':' of a malformed entry may be its key).
STORE_ID = re.compile(r"[0-9]{1,20}")
KEY_SEPARATORS = ",;:"


def _key_problem(key: str) -> str | None:
    """What makes ``key`` no API key, in words that do not repeat it."""
    if not key:
        return "the API key is empty"
    if any(c.isspace() for c in key):
        return "the API key holds whitespace"
    if bad := next((c for c in key if c in KEY_SEPARATORS), None):
        return f"the API key holds {bad!r} (entries are id:key, separated by ',' alone)"
    if not key.isascii() or not key.isprintable():
        return "the API key holds a character that is not printable ASCII"
    return None


def _store_entry(n: int, entry: str) -> tuple[str, str]:
    store_id, sep, key = entry.partition(":")
    where = f"ORDERDESK_STORES entry {n}"
    if sep and STORE_ID.fullmatch(store_id.strip()):  # without ':' it may all be a key
        where += f" (store {store_id.strip()})"
    if not entry.strip():
        problem: str | None = "empty (entries are id:key, separated by ',' alone)"
    elif not sep:
        problem = "no ':' between a store id and its API key"
    elif store_id != store_id.strip():
        problem = "whitespace around the store id"
    elif not STORE_ID.fullmatch(store_id):
        problem = "the store id is not a number (Order Desk's are)"
    else:
        problem = _key_problem(key)
    if problem:
        raise ConfigError(f"{where}: {problem}")
    return store_id, key


def parse_stores(spec: str) -> dict[str, str]:
    """Parse ``"id1:key1,id2:key2"`` into ``{store_id: api_key}``, strictly: no empty
    entry, no whitespace, no separator but ',', no store twice. An error names the entry
    by its position and its store id, never its key."""
    stores: dict[str, str] = {}
    first: dict[str, int] = {}
    for n, entry in enumerate(spec.split(","), 1):
        store_id, key = _store_entry(n, entry)
        if store_id in stores:
            raise ConfigError(
                f"ORDERDESK_STORES entry {n} (store {store_id}) repeats entry {first[store_id]}"
            )
        stores[store_id], first[store_id] = key, n
    return stores


def _single_store(env: Mapping[str, str]) -> tuple[str, str] | None:
    """ORDERDESK_STORE_ID and ORDERDESK_API_KEY: both or neither."""
    store_id, key = env.get("ORDERDESK_STORE_ID", ""), env.get("ORDERDESK_API_KEY", "")
    if not store_id and not key:
        return None
    if not store_id or not key:
        raise ConfigError("set both ORDERDESK_STORE_ID and ORDERDESK_API_KEY, or neither")
    if not STORE_ID.fullmatch(store_id):
        raise ConfigError("ORDERDESK_STORE_ID is not a number (Order Desk's store ids are)")
    if problem := _key_problem(key):
        raise ConfigError(f"ORDERDESK_API_KEY (store {store_id}): {problem}")
    return store_id, key


def stores_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """ORDERDESK_STORES when set is the whole list; a single store set beside it is added
    to it unless the two give its id different keys."""
    spec = env.get("ORDERDESK_STORES", "")
    stores = parse_stores(spec) if spec.strip() else {}
    single = _single_store(env)
    if single:
        store_id, key = single
        if stores.get(store_id, key) != key:
            raise ConfigError(
                f"store {store_id} has one API key in ORDERDESK_STORES and another in"
                " ORDERDESK_API_KEY"
            )
        stores[store_id] = key
    return stores

"""Open a ledger file: ensure its shape and its chain key, and bring projections up to date."""

from __future__ import annotations

import logging
import sqlite3

from . import rebuild
from .chain import create_key, load_key
from .errors import ChainKeyError
from .schema import SCHEMA_VERSION, connect, ensure_schema
from .settings import Settings
from .store import catch_up, checkpoint, read_head

log = logging.getLogger("ledger")
# Past this many unprojected events a bulk rebuild is faster than projecting one by one.
REBUILD_BEYOND = 10_000


def open_ledger(settings: Settings) -> bytes:
    """Idempotent: safe at every start and from several processes at once."""
    conn = connect(str(settings.db_path), busy_timeout_ms=settings.busy_timeout_ms)
    try:
        older = ensure_schema(conn)
        key = _chain_key(settings, conn)
        behind = read_head(conn).seq - checkpoint(conn)
        if older or behind > REBUILD_BEYOND:
            conn.close()
            log.warning(
                "projections %s: rebuilding them from the log (%d events)",
                f"upgraded to schema version {SCHEMA_VERSION}" if older else "are behind",
                behind,
            )
            rebuild.rebuild(settings.db_path, busy_timeout_ms=settings.busy_timeout_ms)
            conn = connect(str(settings.db_path), busy_timeout_ms=settings.busy_timeout_ms)
        conn.execute("BEGIN IMMEDIATE")
        try:
            catch_up(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return key
    finally:
        conn.close()


def _chain_key(settings: Settings, conn: sqlite3.Connection) -> bytes:
    path = settings.chain_key_path
    if path.exists():
        return load_key(path)
    has_events = conn.execute("SELECT 1 FROM events LIMIT 1").fetchone()
    if has_events:
        raise ChainKeyError(
            f"the log holds events but the chain key {path} is missing: restore it "
            "(or point LEDGER_KEY_FILE at it); a new key could not verify the old chain"
        )
    try:
        return create_key(path)
    except FileExistsError:  # another process created it first
        return load_key(path)

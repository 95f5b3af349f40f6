"""Open a ledger file: ensure its shape and its chain key, and bring projections up to date.

This may run a full rebuild: when the file's projections were of a shape too old to
upgrade in place, or when more than ``rebuild_beyond`` events are unprojected (a bulk
rebuild is then faster than projecting them one by one). It logs a line when it does.
"""

from __future__ import annotations

import logging
import sqlite3

from .chain import create_key, load_key
from .db import connection, immediate
from .errors import ChainKeyError
from .log import last_seq
from .projections import catch_up
from .projections.positions import position
from .projections.rebuild import rebuild
from .schema import SCHEMA_VERSION, ensure_schema
from .settings import Settings

log = logging.getLogger("ledger")


def open_ledger(settings: Settings) -> bytes:
    """Idempotent: safe at every start and from several processes at once."""
    with connection(settings.db_path, busy_timeout_ms=settings.busy_timeout_ms) as conn:
        older = ensure_schema(conn)
        key = _chain_key(settings, conn)
        behind = last_seq(conn) - position(conn)
    if older or behind > settings.rebuild_beyond:
        log.warning(
            "projections %s: rebuilding them from the log (%d events)",
            f"upgraded to schema version {SCHEMA_VERSION}" if older else "are behind",
            behind,
        )
        rebuild(settings)
    with (
        connection(settings.db_path, busy_timeout_ms=settings.busy_timeout_ms) as conn,
        immediate(conn),
    ):
        catch_up(conn)
    return key


def _chain_key(settings: Settings, conn: sqlite3.Connection) -> bytes:
    path = settings.chain_key_path
    if path.exists():
        return load_key(path)
    if last_seq(conn):
        raise ChainKeyError(
            f"the log holds events but the chain key {path} is missing: restore it "
            "(or point LEDGER_KEY_FILE at it); a new key could not verify the old chain"
        )
    try:
        return create_key(path)
    except FileExistsError:  # another process created it first
        return load_key(path)

"""Open a ledger file: ensure its shape and its signing key, bring projections up to date.

This may run a full rebuild: when the file's projections were of a shape too old to
upgrade in place, or when more than ``rebuild_beyond`` events are unprojected (a bulk
rebuild is then faster than projecting them one by one). It logs a line when it does.
"""

from __future__ import annotations

import logging

from .db import connection, writing
from .keys import load_signing
from .log import last_seq
from .projections import catch_up
from .projections.positions import position
from .projections.rebuild import rebuild
from .projections.scratch import remove_stale
from .schema import SCHEMA_VERSION, ensure_schema
from .settings import Settings

log = logging.getLogger("ledger")


def open_ledger(settings: Settings) -> None:
    """Idempotent: safe at every start and from several processes at once."""
    remove_stale(settings.db_path)  # a killed rebuild's scratch copy of every projection
    with connection(settings.db_path, busy_timeout_ms=settings.busy_timeout_ms) as conn:
        older = ensure_schema(conn, settings)
        behind = last_seq(conn) - position(conn)
        load_signing(conn, settings)  # a missing or foreign key fails here, in one line
    if older or behind > settings.rebuild_beyond:
        log.warning(
            "projections %s: rebuilding them from the log (%d events)",
            f"upgraded to schema version {SCHEMA_VERSION}" if older else "are behind",
            behind,
        )
        rebuild(settings)
    with writing(settings.db_path, settings.busy_timeout_ms) as conn:
        catch_up(conn)

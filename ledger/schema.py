"""The file's shape, ensured at every start: create what is missing, upgrade what is old.

Idempotent, and safe from several processes at once (it runs in one ``BEGIN IMMEDIATE``
transaction). The log's tables are created once and never dropped; the projections are
disposable: a file too old for any in-place step has them dropped here and rebuilt from
the log by the caller (``startup.open_ledger``), and so does a file that has not had a
step that ``rebuilds``.
"""

from __future__ import annotations

import sqlite3

from . import migrations
from .db import database, immediate
from .errors import OlderSchema
from .heads import HEAD_TABLES, HEAD_TRIGGERS
from .keys import signing_key, start_signing
from .legacy import anchor_for
from .log import LOG_TABLES, LOG_TRIGGERS
from .projections.tables import create_projection_tables, drop_projections
from .projections.triggers import create_projection_triggers
from .readside.sql_views import ensure_views
from .settings import Settings

SCHEMA_VERSION = migrations.SCHEMA_VERSION


def ensure_schema(conn: sqlite3.Connection, settings: Settings) -> bool:
    """Create whatever is missing and run the pending steps; a new file gets its signing
    key (created if there is none) and its first signed head.

    Returns True when the file's projections could not be upgraded in place (too old, or
    a pending step rebuilds them): they were dropped (the log is never touched) and must
    be rebuilt from it.
    """
    with immediate(conn):
        db = database(conn)
        fresh = not db["events"].exists()
        rebuilding = not fresh and (
            migrations.file_version(db) < migrations.FIRST_VERSION or migrations.rebuilds(db)
        )
        if rebuilding:
            drop_projections(conn)
            conn.execute("DROP TABLE IF EXISTS checkpoints")  # positions, by its old name
        if not fresh:
            migrations.upgrade(db, settings, rebuilding=rebuilding)
        for table in (*LOG_TABLES, *HEAD_TABLES):
            conn.execute(table.create_sql())
            for statement in table.index_sql():
                conn.execute(statement)
        db.executescript(LOG_TRIGGERS + HEAD_TRIGGERS)
        if fresh:
            migrations.mark_all(db)
            start_signing(conn, signing_key(settings, create=True), anchor_for(conn, None))
        create_projection_tables(conn)
        create_projection_triggers(conn)
        ensure_views(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return rebuilding


def refuse_newer(conn: sqlite3.Connection) -> None:
    """A file a newer ledger wrote is not this one's to change."""
    migrations.file_version(database(conn))


def require_current(conn: sqlite3.Connection) -> None:
    """The file's projections are of this version's shape, or OlderSchema says what to do."""
    db = database(conn)
    if migrations.pending(db) or migrations.file_version(db) < SCHEMA_VERSION:
        raise OlderSchema(
            "the file's projections are of an older schema version: `ledger rebuild`"
            " (or the next `ledger serve`) rebuilds them in the current one"
        )

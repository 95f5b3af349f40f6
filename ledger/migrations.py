"""Every change to the shape of a ledger file after its first version, in order.

Each step runs once per file, in the start-up transaction, and is recorded in
``_sqlite_migrations``, sqlite-utils' Migrations table (the steps here take the settings,
so ``upgrade`` runs them, not ``Migrations.apply``). A step marked ``projections_only``
upgrades projections in place; when the projections are rebuilt from the log instead (a
file too old for any in-place step, or one a pending step ``rebuilds``), such steps are
recorded without running, because the rebuilt tables already have the shape they lead
to. The log is never rewritten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlite_utils
from sqlite_utils.migrations import Migrations

from .chain import load_legacy_key
from .errors import NewerSchema
from .projections.closing import close_movements
from .projections.positions import position
from .projections.tables import MOVEMENTS_CLOSED, ORDER_FACET_COUNTS, ORDER_FACETS, POSITIONS
from .settings import Settings

MIGRATIONS = Migrations("orderdesk-ledger")
# Files written before named steps carry only PRAGMA user_version: version 2 had none of
# the steps below, and each step after that added one.
FIRST_VERSION = 2


StepFn = Callable[[sqlite_utils.Database, Settings], None]


@dataclass(frozen=True)
class Step:
    name: str
    projections_only: bool
    run: StepFn
    rebuilds: bool = False  # what the projections hold changes: derive them anew


STEPS: list[Step] = []


def step(*, projections_only: bool, rebuilds: bool = False) -> Callable[[StepFn], StepFn]:
    def register(fn: StepFn) -> StepFn:
        STEPS.append(Step(fn.__name__, projections_only, fn, rebuilds))
        return fn

    return register


@step(projections_only=True)
def order_facets_counted(db: sqlite_utils.Database, settings: Settings) -> None:
    """order_facets, counted once from the orders; its triggers keep it from then on."""
    db.execute(ORDER_FACET_COUNTS.create_sql())
    for column in ORDER_FACETS:
        db.execute(
            f"INSERT INTO order_facets SELECT '{column}', {column}, count(*) FROM orders"
            f" WHERE {column} IS NOT NULL GROUP BY {column}"
        )


@step(projections_only=True)
def movements_closed(db: sqlite_utils.Database, settings: Settings) -> None:
    """movements_closed, with every projected movement closed."""
    checkpoints_renamed_positions(db, settings)  # closing reads and writes positions by it
    db.execute(MOVEMENTS_CLOSED.create_sql())
    close_movements(db.conn, position(db.conn))


@step(projections_only=True)
def checkpoints_renamed_positions(db: sqlite_utils.Database, settings: Settings) -> None:
    """'checkpoint' meant two things (a projection's place in the log, a WAL checkpoint);
    the projections' table is ``positions`` now."""
    if db["checkpoints"].exists():
        db.rename_table("checkpoints", POSITIONS.name)


# Indexes an older version created and this one does not: each still costs every write.
RETIRED_INDEXES = (
    "read_inventory_movements_code",
    "read_deliveries_sha",
    # orders_state (state, order_updated_at) counts the state facet 22 ms against 15; the
    # orders page did not get measurably faster, and every order paid one more index
    "read_orders_state",
    # order_items (store_id, code): no page filters lines by store and SKU together (a
    # SKU's orders are in its history, by the movements index), and on a big file every
    # new line cost one more scattered page (docs/performance-log.md, 2026-11)
    "order_items_code",
)


@step(projections_only=True)
def retired_indexes_dropped(db: sqlite_utils.Database, settings: Settings) -> None:
    """Indexes an older version made, which cost every write and serve no page now."""
    for name in RETIRED_INDEXES:
        db.execute(f"DROP INDEX IF EXISTS {name}")


@step(projections_only=False)
def heads_signed(db: sqlite_utils.Database, settings: Settings) -> None:
    """Signed heads: the old HMAC chain checked once with its key, the prefix digested into
    the anchor, and the first signed head over it; deliveries chained from then on."""
    from .heads import HEAD_TABLES
    from .keys import signing_key, start_signing
    from .legacy import anchor_for

    if db["log_keys"].exists() and db.execute("SELECT 1 FROM log_keys").fetchone():
        return  # signed already (a file told it is older than it is)
    if "hash" not in db["deliveries"].columns_dict:
        db["deliveries"].add_column("hash", str)  # type: ignore[union-attr]
    for table in HEAD_TABLES:
        db.execute(table.create_sql())
    has_events = db.execute("SELECT 1 FROM events LIMIT 1").fetchone() is not None
    key = load_legacy_key(settings.chain_key_path) if has_events else None
    start_signing(db.conn, signing_key(settings, create=True), anchor_for(db.conn, key))


@step(projections_only=False)
def delivery_headers_bounded(db: sqlite_utils.Database, settings: Settings) -> None:
    """A refused attempt's header values are kept to a bound, with their lengths."""
    from .log import HeaderLengths

    columns = db["deliveries"].columns_dict
    for name in HeaderLengths._fields:
        if name not in columns:
            db["deliveries"].add_column(name, int)  # type: ignore[union-attr]


@step(projections_only=True, rebuilds=True)
def instants_and_bounds_refolded(db: sqlite_utils.Database, settings: Settings) -> None:
    """date_updated compared as an instant, not as text; amounts, quantities and the size
    of a projected snapshot bounded (issue 16). Which snapshot is current, and some values,
    can differ from what the tables hold: the projections are rebuilt from the log, so
    there is nothing to do in place."""


SCHEMA_VERSION = FIRST_VERSION + len(STEPS)


def _record(db: sqlite_utils.Database, name: str) -> None:
    db.table(MIGRATIONS.migrations_table).insert(
        {"migration_set": MIGRATIONS.name, "name": name, "applied_at": str(datetime.now(UTC))}
    )


def file_version(db: sqlite_utils.Database) -> int:
    """The file's shape version; a file of a newer ledger is refused."""
    version = int(db.execute("PRAGMA main.user_version").fetchone()[0])
    applied = {m.name for m in MIGRATIONS.applied(db)}
    if version > SCHEMA_VERSION or applied - {s.name for s in STEPS}:
        raise NewerSchema(
            f"the file is of schema version {max(version, len(applied) + FIRST_VERSION)};"
            f" this ledger knows up to {SCHEMA_VERSION}: upgrade orderdesk-ledger"
        )
    return version


def _adopt(db: sqlite_utils.Database) -> None:
    """A file from before named steps: record the steps its user_version says it had."""
    if db[MIGRATIONS.migrations_table].exists():
        return
    MIGRATIONS.ensure_migrations_table(db)
    had = max(0, file_version(db) - FIRST_VERSION)
    for done in STEPS[:had]:
        _record(db, done.name)


def pending(db: sqlite_utils.Database) -> list[Step]:
    """The steps this file has not had yet."""
    if not db[MIGRATIONS.migrations_table].exists():
        return STEPS[max(0, file_version(db) - FIRST_VERSION) :]
    file_version(db)
    applied = {m.name for m in MIGRATIONS.applied(db)}
    return [s for s in STEPS if s.name not in applied]


def rebuilds(db: sqlite_utils.Database) -> bool:
    """Whether a step this file has not had yet needs its projections derived anew."""
    return any(s.rebuilds for s in pending(db))


def upgrade(db: sqlite_utils.Database, settings: Settings, *, rebuilding: bool) -> None:
    """Run every pending step (inside the caller's transaction); with ``rebuilding`` the
    projection-only ones are recorded without running."""
    _adopt(db)
    for s in pending(db):
        if not (rebuilding and s.projections_only):
            s.run(db, settings)
        _record(db, s.name)


def mark_all(db: sqlite_utils.Database) -> None:
    """A new file has the current shape: every step is recorded as had."""
    MIGRATIONS.ensure_migrations_table(db)
    for s in STEPS:
        _record(db, s.name)

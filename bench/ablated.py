"""``ledger`` with one cost taken out, to measure how close the rest comes to a target.

    BENCH_ABLATE=projection python -m bench.ablated serve ...   # log and deliveries only
    BENCH_ABLATE=fsync      python -m bench.ablated serve ...   # synchronous=NORMAL
    BENCH_ABLATE=signing    python -m bench.ablated serve ...   # no signed heads

Never a way to run the ledger: without projections the read side stays empty, and
without the fsync a 200 is not durable. The ingest part runs these beside ``fresh``: if
even the server without its projections misses a ratio, no faster projection meets it.

The patches run when this module is imported, so the writer process gets them too:
multiprocessing's spawn imports the parent's main module again (as ``__mp_main__``).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import Any

from ledger import committer, db, jobs, projections
from ledger.cli import cli
from ledger.events import StoredEvent
from ledger.projections.positions import set_position
from ledger.projections.tables import PROJECTED

ABLATE = "BENCH_ABLATE"


def _position_only(conn: sqlite3.Connection, event: StoredEvent) -> None:
    # What projections.apply leaves when it projects nothing: the event counts as projected.
    set_position(conn, PROJECTED, event.seq)


def _connect_without_fsync(path: str, **options: Any) -> sqlite3.Connection:
    conn = db.connect(path, **options)
    conn.execute("PRAGMA synchronous = NORMAL")  # WAL: no fsync at COMMIT
    return conn


def _without_projection() -> None:
    setattr(projections, "apply", _position_only)  # noqa: B010


def _without_fsync() -> None:
    setattr(committer, "connect", _connect_without_fsync)  # noqa: B010


def _nothing(*args: Any) -> None:
    pass


def _without_signing() -> None:
    # The batch neither checks the head against the last signed one nor signs a new one.
    setattr(jobs, "check_follows", _nothing)  # noqa: B010
    setattr(jobs, "append_head", _nothing)  # noqa: B010


ABLATIONS: dict[str, Callable[[], None]] = {
    "projection": _without_projection,
    "fsync": _without_fsync,
    "signing": _without_signing,
}

ABLATIONS[os.environ[ABLATE]]()

if __name__ == "__main__":
    cli()

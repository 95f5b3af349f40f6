"""Online backups: a consistent snapshot of the live file, taken while posts arrive."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .db import connect
from .errors import BackupError


def backup(db_path: Path, dest: Path) -> int:
    """Copy the database (one read snapshot, writers keep going); no key goes with it:
    the copy is checked with the ledger's public key alone (``ledger verify``).

    Returns the number of events in the copy.
    """
    if dest.exists():
        raise BackupError(f"{dest} exists already; a backup never overwrites")
    if not dest.parent.is_dir():
        raise BackupError(f"cannot back up to {dest}: there is no directory {dest.parent}")
    partial = dest.with_name(dest.name + ".partial")
    source = connect(db_path, readonly=True)
    try:
        target = sqlite3.connect(partial)
        try:
            source.backup(target)  # all pages in one step: a single consistent snapshot
            events = int(target.execute("SELECT count(*) FROM events").fetchone()[0])
        finally:
            target.close()
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup to {dest} failed: {exc}") from None
    finally:
        source.close()
    os.replace(partial, dest)
    return events

"""``ledger serve --publish-to DIR``: the latest signed head, written where witnesses read it.

Every ``every`` seconds while the server runs, and once at shutdown, the latest head goes
into DIR in the witness layout (``witness.keep``): a directory on another disk or host, a
git checkout that a cron job pushes, anything the owner does not control alone. The
interval is the window in which a holder of the signing key could rewrite history unseen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import NamedTuple

from .db import connection
from .heads import Keys, last_head, note
from .settings import Settings
from .witness import keep

log = logging.getLogger("ledger.publish")


class Publish(NamedTuple):
    directory: Path
    every_s: float


def publish_once(settings: Settings, directory: Path) -> Path | None:
    with connection(settings.db_path, readonly=True, busy_timeout_ms=2000) as conn:
        head, keys = last_head(conn), Keys.read(conn)
    return keep(directory, note(head, keys.origin)) if head else None


async def publish_heads(settings: Settings, target: Publish, stop: asyncio.Event) -> None:
    """Publish until ``stop`` is set, then once more; a failure is logged, never fatal."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=target.every_s)
        try:
            await asyncio.to_thread(publish_once, settings, target.directory)
        except (OSError, sqlite3.Error) as exc:
            log.warning("publishing the signed head to %s failed: %s", target.directory, exc)
        if stop.is_set():
            return

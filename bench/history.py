"""A generated history: ``orders`` orders x 4 snapshots, written with the real library code
(``ledger.store.record_snapshot`` in ``BEGIN IMMEDIATE ... COMMIT`` transactions of
``batch`` events, the head from ``store.read_head`` and the chain key from
``ledger.startup.open_ledger``), so the file is a real, verifiable ledger with projections.

Folders are named first (four FolderNamed events), then the snapshots arrive
interleaved (see ``orders.history_order``). ``received_at`` follows a synthetic clock
(one post every 30 s from 2024-01-01) so time-based indexes look like a real year.

Files are cached under ``bench/.cache/`` keyed by the generator's parameters and a hash of
``ledger/schema.py`` (a schema change regenerates); repeat runs skip generation.

    python -m bench.history --orders 250000      # ~1,000,000 events
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import islice
from pathlib import Path

import ledger.schema
from ledger import store
from ledger.schema import connect
from ledger.settings import Settings
from ledger.startup import open_ledger
from ledger.verify import STANDARD, Snapshot, order_identity

from .orders import API_KEY, FOLDERS, STORE_ID, OrderFactory, history_order

GEN_VERSION = 1
CACHE = Path(__file__).resolve().parent / ".cache"
CHUNK = 2000


@dataclass(frozen=True)
class History:
    path: Path
    key_path: Path
    events: int
    orders: int
    generated_s: float | None  # None: taken from the cache


def schema_digest() -> str:
    """The file's shape (its DDL, version and close interval), not the code around it: a
    refactoring of ledger/schema.py keeps the cached history, a changed table or trigger
    regenerates."""
    s = ledger.schema
    shape = (
        f"{s.SCHEMA_VERSION}\n{s.LOG_DDL}\n{s.TRIGGERS_DDL}\n{s.PROJECTION_DDL}\n"
        f"{s.PROJECTION_TRIGGERS}\nclose every {store.CLOSE_EVERY}"
    )
    return hashlib.sha256(shape.encode()).hexdigest()[:10]


def cache_name(orders: int, block: int, seed: int) -> str:
    return f"history-o{orders}-b{block}-s{seed}-g{GEN_VERSION}-{schema_digest()}.db"


_factory: OrderFactory | None = None


def _payloads(seed: int, work: list[tuple[int, int]]) -> list[bytes]:
    global _factory
    if _factory is None or _factory.seed != seed:
        _factory = OrderFactory(seed)
    return [_factory.payload(n, stage) for n, stage in work]


def _chunks(orders: int, block: int) -> Iterator[list[tuple[int, int]]]:
    it = history_order(orders, block)
    while chunk := list(islice(it, CHUNK)):
        yield chunk


def _snapshot(payload: bytes) -> Snapshot:
    text = payload.decode("utf-8")
    order_id, updated = order_identity(text)
    sha = hashlib.sha256(payload).hexdigest()
    return Snapshot(STORE_ID, text, sha, order_id, updated, STANDARD)


def generate(
    path: Path,
    orders: int,
    block: int = 1000,
    batch: int = 10_000,
    progress: bool = True,
    seed: int = 1,
) -> int:
    """Write the history to ``path`` (and its chain key beside it); returns the event count.
    The orders are ``OrderFactory(seed)``'s: the same seed, the same payloads."""
    settings = Settings(db_path=path, stores={STORE_ID: API_KEY})
    key = open_ledger(settings)
    conn = connect(str(path))
    clock = datetime(2024, 1, 1, tzinfo=UTC)
    total = orders * 4
    done = 0
    started = time.perf_counter()
    try:
        conn.execute("BEGIN IMMEDIATE")
        head = store.read_head(conn)
        for folder_id, name in FOLDERS.items():
            store.record_folder_name(conn, key, head, STORE_ID, folder_id, name)
        conn.execute("COMMIT")
        with multiprocessing.get_context("fork").Pool(1) as workers:
            conn.execute("BEGIN IMMEDIATE")
            head = store.read_head(conn)
            for payloads in workers.imap(partial(_payloads, seed), _chunks(orders, block)):
                for payload in payloads:
                    clock += timedelta(seconds=30)
                    at = clock.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                    delivery = store.Delivery(
                        at,
                        "127.0.0.1",
                        "POST",
                        "application/x-www-form-urlencoded",
                        len(payload) * 3 // 2,
                        STORE_ID,
                    )
                    store.record_snapshot(conn, key, head, delivery, _snapshot(payload))
                    done += 1
                    if done % batch == 0:
                        # Closed as the writer closes them, but one interval behind, so
                        # the movements reconcile_inventory_drift recounts are as many
                        # as they ever get live.
                        store.close_movements(conn, head.seq - store.CLOSE_EVERY)
                        conn.execute("COMMIT")
                        conn.execute("BEGIN IMMEDIATE")
                        head = store.read_head(conn)
                        if progress:
                            rate = done / (time.perf_counter() - started)
                            print(
                                f"  history: {done:,}/{total:,} events ({rate:,.0f}/s)",
                                file=sys.stderr,
                                flush=True,
                            )
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def ensure_history(orders: int, block: int = 1000, seed: int = 1, cache: Path = CACHE) -> History:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / cache_name(orders, block, seed)
    key_path = path.with_name(path.name + ".key")
    if path.exists() and key_path.exists():
        conn = connect(str(path), readonly=True)
        try:
            events = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        finally:
            conn.close()
        return History(path, key_path, events, orders, None)
    tmp = path.with_name(path.name + ".tmp.db")
    for leftover in tmp.parent.glob(tmp.name + "*"):
        leftover.unlink()
    started = time.perf_counter()
    events = generate(tmp, orders, block, seed=seed)
    seconds = time.perf_counter() - started
    tmp.with_name(tmp.name + ".key").replace(key_path)
    tmp.replace(path)
    for leftover in tmp.parent.glob(tmp.name + "*"):
        leftover.unlink()
    return History(path, key_path, events, orders, seconds)


def working_copy(history: History, directory: Path, name: str = "ledger.db") -> Path:
    """Copy the cached history (and its key) to ``directory/name``: runs never touch the cache."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    for leftover in directory.glob(name + "*"):
        leftover.unlink()
    shutil.copyfile(history.path, target)
    shutil.copyfile(history.key_path, target.with_name(name + ".key"))
    target.with_name(name + ".key").chmod(0o600)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=250_000)
    parser.add_argument("--block", type=int, default=1000)
    args = parser.parse_args()
    history = ensure_history(args.orders, args.block)
    took = "cached" if history.generated_s is None else f"generated in {history.generated_s:.0f} s"
    print(f"{history.path}: {history.events:,} events ({took})")


if __name__ == "__main__":
    main()

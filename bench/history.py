"""A generated history: ``orders`` orders x 4 snapshots, written with the real library code
(the writer's ``AppendSnapshot`` jobs in write transactions of ``batch`` events, the chain
key from ``ledger.startup.open_ledger``), so the file is a real, verifiable ledger with
projections.

Folders are named first (four FolderNamed events), then the snapshots arrive
interleaved (see ``orders.history_order``). ``received_at`` follows a synthetic clock
(one post every 30 s from 2024-01-01) so time-based indexes look like a real year.

Files are cached under ``bench/.cache/`` keyed by the generator's parameters and a hash of
the file's shape (a changed table, trigger or chain formula regenerates); repeat runs skip
generation.

    python -m bench.history --orders 250000      # ~1,000,000 events
    python -m bench.history --orders 50000 --sign-every 1   # a head per event (a quiet ledger)
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

from ledger.chain import GENESIS, delivery_link, event_link
from ledger.db import connection, immediate
from ledger.heads import HEAD_TABLES, HEAD_TRIGGERS, append_head
from ledger.jobs import AppendSnapshot, NameFolder, run_alone
from ledger.keys import load_signing
from ledger.log import LOG_TABLES, LOG_TRIGGERS, Delivery
from ledger.payload import order_identity
from ledger.post import Snapshot
from ledger.projections.closing import close_movements
from ledger.projections.tables import PROJECTION_TABLES
from ledger.projections.triggers import PROJECTION_TRIGGERS
from ledger.schema import SCHEMA_VERSION
from ledger.settings import Settings
from ledger.signature import STANDARD
from ledger.startup import open_ledger

from .orders import API_KEY, FOLDERS, STORE_ID, OrderFactory, history_order

GEN_VERSION = 1
SIGN_EVERY = 8  # events per signed head: the writer's batches at c=16
CACHE = Path(__file__).resolve().parent / ".cache"
CHUNK = 2000


@dataclass(frozen=True)
class History:
    path: Path
    key_path: Path
    events: int
    orders: int
    generated_s: float | None  # None: taken from the cache


def _chain_formula() -> str:
    """Two links computed now: a changed chain formula (not a changed table) would leave a
    cached history that `ledger verify` refuses at seq 1, and its time would look met."""
    return f"{event_link({'seq': 1, 'prev_hash': GENESIS})} {delivery_link({'id': 1}, GENESIS)}"


def schema_digest(sign_every: int = SIGN_EVERY) -> str:
    """The file's shape (its DDL, version, chain formula, close interval and heads), not
    the code around it: a refactoring keeps the cached history, a changed table, trigger
    or link regenerates."""
    declared = (*LOG_TABLES, *HEAD_TABLES, *PROJECTION_TABLES)
    tables = [t.create_sql() + "".join(t.index_sql()) for t in declared]
    shape = (
        f"{SCHEMA_VERSION}\n{tables}\n{LOG_TRIGGERS}{HEAD_TRIGGERS}\n{PROJECTION_TRIGGERS}"
        f"\nchain {_chain_formula()}"
        f"\nsigned every {sign_every}"
        f"\nclose every {Settings().close_every}"
    )
    return hashlib.sha256(shape.encode()).hexdigest()[:10]


def cache_name(orders: int, block: int, seed: int, sign_every: int = SIGN_EVERY) -> str:
    digest = schema_digest(sign_every)
    return f"history-o{orders}-b{block}-s{seed}-g{GEN_VERSION}-{digest}.db"


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
    sign_every: int = SIGN_EVERY,
) -> int:
    """Write the history to ``path`` (and its signing key beside it); returns the event
    count. The orders are ``OrderFactory(seed)``'s: the same seed, the same payloads.
    Every ``sign_every`` events a head is signed, as many heads as the writer's batches of
    that size leave live (1: a quiet ledger, one post per batch)."""
    settings = Settings(db_path=path, stores={STORE_ID: API_KEY})
    open_ledger(settings)
    clock = datetime(2024, 1, 1, tzinfo=UTC)
    total = orders * 4
    started = time.perf_counter()
    with connection(path) as conn:
        signing = load_signing(conn, settings)
        names = [NameFolder(STORE_ID, folder_id, name) for folder_id, name in FOLDERS.items()]
        run_alone(conn, signing, *names)
        with multiprocessing.get_context("fork").Pool(1) as workers:
            payloads = (
                p
                for ps in workers.imap(partial(_payloads, seed), _chunks(orders, block))
                for p in ps
            )
            for done in range(batch, total + batch, batch):
                with immediate(conn):
                    head = signing.read_head(conn)
                    for n, payload in enumerate(islice(payloads, batch), start=1):
                        clock += timedelta(seconds=30)
                        at = clock.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                        delivery = Delivery(at, "127.0.0.1", "POST",
                                            "application/x-www-form-urlencoded",
                                            len(payload) * 3 // 2, STORE_ID)  # fmt: skip
                        AppendSnapshot(delivery, _snapshot(payload)).run(conn, head)
                        if n % sign_every == 0:
                            append_head(conn, signing, head)
                    append_head(conn, signing, head)
                    # Closed as the writer closes them, but one interval behind, so the
                    # movements reconcile_inventory_drift recounts are as many as they
                    # ever get live.
                    close_movements(conn, head.seq - settings.close_every)
                if progress:
                    rate = min(done, total) / (time.perf_counter() - started)
                    print(f"  history: {min(done, total):,}/{total:,} events ({rate:,.0f}/s)",
                          file=sys.stderr, flush=True)  # fmt: skip
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def ensure_history(
    orders: int, block: int = 1000, seed: int = 1, cache: Path = CACHE,
    sign_every: int = SIGN_EVERY,
) -> History:  # fmt: skip
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / cache_name(orders, block, seed, sign_every)
    key_path = path.with_name(path.name + ".signing-key")
    if path.exists() and key_path.exists():
        with connection(path, readonly=True) as conn:
            events = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        return History(path, key_path, events, orders, None)
    tmp = path.with_name(path.name + ".tmp.db")
    for leftover in tmp.parent.glob(tmp.name + "*"):
        leftover.unlink()
    started = time.perf_counter()
    events = generate(tmp, orders, block, seed=seed, sign_every=sign_every)
    seconds = time.perf_counter() - started
    tmp.with_name(tmp.name + ".signing-key").replace(key_path)
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
    shutil.copyfile(history.key_path, target.with_name(name + ".signing-key"))
    target.with_name(name + ".signing-key").chmod(0o600)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=250_000)
    parser.add_argument("--block", type=int, default=1000)
    parser.add_argument("--sign-every", type=int, default=SIGN_EVERY, help="events per head")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where histories are kept")
    args = parser.parse_args()
    history = ensure_history(args.orders, args.block, cache=args.cache,
                             sign_every=args.sign_every)  # fmt: skip
    took = "cached" if history.generated_s is None else f"generated in {history.generated_s:.0f} s"
    print(f"{history.path}: {history.events:,} events ({took})")


if __name__ == "__main__":
    main()

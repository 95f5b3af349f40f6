"""CPU time the writer spends per event, in process: the gate for any change to the write path.

    python -m bench.writer_cpu [--events 4000] [--batch 8] [--repeats 5]

Commits ``events`` new orders (the benchmark's ~3 KB payloads, four snapshots each) with
the real ``BatchCommitter`` in batches of ``batch``, the way the writer process does, and
reports the best of ``repeats`` runs of CPU seconds per event for new orders and for later
snapshots. Payloads and jobs are built before the clock starts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ledger.committer import BatchCommitter
from ledger.jobs import AppendSnapshot, Job
from ledger.log import Delivery, utcnow
from ledger.settings import Settings
from ledger.startup import open_ledger
from ledger.testing import snapshot

from .orders import API_KEY, STORE_ID, OrderFactory


def jobs(orders: int, stage: int) -> list[Job]:
    factory = OrderFactory(seed=3)
    delivery = Delivery(utcnow(), "127.0.0.1", "POST", None, 4500, STORE_ID)
    return [AppendSnapshot(delivery, snapshot(factory.payload(n, stage))) for n in range(orders)]


def cpu_per_event(work: list[Job], committer: BatchCommitter, batch: int) -> float:
    started = time.process_time()
    for i in range(0, len(work), batch):
        results = committer.commit(work[i : i + batch])
        assert all(ok for ok, _ in results)
        committer.maintain()
    return (time.process_time() - started) / len(work)


def run(events: int, batch: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db_path=Path(tmp) / "ledger.db", stores={STORE_ID: API_KEY})
        open_ledger(settings)
        committer = BatchCommitter(settings)
        try:
            committer.open()
            new = cpu_per_event(jobs(events, 0), committer, batch)
            later = cpu_per_event(jobs(events, 2), committer, batch)
        finally:
            committer.close()
    return new, later


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    runs = [run(args.events, args.batch) for _ in range(args.repeats)]
    new, later = min(r[0] for r in runs), min(r[1] for r in runs)
    print(f"writer CPU per event: new order {new * 1e6:.0f} us, later snapshot", end=" ")
    print(f"{later * 1e6:.0f} us")


if __name__ == "__main__":
    main()

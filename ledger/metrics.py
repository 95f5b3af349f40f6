"""``GET /metrics``: what an operator graphs and alerts on, in Prometheus's format.

Counted where it happens (each post's outcome and time as it is logged, each batch as
the writer takes it); what the file says (its WAL, its newest event and signed head) is
read when Prometheus asks, so a quiet ledger still reports how long it has been quiet.
One registry per app: nothing is global, two apps in one process do not mix.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .db import connection

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
NEWEST = """
SELECT (SELECT received_at FROM events ORDER BY seq DESC LIMIT 1),
       (SELECT signed_at FROM signed_heads ORDER BY id DESC LIMIT 1)
"""


def _age_s(stamp: str | None, now: float) -> float | None:
    if stamp is None:
        return None
    return now - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class _FileState(Collector):
    """Read at each scrape: the WAL's size, the age of the newest event and signed head,
    and whether the writer and the read side run."""

    def __init__(self, db_path: Path, up: Callable[[], dict[str, bool]]) -> None:
        self.db_path, self.up = db_path, up

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = time.time()
        wal = GaugeMetricFamily("ledger_wal_bytes", "size of the database's write-ahead log")
        with contextlib.suppress(OSError):
            wal.add_metric([], os.stat(f"{self.db_path}-wal").st_size)
        yield wal
        event, head = self._newest()
        for name, about, age in (
            ("ledger_last_event_age_seconds", "seconds since the newest event arrived",
             _age_s(event, now)),
            ("ledger_last_signed_head_age_seconds", "seconds since the newest signed head",
             None if head is None else now - head),
        ):  # fmt: skip
            gauge = GaugeMetricFamily(name, about)
            if age is not None:
                gauge.add_metric([], age)
            yield gauge
        up = GaugeMetricFamily(
            "ledger_process_up", "1 if the process runs: writer, read_side", labels=["process"]
        )
        for process, running in self.up().items():
            up.add_metric([process], 1.0 if running else 0.0)
        yield up

    def _newest(self) -> tuple[str | None, int | None]:
        try:
            with connection(self.db_path, readonly=True, busy_timeout_ms=1000) as conn:
                event, head = conn.execute(NEWEST).fetchone()
        except sqlite3.Error:
            return None, None
        return event, head


class Metrics:
    def __init__(self, db_path: Path, up: Callable[[], dict[str, bool]]) -> None:
        self.registry = CollectorRegistry()
        self.posts = Counter("ledger_posts", "posts answered, by outcome and status",
                             ["outcome", "status"], registry=self.registry)  # fmt: skip
        self.latency = Histogram("ledger_post_seconds", "time from a post's arrival to its answer",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)  # fmt: skip
        self.batches = Histogram("ledger_batch_posts", "posts per committed batch",
                                 buckets=BATCH_BUCKETS, registry=self.registry)  # fmt: skip
        self.registry.register(_FileState(db_path, up))

    def post(self, outcome: str, status: int, seconds: float) -> None:
        self.posts.labels(outcome, str(status)).inc()
        self.latency.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

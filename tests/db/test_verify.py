"""`ledger verify` walks the signed heads beside the log, so what it holds does not grow
with the heads or the events: a quiet ledger signs a head per post, and its 1M-event file
must verify in 100 MB (issue 15) however many heads it has.

Both files are written by the benchmark's generator (the real writer's jobs), the same
events signed every 8 events and after every event; tracemalloc counts what Python holds
while `verify_log` runs over each.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.history import generate
from ledger.db import connection, evidence
from ledger.settings import Settings
from ledger.verify import ChainCursor, Report, Tampered, verify_log
from tests.helpers import name_folders

ORDERS = 250  # 1,004 events of ~3 KB payloads: ~3 MB, more than verify may hold


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    home = tmp_path_factory.mktemp("ledgers")
    files = {every: home / f"every-{every}.db" for every in (8, 1)}
    for every, path in files.items():
        generate(path, orders=ORDERS, block=50, progress=False, sign_every=every)
    return files


def peak_while_verifying(path: Path) -> tuple[Report, int]:
    with evidence(path) as conn:
        tracemalloc.start()
        try:
            report = verify_log(conn)
            return report, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


def test_memory_is_flat_in_the_heads_and_the_events(ledgers: dict[int, Path]) -> None:
    few, few_peak = peak_while_verifying(ledgers[8])
    many, many_peak = peak_while_verifying(ledgers[1])
    assert few.intact and many.intact, (few.problem, many.problem)
    assert few.events == many.events == ORDERS * 4 + 4
    assert many.heads > 1000 and few.heads < 130
    # holding every head took ~0.7 KB each: 600 KB more here
    assert many_peak < few_peak + 64_000, (few_peak, many_peak)
    # holding a batch of rows took ~9 MB here
    assert max(few_peak, many_peak) < 1_000_000


def cursor_over(*hashes: str, then: Tampered | None = None) -> ChainCursor:
    def checked() -> Iterator[str]:
        yield from hashes
        if then is not None:
            raise then

    return ChainCursor(checked(), witnessed=(0, 2, 5))


def test_a_chain_answers_the_hash_at_each_size_once_passed() -> None:
    chain = cursor_over("a", "b", "c")
    assert chain.hash_at(0) == "0" * 64  # an empty log's
    assert chain.hash_at(2) == "b" and chain.hash_at(2) == "b"
    assert chain.hash_at(5) == "0" * 64  # past its end, as a missing row
    assert chain.finish() == 3
    assert chain.kept == {0: "0" * 64, 2: "b", 5: "0" * 64}


def test_rows_after_the_last_head_are_still_checked() -> None:
    chain = cursor_over("a", "b", then=Tampered("seq 9", "bad"))
    assert chain.hash_at(1) == "a"
    with pytest.raises(Tampered, match="seq 9"):
        chain.finish()


def test_a_batch_committed_while_verify_reads_a_live_file_is_not_half_seen(
    settings: Settings,
) -> None:
    """`ledger verify` on the file of a running writer reads one snapshot: a batch that
    commits once it has read the signed heads (here, as it starts reading the events) is
    not seen, rather than seen as events no head signed."""
    name_folders(settings, {1: "one", 2: "two"})
    with connection(settings.db_path) as writer, evidence(settings.db_path) as conn:
        assert writer.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        grown: list[str] = []

        def commit_a_batch_as_the_events_are_read(sql: str) -> None:
            if not grown and sql.startswith("SELECT seq,") and "FROM events" in sql:
                grown.append(sql)
                name_folders(settings, {3: "three"})

        conn.set_trace_callback(commit_a_batch_as_the_events_are_read)
        report = verify_log(conn)
    assert grown and report.intact, report.problem
    assert report.events == 2
    with evidence(settings.db_path) as conn:
        assert verify_log(conn).events == 3

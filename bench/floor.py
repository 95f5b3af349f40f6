"""The rebuild floor: read every payload from the log, in order, and parse it. Nothing else.

    python -m bench.floor --db FILE --parser msgspec|json|json-decimal

Prints one JSON line: ``{"parser", "events", "seconds", "events_per_s"}``.
``msgspec`` is ``msgspec.json.decode`` into plain Python objects (the fastest full parse
among the project's dependencies); ``json`` is the standard library's ``json.loads``;
``json-decimal`` is ``json.loads(parse_float=Decimal)``, what ``ledger.verify.parse_order``
calls (without its pure-Python nesting-depth scan).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec

from ledger.db import uri


def parser_for(name: str) -> Callable[[str], Any]:
    if name == "msgspec":
        return msgspec.json.decode
    if name == "json":
        return json.loads
    if name == "json-decimal":
        return lambda text: json.loads(text, parse_float=Decimal)
    raise SystemExit(f"unknown parser {name}")


def read_and_parse(db: str, parse: Callable[[str], Any]) -> int:
    conn = sqlite3.connect(uri(db, mode="ro"), uri=True)
    try:
        cursor = conn.execute("SELECT seq, payload FROM events ORDER BY seq")
        count = 0
        while rows := cursor.fetchmany(2000):
            for _seq, payload in rows:
                parse(payload)
                count += 1
        return count
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--parser", default="msgspec")
    args = parser.parse_args()
    started = time.perf_counter()
    events = read_and_parse(args.db, parser_for(args.parser))
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "parser": args.parser,
                "events": events,
                "seconds": seconds,
                "events_per_s": events / seconds if seconds else 0.0,
            }
        )
    )


if __name__ == "__main__":
    main()

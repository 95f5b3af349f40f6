"""Load generators: wrk with ``wrk/post.lua`` (a compiled client, the default) or a small
asyncio HTTP/1.1 keep-alive client (quick mode, or when wrk is missing). Both send the
raw pre-signed requests of a pool file in order, one request per connection at a time,
bounded by the pool size and by a duration, and report the same fields.

A ratio is only ever computed between runs of the same client.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .pool import read_pool
from .stats import percentile

LUA = Path(__file__).resolve().parent / "wrk" / "post.lua"


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(url: str, pool: Path, connections: int, duration_s: float) -> dict[str, Any]:
    args = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--latency",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        url,
        "--",
        str(pool),
        str(connections),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=duration_s + 120)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-1500:]}{done.stderr}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    errors = sum(raw["errors"].values()) - raw["errors"]["status"]
    lat = raw["latency_us"]
    return {
        "client": "wrk",
        "requests": raw["answered"],
        "seconds": raw["wall_s"],
        "rps": raw["answered"] / raw["wall_s"] if raw["wall_s"] else 0.0,
        "p50_ms": lat["p50"] / 1000,
        "p90_ms": lat["p90"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "max_ms": lat["max"] / 1000,
        "non_200": raw["non200"],
        "socket_errors": errors,
        "pool_wrapped": raw["wrapped"],
    }


STUCK_S = 30.0  # as wrk's --timeout: how long past the duration a request may take


async def read_answer(reader: asyncio.StreamReader) -> int:
    """One HTTP/1.1 answer off a keep-alive connection, body included; its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def _client(
    host: str,
    port: int,
    requests: list[bytes],
    connections: int,
    duration_s: float,
    stuck_s: float = STUCK_S,
) -> dict[str, Any]:
    """Send ``requests`` over ``connections`` keep-alive connections until the pool or
    ``duration_s`` runs out; a request still unanswered ``stuck_s`` after the duration
    is a socket error and ends its connection, so a stuck server cannot hang the bench."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    next_index = 0
    deadline = time.perf_counter() + duration_s
    overall = asyncio.get_running_loop().time() + duration_s + stuck_s

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal next_index
        while time.perf_counter() < deadline and next_index < len(requests):
            raw = requests[next_index]
            next_index += 1
            sent = time.perf_counter()
            writer.write(raw)
            status = await read_answer(reader)
            latencies.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1

    async def one_connection() -> None:
        nonlocal errors
        try:
            async with asyncio.timeout_at(overall):
                reader, writer = await asyncio.open_connection(host, port)
                try:
                    await exchange(reader, writer)
                except (OSError, asyncio.IncompleteReadError):
                    errors += 1
                finally:
                    writer.close()
        except TimeoutError:  # past the overall deadline: stuck
            errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    seconds = time.perf_counter() - started
    ms = [latency * 1000 for latency in latencies]
    return {
        "client": "python-asyncio",
        "requests": len(latencies),
        "seconds": seconds,
        "rps": len(latencies) / seconds if seconds else 0.0,
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms, default=0.0),
        "mean_ms": statistics.fmean(ms) if ms else 0.0,
        "non_200": sum(n for s, n in statuses.items() if s != 200),
        "socket_errors": errors,
        "pool_wrapped": 0,
    }


def run_python(url: str, pool: Path, connections: int, duration_s: float) -> dict[str, Any]:
    parts = urlsplit(url)
    requests = [
        r.replace(b"POST /orderdesk ", f"POST {parts.path} ".encode(), 1) for r in read_pool(pool)
    ]
    return asyncio.run(
        _client(parts.hostname or "127.0.0.1", parts.port or 80, requests, connections, duration_s)
    )


def run_load(
    client: str, url: str, pool: Path, connections: int, duration_s: float
) -> dict[str, Any]:
    if client == "wrk":
        return run_wrk(url, pool, connections, duration_s)
    return run_python(url, pool, connections, duration_s)

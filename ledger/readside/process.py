"""The read side in a process of its own, supervised by ``ledger serve``.

Datasette renders pages and runs anyone's SQL, and can grow by gigabytes doing it; in a
process of its own it can neither hold the receiver's event loop nor take intake with it
when it dies or is killed for memory (it asks to be the first the kernel kills). The
receiver keeps the listening socket, so a visitor arriving while the read side restarts
waits in the socket's backlog instead of being refused.

The child reads its configuration as one JSON line on stdin, and stops when stdin ends:
a receiver that dies, even by SIGKILL, takes its read side with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("ledger.readside")

STOP_WAIT_S = 10.0
RESTART_WAIT_S = (0.5, 30.0)  # after a quick death, doubling up to the second
QUICK_DEATH_S = 30.0


@dataclass(frozen=True)
class ReadSideConfig:
    fd: int
    db_path: str
    metadata: str | None
    password_hash: str | None
    user: str
    header_timeout_s: float
    max_connections: int
    length_limit: int
    trusted_proxies: list[str]


@dataclass
class Supervised:
    """Whether the read side runs now (``/metrics`` reports it)."""

    up: bool = False


def _describe(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_WAIT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def _start(config: ReadSideConfig) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ledger.readside.process",
        stdin=asyncio.subprocess.PIPE, pass_fds=(config.fd,),
    )  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(asdict(config)).encode() + b"\n")
    await proc.stdin.drain()
    log.info("read side started (pid %d)", proc.pid)
    return proc


async def supervise(config: ReadSideConfig, stopping: asyncio.Event, state: Supervised) -> None:
    """Run the read side until ``stopping``; restart it whenever it dies."""
    quick_deaths = 0
    while not stopping.is_set():
        started = time.monotonic()
        proc = await _start(config)
        state.up = True
        stop = asyncio.create_task(stopping.wait())
        await asyncio.wait({asyncio.create_task(proc.wait()), stop}, return_when="FIRST_COMPLETED")
        state.up = proc.returncode is None
        if stopping.is_set():
            await _stop(proc)
            state.up = False
            return
        stop.cancel()
        quick_deaths = quick_deaths + 1 if time.monotonic() - started < QUICK_DEATH_S else 0
        wait = min(RESTART_WAIT_S[1], RESTART_WAIT_S[0] * 2 ** max(0, quick_deaths - 1))
        log.error(
            "read side (pid %d) stopped with %s; restarting it in %.1f s (intake goes on)",
            proc.pid, _describe(proc.returncode or 0), wait,
        )  # fmt: skip
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), wait)


# --- the child ---------------------------------------------------------------------------------


def _first_to_go() -> None:
    """When memory runs out, the kernel kills the read side, not the receiver."""
    with contextlib.suppress(OSError):
        Path("/proc/self/oom_score_adj").write_text("1000")


def _exit_with_parent(server: object) -> None:
    sys.stdin.read()  # returns at EOF: the receiver has gone
    server.should_exit = True  # type: ignore[attr-defined]


def main() -> None:
    import uvicorn

    from ..listen import ACCEPT_BATCH, connection_cap, forwarded, guarded_protocol
    from .app import default_metadata_path, make_datasette

    config = ReadSideConfig(**json.loads(sys.stdin.readline()))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _first_to_go()
    sock = socket.socket(fileno=config.fd)
    metadata = Path(config.metadata) if config.metadata else default_metadata_path()
    if metadata is None:  # an incomplete install: say so rather than serve a bare Datasette
        log.warning("no metadata.yml found: no descriptions, canned queries or dashboards")
    ds = make_datasette(
        Path(config.db_path), metadata, config.password_hash, user=config.user,
        length_limit=config.length_limit,
    )  # fmt: skip
    protocol = guarded_protocol(
        "Datasette", config.header_timeout_s, connection_cap(config.max_connections)
    )
    server = uvicorn.Server(
        uvicorn.Config(
            ds.app(),
            http=protocol,
            lifespan="off",
            log_level="warning",
            backlog=ACCEPT_BATCH,
            **forwarded(config.trusted_proxies),
        )
    )
    threading.Thread(target=_exit_with_parent, args=(server,), daemon=True).start()
    # Datasette and its plugins live as long as the process: out of the collector's way,
    # a full collection pauses a page for ~7 ms, not ~30.
    gc.collect()
    gc.freeze()
    asyncio.run(server.serve(sockets=[sock]))


if __name__ == "__main__":
    main()

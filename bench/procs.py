"""Servers under test as real processes: own process group, health-checked, always stopped."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ledger.testing import free_port, ledger_env, stop, wait_healthy


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path
    extra_port: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def peak_rss_mb(self) -> float | None:
        """Peak resident set of the server and its child processes (the writer), summed:
        an upper bound of what they held at once."""
        peaks = [status_kb(pid, "VmHWM") for pid in (self.proc.pid, *child_pids(self.proc.pid))]
        known = [p for p in peaks if p is not None]
        return sum(known) if known else None

    def rss_mb(self) -> float | None:
        return status_kb(self.proc.pid, "VmRSS")


def child_pids(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
    return children


def status_kb(pid: int, field: str) -> float | None:
    """A ``/proc/PID/status`` memory field in MB (VmHWM is the peak resident set)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@contextmanager
def _started(
    args: list[str], env: dict[str, str], health: str, log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        )
    try:
        try:
            wait_healthy(health, proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {log.read_text()[-2000:]}") from None
        yield proc
    finally:
        stop(proc)


@contextmanager
def ledger_server(db: Path, log: Path, ablate: str | None = None) -> Iterator[Server]:
    """``python -m ledger serve`` on 127.0.0.1; ``extra_port`` is its Datasette. With
    ``ablate``, ``python -m bench.ablated serve`` with that cost taken out."""
    port, ds_port = free_port(), free_port()
    env = ledger_env(db)
    module = "ledger"
    if ablate:
        module = "bench.ablated"
        env |= {"BENCH_ABLATE": ablate, "PYTHONPATH": _with_root(env.get("PYTHONPATH"))}
    args = [sys.executable, "-m", module, "serve", "--db", str(db), "--port", str(port)]
    args += ["--datasette-port", str(ds_port)]
    base = f"http://127.0.0.1:{port}"
    with _started(args, env, base + "/healthz", log, cwd=db.parent) as proc:
        wait_healthy(f"http://127.0.0.1:{ds_port}/-/versions.json", proc)
        yield Server(proc, base, log, ds_port)


def _with_root(pythonpath: str | None) -> str:
    """PYTHONPATH with the repository root first, for ``python -m bench...``."""
    root = str(Path(__file__).resolve().parent.parent)
    return root + os.pathsep + (pythonpath or "")


@contextmanager
def baseline_server(log: Path) -> Iterator[Server]:
    port = free_port()
    args = [sys.executable, "-m", "bench.baseline", "--port", str(port)]
    env = dict(os.environ)
    env["PYTHONPATH"] = _with_root(env.get("PYTHONPATH"))
    base = f"http://127.0.0.1:{port}"
    with _started(args, env, base + "/healthz", log) as proc:
        yield Server(proc, base, log)


def _copy_pty(master: int, out: BinaryIO) -> None:
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO once the child side is closed
            return
        if not data:
            return
        out.write(data)


def run_measured(
    args: list[str], env: dict[str, str], log: Path, timeout: float, *, tty: bool = False
) -> dict[str, float]:
    """Run a command to completion; wall time and peak RSS: the peaks of the process and
    its direct children (workers, multiprocessing's resource tracker) summed, an upper
    bound of what they held at once.

    The peaks are polled from /proc (VmHWM), not taken from ``wait4``: a child's
    ``ru_maxrss`` starts at the bench process's own peak when it was spawned (vfork),
    so after the bench generated the history in process every command looked 2.4 GB.

    With ``tty`` its output goes to a pseudo-terminal (copied to ``log``), so it draws
    what a user would see, progress bars included.
    """
    started = time.perf_counter()
    with open(log, "wb") as out:
        reader = None
        if tty:
            master, child = pty.openpty()
            proc = subprocess.Popen(
                args, env=env, stdout=child, stderr=child, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            os.close(child)
            reader = threading.Thread(target=_copy_pty, args=(master, out), daemon=True)
            reader.start()
        else:
            proc = subprocess.Popen(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        pid = 0
        peaks: dict[int, float] = {}
        next_poll = 0.0
        try:
            deadline = time.monotonic() + timeout
            while True:
                pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                now = time.monotonic()
                if now > deadline:
                    raise TimeoutError(f"{args[:4]} ran past {timeout:g} s")
                if now >= next_poll:  # a high-water mark: coarse polling loses little
                    _record_peaks(proc.pid, peaks)
                    next_poll = now + 0.25
                time.sleep(0.02)
        finally:
            if not pid:
                stop(proc, timeout=5)
            if reader:
                reader.join(timeout=5)
                os.close(master)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[:4]} exited {proc.returncode}: {log.read_text()[-2000:]}")
    return {"seconds": wall, "peak_rss_mb": sum(peaks.values())}


def _record_peaks(root: int, peaks: dict[int, float]) -> None:
    for pid in (root, *child_pids(root)):
        peak = status_kb(pid, "VmHWM")
        if peak is not None:
            peaks[pid] = max(peaks.get(pid, 0.0), peak)

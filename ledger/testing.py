"""What tests, the benchmark and the docs' generators share: one builder of Order Desk
orders, signed posts as Order Desk sends them, and ``ledger serve`` as a real process.

Not used by the product itself; it ships with it so that ``bench/`` and ``docs/`` run
from an installed package too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .post import Snapshot, check_post
from .send import multipart, signed_headers, urlencoded
from .signature import sign

STORE_ID = "70412"
API_KEY = "test-api-key"
NEW, PREPARED, CLOSED, CANCELED = 48201, 48202, 48203, 48204
FOLDERS = {NEW: "New", PREPARED: "Prepared", CLOSED: "Closed", CANCELED: "Canceled"}
Line = tuple[str, int, int]  # (SKU, unit price in cents, quantity)


def money(cents: int) -> float:
    """An amount as Order Desk sends it: a JSON number of the currency unit."""
    return round(cents / 100, 2)


def item(code: str, price_cents: int, quantity: int = 1, **fields: Any) -> dict[str, Any]:
    return {"id": f"{code}-line", "name": code, "code": code, "price": money(price_cents),
            "quantity": quantity} | fields  # fmt: skip


def shipment(tracking: str, date_shipped: str = "2025-03-17", **fields: Any) -> dict[str, Any]:
    return {"tracking_number": tracking, "carrier_code": "USPS", "shipment_method": "Priority Mail",
            "date_shipped": date_shipped, "cost": "8.40"} | fields  # fmt: skip


def address(first: str = "Ada", last: str = "Buyer", **fields: Any) -> dict[str, Any]:
    return {"first_name": first, "last_name": last, "city": "Columbus", "state": "OH",
            "country": "US"} | fields  # fmt: skip


def order(
    order_id: str = "3910457",
    *,
    items: Sequence[Line | dict[str, Any]] = (("MUG-01", 2000, 2),),
    added: str = "2025-03-14 09:12:00",
    updated: str | None = None,
    shipping_cents: int = 500,
    tax_cents: int = 0,
    discount_cents: int = 0,
    total_cents: int | None = None,
    folder_id: int = NEW,
    shipments: Sequence[dict[str, Any]] = (),
    **fields: Any,
) -> dict[str, Any]:
    """An order object as Order Desk posts it, with totals that add up unless
    ``total_cents`` says otherwise; ``fields`` replace or add top-level fields (``None``
    removes one)."""
    lines = [item(*line) if isinstance(line, tuple) else line for line in items]
    product = sum(round(float(i["price"]) * 100) * int(i["quantity"]) for i in lines)
    correct = product + shipping_cents + tax_cents - discount_cents
    body: dict[str, Any] = {
        "id": order_id,
        "email": f"customer{order_id}@example.net",
        "shipping_method": "USPS Priority Mail",
        "quantity_total": sum(int(i["quantity"]) for i in lines),
        "product_total": money(product),
        "shipping_total": money(shipping_cents),
        "handling_total": 0,
        "tax_total": money(tax_cents),
        "discount_total": money(discount_cents),
        "order_total": money(correct if total_cents is None else total_cents),
        "payment_type": "Visa",
        "payment_status": "Captured",
        "source_name": "Shopify",
        "folder_id": folder_id,
        "date_added": added,
        "date_updated": updated or added,
        "shipping": address(last=f"Buyer {order_id}"),
        "customer": address(last=f"Buyer {order_id}"),
        "order_items": lines,
        "order_shipments": list(shipments),
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def encode(order_object: Mapping[str, Any]) -> bytes:
    """The bytes of the ``order`` field as Order Desk's PHP ``json_encode`` writes them:
    compact, raw UTF-8, slashes escaped."""
    text = json.dumps(order_object, ensure_ascii=False, separators=(",", ":"))
    return text.replace("/", "\\/").encode("utf-8")


def signed_form(
    order_bytes: bytes,
    *,
    store_id: str = STORE_ID,
    api_key: str = API_KEY,
    as_multipart: bool = False,
    legacy: bool = False,
    headers: Mapping[str, str] | None = None,
    drop: Iterable[str] = (),
) -> dict[str, Any]:
    """Keyword arguments for an httpx (or Litestar TestClient) post of ``order_bytes``,
    signed; ``headers`` replace or add headers, ``drop`` leaves some out."""
    body, content_type = multipart(order_bytes) if as_multipart else urlencoded(order_bytes)
    signed = signed_headers(order_bytes, store_id, api_key, legacy=legacy)
    sent = signed | {"Content-Type": content_type} | dict(headers or {})
    for name in drop:
        del sent[name]
    return {"content": body, "headers": sent}


def snapshot(order_bytes: bytes, store_id: str = STORE_ID, api_key: str = API_KEY) -> Snapshot:
    """``order_bytes`` signed and checked as the receiver does, ready for the writer."""
    return check_post(order_bytes, store_id, sign(api_key, order_bytes), {store_id: api_key})


# --- ledger serve as a process ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ledger_env(db: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any ledger setting, then the test store's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERDESK_", "LEDGER_"))}
    return env | {"LEDGER_DB": str(db), "ORDERDESK_STORE_ID": STORE_ID,
                  "ORDERDESK_API_KEY": API_KEY} | extra  # fmt: skip


def wait_healthy(url: str, proc: subprocess.Popen[Any], timeout: float = 60) -> None:
    """Until ``url`` answers 200; an exited process or the timeout raise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url, timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the server did not answer {url} within {timeout:g} s")


def wait_answering(url: str, proc: subprocess.Popen[Any], timeout: float = 60) -> None:
    """Until ``url`` gives any HTTP answer (a page may need a login): a socket that
    accepts is not yet a server that answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answered {url} after {timeout:g} s")


def stop(proc: subprocess.Popen[Any], timeout: float = 30) -> int:
    """SIGTERM the process group, then SIGKILL what is left of it; the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything left in the group
    return proc.wait()


def _limit_fds(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@dataclass
class Served:
    """``ledger serve`` running on 127.0.0.1: the receiver at ``base``, Datasette beside."""

    proc: subprocess.Popen[bytes]
    base: str
    datasette: str
    log: Path

    def stop(self) -> int:
        return stop(self.proc)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(
    db: Path, *args: str, env: Mapping[str, str] | None = None, log: Path | None = None,
    module: str = "ledger", fd_limit: int | None = None, python: str = sys.executable,
) -> Served:  # fmt: skip
    """``python -m ledger serve`` (or ``module``, with another ``python``) on free ports, in
    its own process group, its output in ``log``, with at most ``fd_limit`` descriptors
    (soft and hard); returns once both servers answer."""
    port, ds_port = free_port(), free_port()
    log = log or db.with_name(f"{db.name}.serve-{port}.log")
    command = [python, "-m", module, "serve", "--port", str(port),
               "--datasette-port", str(ds_port), *args]  # fmt: skip
    out: IO[bytes]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, env=dict(env or ledger_env(db)), stdout=out, stderr=subprocess.STDOUT,
            cwd=db.parent, start_new_session=True,
            preexec_fn=None if fd_limit is None else functools.partial(_limit_fds, fd_limit),
        )  # fmt: skip
    served = Served(proc, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ds_port}", log)
    try:
        wait_healthy(f"{served.base}/healthz", proc)
        wait_answering(f"{served.datasette}/-/versions.json", proc)
    except Exception:
        served.stop()
        raise RuntimeError(f"ledger serve did not start: {served.output()[-2000:]}") from None
    except BaseException:
        served.stop()
        raise
    return served


@contextlib.contextmanager
def running_server(db: Path, *args: str, **options: Any) -> Iterator[Served]:
    """A started ``ledger serve`` for the length of the block, always stopped."""
    served = start_server(db, *args, **options)
    try:
        yield served
    finally:
        served.stop()


# --- a probe: signed posts at a steady rate, while something else goes on ---------------------


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` now, in MB (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    lines = (line.split() for line in status.splitlines())
    return next((int(f[1]) / 1024 for f in lines if f and f[0] == "VmRSS:"), 0.0)


@dataclass
class ProbePost:
    started: float  # monotonic
    seconds: float
    status: int  # 0: no answer at all
    answer: str


class Probe:
    """Signed posts of new orders to ``base`` at ``rate`` per second from a thread, each on
    a new connection as Order Desk sends them, until the block ends (or ``limit_s``). It
    samples the resident memory of ``watch_pid`` after every post."""

    def __init__(self, base: str, *, rate: float = 20, prefix: str = "probe",
                 watch_pid: int | None = None, limit_s: float = 300) -> None:  # fmt: skip
        self.url, self.rate, self.prefix, self.limit_s = f"{base}/orderdesk", rate, prefix, limit_s
        self.watch_pid = watch_pid
        self.posts: list[ProbePost] = []
        self.peak_rss_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        t0 = time.monotonic()
        n = 0
        while not self._stop.is_set() and time.monotonic() - t0 < self.limit_s:
            self._post(n)
            n += 1
            self._stop.wait(max(0.0, t0 + n / self.rate - time.monotonic()))

    def _post(self, n: int) -> None:
        form = signed_form(encode(order(f"{self.prefix}-{n}", items=[("PROBE-1", 100, 1)])))
        request = urllib.request.Request(self.url, form["content"], form["headers"])
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, answer = response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, exc.read().decode(errors="replace")
        except OSError as exc:
            status, answer = 0, repr(exc)
        self.posts.append(ProbePost(started, time.monotonic() - started, status, answer.strip()))
        if self.watch_pid is not None:
            self.peak_rss_mb = max(self.peak_rss_mb, rss_mb(self.watch_pid))

    def failures(self) -> list[ProbePost]:
        return [p for p in self.posts if p.status != 200]

    def slowest_s(self) -> float:
        return max((p.seconds for p in self.posts), default=0.0)

    def quantile_ms(self, q: float) -> float:
        times = sorted(p.seconds for p in self.posts)
        return times[min(len(times) - 1, int(q * len(times)))] * 1000 if times else 0.0

    def summary(self) -> str:
        return (
            f"{len(self.posts)} posts, {len(self.failures())} failed,"
            f" p50 {self.quantile_ms(0.5):.1f} ms, p99 {self.quantile_ms(0.99):.1f} ms,"
            f" slowest {self.slowest_s() * 1000:.0f} ms, peak RSS {self.peak_rss_mb:.0f} MB"
        )

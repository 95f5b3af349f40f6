"""Pools of signed, unique posts: raw HTTP/1.1 requests, NUL-separated, for wrk or the
Python client. Each request is a distinct order (``order_offset + i``) signed with the
store's API key and form-encoded like Order Desk (``order=<urlencoded JSON>``).

With ``duplicate_fraction`` > 0, that share of the pool repeats an earlier request of
the same pool byte for byte (a retry or a manual resubmit), at least ``min_gap``
positions later so that the original has usually been answered first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from ledger.send import signed_headers, urlencoded

from .orders import API_KEY, STORE_ID, OrderFactory

SEPARATOR = b"\0"


@dataclass(frozen=True)
class Pool:
    path: Path
    requests: int
    unique: int
    mean_body_bytes: float
    mean_order_bytes: float


def request_bytes(order: bytes, path: str = "/orderdesk") -> tuple[bytes, int]:
    body, content_type = urlencoded(order)
    headers = signed_headers(order, STORE_ID, API_KEY) | {"Content-Type": content_type}
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode("ascii") + body, len(body)


def build_pool(
    path: Path,
    size: int,
    *,
    order_offset: int,
    duplicate_fraction: float = 0.0,
    min_gap: int = 100,
    seed: int = 11,
    factory: OrderFactory | None = None,
) -> Pool:
    """Write ``size`` requests to ``path``; orders ``order_offset .. order_offset + unique``."""
    factory = factory or OrderFactory(seed=seed)
    rng = random.Random(seed + order_offset)
    made: list[bytes] = []
    body_total = order_total = unique = 0
    with open(path, "wb") as out:
        for i in range(size):
            gap_ok = i >= min_gap
            if duplicate_fraction and gap_ok and rng.random() < duplicate_fraction:
                raw = made[rng.randrange(0, i - min_gap + 1)]
            else:
                order = factory.payload(order_offset + unique, unique % 4)
                raw, body_len = request_bytes(order)
                unique += 1
                body_total += body_len
                order_total += len(order)
            if duplicate_fraction:
                made.append(raw)
            out.write(raw + SEPARATOR)
    return Pool(path, size, unique, body_total / max(unique, 1), order_total / max(unique, 1))


def read_pool(path: Path) -> list[bytes]:
    return [r for r in path.read_bytes().split(SEPARATOR) if r]

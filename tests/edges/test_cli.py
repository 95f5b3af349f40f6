"""The command line in process: each mistake is one line that says what and where, and
nothing is started or created on the way to it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ledger.cli import cli
from ledger.testing import API_KEY, STORE_ID, free_port
from tests.helpers import SAMPLES

SAMPLE = str(next(SAMPLES.glob("a-*.json")))


def run(*args: str, **env: str) -> Result:
    """``ledger ARGS`` with no ledger setting from this process's environment but ``env``."""
    unset: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith(("LEDGER_", "ORDERDESK_"))
    }
    given = {"ORDERDESK_STORE_ID": STORE_ID, "ORDERDESK_API_KEY": API_KEY} | env
    return CliRunner().invoke(cli, list(args), env=unset | given, prog_name="ledger")


def error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    [line] = result.output.splitlines()
    return line


def test_h_is_help_for_the_group_and_every_command() -> None:
    for args in ([], ["serve"], ["key", "show"], ["send"]):
        result = run(*args, "-h")
        assert result.exit_code == 0 and result.output.startswith("Usage: ledger"), args


def test_send_says_in_one_line_why_nothing_answered(tmp_path: Path) -> None:
    port = free_port()  # nothing listens on it
    not_a_cert = tmp_path / "ca.pem"
    not_a_cert.write_text("not a certificate\n")
    cases = {
        ("--url", "127.0.0.1:8000/orderdesk"): "Error: not a URL: '127.0.0.1:8000/orderdesk'",
        ("--url", f"http://127.0.0.1:{port}/orderdesk"): (
            f"Error: connection refused: http://127.0.0.1:{port}/orderdesk"
        ),
        ("--url", f"https://127.0.0.1:{port}/orderdesk", "--cacert", str(not_a_cert)): (
            f"Error: cannot use {not_a_cert} as a CA certificate:"
        ),
    }
    for args, expected in cases.items():
        assert error_line(run("send", *args, SAMPLE)).startswith(expected), args


def test_the_password_option_without_a_terminal_says_what_to_set(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    line = error_line(run("serve", "--db", str(db), "--datasette-password"))
    assert line == (
        "Error: --datasette-password: no terminal to ask the password on; set"
        " LEDGER_DATASETTE_PASSWORD, or a hash in LEDGER_DATASETTE_PASSWORD_HASH"
        " (`datasette hash-password`)"
    )
    assert not db.exists()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7"])
def test_datasette_off_loopback_needs_a_login_or_public_datasette(
    tmp_path: Path, host: str
) -> None:
    db = tmp_path / "ledger.db"
    line = error_line(run("serve", "--db", str(db), "--datasette-host", host))
    assert line.startswith(f"Error: Datasette on {host} would show customers' names, addresses")
    assert line.endswith("or say --public-datasette")
    assert not db.exists()


def test_every_error_about_a_path_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    db = tmp_path / "ledger.db"
    assert run("folders", "set", "48201", "New", "--db", str(db)).exit_code == 0
    cases = {
        ("serve", "--db", f"{missing}/ledger.db"): (
            f"Error: database error: {missing}/ledger.db: unable to open database file"
            f" (there is no directory {missing})"
        ),
        ("folders", "set", "1", "x", "--db", f"{missing}/ledger.db"): (
            f"Error: database error: {missing}/ledger.db: unable to open database file"
            f" (there is no directory {missing})"
        ),
        ("verify", "--db", f"{missing}/ledger.db"): f"Error: {missing}/ledger.db does not exist",
        ("backup", f"{missing}/copy.db", "--db", str(db)): (
            f"Error: cannot back up to {missing}/copy.db: there is no directory {missing}"
        ),
        ("serve", "--db", str(tmp_path / "new.db"), "--signing-key", f"{missing}/key"): (
            f"Error: cannot write the signing key {missing}/key: there is no directory {missing}"
        ),
        ("serve", "--db", str(db), "--signing-key", f"{missing}/key"): (
            f"Error: the signing key file {missing}/key is not there"
        ),
    }
    for args, expected in cases.items():
        assert error_line(run(*args)) == expected, args
    assert not missing.exists()

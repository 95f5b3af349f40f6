"""The wheel is the whole product: built without warnings, installed with its declared
dependencies into a fresh virtual environment outside the tree, it serves the same read
side as the repository (metadata.yml inside it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from ledger.testing import ledger_env, running_server
from tests.helpers import SAMPLES, ledger

ROOT = Path(__file__).resolve().parents[2]
# What a checkout holds besides its sources: never part of a build.
NOT_SOURCES = shutil.ignore_patterns(
    ".*", "build", "dist", "*.egg-info", "__pycache__", "*.db*", "bench", "docs", "tests"
)


def build_wheel(into: Path, scratch: Path) -> tuple[Path, str]:
    """The wheel built by pip from a copy of the checkout (a build writes build/ and
    *.egg-info beside the sources), and the build's verbose output."""
    source = scratch / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    # pip's own environment variable turns byte-compiling off with a warning of its own.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(into), str(source)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [wheel] = into.glob("orderdesk_ledger-*.whl")
    return wheel, built.stdout + built.stderr


def install(wheel: Path, venv: Path) -> Path:
    """A fresh virtual environment with the wheel and what it declares; its python."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    return python


@pytest.mark.slow
def test_the_wheel_alone_serves_the_read_side_the_repository_serves(tmp_path: Path) -> None:
    wheel, output = build_wheel(tmp_path / "dist", tmp_path)
    warnings = [line for line in output.splitlines() if "warning" in line.lower()]
    assert not warnings, warnings
    with zipfile.ZipFile(wheel) as zf:
        packaged = zf.read("ledger/readside/metadata.yml")
    assert packaged == (ROOT / "metadata.yml").read_bytes()

    python = install(wheel, tmp_path / "venv")
    where = subprocess.run(
        [str(python), "-c", "import ledger; print(ledger.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(tmp_path / "venv")), where.stdout

    db = tmp_path / "home" / "ledger.db"
    db.parent.mkdir()
    with running_server(db, python=str(python)) as served:
        files = [str(p) for p in sorted(SAMPLES.glob("*.json"))]
        sent = ledger("send", "--url", f"{served.base}/orderdesk", *files, env=ledger_env(db))
        assert sent.returncode == 0, sent.stderr
        pages = {
            path: httpx.get(served.datasette + path, timeout=30)
            for path in (
                "/-/reconciliation",
                "/-/dashboards/ledger",
                "/ledger/history_of_order?order_id=3910457",
                "/ledger.json",
            )
        }
        assert "no metadata.yml" not in served.output()
    assert {p: r.status_code for p, r in pages.items()} == dict.fromkeys(pages, 200)
    # The reconciliation page asks its questions, not bare view names.
    assert "Orders whose totals do not add up" in pages["/-/reconciliation"].text
    assert "The full history of one order" in pages["/-/reconciliation"].text
    assert "Orders at a glance" in pages["/-/dashboards/ledger"].text
    assert "3910457" in pages["/ledger/history_of_order?order_id=3910457"].text
    tables = {t["name"]: t["hidden"] for t in pages["/ledger.json"].json()["tables"]}
    assert tables["positions"] and tables["_sqlite_migrations"] and not tables["orders"]

"""The docs say what the code does: generated tables are current, promises name real tests."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml
from cogapp import Cog

from ledger.events import EVENT_TYPES
from ledger.settings import declared

ROOT = Path(__file__).resolve().parent.parent
GENERATED = [
    "README.md",
    "docs/configuration.md",
    "docs/schema.md",
    "docs/cli.md",
    "docs/development.md",
]


def test_the_generated_docs_are_current() -> None:
    """What `make docs` writes is what is checked in (`cog --check`, as `make lint` runs)."""
    args = ["cog", "--check", "-I", str(ROOT / "docs"), *(str(ROOT / p) for p in GENERATED)]
    assert Cog().main(args) == 0, "run `make docs`"


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def test_every_guarantee_names_tests_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Guarantees", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`([\w/]+\.py)(?:::(\w+))?`", table)  # paths under tests/
    assert len(named) >= 10
    for path, test in named:
        assert (ROOT / "tests" / path).exists(), path
        if test:
            assert test in _tests_in(ROOT / "tests" / path), f"{path}::{test}"


def test_every_environment_variable_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for field in declared():
        for name in re.findall(r"[A-Z][A-Z_]+[A-Z]", field.metadata["env"] or ""):
            assert name in readme, name


def test_every_event_type_is_described() -> None:
    meta = yaml.safe_load((ROOT / "metadata.yml").read_text())
    described = meta["databases"]["ledger"]["tables"]["events"]["columns"]["type"]
    for event_type in EVENT_TYPES:
        assert event_type in described, event_type


def test_the_layout_sentence_names_modules_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    sentence = readme.split("The data path reads from the file names:", 1)[1].split("(each", 1)[0]
    named = [n for n in re.findall(r"`([\w/]+(?:\.py|/))`", sentence) if n != "ledger/"]
    assert len(named) >= 8
    for name in named:
        assert (ROOT / "ledger" / name).exists(), name

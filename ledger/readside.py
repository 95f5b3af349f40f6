"""The read side: a Datasette over the live file, read-only, configured by metadata.yml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasette.app import Datasette
from datasette.utils import parse_metadata

# Facet suggestions cost 10-80x on large tables; explicit facets live in metadata.yml.
DATASETTE_SETTINGS: dict[str, Any] = {
    "suggest_facets": False,
    "allow_download": False,
    "default_page_size": 50,
    "sql_time_limit_ms": 3000,
    "max_returned_rows": 1000,
    "facet_time_limit_ms": 500,
}


def default_metadata_path() -> Path | None:
    candidate = Path(__file__).resolve().parent.parent / "metadata.yml"
    return candidate if candidate.exists() else None


def load_metadata(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    metadata: dict[str, Any] = parse_metadata(path.read_text(encoding="utf-8"))
    return metadata


def make_datasette(
    db_path: Path, metadata: Path | None = None, password_hash: str | None = None
) -> Datasette:
    """A Datasette on the live file, mutable (so it sees new rows), never writing."""
    meta = load_metadata(metadata if metadata is not None else default_metadata_path())
    return Datasette(files=[str(db_path)], metadata=meta, settings=DATASETTE_SETTINGS)


def datasette_app(
    db_path: Path, metadata: Path | None = None, password_hash: str | None = None
) -> Any:
    return make_datasette(db_path, metadata, password_hash).app()

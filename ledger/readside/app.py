"""The ledger's Datasette: its settings, its metadata, and a database it cannot write."""

from __future__ import annotations

import copy
import functools
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from datasette.app import Datasette
from datasette.database import Database
from datasette.utils import parse_metadata
from datasette.utils.asgi import Forbidden

from ..db import uri
from ..errors import ConfigError
from ..projections.tables import ORDER_FACETS

# Facet suggestions cost 10-80x on large tables; explicit facets live in metadata.yml.
DATASETTE_SETTINGS: dict[str, Any] = {
    "suggest_facets": False,
    "allow_download": False,
    "default_page_size": 50,
    # Auditors reconcile with their own SQL over the whole log (a scan of a million
    # events takes seconds); they should get the answer, not a time-out.
    "sql_time_limit_ms": 15_000,
    "max_returned_rows": 1000,
    "facet_time_limit_ms": 500,
    "allow_csv_stream": True,
    # Tables and views stream every row as CSV; 0 lifts the 100 MB default cap so a
    # month's export is never cut short.
    "max_csv_mb": 0,
}

METADATA_DB = "ledger"  # the database name metadata.yml is written for
PLUGIN = "ledger-readside"
DEFAULT_USER = "ledger"

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


def default_metadata_path() -> Path | None:
    """metadata.yml at the root of a checkout (where people edit it, and what an editable
    install reads), else the copy a wheel carries beside this module (``setup.py``)."""
    root = HERE.parent.parent
    if (root / "pyproject.toml").exists() and (root / "metadata.yml").exists():
        return root / "metadata.yml"
    packaged = HERE / "metadata.yml"
    return packaged if packaged.exists() else None


def load_metadata(path: Path | None, db_name: str = METADATA_DB) -> dict[str, Any]:
    """Parse metadata.yml and point it at ``db_name`` (it is written for ``ledger``)."""
    if path is None:
        return {}
    metadata: dict[str, Any] = parse_metadata(path.read_text(encoding="utf-8"))
    databases = metadata.get("databases") or {}
    if db_name != METADATA_DB and METADATA_DB in databases:
        databases[db_name] = databases.pop(METADATA_DB)
    for dashboard in (metadata.get("plugins") or {}).get("datasette-dashboards", {}).values():
        for chart in (dashboard.get("charts") or {}).values():
            if chart.get("db") == METADATA_DB:
                chart["db"] = db_name
    for name, db in databases.items():
        for query_name, query in (db.get("queries") or {}).items():
            if isinstance(query, Mapping) and query.get("write"):
                raise ConfigError(
                    f"metadata: canned query {name}/{query_name} has write: true;"
                    " the read side never writes"
                )
    return metadata


# The largest value a read-side query may build (``zeroblob``, ``group_concat``, ``hex``):
# a payload is at most one post, and twice one post covers its hex.
DEFAULT_LENGTH_LIMIT = 16 * 1024 * 1024


def length_limit_for(max_body_bytes: int) -> int:
    return max(DEFAULT_LENGTH_LIMIT, 2 * max_body_bytes + 1024 * 1024)


class ReadOnlyDatabase(Database):  # type: ignore[misc]
    """Datasette's one write path, closed: nothing served here can change the file; and
    no query can build a value larger than ``length_limit`` bytes."""

    def __init__(self, *args: Any, length_limit: int = DEFAULT_LENGTH_LIMIT, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.length_limit = length_limit

    def connect(self, write: bool = False) -> sqlite3.Connection:
        # Datasette's own puts the path into a URI unescaped: a '?' or '#' in it opens
        # another file.
        conn = sqlite3.connect(uri(self.path, mode="ro"), uri=True, check_same_thread=False)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.length_limit)
        self._all_file_connections.append(conn)
        return conn

    async def execute_write_fn(self, fn: Any, block: bool = True) -> Any:
        raise Forbidden("the ledger's read side is read-only")


class LedgerDatasette(Datasette):  # type: ignore[misc]
    """A Datasette that knows its login (kept out of metadata, so no page can show it)."""

    # the facet counts triggers keep, by table (KeptCountsFacet reads them)
    kept_facets: Mapping[str, tuple[str, ...]] = {"orders": ORDER_FACETS}

    def __init__(self, *args: Any, auth: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.ledger_auth = auth  # before Datasette's __init__, which already builds its app
        self._database_urls: dict[str, str] = {}
        super().__init__(*args, **kwargs)

    def plugin_config(
        self,
        plugin_name: str,
        database: str | None = None,
        table: str | None = None,
        fallback: bool = True,
    ) -> Any:
        if plugin_name == "datasette-auth-passwords":
            return copy.deepcopy(self.ledger_auth) if self.ledger_auth else None
        if plugin_name == "datasette-render-markdown":
            # No ledger column holds markdown. The plugin (a dependency of
            # datasette-dashboards) asks for its config for every text cell of every
            # page, and each ask walks the metadata: ~10 ms on a page of 50 orders.
            return {"patterns": []}
        return super().plugin_config(plugin_name, database, table, fallback)

    def database_url(self, database: str) -> str:
        # Once per database: urls.database re-encodes the name, and render_cell asks per cell.
        url = self._database_urls.get(database)
        if url is None:
            url = self._database_urls[database] = self.urls.database(database)
        return url

    @functools.cached_property
    def currency_symbol(self) -> str:
        # Read once: render_cell runs for every cell, and plugin_config walks the metadata.
        config = self.plugin_config(PLUGIN) or {}
        return str(config.get("currency_symbol", ""))


def make_datasette(
    db_path: Path,
    metadata: Path | None = None,
    password_hash: str | None = None,
    settings: Mapping[str, Any] | None = None,
    user: str = DEFAULT_USER,
    length_limit: int = DEFAULT_LENGTH_LIMIT,
) -> LedgerDatasette:
    """A Datasette on the live file, mutable (so it sees new rows), never writing;
    ``settings`` over DATASETTE_SETTINGS; with ``password_hash``, ``user`` must log in."""
    from .plugin import register

    register()
    db_path = Path(db_path)
    name = db_path.stem
    meta = load_metadata(metadata if metadata is not None else default_metadata_path(), name)
    auth = None
    if password_hash:
        auth = {f"{user}_password_hash": password_hash}
        only_user = {"id": [user]}
        meta["allow"] = only_user
        meta["allow_sql"] = only_user
    ds = LedgerDatasette(
        files=[str(db_path)],
        metadata=meta,
        settings={**DATASETTE_SETTINGS, **(settings or {})},
        template_dir=str(TEMPLATES),
        static_mounts=[("ledger-static", str(STATIC))],
        auth=auth,
    )
    ds.remove_database(name)
    database = ReadOnlyDatabase(ds, path=str(db_path), is_mutable=True, length_limit=length_limit)
    ds.add_database(database, name=name)
    return ds

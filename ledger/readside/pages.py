"""The ledger's own pages and the helpers its templates call."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from datasette.app import Datasette
from datasette.database import Database
from datasette.utils.asgi import Request, Response

from ..note import parse_vkey
from .app import PLUGIN, LedgerDatasette
from .sql_views import RECONCILIATION_VIEWS

# A row value, not "store_id > ? OR (store_id = ? AND seq > ?)": SQLite seeks the index
# to it, where the OR read a best-seller's movements from its first (0.01 against 114 ms).
MORE_SKU_MOVEMENTS = """
SELECT EXISTS (
  SELECT 1 FROM inventory_movements INDEXED BY read_inventory_movements_sums
  WHERE code = :code AND (store_id, seq) > (:store_id, :seq))
"""


async def more_sku_movements(
    datasette: Datasette, database: str, code: str, store_id: str, seq: int
) -> bool:
    """Whether the SKU moved after (store_id, seq): history_of_sku links a next page only
    then, so a page that ends on the SKU's last movement does not lead to an empty one."""
    params = {"code": code, "store_id": store_id, "seq": seq}
    result = await datasette.get_database(database).execute(MORE_SKU_MOVEMENTS, params)
    return bool(result.first()[0])


async def reconciliation_page(request: Request, datasette: Datasette) -> Response:
    if not isinstance(datasette, LedgerDatasette):
        return Response.text("not found", status=404)
    db = datasette.get_database()
    await datasette.ensure_permissions(request.actor, [("view-database", db.name), "view-instance"])
    config = datasette.plugin_config(PLUGIN) or {}
    context = {
        "views": await _views(datasette, db, config),
        "queries": await _queries(datasette, db.name, config, request.actor),
        "signed": await signed_head_status(db),
        "database": db.name,
        "max_rows": datasette.setting("max_returned_rows"),
    }
    return Response.html(
        await datasette.render_template("reconciliation.html", context, request=request)
    )


async def _views(datasette: Datasette, db: Database, config: dict[str, Any]) -> list[Any]:
    expect_empty = set(config.get("expect_empty") or ())
    tables_meta = datasette.metadata("tables", database=db.name) or {}
    views = []
    for name in config.get("reconciliation_views") or RECONCILIATION_VIEWS:
        meta = tables_meta.get(name) or {}
        try:
            rows = (await db.execute(f"SELECT count(*) FROM [{name}]")).first()
            count: int | None = int(rows[0]) if rows else 0
            error = None
        except Exception as exc:  # a view that times out or is missing still gets a line
            count, error = None, str(exc)
        views.append(
            {
                "name": name,
                "title": meta.get("title") or name,
                "description": meta.get("description") or "",
                "count": count,
                "error": error,
                "expect_empty": name in expect_empty,
                "url": datasette.urls.table(db.name, name),
                "csv": datasette.urls.table(db.name, name, format="csv") + "?_stream=on&_size=max",
            }
        )
    return views


async def _queries(
    datasette: Datasette, database: str, config: dict[str, Any], actor: Any
) -> list[Any]:
    queries = []
    for name in config.get("reconciliation_queries") or ():
        query = await datasette.get_canned_query(database, name, actor)
        if query is None:
            continue
        queries.append(
            {
                "name": name,
                "title": query.get("title") or name,
                "description": query.get("description") or "",
                "url": datasette.urls.query(database, name),
                "params": named_params(query.get("sql", "")),
            }
        )
    return queries


LATEST_SIGNED = (
    "SELECT size, deliveries, signed_at, (SELECT vkey FROM log_keys WHERE kind != 'anchor'"
    " ORDER BY id DESC LIMIT 1) AS vkey FROM signed_heads ORDER BY id DESC LIMIT 1"
)


async def signed_head_status(db: Database) -> dict[str, Any] | None:
    """The latest signed head as an auditor with only a browser sees it, or None."""
    try:
        row = (await db.execute(LATEST_SIGNED)).first()
    except Exception:  # a file from before signed heads
        return None
    if row is None:
        return None
    key = parse_vkey(row["vkey"])
    age = max(0, int(time.time()) - int(row["signed_at"]))
    return {
        "size": row["size"],
        "deliveries": row["deliveries"],
        "at": datetime.fromtimestamp(row["signed_at"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "age": _age(age),
        "fingerprint": key.fingerprint,
        "origin": key.name,
    }


def _age(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return f"{seconds} seconds ago"


def named_params(sql: str) -> list[str]:
    """The ``:name`` parameters of a canned query, in order of first use."""
    seen: list[str] = []
    for name in re.findall(r"(?<![:\w]):(\w+)", sql):
        if name not in seen:
            seen.append(name)
    return seen

"""Facet counts the ledger keeps, read instead of counted.

Datasette counts a column facet with a GROUP BY over every row the page selects: on the
whole orders table that is 250,000 orders per facet (15-22 ms each) on every load of the
page. Triggers keep those counts for a few columns in ``order_facets`` (see
``projections.tables.ORDER_FACETS``); ``KeptCountsFacet`` is Datasette's column facet,
except that on a whole table whose Datasette declares kept counts (``kept_facets``) it
reads them. Any filter, search or next page leaves it to Datasette's own count.
"""

from __future__ import annotations

from typing import Any

from datasette.facets import ColumnFacet
from datasette.utils import escape_sqlite, path_with_added_args, path_with_removed_args

KEPT_COUNTS_SQL = (
    "SELECT value, orders AS count FROM order_facets WHERE facet = :facet"
    " ORDER BY count DESC, value LIMIT :limit"
)

FacetResult = dict[str, Any]


class KeptCountsFacet(ColumnFacet):  # type: ignore[misc]
    """Datasette's column facet, reading kept counts where the Datasette has them."""

    _configs: list[dict[str, Any]] | None = None  # set: the configs left to Datasette

    def get_configs(self) -> list[dict[str, Any]]:
        return super().get_configs() if self._configs is None else self._configs

    async def facet_results(self) -> tuple[list[FacetResult], list[str]]:
        configs = self.get_configs()
        kept = [c for c in configs if self._column(c) in self._kept_columns()]
        if not kept:
            return await self._counted()
        self._configs = [c for c in configs if c not in kept]
        try:
            results, timed_out = await self._counted()
        finally:
            self._configs = None
        for config in kept:
            results.append(await self._kept_result(config))
        return results, timed_out

    async def _counted(self) -> tuple[list[FacetResult], list[str]]:
        """Datasette's own GROUP BY counts, for the configs left to it."""
        results, timed_out = await super().facet_results()
        return list(results), list(timed_out)

    def _kept_columns(self) -> tuple[str, ...]:
        kept: dict[str, tuple[str, ...]] = getattr(self.ds, "kept_facets", {})
        columns = kept.get(self.table or "", ())
        # only the whole table: Datasette's SQL for it ends in "from <table> " with no
        # where clause (filters, searches and next pages all add one)
        _, _, rest = self.sql.partition(" from ")
        whole = rest.strip() == escape_sqlite(self.table or "")
        return columns if whole else ()

    @staticmethod
    def _column(config: dict[str, Any]) -> str:
        return str(config["config"].get("column") or config["config"]["simple"])

    async def _kept_result(self, config: dict[str, Any]) -> FacetResult:
        """The same result Datasette's column facet gives, from the kept counts."""
        column = self._column(config)
        size = self.get_facet_size()
        found = await self.ds.execute(
            self.database, KEPT_COUNTS_SQL, {"facet": column, "limit": size + 1}
        )
        rows = found.rows[:size]
        return {
            "name": column,
            "type": self.type,
            "hideable": config["source"] != "metadata",
            "toggle_url": self.ds.urls.path(
                path_with_removed_args(self.request, {"_facet": column})
            ),
            "results": [self._value(column, row["value"], row["count"]) for row in rows],
            "truncated": len(found.rows) > size,
        }

    def _value(self, column: str, value: str, count: int) -> FacetResult:
        # the whole table: no value is selected, each one's link adds it as a filter
        toggle = path_with_added_args(self.request, {column: value})
        return {
            "value": value,
            "label": value,
            "count": count,
            "toggle_url": self.ds.absolute_url(self.request, self.ds.urls.path(toggle)),
            "selected": False,
        }

"""The hooks that make a Datasette the ledger's; they act only on a ``LedgerDatasette``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from datasette import hookimpl
from datasette.app import Datasette
from datasette.facets import ColumnFacet
from datasette.plugins import pm
from markupsafe import Markup

from .app import PLUGIN, LedgerDatasette
from .facets import KeptCountsFacet
from .gate import ASGIApp, gate
from .pages import more_sku_movements, reconciliation_page
from .render import render_value

if TYPE_CHECKING:
    from pluggy import Result  # datasette's plugin manager; only its hook result type

_F = TypeVar("_F", bound=Callable[..., Any])


def _hook(fn: _F) -> _F:
    return cast(_F, hookimpl(fn))


def _wrapper(fn: _F) -> _F:
    return cast(_F, hookimpl(hookwrapper=True)(fn))


FacetClasses = list[list[type[Any]]]


def _order_id(row: Any) -> str | None:
    """The order a row names in its own column: an event's page names what the ledger
    recorded, not the first ``"id"`` in the payload's text (an item's, as often as not)."""
    keys = row.keys() if hasattr(row, "keys") else ()
    value = row["order_id"] if "order_id" in keys else None
    return value if isinstance(value, str) else None


OPEN_PAYLOAD_JS = "document.querySelectorAll('details.payload').forEach(d => d.open = true);"
FOLD_DESCRIPTIONS_JS = """
document.querySelectorAll('dl.column-descriptions').forEach(dl => {
  const fold = document.createElement('details');
  fold.className = 'column-descriptions';
  const summary = document.createElement('summary');
  summary.textContent = 'What each column means (' + dl.querySelectorAll('dt').length + ')';
  dl.parentNode.insertBefore(fold, dl);
  fold.appendChild(summary);
  fold.appendChild(dl);
});
"""


class _Hooks:
    """Hooks that act only on a LedgerDatasette (other Datasettes in the process are left be)."""

    __name__ = "ledger.readside"  # Datasette lists plugins by module name

    @_hook
    def asgi_wrapper(self, datasette: Datasette) -> Callable[[ASGIApp], ASGIApp]:
        if not isinstance(datasette, LedgerDatasette):
            return lambda app: app
        return lambda app: gate(datasette, app)

    @_hook
    def render_cell(
        self, row: Any, value: Any, column: str, table: str | None, database: str,
        datasette: Datasette,
    ) -> Markup | None:  # fmt: skip
        if not isinstance(datasette, LedgerDatasette):
            return None
        order_id = _order_id(row) if column == "payload" else None
        return render_value(
            value, column, table, datasette.database_url(database), datasette.currency_symbol,
            order_id,
        )  # fmt: skip

    @_wrapper
    def register_facet_classes(self) -> Generator[None, Result[FacetClasses], None]:
        # Datasette's column facet, swapped for the subclass that reads kept counts. It
        # behaves exactly like Datasette's on any Datasette that declares none.
        outcome = yield
        outcome.force_result(
            [
                [KeptCountsFacet if c is ColumnFacet else c for c in classes]
                for classes in outcome.get_result()
            ]
        )

    @_hook
    def extra_template_vars(self, database: str | None, datasette: Datasette) -> dict[str, Any]:
        if not isinstance(datasette, LedgerDatasette) or database is None:
            return {}
        return {"more_sku_movements": functools.partial(more_sku_movements, datasette, database)}

    @_hook
    def extra_css_urls(self, datasette: Datasette) -> list[str]:
        if not isinstance(datasette, LedgerDatasette):
            return []
        return [datasette.urls.path("/ledger-static/ledger.css")]

    @_hook
    def extra_body_script(self, view_name: str | None, datasette: Datasette) -> str | None:
        if not isinstance(datasette, LedgerDatasette):
            return None
        if view_name == "row":  # on one event's own page its payload opens by itself
            return OPEN_PAYLOAD_JS
        if view_name == "table":  # column descriptions fold away above the rows
            return FOLD_DESCRIPTIONS_JS
        return None

    @_hook
    def menu_links(self, datasette: Datasette) -> list[dict[str, str]]:
        if not isinstance(datasette, LedgerDatasette):
            return []
        return [{"href": datasette.urls.path("/-/reconciliation"), "label": "Reconciliation"}]

    @_hook
    def register_routes(self) -> list[tuple[str, Any]]:
        return [(r"^/-/reconciliation$", reconciliation_page)]


_registered = _Hooks()


def register() -> None:
    if not pm.is_registered(_registered):
        pm.register(_registered, name=PLUGIN)

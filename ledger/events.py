"""What the log holds: events, named in the past tense, that never change once written."""

from __future__ import annotations

from typing import NamedTuple

# An order snapshot Order Desk posted to the webhook, verified; its payload is the exact
# text of the post's ``order`` field.
ORDER_SNAPSHOT = "OrderSnapshotReceived"
# A folder id of a store given a name (``ledger folders set``); payload
# {"folder_id", "name", "named_at"}.
FOLDER_NAMED = "FolderNamed"

EVENT_TYPES = (ORDER_SNAPSHOT, FOLDER_NAMED)


class StoredEvent(NamedTuple):
    """An event as the projections read it: everything but its chain fields."""

    seq: int
    type: str
    received_at: str
    store_id: str
    order_id: str | None
    order_updated_at: str | None
    payload: str

"""Realistic, deterministic Order Desk order snapshots for the benchmark.

Each payload is ~3 KB of order JSON shaped like the samples in ``tests/samples``:
full billing and shipping addresses, a return address, checkout data, notes,
three order items (SKUs drawn from a Zipf-like distribution over a catalogue),
and a shipment once the order has shipped. Slashes are escaped ``\\/`` and some
names are non-ASCII, as Order Desk sends them.

The lifecycle of one order is four snapshots: New, Prepared (paid), Closed with a
shipment, and a last update (a note on the closed order, or, for one order in ten,
a move to Canceled).
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from ledger.testing import (
    API_KEY,
    CANCELED,
    CLOSED,
    FOLDERS,
    NEW,
    PREPARED,
    STORE_ID,
    encode,
    order,
)

__all__ = ["API_KEY", "FOLDERS", "STORE_ID", "OrderFactory", "history_order"]
SNAPSHOTS_PER_ORDER = 4
FIRST_ORDER_ID = 4_000_000

_FIRST = ["Miriam", "Zoë", "Łukasz", "Ana", "Kwame", "Hiro", "Priya", "Sven", "Lucía", "Omar"]
_FIRST += ["Grace", "Mateo", "Ingrid", "Chen", "Fatima", "Jonas", "Aiyana", "Noah", "Amélie"]
_LAST = ["Okafor", "Lefèvre", "Wiśniewski", "Nakamura", "Haddad", "Johansson", "García"]
_LAST += ["Mensah", "Patel", "O'Brien", "Schmidt", "Novák", "Rossi", "Kim", "Dubois", "Müller"]
_CITIES = [
    ("Columbus", "OH", "43214", "US"),
    ("Portland", "OR", "97205", "US"),
    ("Austin", "TX", "78701", "US"),
    ("Zürich", "ZH", "8001", "CH"),
    ("Lausanne", "VD", "1003", "CH"),
    ("Toronto", "ON", "M5V 2T6", "CA"),
    ("Leeds", "West Yorkshire", "LS1 4AP", "GB"),
    ("München", "BY", "80331", "DE"),
    ("Brooklyn", "NY", "11201", "US"),
    ("Denver", "CO", "80202", "US"),
]
_STREETS = ["Larkspur Ave", "Rämistrasse", "Chemin des Épinettes", "Main St", "Elm Street"]
_STREETS += ["Queen St W", "Briggate", "Marienplatz", "Atlantic Ave", "Larimer St"]
_SOURCES = [("Shopify", "55231"), ("WooCommerce", "WC-"), ("Etsy", "33184"), ("Amazon", "114-")]
_METHODS = ["USPS Priority Mail", "UPS Ground", "Standard Shipping", "FedEx 2Day"]
_CATEGORIES = ["bags", "accessories", "Geschirr/Küche", "apparel", "home", "stationery"]
_WORDS = ["Canvas", "Tote", "Enamel", "Pin", "Mug", "Bowl", "Linen", "Scarf", "Wool", "Card"]
_WORDS += ["Ceramic", "Glaze", "Natural", "Midnight", "Set", "Print", "Poster", "Candle"]


class Catalogue:
    """SKUs with prices; popularity follows a Zipf-like law (a few SKUs sell most)."""

    def __init__(self, size: int = 5000, exponent: float = 1.1, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.skus = []
        for n in range(size):
            word1, word2 = rng.choice(_WORDS), rng.choice(_WORDS)
            code = f"{word1[:4].upper()}-{word2[:3].upper()}-{n:04d}"
            name = (
                f"{word1} {word2} - {rng.choice(['Natural', 'Blue', 'Black', 'Rose', 'Ø 15 cm'])}"
            )
            price = rng.choice([4.5, 9.75, 12.5, 14, 18.5, 22, 29.95, 39, 54.5, 89])
            self.skus.append((code, name, price, rng.choice(_CATEGORIES), rng.random() < 0.4))
        weights = [1 / (rank + 1) ** exponent for rank in range(size)]
        self._cumulative = list(itertools.accumulate(weights))

    def pick(self, rng: random.Random, count: int) -> list[tuple[str, str, float, str, bool]]:
        chosen: dict[str, tuple[str, str, float, str, bool]] = {}
        total = self._cumulative[-1]
        while len(chosen) < count:
            sku = self.skus[bisect.bisect(self._cumulative, rng.random() * total)]
            chosen[sku[0]] = sku
        return list(chosen.values())


def _address(rng: random.Random, full: bool) -> dict[str, str]:
    city, state, postal, country = rng.choice(_CITIES)
    out = {
        "first_name": rng.choice(_FIRST),
        "last_name": rng.choice(_LAST),
        "company": rng.choice(["", "", "Atelier Nœud & Fils", "Larkspur Studio LLC"]),
        "address1": f"{rng.randint(1, 9999)} {rng.choice(_STREETS)}",
        "address2": rng.choice(["", "Apt 3B", "c/o Ingrid Søndergaard", "Suite 210"]),
    }
    if full:
        out |= {"address3": "", "address4": ""}
    return out | {
        "city": city,
        "state": state,
        "postal_code": postal,
        "country": country,
        "phone": f"+1 {rng.randint(200, 999)}-555-{rng.randint(0, 9999):04d}",
    }


class OrderFactory:
    """Snapshots of order ``n`` are a pure function of ``(seed, n, stage)``."""

    def __init__(self, seed: int = 1, catalogue: Catalogue | None = None) -> None:
        self.seed = seed
        self.catalogue = catalogue or Catalogue()
        self.epoch = datetime(2024, 1, 1, tzinfo=UTC)

    def order(self, n: int, stage: int = 0, *, id_base: int = FIRST_ORDER_ID) -> dict[str, object]:
        rng = random.Random(self.seed * 1_000_003 + n)
        added = self.epoch + timedelta(seconds=n * 97 + rng.randint(0, 60))
        skus = self.catalogue.pick(rng, 3)
        quantities = [rng.choice([1, 1, 1, 2, 2, 3]) for _ in skus]
        canceled_later = rng.random() < 0.1
        shipping, customer = _address(rng, True), _address(rng, False)
        source, source_prefix = rng.choice(_SOURCES)
        order_id = str(id_base + n)
        items = []
        for line, ((code, name, price, category, varies), qty) in enumerate(
            zip(skus, quantities, strict=True)
        ):
            items.append(
                {
                    "id": str(8_800_000 + n * 3 + line),
                    "name": name,
                    "price": price if rng.random() < 0.8 else f"{price:.2f}",
                    "quantity": qty,
                    "weight": round(rng.uniform(0.05, 1.5), 2),
                    "code": code,
                    "delivery_type": "ship",
                    "category_code": category,
                    "fulfillment_method": "",
                    "variation_list": {"Color": rng.choice(["Natural", "Bleu nuit", "Black"])}
                    if varies
                    else [],
                    "metadata": {"image": f"https://cdn.example.com/img/{code.lower()}.jpg"},
                }
            )
        lines = (float(cast(Any, i["price"])) * cast(int, i["quantity"]) for i in items)
        product_total = round(sum(lines), 2)
        shipping_total = rng.choice([0, 5.49, 8.95, 12])
        tax = round(product_total * 0.08, 2)
        total = round(product_total + shipping_total + tax, 2)
        folder = [NEW, PREPARED, CLOSED, CANCELED if canceled_later else CLOSED][stage]
        updated = added + timedelta(hours=[0, 2, 30, 75][stage], seconds=rng.randint(0, 3000))
        notes = [
            {
                "date_added": (added + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S"),
                "username": "Warehouse Team",
                "content": "Customer asked for gift wrap; packed in a 10x13 poly mailer.",
            }
        ]
        if stage == 3:
            notes.append(
                {
                    "date_added": updated.strftime("%Y-%m-%d %H:%M:%S"),
                    "username": "Support",
                    "content": "Canceled at the customer's request, refund issued."
                    if canceled_later
                    else "Delivery confirmed by the carrier.",
                }
            )
        shipments = []
        if stage >= 2:
            tracking = f"94055118992231{n:08d}"
            shipped = added + timedelta(hours=29)
            shipments.append(
                {
                    "id": str(1_190_000 + n),
                    "order_id": order_id,
                    "store_id": STORE_ID,
                    "tracking_number": tracking,
                    "carrier_code": "USPS",
                    "shipment_method": "Priority Mail",
                    "weight": "0.8",
                    "cost": "9.40",
                    "status": "",
                    "tracking_url": "https://tools.usps.com/go/TrackConfirmAction?tLabels="
                    + tracking,
                    "label_format": "",
                    "label_image": "",
                    "order_items": "",
                    "print_status": "1",
                    "cart_shipment_id": "",
                    "label_shipment_id": "",
                    "date_shipped": shipped.strftime("%Y-%m-%d"),
                    "date_added": shipped.strftime("%Y-%m-%d %H:%M:%S"),
                }
            )
        refunded = stage == 3 and canceled_later
        # Every field given: the shared builder's defaults only fix the field order.
        fields: dict[str, Any] = {
            "email": f"{shipping['first_name'].lower()}.{n}@example.net",
            "shipping_method": rng.choice(_METHODS),
            "quantity_total": sum(quantities),
            "weight_total": round(sum(i["weight"] for i in items), 2),  # type: ignore[misc]
            "product_total": product_total,
            "shipping_total": shipping_total,
            "handling_total": 0,
            "tax_total": tax,
            "discount_total": 0,
            "order_total": total,
            "cc_number_masked": f"xxxxxxxxxxxx{rng.randint(0, 9999):04d}",
            "cc_exp": f"{rng.randint(1, 12):02d}/20{rng.randint(26, 31)}",
            "processor_response": f"Stripe: ch_{rng.getrandbits(64):016x}",
            "payment_type": rng.choice(["Visa", "Mastercard", "American Express"]),
            "payment_status": "Fully Refunded"
            if refunded
            else ("Authorized" if stage == 0 else "Captured"),
            "processor_balance": 0 if refunded else total,
            "refund_total": total if refunded else 0,
            "customer_id": str(rng.randint(1000, 9_999_999)),
            "email_count": str(stage + 1),
            "ip_address": f"203.0.113.{rng.randint(1, 254)}",
            "tag_color": "",
            "source_name": source,
            "source_id": f"{source_prefix}{n}",
            "fulfillment_name": "",
            "fulfillment_id": "",
            "tag_name": "",
            "folder_id": folder,
            "date_added": added.strftime("%Y-%m-%d %H:%M:%S"),
            "date_updated": updated.strftime("%Y-%m-%d %H:%M:%S"),
            "shipping": shipping,
            "customer": customer,
            "return_address": {
                "title": "Returns",
                "name": "Service Retours",
                "company": "Larkspur Goods Co.",
                "address1": "Industriestrasse 5",
                "address2": "Halle B/2",
                "city": "Winterthur",
                "state": "ZH",
                "postal_code": "8400",
                "country": "CH",
                "phone": "",
            },
            "checkout_data": {
                "Delivery Instructions": "Leave with the front desk",
                "Gift Message": rng.choice(["", "Happy birthday! 🎁", "Alles Gute, 山田さん!"]),
            },
            "order_metadata": {"shopify_order_number": str(1000 + n), "sales_channel": "Online"},
            "discount_list": [],
            "order_notes": notes,
            "order_items": items,
            "order_shipments": shipments,
        }
        return order(order_id, **fields)

    def payload(self, n: int, stage: int = 0, *, id_base: int = FIRST_ORDER_ID) -> bytes:
        """The exact bytes of the ``order`` form field (Order Desk style JSON)."""
        return encode(self.order(n, stage, id_base=id_base))


def history_order(orders: int, block: int = 1000) -> Iterator[tuple[int, int]]:
    """(order n, stage) in arrival order: stages of one order arrive blocks apart, interleaved
    with other orders' snapshots, the way a busy store's rules fire."""
    blocks = (orders + block - 1) // block
    for b in range(blocks + SNAPSHOTS_PER_ORDER - 1):
        for stage in range(SNAPSHOTS_PER_ORDER):
            source = b - stage
            if 0 <= source < blocks:
                start = source * block
                yield from ((n, stage) for n in range(start, min(start + block, orders)))

"""Write invented Order Desk order posts (one JSON file each) for demos and screenshots.

    python docs/generate_orders.py OUT_DIR [--orders 60] [--days 30] [--seed 7]

Each file is exactly the ``order`` value Order Desk would post; send them with
``ledger send OUT_DIR/*.json``. Files are named so that a shell glob sends them in
an order that exercises the ledger: first snapshots, then updates (folders change,
shipments appear), then one older snapshot arriving late, and one order whose totals
do not add up.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ledger import testing

SKUS = [
    ("TOTE-NAT-01", "Canvas Tote Bag - Natural", 1850),
    ("PIN-SET-3", "Enamel Pin Set", 975),
    ("MUG-350/GRS", "Stoneware Mug 350 ml - Grès", 1250),
    ("BOL-EMB-03", "Embossed Bowl", 1400),
    ("NAP-LIN-4-SAGE", "Linen Napkins x4 - Sage", 2200),
    ("CANDLE-FIG", "Fig Candle", 2400),
    ("CARD-THANKS", "Thank-you Card", 450),
    ("APRON-DENIM", "Denim Apron", 3600),
    ("TEA-TOWEL-2", "Tea Towels x2", 1600),
    ("SOAP-OAT", "Oat Soap Bar", 800),
]
SOURCES = ["Shopify", "Shopify", "Etsy", "WooCommerce", "Amazon"]
NEW, PREPARED, CLOSED, CANCELED = testing.NEW, testing.PREPARED, testing.CLOSED, testing.CANCELED


def order(
    order_id: str,
    added: datetime,
    updated: datetime,
    lines: list[tuple[str, str, int, int]],
    folder_id: int,
    source: str,
    *,
    shipped: datetime | None = None,
    payment_status: str = "Captured",
    order_total: int | None = None,
) -> dict[str, Any]:
    product = sum(price * qty for _, _, price, qty in lines)
    shipping = 595 if product < 5000 else 0
    tax = round(product * 0.0725)
    fmt = "%Y-%m-%d %H:%M:%S"
    refunded = payment_status == "Fully Refunded"
    return testing.order(
        order_id,
        items=[
            testing.item(code, price, qty, name=name, id=f"{order_id}{n}")
            for n, (code, name, price, qty) in enumerate(lines)
        ],
        added=added.strftime(fmt),
        updated=updated.strftime(fmt),
        shipping_cents=shipping,
        tax_cents=tax,
        total_cents=order_total,
        folder_id=folder_id,
        shipments=[testing.shipment(f"9405511899{order_id}", shipped.strftime("%Y-%m-%d"))]
        if shipped
        else [],
        email=f"buyer{order_id}@example.net",
        payment_status=payment_status,
        refund_total=testing.money(product + shipping + tax) if refunded else 0,
        source_name=source,
        source_id=f"S{order_id}",
        shipping=testing.address("Sam", f"Buyer {order_id[-3:]}"),
        customer=testing.address("Sam", f"Buyer {order_id[-3:]}"),
    )


def write(out: Path, name: str, payload: dict[str, Any]) -> None:
    (out / f"{name}.json").write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--orders", type=int, default=60)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    for n in range(args.orders):
        order_id = str(4100000 + n)
        added = now - timedelta(days=rng.uniform(0, args.days))
        lines = [
            (code, name, price, rng.choice([1, 1, 1, 2, 3]))
            for code, name, price in rng.sample(SKUS, rng.choice([1, 1, 2, 3]))
        ]
        source = rng.choice(SOURCES)
        first = order(order_id, added, added, lines, NEW, source)
        write(args.out, f"1-{order_id}-new", first)
        fate = rng.random()
        later = min(now, added + timedelta(hours=rng.uniform(2, 72)))
        if fate < 0.55:  # packed and shipped
            prepared = order(order_id, added, later - timedelta(hours=1), lines, PREPARED, source)
            write(args.out, f"2-{order_id}-prepared", prepared)
            shipped = order(order_id, added, later, lines, CLOSED, source, shipped=later)
            write(args.out, f"3-{order_id}-shipped", shipped)
            if n % 9 == 0:  # an older state resubmitted after "shipped": stale
                late = prepared | {"order_notes": [{"content": "resubmitted by hand"}]}
                write(args.out, f"4-{order_id}-late-prepared", late)
        elif fate < 0.65:
            canceled = order(
                order_id, added, later, lines, CANCELED, source, payment_status="Fully Refunded"
            )
            write(args.out, f"3-{order_id}-canceled", canceled)
    bad = order(
        "4199999",
        now - timedelta(hours=3),
        now - timedelta(hours=3),
        [("MUG-350/GRS", "Stoneware Mug 350 ml - Grès", 1250, 2)],
        NEW,
        "Shopify",
        order_total=1999,
    )
    write(args.out, "5-4199999-totals-off", bad)


if __name__ == "__main__":
    main()

"""Orders per second through ``order_ingest`` on PostgreSQL with 1 and 4 worker processes.

Each order has 1-5 lines of distinct SKUs against plenty of stock, so every order allocates.
The floor, measured in the same run, is raw SQL through psycopg writing the same rows in one
transaction per order: the order, its lines, the conditional stock update and one reservation
and one ledger row per line (the ledger's trigger adds the stock-change outbox rows), the
payload version and the two timeline events. (The service also looks the order up, maps its
SKUs, routes it and computes its deadlines; that is the price of the real path the ratio
shows.) Headline: ``RESULT order_ingest``
for 4 workers. ``BENCH_SECONDS`` sets each measurement's length (default 4).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bench.common import psycopg_dsn, result, run_workers, setup_django

SKUS = 200
STOCK = 10_000_000
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
WORKER_COUNTS = (1, 4)
ADDRESS = {
    "name": "Ada Buyer",
    "line1": "1 Main St",
    "city": "Springfield",
    "region": "IL",
    "postal_code": "62701",
    "country_code": "US",
}


def _order_payload(rng, sku_codes: list[str]) -> dict:
    """A channel order as a connector would hand it over (also the stored raw payload)."""
    lines = [
        {"id": f"L{i}", "sku": code, "quantity": rng.randint(1, 3), "price": "12.50"}
        for i, code in enumerate(rng.sample(sku_codes, rng.randint(1, 5)))
    ]
    return {
        "id": uuid.uuid4().hex,
        "status": "unshipped",
        "purchased_at": datetime.now(UTC).isoformat(),
        "ship_to": ADDRESS,
        "buyer": "Ada Buyer",
        "total": str(sum(Decimal(line["price"]) * line["quantity"] for line in lines)),
        "lines": lines,
    }


def _record(payload: dict):
    from oms.records import AddressRecord, OrderLineRecord, OrderRecord

    return OrderRecord(
        channel_order_id=payload["id"],
        status=payload["status"],
        purchased_at=datetime.fromisoformat(payload["purchased_at"]),
        lines=tuple(
            OrderLineRecord(
                channel_line_id=line["id"],
                seller_sku=line["sku"],
                quantity=line["quantity"],
                unit_price=Decimal(line["price"]),
            )
            for line in payload["lines"]
        ),
        ship_to=AddressRecord(**ADDRESS),
        buyer_name=payload["buyer"],
        total=Decimal(payload["total"]),
        raw=payload,
    )


ORDER_INSERT = """
INSERT INTO oms_order (
    channel_id, external_id, fulfillment_model, status, status_before_hold, hold_reason,
    hold_detail, cancel_reason, warehouse_id, purchased_at, channel_updated_at, ship_by,
    pack_by, deadline_rule, is_prime, service_level, buyer_name, buyer_email, ship_name,
    ship_line1, ship_line2, ship_line3, ship_city, ship_region, ship_postal_code, ship_country,
    ship_phone, currency, total, shipping_total, tax_total, raw_payload, payload_hash,
    oversold, created_at, updated_at
) VALUES (
    %s, %s, 'FBM', 'allocated', '', '', '', '', %s, %s, %s, %s, %s, 'handling', false, '',
    %s, '', %s, %s, '', '', %s, %s, %s, %s, '', 'USD', %s, 0, 0, %s, %s, false, now(), now()
) RETURNING id
"""


def main() -> None:
    # After each order the stock-change outbox nudges a task through the broker. In
    # production that is one push to Redis; the development default (a folder of files)
    # would litter it with thousands of messages, so the benchmark uses an in-memory one.
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    url = setup_django()
    import psycopg
    from psycopg.types.json import Jsonb

    from inventory import services
    from inventory.models import SKU, StockLevel, Warehouse
    from oms.models import RoutingRule, SalesChannel
    from oms.services.ingestion import order_ingest

    warehouse = Warehouse.objects.create(code="bench")
    channel = SalesChannel.objects.create(code="bench", kind=SalesChannel.Kind.WEBSHOP)
    RoutingRule.objects.create(channel=channel, warehouse=warehouse, priority=1)
    skus = [SKU.objects.create(code=f"B{i:04d}") for i in range(SKUS)]
    for sku in skus:
        services.stock_receive(sku=sku, warehouse=warehouse, quantity=STOCK)
    sku_codes = [sku.code for sku in skus]
    # code -> (sku id, stock level id), for the raw path.
    levels = {
        code: (sku_id, level_id)
        for code, sku_id, level_id in StockLevel.objects.filter(warehouse=warehouse).values_list(
            "sku__code", "sku_id", "pk"
        )
    }
    raw_conn: dict[str, psycopg.Connection] = {}

    def service_call(index, rng):
        order_ingest(channel=channel, record=_record(_order_payload(rng, sku_codes)))

    def raw_call(index, rng):
        conn = raw_conn.get("c") or raw_conn.setdefault("c", psycopg.connect(psycopg_dsn(url)))
        payload = _order_payload(rng, sku_codes)
        digest = hashlib.sha256(
            json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        purchased = datetime.fromisoformat(payload["purchased_at"])
        ship_by = purchased + timedelta(days=1)
        lines = payload["lines"]
        with conn.transaction():
            order_id = conn.execute(
                ORDER_INSERT,
                [
                    channel.pk,
                    payload["id"],
                    warehouse.pk,
                    purchased,
                    purchased,
                    ship_by,
                    ship_by - timedelta(minutes=30),
                    payload["buyer"],
                    ADDRESS["name"],
                    ADDRESS["line1"],
                    ADDRESS["city"],
                    ADDRESS["region"],
                    ADDRESS["postal_code"],
                    ADDRESS["country_code"],
                    payload["total"],
                    Jsonb(payload),
                    digest,
                ],
            ).fetchone()[0]
            line_ids = [
                row[0]
                for row in conn.execute(
                    "INSERT INTO oms_orderline (order_id, sku_id, seller_sku, channel_line_id,"
                    " title, quantity, quantity_shipped, quantity_cancelled, unit_price) VALUES "
                    + ", ".join(["(%s, %s, %s, %s, '', %s, 0, 0, %s)"] * len(lines))
                    + " RETURNING id",
                    [
                        value
                        for line in lines
                        for value in (
                            order_id,
                            levels[line["sku"]][0],
                            line["sku"],
                            line["id"],
                            line["quantity"],
                            line["price"],
                        )
                    ],
                ).fetchall()
            ]
            # Stock levels in primary-key order, as stock_reserve takes them.
            for line in sorted(lines, key=lambda line: levels[line["sku"]][1]):
                taken = conn.execute(
                    "UPDATE inventory_stocklevel SET reserved = reserved + %s, updated_at = now()"
                    " WHERE id = %s AND on_hand - reserved >= %s",
                    [line["quantity"], levels[line["sku"]][1], line["quantity"]],
                ).rowcount
                assert taken == 1
            reference = f"order:{order_id}"
            conn.execute(
                "INSERT INTO inventory_reservation (reference, line_reference, stock_level_id,"
                " sku_id, warehouse_id, requested_sku_id, units_per_item, quantity,"
                " quantity_consumed, quantity_released, status, created_at, updated_at) VALUES "
                + ", ".join(
                    ["(%s, %s, %s, %s, %s, %s, 1, %s, 0, 0, 'active', now(), now())"] * len(lines)
                ),
                [
                    value
                    for line, line_id in zip(lines, line_ids, strict=True)
                    for value in (
                        reference,
                        str(line_id),
                        levels[line["sku"]][1],
                        levels[line["sku"]][0],
                        warehouse.pk,
                        levels[line["sku"]][0],
                        line["quantity"],
                    )
                ],
            )
            conn.execute(
                "INSERT INTO inventory_stockmovement (kind, sku_id, warehouse_id, on_hand_delta,"
                " reserved_delta, reason, reference, idempotency_key, actor_label, created_at)"
                " VALUES "
                + ", ".join(
                    ["('reservation', %s, %s, 0, %s, '', %s, '', 'import', now())"] * len(lines)
                ),
                [
                    value
                    for line in lines
                    for value in (
                        levels[line["sku"]][0],
                        warehouse.pk,
                        line["quantity"],
                        reference,
                    )
                ],
            )
            conn.execute(
                "INSERT INTO oms_orderpayloadversion (order_id, payload_hash, payload,"
                " received_at) VALUES (%s, %s, %s, now())",
                [order_id, digest, Jsonb(payload)],
            )
            conn.execute(
                "INSERT INTO oms_orderevent (order_id, kind, from_status, to_status, message,"
                " data, actor_label, created_at) VALUES"
                " (%s, 'imported', '', 'awaiting', 'imported from bench (unshipped)', %s,"
                " 'import', now()),"
                " (%s, 'status', 'awaiting', 'allocated', '', %s, 'import', now())",
                [
                    order_id,
                    Jsonb({"channel_status": "unshipped"}),
                    order_id,
                    Jsonb({"warehouse": warehouse.code}),
                ],
            )

    figures = {}
    for workers in WORKER_COUNTS:
        raw = run_workers(workers, raw_call, SECONDS)
        service = run_workers(workers, service_call, SECONDS)
        figures[workers] = (service, raw)
        print(
            f"workers={workers}: order_ingest {service:,.1f} orders/s, raw SQL {raw:,.1f} "
            f"orders/s, ratio {service / raw:.3f}",
            flush=True,
        )
    service, raw = figures[WORKER_COUNTS[-1]]
    result("order_ingest", service, "orders/s", floor=raw)


if __name__ == "__main__":
    main()

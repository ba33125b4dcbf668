"""Reservations per second through ``stock_reserve`` on PostgreSQL with 1, 4 and 8 workers.

Workers are processes (as web and Celery workers are). The floor is raw SQL through psycopg
doing the same conditional update and ledger insert, in the same run. Headline:
``RESULT reserve_rate`` for 8 workers.
"""

from __future__ import annotations

import os
import uuid

from bench.common import psycopg_dsn, result, run_workers, setup_django

SKUS = 200
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))


def main() -> None:
    url = setup_django()
    import psycopg

    from inventory import services
    from inventory.models import SKU, StockLevel, Warehouse

    warehouse = Warehouse.objects.create(code="bench")
    skus = [SKU.objects.create(code=f"B{i:04d}") for i in range(SKUS)]
    for sku in skus:
        services.stock_receive(sku=sku, warehouse=warehouse, quantity=10_000_000)
    levels = list(StockLevel.objects.values_list("pk", "sku_id", "warehouse_id"))
    raw_conn: dict[str, psycopg.Connection] = {}

    def service_call(index, rng):
        services.stock_reserve(
            warehouse=warehouse, items=[(rng.choice(skus), 1)], reference=uuid.uuid4().hex
        )

    def raw_call(index, rng):
        conn = raw_conn.get("c") or raw_conn.setdefault("c", psycopg.connect(psycopg_dsn(url)))
        level_pk, sku_id, wh_id = rng.choice(levels)
        with conn.transaction():
            updated = conn.execute(
                "UPDATE inventory_stocklevel SET reserved = reserved + 1 "
                "WHERE id = %s AND on_hand - reserved >= 1",
                [level_pk],
            ).rowcount
            assert updated == 1
            conn.execute(
                "INSERT INTO inventory_stockmovement (kind, sku_id, warehouse_id, on_hand_delta,"
                " reserved_delta, reason, reference, idempotency_key, actor_label, created_at)"
                " VALUES ('reservation', %s, %s, 0, 1, '', %s, '', 'bench', now())",
                [sku_id, wh_id, uuid.uuid4().hex],
            )

    figures = {}
    for workers in (1, 4, 8):
        raw = run_workers(workers, raw_call, SECONDS)
        service = run_workers(workers, service_call, SECONDS)
        figures[workers] = (service, raw)
        print(
            f"workers={workers}: stock_reserve {service:,.0f}/s, raw SQL {raw:,.0f}/s, "
            f"ratio {service / raw:.3f}",
            flush=True,
        )
    service, raw = figures[8]
    result("reserve_rate", service, "reservations/s", floor=raw)


if __name__ == "__main__":
    main()

"""Concurrency on PostgreSQL: many threads reserving against little stock never oversell."""

import random
import threading
from collections import defaultdict
from functools import partial

import pytest
from django.db import connection

from inventory import selectors, services
from inventory.exceptions import InsufficientStock
from inventory.models import SKU, BundleComponent, Reservation, StockLevel, Warehouse

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 16
ORDERS = 2000


def _attempt(calls, outcomes, errors):
    """Make each ``(name, call)`` in turn, noting which got their stock; keep any other
    error."""
    try:
        for name, call in calls:
            try:
                call()
                outcomes[name] = True
            except InsufficientStock:
                outcomes[name] = False
            except Exception as exc:  # a deadlock or constraint error would land here
                errors.append(repr(exc))
    finally:
        connection.close()


def _run_concurrently(call_lists) -> tuple[dict, list]:
    """Each list of ``(name, call)`` on a thread of its own, all at once: which got their
    stock, and any other error."""
    outcomes, errors = {}, []
    threads = [
        threading.Thread(target=_attempt, args=(calls, outcomes, errors)) for calls in call_lists
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes, errors


def _reservations(orders, warehouse):
    return [
        (
            reference,
            partial(services.stock_reserve, warehouse=warehouse, items=items, reference=reference),
        )
        for reference, items in orders
    ]


def test_sixteen_threads_two_thousand_orders_five_hundred_units():
    rng = random.Random(20261126)
    warehouse = Warehouse.objects.create(code="main")
    skus = [SKU.objects.create(code=f"SKU-{i}") for i in range(5)]
    for sku in skus:
        services.stock_receive(sku=sku, warehouse=warehouse, quantity=100)
    kit = SKU.objects.create(code="KIT", kind=SKU.Kind.BUNDLE)
    BundleComponent.objects.create(bundle=kit, component=skus[0], quantity=2)
    BundleComponent.objects.create(bundle=kit, component=skus[3], quantity=1)
    recipe = {skus[0].pk: 2, skus[3].pk: 1}
    products = [*skus, kit]

    orders, demand_of = [], {}
    for n in range(ORDERS):
        lines = rng.sample(products, rng.randint(1, 3))  # lines in random order
        items = [(sku, rng.randint(1, 2), f"line-{k}") for k, sku in enumerate(lines)]
        demand = defaultdict(int)
        for sku, qty, _ in items:
            for part, per in recipe.items() if sku.is_bundle else [(sku.pk, 1)]:
                demand[part] += qty * per
        reference = f"order-{n}"
        orders.append((reference, items))
        demand_of[reference] = demand

    outcomes, errors = _run_concurrently(
        _reservations(orders[i::THREADS], warehouse) for i in range(THREADS)
    )

    assert errors == [], errors[:5]
    assert len(outcomes) == ORDERS
    reserved_expected = defaultdict(int)
    for reference, ok in outcomes.items():
        if ok:
            for sku_pk, units in demand_of[reference].items():
                reserved_expected[sku_pk] += units
    levels = {lvl.sku_id: lvl for lvl in StockLevel.objects.filter(warehouse=warehouse)}
    for sku in skus:
        level = levels[sku.pk]
        assert 0 <= level.reserved <= level.on_hand == 100
        assert level.reserved == reserved_expected[sku.pk]
    # Stock only went down during the run, so an order refused at any moment must still be
    # infeasible now: a refused order that would fit now was refused wrongly.
    final_available = {pk: lvl.available for pk, lvl in levels.items()}
    for reference, ok in outcomes.items():
        if not ok:
            demand = demand_of[reference]
            assert any(final_available[s] < u for s, u in demand.items()), reference
    succeeded = sum(outcomes.values())
    assert 0 < succeeded < ORDERS
    assert Reservation.objects.values("reference").distinct().count() == succeeded
    assert selectors.stock_ledger_mismatches() == []


def test_pages_of_orders_and_single_orders_together_never_oversell():
    rng = random.Random(20261127)
    warehouse = Warehouse.objects.create(code="main")
    skus = [SKU.objects.create(code=f"SKU-{i}") for i in range(6)]
    for sku in skus:
        services.stock_receive(sku=sku, warehouse=warehouse, quantity=150)

    def order(reference):
        lines = rng.sample(skus, rng.randint(1, 3))  # lines in random order
        return reference, [
            (sku, rng.randint(1, 2), f"{reference}/{k}") for k, sku in enumerate(lines)
        ]

    singles = [order(f"single-{n}") for n in range(400)]
    pages = [(f"page-{p}", [order(f"page-{p}/{n}") for n in range(12)]) for p in range(40)]
    outcomes, errors = _run_concurrently(
        [_reservations(singles[i::4], warehouse) for i in range(4)]
        + [
            [
                (name, partial(services.stock_reserve_many, warehouse=warehouse, requests=rq))
                for name, rq in pages[i::4]
            ]
            for i in range(4)
        ]
    )

    assert errors == [], errors[:5]
    granted = [ref for ref, items in singles if outcomes[ref]]
    for name, requests in pages:
        refs = {ref for ref, _ in requests}
        stored = set(
            Reservation.objects.filter(reference__in=refs).values_list("reference", flat=True)
        )
        assert stored == (refs if outcomes[name] else set()), name  # a page: all or none
        if outcomes[name]:
            granted.extend(refs)
    expected = defaultdict(int)
    items_of = dict(singles) | {ref: items for _, requests in pages for ref, items in requests}
    for ref in granted:
        for sku, quantity, _ in items_of[ref]:
            expected[sku.pk] += quantity
    for level in StockLevel.objects.filter(warehouse=warehouse):
        assert 0 <= level.reserved <= level.on_hand == 150
        assert level.reserved == expected[level.sku_id]
    assert 0 < sum(outcomes.values()) < len(outcomes)
    assert selectors.stock_ledger_mismatches() == []

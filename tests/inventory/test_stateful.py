"""Hypothesis stateful test: random inventory operations against a model of the expected stock.

After every step: ``0 <= reserved <= on_hand`` for every stock level, the counters equal the
model, the ledger and the active reservations add up to the counters, and quarantine stock is
never available.
"""

import uuid
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from inventory import selectors, services
from inventory.exceptions import InsufficientStock, InvalidStockOperation
from inventory.models import SKU, BundleComponent, StockLevel, Warehouse

pytestmark = pytest.mark.django_db


class InventoryMachine(RuleBasedStateMachine):
    references = Bundle("references")

    @initialize()
    def setup(self):
        tag = uuid.uuid4().hex[:6]
        self.warehouses = [
            Warehouse.objects.create(code=f"a-{tag}"),
            Warehouse.objects.create(code=f"b-{tag}", kind=Warehouse.Kind.THREE_PL),
        ]
        self.quarantine = Warehouse.objects.create(code=f"q-{tag}", kind=Warehouse.Kind.QUARANTINE)
        self.skus = [SKU.objects.create(code=f"S{i}-{tag}") for i in range(3)]
        self.kit = SKU.objects.create(code=f"B-{tag}", kind=SKU.Kind.BUNDLE)
        self.recipe = {self.skus[0].pk: 2, self.skus[1].pk: 1}
        for sku_pk, qty in self.recipe.items():
            BundleComponent.objects.create(bundle=self.kit, component_id=sku_pk, quantity=qty)
        self.on_hand = defaultdict(int)
        self.reserved = defaultdict(int)
        self.held = {}  # reference -> {(sku_pk, wh_pk): units}

    def available(self, sku_pk, wh_pk):
        return self.on_hand[(sku_pk, wh_pk)] - self.reserved[(sku_pk, wh_pk)]

    @rule(sku=st.integers(0, 2), wh=st.integers(0, 2), qty=st.integers(1, 12), q=st.booleans())
    def receive(self, sku, wh, qty, q):
        warehouse = self.quarantine if q else self.warehouses[wh % 2]
        services.stock_receive(sku=self.skus[sku], warehouse=warehouse, quantity=qty)
        self.on_hand[(self.skus[sku].pk, warehouse.pk)] += qty

    @rule(
        target=references,
        wh=st.integers(0, 1),
        lines=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 4)), min_size=1, max_size=3),
    )
    def reserve(self, wh, lines):
        warehouse = self.warehouses[wh]
        demand = defaultdict(int)
        items = []
        for n, (index, qty) in enumerate(lines):
            if index == 3:
                items.append((self.kit, qty, f"l{n}"))
                for sku_pk, per in self.recipe.items():
                    demand[sku_pk] += qty * per
            else:
                items.append((self.skus[index], qty, f"l{n}"))
                demand[self.skus[index].pk] += qty
        feasible = all(self.available(s, warehouse.pk) >= u for s, u in demand.items())
        reference = f"order-{uuid.uuid4().hex[:8]}"
        try:
            services.stock_reserve(warehouse=warehouse, items=items, reference=reference)
        except InsufficientStock as err:
            assert not feasible, err
            return reference
        assert feasible
        self.held[reference] = {(s, warehouse.pk): u for s, u in demand.items()}
        for key, units in self.held[reference].items():
            self.reserved[key] += units
        return reference

    @rule(reference=consumes(references))
    def release(self, reference):
        services.reservation_release(reference=reference)
        for key, units in self.held.pop(reference, {}).items():
            self.reserved[key] -= units

    @rule(reference=consumes(references))
    def ship(self, reference):
        services.reservation_consume(reference=reference)
        for key, units in self.held.pop(reference, {}).items():
            self.reserved[key] -= units
            self.on_hand[key] -= units

    @rule(sku=st.integers(0, 2), wh=st.integers(0, 1), delta=st.integers(-6, 6))
    def adjust(self, sku, wh, delta):
        key = (self.skus[sku].pk, self.warehouses[wh].pk)
        if delta == 0:
            return
        try:
            services.stock_adjust(
                sku=self.skus[sku], warehouse=self.warehouses[wh], delta=delta, reason="test"
            )
        except InsufficientStock:
            assert self.available(*key) < -delta
            return
        self.on_hand[key] += delta

    @rule(sku=st.integers(0, 2), qty=st.integers(1, 6), forward=st.booleans())
    def transfer(self, sku, qty, forward):
        src, dst = self.warehouses if forward else self.warehouses[::-1]
        sku_pk = self.skus[sku].pk
        try:
            services.stock_transfer(
                sku=self.skus[sku], from_warehouse=src, to_warehouse=dst, quantity=qty
            )
        except InsufficientStock:
            assert self.available(sku_pk, src.pk) < qty
            return
        self.on_hand[(sku_pk, src.pk)] -= qty
        self.on_hand[(sku_pk, dst.pk)] += qty

    @rule(sku=st.integers(0, 2), wh=st.integers(0, 1), counted=st.integers(0, 20))
    def count(self, sku, wh, counted):
        key = (self.skus[sku].pk, self.warehouses[wh].pk)
        try:
            services.stock_count(
                sku=self.skus[sku], warehouse=self.warehouses[wh], counted_quantity=counted
            )
        except InvalidStockOperation:
            assert counted < self.reserved[key]
            return
        self.on_hand[key] = counted

    @invariant()
    def counters_match_model_and_ledger(self):
        if not hasattr(self, "skus"):
            return
        levels = StockLevel.objects.filter(sku__in=self.skus)
        for lvl in levels:
            assert 0 <= lvl.reserved <= lvl.on_hand
            assert lvl.on_hand == self.on_hand[(lvl.sku_id, lvl.warehouse_id)]
            assert lvl.reserved == self.reserved[(lvl.sku_id, lvl.warehouse_id)]
        assert selectors.stock_ledger_mismatches() == []
        for sku in self.skus:
            expected = sum(self.available(sku.pk, w.pk) for w in self.warehouses)
            assert selectors.stock_available(sku=sku) == expected
            assert selectors.stock_available(sku=sku, warehouse=self.quarantine) == 0
        expected_bundles = sum(
            min(self.available(s, w.pk) // per for s, per in self.recipe.items())
            for w in self.warehouses
        )
        assert selectors.stock_available(sku=self.kit) == expected_bundles


def test_inventory_state_machine():
    InventoryMachine.TestCase.settings = settings(
        max_examples=25,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    InventoryMachine.TestCase().runTest()

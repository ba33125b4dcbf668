"""Inventory services: the invariants of the architecture brief, section 4 items 1-2."""

import pytest
from django.db import IntegrityError, connection, transaction

from inventory import selectors, services
from inventory.exceptions import (
    InsufficientStock,
    InvalidQuantity,
    InvalidStockOperation,
    UnknownSKU,
    UnknownWarehouse,
)
from inventory.models import (
    SKU,
    BundleComponent,
    Reservation,
    StockLevel,
    StockMovement,
    Warehouse,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def wh():
    return Warehouse.objects.create(code="main")


@pytest.fixture
def quarantine():
    return Warehouse.objects.create(code="quarantine", kind=Warehouse.Kind.QUARANTINE)


@pytest.fixture
def mug():
    return SKU.objects.create(code="MUG")


@pytest.fixture
def lid():
    return SKU.objects.create(code="LID")


@pytest.fixture
def gift_set(mug, lid):
    bundle = SKU.objects.create(code="GIFT", kind=SKU.Kind.BUNDLE)
    BundleComponent.objects.create(bundle=bundle, component=mug, quantity=2)
    BundleComponent.objects.create(bundle=bundle, component=lid, quantity=1)
    return bundle


def level(sku, warehouse):
    return StockLevel.objects.get(sku=sku, warehouse=warehouse)


def test_entry_point_models_need_only_a_code():
    assert SKU.objects.create(code="X").kind == SKU.Kind.STANDARD
    assert Warehouse.objects.create(code="W").kind == Warehouse.Kind.OWN


def test_receive_adds_on_hand_and_writes_ledger(wh, mug):
    services.stock_receive(sku=mug, warehouse=wh, quantity=10, reference="PO-1")
    services.stock_receive(sku="MUG", warehouse="main", quantity=5)
    assert level(mug, wh).on_hand == 15
    assert selectors.stock_available(sku=mug) == 15
    receipts = StockMovement.objects.filter(kind="receipt")
    assert sorted(receipts.values_list("on_hand_delta", flat=True)) == [5, 10]
    assert receipts.get(on_hand_delta=10).reference == "PO-1"


def test_idempotency_key_applies_a_retried_call_once(wh, mug):
    for _ in range(3):
        services.stock_receive(sku=mug, warehouse=wh, quantity=4, idempotency_key="wms-77")
    assert level(mug, wh).on_hand == 4
    assert StockMovement.objects.filter(idempotency_key="wms-77").count() == 1


@pytest.mark.parametrize("quantity", [0, -3, 1.5, "2", True, None])
def test_bad_quantities_are_refused_and_change_nothing(wh, mug, quantity):
    with pytest.raises(InvalidQuantity) as err:
        services.stock_receive(sku=mug, warehouse=wh, quantity=quantity)
    assert err.value.code == "invalid_quantity"
    with pytest.raises(InvalidQuantity):
        services.stock_reserve(warehouse=wh, items=[(mug, quantity)], reference="o1")
    assert not StockMovement.objects.exists()
    assert not StockLevel.objects.exists()


def test_unknown_sku_or_warehouse_is_refused_by_name(wh, mug):
    with pytest.raises(UnknownSKU, match="NOPE"):
        services.stock_receive(sku="NOPE", warehouse=wh, quantity=1)
    with pytest.raises(UnknownWarehouse, match="nowhere"):
        services.stock_receive(sku=mug, warehouse="nowhere", quantity=1)
    with pytest.raises(UnknownSKU, match="NOPE"):
        services.stock_reserve(warehouse=wh, items=[("NOPE", 1)], reference="o1")
    assert not StockMovement.objects.exists()


def test_bundle_cannot_be_received(wh, gift_set):
    with pytest.raises(InvalidStockOperation) as err:
        services.stock_receive(sku=gift_set, warehouse=wh, quantity=1)
    assert err.value.code == "bundle_not_stocked"


def test_adjust_needs_reason_and_cannot_take_reserved_units(wh, mug):
    services.stock_receive(sku=mug, warehouse=wh, quantity=5)
    services.stock_reserve(warehouse=wh, items=[(mug, 4)], reference="o1")
    with pytest.raises(InvalidStockOperation):
        services.stock_adjust(sku=mug, warehouse=wh, delta=-1, reason=" ")
    with pytest.raises(InsufficientStock):
        services.stock_adjust(sku=mug, warehouse=wh, delta=-2, reason="broken")
    services.stock_adjust(sku=mug, warehouse=wh, delta=-1, reason="broken")
    assert (level(mug, wh).on_hand, level(mug, wh).reserved) == (4, 4)
    movement = StockMovement.objects.get(kind="adjustment")
    assert (movement.on_hand_delta, movement.reason) == (-1, "broken")


def test_count_sets_absolute_quantity_and_records_difference(wh, mug):
    services.stock_receive(sku=mug, warehouse=wh, quantity=10)
    services.stock_count(sku=mug, warehouse=wh, counted_quantity=7, actor="cycle-count")
    assert level(mug, wh).on_hand == 7
    movement = StockMovement.objects.get(kind="cycle_count")
    assert movement.on_hand_delta == -3
    assert movement.actor_label == "cycle-count"


def test_count_below_reserved_is_refused(wh, mug):
    services.stock_receive(sku=mug, warehouse=wh, quantity=10)
    services.stock_reserve(warehouse=wh, items=[(mug, 6)], reference="o1")
    with pytest.raises(InvalidStockOperation) as err:
        services.stock_count(sku=mug, warehouse=wh, counted_quantity=5)
    assert err.value.code == "count_below_reserved"
    assert "6 units reserved" in err.value.message
    assert level(mug, wh).on_hand == 10
    assert not StockMovement.objects.filter(kind="cycle_count").exists()


def test_transfer_moves_only_available_units(wh, mug):
    other = Warehouse.objects.create(code="3pl", kind=Warehouse.Kind.THREE_PL)
    services.stock_receive(sku=mug, warehouse=wh, quantity=10)
    services.stock_reserve(warehouse=wh, items=[(mug, 7)], reference="o1")
    with pytest.raises(InsufficientStock):
        services.stock_transfer(sku=mug, from_warehouse=wh, to_warehouse=other, quantity=4)
    services.stock_transfer(sku=mug, from_warehouse=wh, to_warehouse=other, quantity=3)
    assert (level(mug, wh).on_hand, level(mug, other).on_hand) == (7, 3)
    kinds = set(StockMovement.objects.values_list("kind", flat=True))
    assert {"transfer_out", "transfer_in"} <= kinds
    with pytest.raises(InvalidStockOperation):
        services.stock_transfer(sku=mug, from_warehouse=wh, to_warehouse=wh, quantity=1)


def test_quarantine_stock_never_transfers_into_a_sellable_warehouse(wh, quarantine, mug):
    # Returned units become sellable only through a return's inspection; on SQLite and
    # PostgreSQL alike (the suite runs on both) the transfer changes nothing.
    services.stock_receive(sku=mug, warehouse=quarantine, quantity=2)
    movements = StockMovement.objects.count()
    with pytest.raises(InvalidStockOperation) as err:
        services.stock_transfer(sku=mug, from_warehouse=quarantine, to_warehouse=wh, quantity=1)
    assert err.value.code == "quarantine_not_sellable"
    assert "only through a return's inspection" in err.value.message
    assert (level(mug, quarantine).on_hand, StockMovement.objects.count()) == (2, movements)
    assert not StockLevel.objects.filter(sku=mug, warehouse=wh).exists()
    assert selectors.stock_available(sku=mug) == 0
    # Between quarantine warehouses is fine: nothing becomes sellable.
    other = Warehouse.objects.create(code="q2", kind=Warehouse.Kind.QUARANTINE)
    services.stock_transfer(sku=mug, from_warehouse=quarantine, to_warehouse=other, quantity=1)
    assert level(mug, other).on_hand == 1
    # The inspection's own move is the one way out.
    services.stock_return_restock(sku=mug, from_warehouse=other, to_warehouse=wh, quantity=1)
    assert selectors.stock_available(sku=mug) == 1
    with pytest.raises(InvalidStockOperation):  # and only out of quarantine
        services.stock_return_restock(sku=mug, from_warehouse=wh, to_warehouse=other, quantity=1)


def test_reserve_is_all_or_nothing_and_names_every_short_sku(wh, mug, lid):
    pen = SKU.objects.create(code="PEN")
    services.stock_receive(sku=mug, warehouse=wh, quantity=1)
    services.stock_receive(sku=lid, warehouse=wh, quantity=10)
    with pytest.raises(InsufficientStock) as err:
        services.stock_reserve(
            warehouse=wh, items=[(lid, 2), (mug, 3), (pen, 1)], reference="order-1"
        )
    assert err.value.shortages == {"MUG": (3, 1), "PEN": (1, 0)}
    assert "MUG" in str(err.value) and "PEN" in str(err.value)
    assert level(lid, wh).reserved == 0
    assert not Reservation.objects.exists()
    assert not StockMovement.objects.filter(kind="reservation").exists()


def test_reserve_sums_demand_per_component_across_lines(wh, mug, lid, gift_set):
    services.stock_receive(sku=mug, warehouse=wh, quantity=5)
    services.stock_receive(sku=lid, warehouse=wh, quantity=5)
    # 2 gift sets need 4 mugs; with 2 more loose mugs that is 6 > 5.
    with pytest.raises(InsufficientStock) as err:
        services.stock_reserve(
            warehouse=wh, items=[(gift_set, 2, "l1"), (mug, 2, "l2")], reference="o1"
        )
    assert err.value.shortages == {"MUG": (6, 5)}
    services.stock_reserve(
        warehouse=wh, items=[(gift_set, 2, "l1"), (mug, 1, "l2")], reference="o1"
    )
    assert (level(mug, wh).reserved, level(lid, wh).reserved) == (5, 2)
    assert selectors.stock_available(sku=gift_set) == 0


def test_reserve_many_takes_every_order_or_none(wh, mug, lid):
    services.stock_receive(sku=mug, warehouse=wh, quantity=5)
    services.stock_receive(sku=lid, warehouse=wh, quantity=5)
    page = [("order:1", [(mug, 2, "1"), (lid, 1, "2")]), ("order:2", [(mug, 3, "3")])]
    with pytest.raises(InsufficientStock) as err:
        services.stock_reserve_many(warehouse=wh, requests=[*page, ("order:3", [(mug, 1, "4")])])
    assert err.value.shortages == {"MUG": (6, 5)}
    assert not Reservation.objects.exists() and level(mug, wh).reserved == 0
    services.stock_reserve_many(warehouse=wh, requests=page, actor="import:shop")
    assert (level(mug, wh).reserved, level(lid, wh).reserved) == (5, 1)
    held = Reservation.objects.order_by("line_reference")
    assert [(r.reference, r.line_reference, r.sku_id, r.quantity) for r in held] == [
        ("order:1", "1", mug.pk, 2),
        ("order:1", "2", lid.pk, 1),
        ("order:2", "3", mug.pk, 3),
    ]
    ledger = StockMovement.objects.filter(kind="reservation").order_by("pk")
    assert [(m.reference, m.reserved_delta, m.actor_label) for m in ledger] == [
        ("order:1", 2, "import:shop"),
        ("order:1", 1, "import:shop"),
        ("order:2", 3, "import:shop"),
    ]
    services.reservation_release(reference="order:2")
    assert level(mug, wh).reserved == 2


def test_reserve_many_for_a_whole_page_writes_every_row_or_none(wh, mug, lid):
    from inventory.models import StockChange

    services.stock_receive(sku=mug, warehouse=wh, quantity=30)
    services.stock_receive(sku=lid, warehouse=wh, quantity=30)
    page = [(f"order:{i}", [(mug, 2, f"{i}a"), (lid, 1, f"{i}b")]) for i in range(15)]
    with pytest.raises(InsufficientStock) as err:
        services.stock_reserve_many(warehouse=wh, requests=[*page, ("order:x", [(lid, 16)])])
    assert err.value.shortages == {"LID": (31, 30)}
    assert not Reservation.objects.exists() and level(mug, wh).reserved == 0
    changes = StockChange.objects.count()
    held = services.stock_reserve_many(warehouse=wh, requests=page, actor="import:shop")
    assert len(held) == 30 and all(r.pk and r.stock_level_id for r in held)
    assert (level(mug, wh).reserved, level(lid, wh).reserved) == (30, 15)
    assert Reservation.objects.filter(reference="order:7", status="active").count() == 2
    assert StockMovement.objects.filter(kind="reservation", actor_label="import:shop").count() == 30
    assert StockChange.objects.count() > changes  # the outbox trigger saw the rows
    assert services.stock_ledger_repair(repair=False) == []


def test_bundle_availability_is_min_of_components_per_bundle(wh, mug, lid, gift_set):
    services.stock_receive(sku=mug, warehouse=wh, quantity=7)
    services.stock_receive(sku=lid, warehouse=wh, quantity=10)
    assert selectors.stock_available(sku=gift_set) == 3
    assert selectors.stock_available(sku=gift_set, warehouse=wh) == 3
    many = selectors.stock_available_many(skus=[gift_set, mug, lid])
    assert many == {gift_set.pk: 3, mug.pk: 7, lid.pk: 10}


def test_quarantine_stock_is_never_available(wh, quarantine, mug):
    services.stock_receive(sku=mug, warehouse=quarantine, quantity=9)
    services.stock_receive(sku=mug, warehouse=wh, quantity=1)
    assert selectors.stock_available(sku=mug) == 1
    assert selectors.stock_available(sku=mug, warehouse=quarantine) == 0
    with pytest.raises(InvalidStockOperation) as err:
        services.stock_reserve(warehouse=quarantine, items=[(mug, 1)], reference="o1")
    assert err.value.code == "not_sellable"


def test_release_returns_units_and_is_harmless_twice(wh, mug):
    services.stock_receive(sku=mug, warehouse=wh, quantity=5)
    services.stock_reserve(warehouse=wh, items=[(mug, 3)], reference="o1")
    assert services.reservation_release(reference="o1") == 3
    assert services.reservation_release(reference="o1") == 0
    assert level(mug, wh).reserved == 0
    assert Reservation.objects.get().status == "released"


def test_partial_consume_then_rest(wh, mug, lid, gift_set):
    services.stock_receive(sku=mug, warehouse=wh, quantity=10)
    services.stock_receive(sku=lid, warehouse=wh, quantity=10)
    services.stock_reserve(
        warehouse=wh, items=[(gift_set, 3, "l1"), (lid, 2, "l2")], reference="o1"
    )
    assert services.reservation_consume(reference="o1", lines={"l1": 1}) == 3
    assert (level(mug, wh).on_hand, level(mug, wh).reserved) == (8, 4)
    with pytest.raises(InvalidStockOperation) as err:
        services.reservation_consume(reference="o1", lines={"l2": 3})
    assert err.value.code == "not_reserved"
    services.reservation_consume(reference="o1")
    assert (level(mug, wh).on_hand, level(mug, wh).reserved) == (4, 0)
    assert (level(lid, wh).on_hand, level(lid, wh).reserved) == (5, 0)
    assert set(Reservation.objects.values_list("status", flat=True)) == {"consumed"}
    assert not selectors.stock_ledger_mismatches()


def test_write_off_takes_unreserved_units(quarantine, mug):
    services.stock_receive(sku=mug, warehouse=quarantine, quantity=2)
    services.stock_write_off(sku=mug, warehouse=quarantine, quantity=2, reason="torn")
    assert level(mug, quarantine).on_hand == 0
    with pytest.raises(InsufficientStock):
        services.stock_write_off(sku=mug, warehouse=quarantine, quantity=1, reason="torn")


def test_check_constraint_backs_reserved_within_on_hand(wh, mug):
    services.stock_receive(sku=mug, warehouse=wh, quantity=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        StockLevel.objects.filter(sku=mug).update(reserved=2)
    with pytest.raises(IntegrityError), transaction.atomic():
        StockLevel.objects.filter(sku=mug).update(reserved=-1)


def test_ledger_is_append_only(wh, mug):
    services.stock_receive(sku=mug, warehouse=wh, quantity=1)
    movement = StockMovement.objects.get()
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        StockMovement.objects.filter(pk=movement.pk).update(on_hand_delta=100)
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        StockMovement.objects.filter(pk=movement.pk).delete()
    with pytest.raises(Exception, match="append-only"):
        movement.save()
    # The database itself refuses a write that goes around the model.
    with (
        pytest.raises(Exception, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE inventory_stockmovement SET on_hand_delta = 100")
    if connection.vendor == "postgresql":
        with (
            pytest.raises(Exception, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute("DELETE FROM inventory_stockmovement")
    assert StockMovement.objects.get().on_hand_delta == 1


def test_ledger_repair_finds_and_fixes_drift(wh, mug):
    services.stock_receive(sku=mug, warehouse=wh, quantity=8)
    services.stock_reserve(warehouse=wh, items=[(mug, 2)], reference="o1")
    with connection.cursor() as cursor:  # a write that bypassed the services
        cursor.execute("UPDATE inventory_stocklevel SET on_hand = 50, reserved = 0")
    found = services.stock_ledger_repair()
    assert {(d.field, d.counter_value, d.ledger_value) for d in found} == {
        ("on_hand", 50, 8),
        ("reserved", 0, 2),
    }
    assert all(d.repaired_at for d in found)
    assert (level(mug, wh).on_hand, level(mug, wh).reserved) == (8, 2)
    assert services.stock_ledger_repair() == []


def test_explain_shows_movements_and_reservations(wh, quarantine, mug):
    services.stock_receive(sku=mug, warehouse=wh, quantity=10)
    services.stock_adjust(sku=mug, warehouse=wh, delta=-1, reason="dropped")
    services.stock_reserve(warehouse=wh, items=[(mug, 4)], reference="order:42")
    services.stock_receive(sku=mug, warehouse=quarantine, quantity=2)
    explanation = selectors.stock_explain(sku=mug)
    assert explanation.available == 5
    main = next(w for w in explanation.warehouses if w.warehouse == "main")
    assert main.movements == {"adjustment": -1, "receipt": 10}
    assert main.reservations == [("order:42", 4)]
    text = explanation.as_text()
    assert "order:42" in text and "quarantine: never sellable" in text


def test_every_stock_change_writes_an_outbox_row(wh, mug):
    from inventory.models import StockChange

    services.stock_receive(sku=mug, warehouse=wh, quantity=3)
    services.stock_reserve(warehouse=wh, items=[(mug, 1)], reference="o1")
    assert StockChange.objects.filter(sku=mug, warehouse=wh).count() == 2


def test_nudges_for_the_same_task_coalesce_within_their_window(settings):
    """Under load one queued task serves every commit of its window, not one task each."""
    import time

    from inventory import outbox

    settings.RATE_LIMIT_REDIS_URL = ""
    key = f"nudge:test:{time.monotonic()}"
    assert outbox._first_in_window(key, 100) is True
    assert outbox._first_in_window(key, 100) is False  # already queued in this window
    assert outbox._first_in_window(key + ":other", 100) is True  # other arguments: own task
    time.sleep(0.12)
    assert outbox._first_in_window(key, 100) is True  # the window has passed


def test_a_reservation_refused_for_stock_can_be_retried_under_the_same_key(wh, mug):
    """A shortage writes nothing, not even the idempotency key: once stock arrives, the
    retry under the same key reserves, and a further retry changes nothing."""
    from inventory.exceptions import InsufficientStock

    services.stock_receive(sku=mug, warehouse=wh, quantity=1)
    with pytest.raises(InsufficientStock):
        services.stock_reserve(
            warehouse=wh, items=[(mug, 3)], reference="order:9", idempotency_key="res-9"
        )
    services.stock_receive(sku=mug, warehouse=wh, quantity=5)
    for _ in range(2):
        [held] = services.stock_reserve(
            warehouse=wh, items=[(mug, 3)], reference="order:9", idempotency_key="res-9"
        )
        assert held.quantity == 3
    assert (level(mug, wh).on_hand, level(mug, wh).reserved) == (6, 3)


@pytest.mark.django_db(transaction=True)
def test_one_level_reservation_outside_a_transaction_is_whole_or_nothing():
    """One stock level taken by several lines, called in autocommit as a web or worker
    process does: every line's reservation and ledger row is written, in line order, or,
    when short, nothing at all."""
    wh, mug = Warehouse.objects.create(code="main"), SKU.objects.create(code="MUG")
    services.stock_receive(sku=mug, warehouse=wh, quantity=5)
    reservations = services.stock_reserve(
        warehouse=wh, items=[(mug, 1, "l1"), (mug, 3, "l2")], reference="o1"
    )
    stored = list(Reservation.objects.filter(reference="o1").order_by("pk"))
    assert [(r.pk, r.line_reference, r.quantity) for r in reservations] == [
        (r.pk, r.line_reference, r.quantity) for r in stored
    ]
    assert [(r.line_reference, r.quantity) for r in stored] == [("l1", 1), ("l2", 3)]
    assert {r.stock_level_id for r in stored} == {level(mug, wh).pk}
    assert level(mug, wh).reserved == 4
    assert sorted(
        StockMovement.objects.filter(reference="o1").values_list("reserved_delta", flat=True)
    ) == [1, 3]

    with pytest.raises(InsufficientStock) as err:
        services.stock_reserve(warehouse=wh, items=[(mug, 2, "l1")], reference="o2")
    assert err.value.shortages == {"MUG": (2, 1)}
    assert level(mug, wh).reserved == 4
    assert not Reservation.objects.filter(reference="o2").exists()
    assert not StockMovement.objects.filter(reference="o2").exists()

"""The order state machine, shipments (incl. partial), cancellation and deadline alerts."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail

from inventory.models import StockLevel
from oms.carriers import InvalidTrackingNumber, UnknownCarrier
from oms.exceptions import InvalidTransition, OrderError
from oms.models import TRANSITIONS, DeadlineAlert, Order, OrderStatus, Shipment
from oms.services import orders as svc
from oms.services.alerts import deadline_alerts_raise
from oms.services.ingestion import order_ingest
from oms.services.shipments import shipment_create

from .conftest import make_record

pytestmark = pytest.mark.django_db
S = OrderStatus
UPS = "1Z999AA10123456784"
UPS_2 = "1Z5R89390357567127"


@pytest.fixture
def order(amazon, stocked):
    return order_ingest(channel=amazon, record=make_record(lines=(("MUG", 2), ("LID", 3)))).order


def level(order, code):
    return StockLevel.objects.get(sku__code=code, warehouse=order.warehouse)


@pytest.mark.parametrize("source", list(S))
@pytest.mark.parametrize("target", list(S))
def test_every_transition_is_allowed_or_refused_by_the_table(amazon, source, target):
    order = Order.objects.create(
        channel=amazon, external_id="x", status=source, purchased_at=datetime.now(UTC)
    )
    with __import__("django.db").db.transaction.atomic():
        locked = svc.order_lock(order)
        if target in TRANSITIONS[source]:
            svc.order_transition(order=locked, to=target, actor="test")
            assert Order.objects.get(pk=order.pk).status == target
            event = order.events.get()
            assert (event.from_status, event.to_status) == (source, target)
        else:
            with pytest.raises(InvalidTransition):
                svc.order_transition(order=locked, to=target, actor="test")
            assert Order.objects.get(pk=order.pk).status == source
            assert not order.events.exists()


def test_happy_path_release_pick_pack_ship_deliver(order):
    svc.order_release_to_warehouse(order=order, actor="floor")
    svc.order_mark_picked(order=order, actor="floor")
    svc.order_mark_packed(order=order, actor="floor")
    shipment = shipment_create(order=order, carrier_code="UPS", tracking_number=UPS)
    order.refresh_from_db()
    assert order.status == S.SHIPPED and order.shipped_at
    assert shipment.confirmation_status == Shipment.Confirmation.PENDING
    assert (level(order, "MUG").on_hand, level(order, "MUG").reserved) == (8, 0)
    svc.order_mark_delivered(order=order)
    order.refresh_from_db()
    assert order.status == S.DELIVERED
    statuses = list(
        order.events.filter(kind__in=["imported", "status"]).values_list("to_status", flat=True)
    )
    assert statuses == [
        "awaiting",
        "allocated",
        "released",
        "picked",
        "packed",
        "shipped",
        "delivered",
    ]


def test_partial_shipments(order):
    mug_line = order.lines.get(seller_sku="MUG")
    lid_line = order.lines.get(seller_sku="LID")
    shipment_create(order=order, carrier_code="UPS", tracking_number=UPS, lines={mug_line.pk: 1})
    order.refresh_from_db()
    assert order.status == S.PARTIALLY_SHIPPED
    assert (level(order, "MUG").on_hand, level(order, "MUG").reserved) == (9, 1)
    assert level(order, "LID").reserved == 3
    with pytest.raises(OrderError) as err:
        shipment_create(
            order=order, carrier_code="UPS", tracking_number=UPS_2, lines={lid_line.pk: 4}
        )
    assert err.value.code == "invalid_shipment_lines"
    shipment_create(order=order, carrier_code="UPS", tracking_number=UPS_2)
    order.refresh_from_db()
    assert order.status == S.SHIPPED
    assert [line.quantity_open for line in order.lines.all()] == [0, 0]
    assert order.shipments.count() == 2


def test_shipment_is_idempotent(order):
    first = shipment_create(
        order=order, carrier_code="UPS", tracking_number=UPS, idempotency_key="wms-1"
    )
    again = shipment_create(
        order=order, carrier_code="UPS", tracking_number=UPS, idempotency_key="wms-1"
    )
    same_tracking = shipment_create(order=order, carrier_code="ups", tracking_number=UPS.lower())
    assert first.pk == again.pk == same_tracking.pk
    assert Shipment.objects.count() == 1
    assert level(order, "MUG").on_hand == 8


def test_shipment_checks_carrier_and_tracking(order):
    with pytest.raises(UnknownCarrier):
        shipment_create(order=order, carrier_code="PIGEON", tracking_number=UPS)
    with pytest.raises(InvalidTrackingNumber):
        shipment_create(order=order, carrier_code="UPS", tracking_number="1Z999AA10123456785")
    order.refresh_from_db()
    assert order.status == S.ALLOCATED
    assert level(order, "MUG").reserved == 2


def test_cannot_ship_an_order_on_hold(order):
    svc.order_hold(order=order, reason="manual", detail="buyer called", actor="cs")
    with pytest.raises(OrderError) as err:
        shipment_create(order=order, carrier_code="UPS", tracking_number=UPS)
    assert err.value.code == "not_shippable"


def test_hold_and_release_returns_to_previous_status(order):
    svc.order_release_to_warehouse(order=order)
    svc.order_hold(order=order, reason="manual", detail="check address", actor="cs")
    order.refresh_from_db()
    assert (order.status, order.status_before_hold) == (S.ON_HOLD, S.RELEASED)
    svc.order_hold_release(order=order, actor="cs")
    order.refresh_from_db()
    assert order.status == S.RELEASED and order.hold_reason == ""


@pytest.mark.parametrize("reason", ["buyer_request", "out_of_stock", "address"])
def test_cancel_with_reason_releases_stock(order, reason):
    svc.order_cancel(order=order, reason=reason, actor="cs")
    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == (S.CANCELLED, reason)
    assert level(order, "MUG").reserved == 0 and level(order, "LID").reserved == 0
    assert order.events.filter(kind="status", to_status="cancelled").get().data["reason"] == reason


def test_cancel_after_partial_shipment_keeps_shipped_units(order):
    line = order.lines.get(seller_sku="MUG")
    shipment_create(order=order, carrier_code="UPS", tracking_number=UPS, lines={line.pk: 1})
    svc.order_cancel(order=order, reason="out_of_stock")
    line.refresh_from_db()
    assert (line.quantity_shipped, line.quantity_cancelled) == (1, 1)
    assert level(order, "MUG").on_hand == 9 and level(order, "MUG").reserved == 0


def test_shipped_order_cannot_be_cancelled(order):
    shipment_create(order=order, carrier_code="UPS", tracking_number=UPS)
    with pytest.raises(InvalidTransition):
        svc.order_cancel(order=order, reason="buyer_request")


def test_unknown_cancel_reason_is_refused(order):
    with pytest.raises(OrderError):
        svc.order_cancel(order=order, reason="bored")


def test_backorder_allocates_when_stock_arrives(amazon, stocked, mug):
    from inventory.services import stock_receive

    held = order_ingest(channel=amazon, record=make_record("b-1", lines=(("MUG", 12),))).order
    assert held.hold_reason == "insufficient_stock"
    assert svc.order_backorders_retry() == 0
    stock_receive(sku=mug, warehouse=stocked["nyc"], quantity=5)
    assert svc.order_backorders_retry() == 1
    held.refresh_from_db()
    assert held.status == S.ALLOCATED


def test_deadline_alerts_raised_once_and_emailed(order, nyc):
    Order.objects.filter(pk=order.pk).update(
        pack_by=datetime(2026, 11, 25, 19, 30, tzinfo=UTC),
        ship_by=datetime(2026, 11, 25, 20, 0, tzinfo=UTC),
    )
    early = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert deadline_alerts_raise(now=early, lead=timedelta(hours=2)) == []
    now = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    raised = deadline_alerts_raise(now=now, lead=timedelta(hours=2))
    assert {a.kind for a in raised} == {"pack_by", "ship_by"}
    assert deadline_alerts_raise(now=now + timedelta(minutes=5), lead=timedelta(hours=2)) == []
    assert DeadlineAlert.objects.count() == 2
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["floor@example.com"]
    assert order.external_id in mail.outbox[0].body
    assert set(DeadlineAlert.objects.values_list("emailed_to", flat=True)) == {"floor@example.com"}


def test_shipped_orders_raise_no_alerts(order):
    shipment_create(order=order, carrier_code="UPS", tracking_number=UPS)
    Order.objects.filter(pk=order.pk).update(pack_by=datetime(2026, 1, 1, tzinfo=UTC))
    assert deadline_alerts_raise(now=datetime(2026, 11, 25, tzinfo=UTC)) == []


def test_staff_address_fix_lifts_a_missing_address_hold(amazon, stocked):
    held = order_ingest(channel=amazon, record=make_record(ship_to=None)).order
    assert (held.status, held.hold_reason) == (S.ON_HOLD, "missing_address")
    with pytest.raises(OrderError) as refused:
        svc.order_address_change(order=held, address={"ship_line1": "2 Elm St"}, actor="cs")
    assert refused.value.code == "incomplete_address"
    assert "needs a city, a postal code, a country" in refused.value.message
    address = {
        "ship_line1": "2 Elm St",
        "ship_city": "Boston",
        "ship_postal_code": "02101",
        "ship_country": "US",
    }
    order = svc.order_address_change(order=held, address=address, actor="cs")
    assert (order.status, order.hold_reason) == (S.ALLOCATED, "")
    assert level(order, "MUG").reserved == 2
    assert order.events.filter(kind="address_changed", actor_label="cs").exists()

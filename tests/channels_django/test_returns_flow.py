"""Returns end to end over real HTTP: imported from the channel, refunded exactly once through
the channel even when retried, restocked only after inspection, and restock pushed out."""

from decimal import Decimal

import pytest

from channels_app.services.confirmations import shipment_confirm
from channels_app.services.imports import channel_orders_import
from channels_app.services.refunds import channel_returns_import, refund_send
from channels_app.services.sync import pushes_dispatch, stock_changes_process
from channels_app.tasks import refund_send_task
from inventory.models import StockLevel, Warehouse
from oms.models import Order
from oms.services.shipments import shipment_create
from returns.models import Refund, ReturnRequest
from returns.services import return_inspect, return_receive, return_request_authorize

pytestmark = pytest.mark.django_db
KINDS = ["amazon", "shopify", "ebay", "walmart"]
UPS = "1Z999AA10123456784"


@pytest.fixture
def quarantine(db):
    return Warehouse.objects.create(code="returns", kind=Warehouse.Kind.QUARANTINE)


def shipped_order(world, kind, quantity=2):
    sim, channel = world.sims[kind], world.channels[kind]
    placed = sim.create_order([("MUG", quantity)])
    channel_orders_import(channel=channel)
    order = Order.objects.get(channel=channel)
    shipment = shipment_create(order=order, carrier_code="UPS", tracking_number=UPS)
    assert shipment_confirm(shipment_id=shipment.pk)  # a channel refunds only what shipped
    order.refresh_from_db()
    return order, placed


def channel_order_id(sim, placed):
    return next(key for key, value in sim.orders.items() if value is placed)


@pytest.mark.parametrize("kind", KINDS)
def test_return_imported_received_refunded_once_even_when_retried(world, quarantine, kind):
    sim, channel = world.sims[kind], world.channels[kind]
    order, placed = shipped_order(world, kind)
    line = order.lines.order_by("id").first()  # Walmart has a line per unit
    sim.create_return(
        channel_order_id(sim, placed), [(line.channel_line_id or "MUG", 1)], reason="DEFECTIVE"
    )
    assert channel_returns_import(channel=channel) == 1
    assert channel_returns_import(channel=channel) == 1  # seen again: still one return
    return_request = ReturnRequest.objects.get(order=order)
    assert ReturnRequest.objects.count() == 1
    if return_request.status == "requested":
        return_request_authorize(return_request=return_request, actor="cs")
    return_receive(return_request=return_request, actor="dock")
    refund = Refund.objects.get(return_request=return_request)
    assert refund.amount == line.unit_price
    # The channel applies the refund but its answer is lost: the retry must find it there.
    sim.faults.fail_after_commit = 1
    sim.faults.fault_path = "" if kind == "amazon" else "refund"
    assert refund_send_task.delay(refund.pk).get() is True
    refund.refresh_from_db()
    assert refund.state == "sent" and refund.channel_refund_id
    # A worker that died after the call but before recording it sends it again later.
    Refund.objects.filter(pk=refund.pk).update(state="pending")
    assert refund_send(refund_id=refund.pk) is True
    ours = [r for r in sim.refunds if refund.refund_key in (r.get("reference") or "")]
    assert len(ours) == 1
    assert Decimal(str(ours[0]["amount"])) == line.unit_price


def test_restock_after_inspection_raises_the_quantity_on_the_channels(world, quarantine):
    order, _ = shipped_order(world, "shopify", quantity=2)
    stock_changes_process()
    for channel in world.channels.values():
        pushes_dispatch(channel=channel)
    assert world.sims["ebay"].shown_quantity("MUG") == 8
    from returns.services import return_request_create

    return_request = return_request_create(order=order, lines=[(order.lines.get(), 2)])
    return_request_authorize(return_request=return_request)
    return_receive(return_request=return_request)
    stock_changes_process()
    for channel in world.channels.values():
        pushes_dispatch(channel=channel)
    assert world.sims["ebay"].shown_quantity("MUG") == 8  # in quarantine: not for sale
    line = return_request.lines.get()
    return_inspect(return_line=line, grade="sellable", quantity=1, actor="qa")
    return_inspect(return_line=line, grade="damaged", quantity=1, reason="cracked", actor="qa")
    stock_changes_process()
    for channel in world.channels.values():
        pushes_dispatch(channel=channel)
    assert {kind: sim.shown_quantity("MUG") for kind, sim in world.sims.items()} == {
        "amazon": 9,
        "shopify": 9,
        "ebay": 9,
        "walmart": 9,
    }
    assert StockLevel.objects.get(sku=world.sku, warehouse=quarantine).on_hand == 0

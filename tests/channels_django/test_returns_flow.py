"""Returns end to end over real HTTP: imported from the channel, refunded exactly once through
the channel even when retried, restocked only after inspection, and restock pushed out."""

from decimal import Decimal

import pytest

from channels_app.connectors.base import ConnectorRetryableError
from channels_app.services.confirmations import shipment_confirm
from channels_app.services.imports import channel_orders_import
from channels_app.services.refunds import channel_returns_import, refund_give_up, refund_send
from channels_app.services.sync import pushes_dispatch, stock_changes_process
from channels_app.tasks import refund_send_task
from inventory.models import StockLevel, Warehouse
from oms.models import Order
from oms.services.shipments import shipment_create
from returns.exceptions import ReturnError
from returns.models import Refund, ReturnRequest
from returns.services import (
    refunds_retry,
    return_inspect,
    return_receive,
    return_request_authorize,
    return_request_create,
)

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
def test_a_return_the_channel_refunded_is_never_refunded_again(
    world, quarantine, kind, django_capture_on_commit_callbacks
):
    sim, channel = world.sims[kind], world.channels[kind]
    order, placed = shipped_order(world, kind)
    line = order.lines.order_by("id").first()
    sim.create_return(
        channel_order_id(sim, placed),
        [(line.channel_line_id or "MUG", 1)],
        reason="DEFECTIVE",
        refunded=True,
    )
    assert len(sim.refunds_of(order.external_id)) == 1  # the channel's own refund

    with django_capture_on_commit_callbacks(execute=True):
        assert channel_returns_import(channel=channel) == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert channel_returns_import(channel=channel) == 1  # seen again: nothing new

    return_request = ReturnRequest.objects.get(order=order)
    assert return_request.status == "refunded"
    refund = Refund.objects.get(return_request=return_request)
    assert refund.state == "by_channel"
    # The channel's reference for its refund (Shopify's refund id is the return's id).
    assert refund.channel_refund_id.endswith(return_request.channel_return_id)
    assert refund.total == line.unit_price
    refund_line = refund.lines.get()
    assert (refund_line.quantity, refund_line.amount) == (1, line.unit_price)
    assert return_request.lines.get().quantity_refunded == 1

    # The parcel still comes back: received and inspected, and nothing refunded again.
    with django_capture_on_commit_callbacks(execute=True):
        return_receive(return_request=return_request, actor="dock")
    return_request.refresh_from_db()
    assert return_request.status == "refunded"
    return_inspect(return_line=return_request.lines.get(), grade="sellable", quantity=1, actor="qa")
    return_request.refresh_from_db()
    assert return_request.status == "closed"
    assert Refund.objects.filter(return_request=return_request).count() == 1
    assert sim.refunds == []  # nothing through the API...
    assert len(sim.refunds_of(order.external_id)) == 1  # ...so one refund in all


@pytest.mark.parametrize(
    ("kind", "channel_status", "expected"),
    [
        ("amazon", "Approved", "authorized"),
        ("amazon", "Pending approval", "requested"),
        ("amazon", "Closed", "closed"),
        ("amazon", "Rejected", "rejected"),
    ],
)
def test_an_imported_return_starts_where_the_channel_has_it(
    world, quarantine, kind, channel_status, expected
):
    sim, channel = world.sims[kind], world.channels[kind]
    order, placed = shipped_order(world, kind)
    sim.create_return(
        channel_order_id(sim, placed), [("MUG", 1)], reason="DEFECTIVE", status=channel_status
    )
    assert channel_returns_import(channel=channel) == 1
    return_request = ReturnRequest.objects.get(order=order)
    assert return_request.status == expected
    assert not return_request.refunds.exists()
    if expected != "requested":
        assert return_request.responded_at == return_request.requested_at  # the channel's answer
        assert f"{expected} on the channel" in return_request.decision_note


def test_ebay_and_walmart_returns_in_later_stages_start_there(world, quarantine):
    ebay, walmart = world.sims["ebay"], world.sims["walmart"]
    ebay_order, ebay_placed = shipped_order(world, "ebay")
    [opened] = ebay.create_return(
        channel_order_id(ebay, ebay_placed),
        [(ebay_order.lines.get().channel_line_id, 1)],
        reason="DEFECTIVE",
    )
    opened["status"] = opened["state"] = "ITEM_SHIPPED"  # the buyer sent it: authorized
    assert channel_returns_import(channel=world.channels["ebay"]) == 1
    assert ReturnRequest.objects.get(order=ebay_order).status == "authorized"

    walmart_order, walmart_placed = shipped_order(world, "walmart")
    opened = walmart.create_return(
        channel_order_id(walmart, walmart_placed),
        [(walmart_order.lines.order_by("id").first().channel_line_id, 1)],
    )
    for line in opened["returnOrderLines"]:
        line["status"] = "CANCELLED"
    assert channel_returns_import(channel=world.channels["walmart"]) == 1
    assert ReturnRequest.objects.get(order=walmart_order).status == "closed"


@pytest.mark.parametrize("kind", KINDS)
def test_return_imported_received_refunded_once_even_when_retried(world, quarantine, kind):
    sim, channel = world.sims[kind], world.channels[kind]
    order, placed = shipped_order(world, kind)
    line = order.lines.order_by("id").first()  # Walmart has a line per unit
    if kind == "shopify":
        # Shopify's REST API shows a return only once Shopify refunded it (see
        # test_a_return_the_channel_refunded_is_never_refunded_again): this one is opened here.
        return_request_create(order=order, lines=[(line, 1)], reason_code="DEFECTIVE")
    else:
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


@pytest.mark.parametrize("kind", KINDS)
def test_partial_receipts_each_refunded_once_through_the_channel(
    world, quarantine, kind, django_capture_on_commit_callbacks
):
    sim = world.sims[kind]
    order, _ = shipped_order(world, kind, quantity=3)
    lines = list(order.lines.order_by("id"))  # Walmart: a line per unit
    return_request = return_request_create(
        order=order, lines=[(line, line.quantity) for line in lines], reason_code="DEFECTIVE"
    )
    return_request_authorize(return_request=return_request, actor="cs")
    first_line = return_request.lines.order_by("id").first()

    # The refund tasks run after each commit, as the worker would.
    with django_capture_on_commit_callbacks(execute=True):
        return_receive(return_request=return_request, lines={first_line.pk: 1}, actor="dock")
    return_request.refresh_from_db()
    assert return_request.status == "received"  # more units expected: still open
    assert len(sim.refunds_of(order.external_id)) == 1
    with django_capture_on_commit_callbacks(execute=True):
        return_receive(return_request=return_request, actor="dock")  # the other two
    return_request.refresh_from_db()
    assert return_request.status == "refunded"

    refunds = list(Refund.objects.filter(return_request=return_request).order_by("id"))
    assert [r.state for r in refunds] == ["sent", "sent"]
    assert [sum(rl.quantity for rl in r.lines.all()) for r in refunds] == [1, 2]
    for refund in refunds:  # a worker that died before recording the result sends again
        Refund.objects.filter(pk=refund.pk).update(state="pending")
        assert refund_send(refund_id=refund.pk) is True
    on_channel = sim.refunds_of(order.external_id)
    assert len(on_channel) == 2
    unit = lines[0].unit_price
    assert sorted(Decimal(str(r["amount"])) for r in on_channel) == [unit, 2 * unit]


def test_partial_amount_and_shipping_reach_the_channel(
    world, quarantine, django_capture_on_commit_callbacks
):
    sim = world.sims["shopify"]
    order, _ = shipped_order(world, "shopify", quantity=2)
    assert order.shipping_total > 0
    line = order.lines.get()
    return_request = return_request_create(order=order, lines=[(line, 2)])
    return_line = return_request.lines.get()
    partial = line.unit_price * 2 - Decimal("5.00")  # a deduction for a missing tag
    return_request_authorize(
        return_request=return_request,
        refund_shipping=True,
        line_amounts={return_line.pk: partial},
        actor="cs",
    )
    with django_capture_on_commit_callbacks(execute=True):
        return_receive(return_request=return_request, actor="dock")
    refund = Refund.objects.get(return_request=return_request)
    assert refund.state == "sent"
    assert (refund.amount, refund.shipping_amount) == (partial, order.shipping_total)
    [sent] = sim.refunds_of(order.external_id)
    assert Decimal(str(sent["amount"])) == partial
    assert Decimal(str(sent["shipping"])) == order.shipping_total


def test_a_return_the_channel_refunds_after_the_import_is_not_refunded_again(
    world, quarantine, django_capture_on_commit_callbacks
):
    sim, channel = world.sims["walmart"], world.channels["walmart"]
    order, placed = shipped_order(world, "walmart")
    line = order.lines.order_by("id").first()
    opened = sim.create_return(channel_order_id(sim, placed), [(line.channel_line_id, 1)])
    assert channel_returns_import(channel=channel) == 1
    return_request = ReturnRequest.objects.get(order=order)
    assert return_request.status == "requested"
    return_request_authorize(return_request=return_request, actor="cs")

    sim.refund_return(opened["returnOrderId"])  # Walmart refunds while the parcel travels
    with django_capture_on_commit_callbacks(execute=True):
        assert channel_returns_import(channel=channel) == 1
    return_request.refresh_from_db()
    assert return_request.status == "refunded"
    assert return_request.refunds.get().state == "by_channel"

    with django_capture_on_commit_callbacks(execute=True):
        return_receive(return_request=return_request, actor="dock")
    assert Refund.objects.filter(return_request=return_request).count() == 1
    assert sim.refunds == [] and len(sim.refunds_of(order.external_id)) == 1


def test_shopify_returns_come_from_graphql_and_follow_the_merchants_actions(
    world, quarantine, django_capture_on_commit_callbacks
):
    sim, channel = world.sims["shopify"], world.channels["shopify"]
    order, placed = shipped_order(world, "shopify")
    line = order.lines.get()
    requested = sim.request_return(
        channel_order_id(sim, placed), [(line.channel_line_id, 1)], reason="DEFECTIVE"
    )
    approved = sim.request_return(
        channel_order_id(sim, placed), [(line.channel_line_id, 1)], reason="SIZE_TOO_SMALL"
    )
    sim.return_status_set(approved["id"], "OPEN")  # approved in the Shopify admin

    assert channel_returns_import(channel=channel) == 2
    waiting = ReturnRequest.objects.get(channel_return_id=requested["id"])
    assert (waiting.status, waiting.reason_code) == ("requested", "DEFECTIVE")
    open_ = ReturnRequest.objects.get(channel_return_id=approved["id"])
    assert open_.status == "authorized"

    # The merchant refunds the first one in Shopify (a refund linked to the Return): the
    # next import records it as Shopify's refund, and not as another return from REST.
    sim.return_status_set(requested["id"], "OPEN", refund=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert channel_returns_import(channel=channel) == 2
    assert ReturnRequest.objects.count() == 2
    waiting.refresh_from_db()
    assert waiting.status == "refunded" and waiting.refunds.get().state == "by_channel"

    # The approved one is received here and refunded by us through the API, once.
    with django_capture_on_commit_callbacks(execute=True):
        return_receive(return_request=open_, actor="dock")
        return_receive(return_request=waiting, actor="dock")
    assert [r.state for r in open_.refunds.all()] == ["sent"]
    assert waiting.refunds.count() == 1
    assert len(sim.refunds) == 1  # ours, for the approved return
    assert len(sim.refunds_of(order.external_id)) == 2  # and Shopify's own


def test_a_finally_failed_refund_is_sent_again_by_staff_and_paid_once(
    world, quarantine, django_capture_on_commit_callbacks
):
    """The channel fails every attempt until the task gives up: the refund ends failed,
    visibly. Staff send it again once the channel is back, and it is paid once."""
    sim, channel = world.sims["ebay"], world.channels["ebay"]
    order, placed = shipped_order(world, "ebay")
    line = order.lines.get()
    sim.create_return(
        channel_order_id(sim, placed), [(line.channel_line_id, 1)], reason="DEFECTIVE"
    )
    channel_returns_import(channel=channel)
    return_request = ReturnRequest.objects.get(order=order)
    if return_request.status == "requested":
        return_request_authorize(return_request=return_request, actor="cs")
    return_receive(return_request=return_request, actor="dock")
    refund = Refund.objects.get(return_request=return_request)
    sim.faults.fault_path, sim.faults.error_next = "refund", 1000
    with pytest.raises(ConnectorRetryableError):
        refund_send(refund_id=refund.pk)
    refund_give_up(refund_id=refund.pk, error="eBay kept answering 500")  # the last retry
    refund.refresh_from_db()
    assert refund.state == "failed" and refund.error
    assert sim.refunds_of(order.external_id) == []

    sim.faults.error_next = 0
    with django_capture_on_commit_callbacks(execute=True):
        [retried] = refunds_retry(return_request=return_request, actor="cs")
    refund.refresh_from_db()
    assert retried.pk == refund.pk and refund.state == "sent" and refund.channel_refund_id
    assert len(sim.refunds_of(order.external_id)) == 1
    assert "refund_retried" in set(return_request.events.values_list("kind", flat=True))
    with pytest.raises(ReturnError):  # nothing failed any more
        refunds_retry(return_request=return_request, actor="cs")
    assert len(sim.refunds_of(order.external_id)) == 1

"""The fulfillment loop over real HTTP: channel -> us -> 3PL -> us -> channel -> carrier."""

import json
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from channels_app.connectors.threepl import sign
from channels_app.models import FulfillmentRequest, InboundEvent, StockSnapshot, WarehouseConnection
from channels_app.services.fulfillment import fulfillment_sweep, fulfillment_sync_order
from channels_app.services.imports import channel_orders_import
from channels_app.services.tracking import shipments_track
from channels_app.simulators.carrier import CarrierSimulator
from channels_app.simulators.threepl import ThreePLSimulator
from inventory import services as stock
from inventory.models import StockLevel, Warehouse
from inventory.selectors import stock_available
from oms.models import Order, RoutingRule, Shipment
from oms.services.orders import ADDRESS_FIELDS, order_address_change
from returns.models import ReturnRequest

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "test-3pl-secret"


def wait_for(predicate, seconds=15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.fixture
def loop(world, live_server, settings):
    carrier = CarrierSimulator(time_scale=400_000)
    carrier.start()
    threepl = ThreePLSimulator(
        secret=SECRET, pick_delay=(0.2, 0.4), carrier=carrier, callback_backoff=(0.1, 0.5)
    )
    threepl.start()
    settings.PUBLIC_BASE_URL = live_server.url
    settings.CARRIER_TRACKING_URL = carrier.base_url
    settings.TRACKING_POLL_MINUTES = 0
    reno = Warehouse.objects.create(
        code="reno", kind=Warehouse.Kind.THREE_PL, time_zone="America/Los_Angeles"
    )
    connection = WarehouseConnection(
        warehouse=reno, mode="api", endpoint_url=threepl.base_url, is_active=True
    )
    connection.set_secret(SECRET)
    connection.save()
    stock.stock_receive(sku=world.sku, warehouse=reno, quantity=20)
    threepl.set_stock("MUG", 20)
    amazon = world.channels["amazon"]
    RoutingRule.objects.filter(channel=amazon).delete()
    RoutingRule.objects.create(channel=amazon, warehouse=reno, priority=1)
    yield {"threepl": threepl, "carrier": carrier, "reno": reno, "amazon": amazon}
    threepl.stop()
    carrier.stop()


def test_amazon_order_to_3pl_to_confirmation_to_delivery_without_a_manual_step(world, loop):
    sim = world.sims["amazon"]
    sim.create_order([("MUG", 2)])
    channel_orders_import(channel=loop["amazon"])  # what beat's poll does
    order = Order.objects.get(channel=loop["amazon"])
    assert order.warehouse == loop["reno"]
    assert order.status == "released"  # allocated, then released to the 3PL by itself
    assert order.fulfillment_requests.get().state == "sent"
    assert wait_for(
        lambda: Shipment.objects.filter(order=order, confirmation_status="sent").exists()
    )
    shipment = Shipment.objects.get(order=order)
    assert shipment.source == "3pl"
    [confirmed] = sim.shipments
    assert confirmed["tracking_number"] == shipment.tracking_number
    order.refresh_from_db()
    assert order.status == "shipped"
    level = StockLevel.objects.get(sku=world.sku, warehouse=loop["reno"])
    assert (level.on_hand, level.reserved) == (18, 0)
    time.sleep(1.5)  # the carrier moves the parcel along (time_scale)
    shipments_track()  # what beat's tracking poll does
    order.refresh_from_db()
    assert order.status == "delivered"
    shipment.refresh_from_db()
    assert shipment.tracking_valid is True and shipment.delivered_at
    assert shipment.tracking_events.filter(status="delivered").exists()


def test_every_order_of_an_imported_page_reaches_the_3pl(world, loop):
    for _ in range(3):
        world.sims["amazon"].create_order([("MUG", 1)])
    channel_orders_import(channel=loop["amazon"])  # one nudge for the page's new orders
    orders = Order.objects.filter(channel=loop["amazon"])
    assert sorted(orders.values_list("status", flat=True)) == ["released"] * 3
    assert {o.fulfillment_requests.get().state for o in orders} == {"sent"}
    assert len(loop["threepl"].orders) == 3


def _post(client, url, body: dict, secret=SECRET, key="evt-1"):
    raw = json.dumps(body).encode()
    return client.post(
        url,
        data=raw,
        content_type="application/json",
        headers={"X-Signature": sign(secret, raw), "Idempotency-Key": key},
    )


def test_forged_callback_is_refused_and_duplicate_changes_nothing(client, world, loop):
    world.sims["amazon"].create_order([("MUG", 1)])
    loop["threepl"].configure(pick_delay=(60, 60))  # keep the 3PL from shipping by itself
    channel_orders_import(channel=loop["amazon"])
    order = Order.objects.get(channel=loop["amazon"])
    body = {
        "event_id": "evt-1",
        "reference": order.reservation_reference,
        "carrier_code": "UPS",
        "tracking_number": "1Z999AA10123456784",
        "lines": [{"line_id": str(order.lines.get().pk), "quantity": 1}],
    }
    url = "/api/warehouses/reno/shipments/"
    assert _post(client, url, body, secret="forged").status_code == 401
    assert not Shipment.objects.exists()
    first = _post(client, url, body)
    assert first.status_code == 201, first.content
    again = _post(client, url, body)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    [confirmed] = world.sims["amazon"].shipments  # confirmed to Amazon once, not twice
    assert confirmed["tracking_number"] == "1Z999AA10123456784"
    assert Shipment.objects.count() == 1
    assert Shipment.objects.get().confirmation_status == "sent"
    assert InboundEvent.objects.count() == 1


def test_forged_order_to_the_3pl_is_refused(world, loop):
    from channels_app.connectors.base import ConnectorPermanentError
    from channels_app.connectors.threepl import ThreePLClient

    client = ThreePLClient(loop["threepl"].base_url, "not-the-secret")
    with pytest.raises(ConnectorPermanentError):
        client.send_order({"reference": "order:1", "lines": []}, idempotency_key="x")
    client.close()


def test_cancellation_racing_a_shipment_ends_in_a_clear_state(world, loop):
    from oms.services.orders import order_cancel

    loop["threepl"].configure(pick_delay=(60, 60))
    world.sims["amazon"].create_order([("MUG", 3)])
    channel_orders_import(channel=loop["amazon"])
    order = Order.objects.get(channel=loop["amazon"])
    loop["threepl"].ship_now(order.reservation_reference)  # the parcel leaves...
    order_cancel(order=order, reason="buyer_request", actor="cs")  # ...as we cancel it
    assert wait_for(
        lambda: Order.objects.get(pk=order.pk).hold_reason == "already_shipped", seconds=10
    )
    order.refresh_from_db()
    assert order.status == "on_hold"
    assert "already shipped" in order.hold_detail or "shipped it" in order.hold_detail
    # Either the 3PL refused our cancel ("already shipped"), or its shipment arrived first:
    # both end with the order held for staff, never silently cancelled or shipped.
    cancel = order.fulfillment_requests.filter(kind="cancel").first()
    assert cancel is None or cancel.state == "refused"
    level = StockLevel.objects.get(sku=world.sku, warehouse=loop["reno"])
    assert level.on_hand == 17 and level.reserved == 0  # the units that left are booked out


@pytest.mark.postgres
def test_shipment_callback_waits_for_a_cancellation_in_flight(world, loop):
    """The callback arrives while staff's cancellation holds the order: it must see the
    cancellation once it commits and book the shipped units out, not refuse the shipment."""
    import threading

    from django.db import connection, transaction

    from channels_app.services.fulfillment import inbound_shipment
    from oms.services.orders import order_cancel, order_lock

    loop["threepl"].configure(pick_delay=(60, 60))
    world.sims["amazon"].create_order([("MUG", 3)])
    channel_orders_import(channel=loop["amazon"])
    order = Order.objects.get(channel=loop["amazon"])
    payload = {
        "reference": order.reservation_reference,
        "carrier_code": "UPS",
        "tracking_number": "1Z999AA10123456784",
        "lines": [{"line_id": str(order.lines.get().pk), "quantity": 3}],
    }
    outcome = {}

    def callback():
        try:
            outcome["result"] = inbound_shipment(
                warehouse=loop["reno"], event_id="evt-race", payload=payload
            )
        finally:
            connection.close()

    with transaction.atomic():
        order_lock(order)  # staff's cancellation has the order...
        racer = threading.Thread(target=callback)
        racer.start()
        time.sleep(0.5)  # ...while the warehouse's callback comes in and waits for it
        assert racer.is_alive()
        order_cancel(order=order, reason="buyer_request", actor="cs")
    racer.join(10)
    assert outcome["result"].ok, outcome["result"].outcome
    order.refresh_from_db()
    assert (order.status, order.hold_reason) == ("on_hold", "already_shipped")
    level = StockLevel.objects.get(sku=world.sku, warehouse=loop["reno"])
    assert (level.on_hand, level.reserved) == (17, 0)


def test_3pl_down_for_a_while_loses_nothing(world, loop):
    port = int(loop["threepl"].base_url.rsplit(":", 1)[1])
    loop["threepl"].stop()
    world.sims["amazon"].create_order([("MUG", 1)])
    channel_orders_import(channel=loop["amazon"])
    order = Order.objects.get(channel=loop["amazon"])
    request = order.fulfillment_requests.get()
    assert request.state == "pending" and request.attempts == 1 and request.last_error
    loop["threepl"].start(port=port)
    FulfillmentRequest.objects.update(next_attempt_at=timezone.now())
    fulfillment_sweep()
    request.refresh_from_db()
    assert request.state == "sent"
    assert order.reservation_reference in loop["threepl"].orders


def test_stock_snapshot_becomes_counts_with_a_drift_report(client, world, loop):
    body = {
        "event_id": "snp-1",
        "items": [{"sku": "MUG", "quantity": 18}, {"sku": "NOPE", "quantity": 1}],
    }
    response = _post(client, "/api/warehouses/reno/stock-snapshots/", body, key="snp-1")
    assert response.status_code == 201
    snapshot = StockSnapshot.objects.get()
    assert (snapshot.lines_total, snapshot.lines_drifted) == (2, 2)
    mug = snapshot.lines.get(sku_code="MUG")
    assert (mug.system_on_hand, mug.counted, mug.difference) == (20, 18, -2)
    assert "unknown SKU" in snapshot.lines.get(sku_code="NOPE").problem
    assert StockLevel.objects.get(sku=world.sku, warehouse=loop["reno"]).on_hand == 18


def _warehouse_section(admin_client, order) -> str:
    page = admin_client.get(reverse("admin:oms_order_change", args=[order.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    return html[html.index('id="order-warehouse-requests"') : html.index('id="order-payloads"')]


def _delivery_filter(admin_client, value: str) -> set[str]:
    response = admin_client.get(
        reverse("admin:oms_order_changelist"), {"warehouse_delivery": value}
    )
    return {o.external_id for o in response.context["cl"].result_list}


def _warehouse_events(order) -> list[str]:
    return list(
        order.events.filter(kind__startswith="warehouse_")
        .order_by("created_at", "id")
        .values_list("kind", flat=True)
    )


def test_3pl_down_shows_on_the_order_page_and_once_on_the_timeline(admin_client, world, loop):
    port = int(loop["threepl"].base_url.rsplit(":", 1)[1])
    loop["threepl"].stop()
    world.sims["amazon"].create_order([("MUG", 1)])
    channel_orders_import(channel=loop["amazon"])
    order = Order.objects.get(channel=loop["amazon"])
    for _ in range(2):  # the sweep retries while the 3PL is still down
        FulfillmentRequest.objects.update(next_attempt_at=timezone.now())
        fulfillment_sweep()
    request = order.fulfillment_requests.get()
    assert (request.state, request.attempts) == ("pending", 3)
    assert _warehouse_events(order) == ["warehouse_order_retrying"]
    retrying = order.events.get(kind="warehouse_order_retrying")
    assert (
        "not delivered, retrying" in retrying.message and retrying.actor_label == "warehouse reno"
    )

    section = _warehouse_section(admin_client, order)
    assert "Fulfil order" in section and "Retrying" in section
    assert f"{request.next_attempt_at:%Y-%m-%d %H:%M:%S}" in section
    assert "oms-error" in section  # the last error is shown
    assert order.external_id in _delivery_filter(admin_client, "retrying")
    assert order.external_id not in _delivery_filter(admin_client, "failed")

    loop["threepl"].start(port=port)
    FulfillmentRequest.objects.update(next_attempt_at=timezone.now())
    fulfillment_sweep()
    request.refresh_from_db()
    assert request.state == "sent" and request.sent_at
    assert _warehouse_events(order) == ["warehouse_order_retrying", "warehouse_order_sent"]
    accepted = order.events.get(kind="warehouse_order_sent")
    assert accepted.message == "Fulfil order accepted by reno after 4 attempts"
    section = _warehouse_section(admin_client, order)
    assert "Accepted by the warehouse" in section
    assert f"{request.sent_at:%Y-%m-%d %H:%M:%S}" in section
    assert order.external_id not in _delivery_filter(admin_client, "retrying")


def test_a_request_the_3pl_never_takes_gives_up_visibly(admin_client, world, loop):
    from channels_app.services.fulfillment import MAX_ATTEMPTS

    loop["threepl"].stop()
    world.sims["amazon"].create_order([("MUG", 1)])
    channel_orders_import(channel=loop["amazon"])
    order = Order.objects.get(channel=loop["amazon"])
    # Test set-up: the 3PL has been down for all but the last attempt.
    FulfillmentRequest.objects.update(attempts=MAX_ATTEMPTS - 1, next_attempt_at=timezone.now())
    fulfillment_sweep()
    request = order.fulfillment_requests.get()
    assert (request.state, request.attempts) == ("failed", MAX_ATTEMPTS)
    assert _warehouse_events(order) == ["warehouse_order_retrying", "warehouse_order_failed"]
    failed = order.events.get(kind="warehouse_order_failed")
    assert failed.message.startswith(f"gave up after {MAX_ATTEMPTS} attempts: ")
    assert "Failed: see error" in _warehouse_section(admin_client, order)
    assert _delivery_filter(admin_client, "failed") == {order.external_id}
    assert not _delivery_filter(admin_client, "retrying")


def _on_the_3pl(loop, order) -> dict:
    return loop["threepl"].orders[order.reservation_reference]


def _address_of(order) -> dict:
    return {field: getattr(order, field) for field in ADDRESS_FIELDS}


def test_staff_address_changes_reach_the_3pl_each_once(world, loop):
    loop["threepl"].configure(pick_delay=(60, 60))  # still on the warehouse floor
    world.sims["amazon"].create_order([("MUG", 1)])
    channel_orders_import(channel=loop["amazon"])
    order = Order.objects.get(channel=loop["amazon"])
    first_line1 = order.ship_line1
    for street, postal in (("2 Elm St", "10001"), ("3 Oak Ave", "10002"), (first_line1, "10003")):
        order.refresh_from_db()
        address = {**_address_of(order), "ship_line1": street, "ship_postal_code": postal}
        order_address_change(order=order, address=address, actor="cs")
        ship_to = _on_the_3pl(loop, order)["ship_to"]
        assert (ship_to["line1"], ship_to["postal_code"]) == (street, postal)
    assert _on_the_3pl(loop, order)["address_changes"] == 3
    fulfillment_sync_order(order_id=order.pk)  # a repeated nudge sends nothing again
    order.refresh_from_db()
    order_address_change(order=order, address=_address_of(order), actor="cs")  # same address
    assert _on_the_3pl(loop, order)["address_changes"] == 3
    changes = order.fulfillment_requests.filter(kind="address")
    assert [r.state for r in changes] == ["sent", "sent", "sent"]
    assert [r.payload["ship_to"]["postal_code"] for r in changes] == ["10001", "10002", "10003"]


def test_channel_address_changes_reach_the_3pl_each_once(world, loop):
    loop["threepl"].configure(pick_delay=(60, 60))
    sim = world.sims["amazon"]
    placed = sim.create_order([("MUG", 1)])
    channel_orders_import(channel=loop["amazon"])
    order = Order.objects.get(channel=loop["amazon"])
    for street in ("2 Elm St", order.ship_line1):  # the buyer changes it, then changes it back
        time.sleep(0.01)  # a later lastUpdatedTime than the version we have
        sim.change_address(placed["orderId"], addressLine1=street)
        channel_orders_import(channel=loop["amazon"])
        order.refresh_from_db()
        assert order.ship_line1 == street
        assert _on_the_3pl(loop, order)["ship_to"]["line1"] == street
    channel_orders_import(channel=loop["amazon"])  # nothing new on the channel
    assert _on_the_3pl(loop, order)["address_changes"] == 2
    assert order.fulfillment_requests.filter(kind="address", state="sent").count() == 2


def test_address_changes_made_while_the_3pl_is_down_arrive_in_order(world, loop):
    port = int(loop["threepl"].base_url.rsplit(":", 1)[1])
    loop["threepl"].stop()
    loop["threepl"].configure(pick_delay=(60, 60))
    world.sims["amazon"].create_order([("MUG", 1)])
    channel_orders_import(channel=loop["amazon"])
    order = Order.objects.get(channel=loop["amazon"])
    for street in ("2 Elm St", "3 Oak Ave"):
        order.refresh_from_db()
        order_address_change(
            order=order, address={**_address_of(order), "ship_line1": street}, actor="cs"
        )
    loop["threepl"].start(port=port)
    # The order itself has backed off longest: the address changes come due before it.
    now = timezone.now()
    FulfillmentRequest.objects.filter(kind="order").update(
        next_attempt_at=now + timedelta(minutes=1)
    )
    FulfillmentRequest.objects.filter(kind="address").update(next_attempt_at=now)
    fulfillment_sweep()
    assert [r.state for r in order.fulfillment_requests.order_by("pk")] == ["pending"] * 3
    assert order.reservation_reference not in loop["threepl"].orders
    FulfillmentRequest.objects.update(next_attempt_at=timezone.now())
    for _ in range(3):  # the sweep runs every few seconds; each waiting message's turn comes
        fulfillment_sweep()
        FulfillmentRequest.objects.filter(state="pending").update(next_attempt_at=timezone.now())
    assert [r.state for r in order.fulfillment_requests.order_by("pk")] == ["sent"] * 3
    on_the_3pl = _on_the_3pl(loop, order)
    assert (on_the_3pl["ship_to"]["line1"], on_the_3pl["address_changes"]) == ("3 Oak Ave", 2)


def test_a_tracking_number_the_carrier_does_not_know_is_flagged_after_a_day(client, world, loop):
    loop["threepl"].configure(pick_delay=(60, 60))
    world.sims["amazon"].create_order([("MUG", 1)])
    channel_orders_import(channel=loop["amazon"])
    order = Order.objects.get(channel=loop["amazon"])
    # The 3PL reports a well-formed UPS number that UPS never issued.
    body = {
        "reference": order.reservation_reference,
        "carrier_code": "UPS",
        "tracking_number": "1Z999AA10123456784",
        "lines": [{"line_id": str(order.lines.get().pk), "quantity": 1}],
    }
    assert _post(client, "/api/warehouses/reno/shipments/", body).status_code == 201
    shipment = Shipment.objects.get(order=order)
    assert loop["carrier"].track(shipment.tracking_number) is None  # never issued
    a_day = timedelta(hours=24)
    assert shipments_track(now=shipment.shipped_at + a_day - timedelta(minutes=1)) == 1
    shipment.refresh_from_db()
    assert shipment.tracking_valid is None and shipment.last_tracked_at  # asked, not yet flagged
    assert not order.events.filter(kind="tracking_unknown").exists()
    assert shipments_track(now=shipment.shipped_at + a_day) == 1
    shipment.refresh_from_db()
    assert shipment.tracking_valid is False
    flagged = order.events.get(kind="tracking_unknown")
    assert flagged.message == f"UPS does not know {shipment.tracking_number} after 24h"
    assert shipments_track(now=shipment.shipped_at + 2 * a_day) == 0  # not asked again
    assert order.events.filter(kind="tracking_unknown").count() == 1


@pytest.fixture
def returned(world, loop):
    """An order shipped by the 3PL, with an authorized return of its one MUG."""
    from returns.services import return_request_authorize, return_request_create

    Warehouse.objects.create(code="returns", kind=Warehouse.Kind.QUARANTINE)
    world.sims["amazon"].create_order([("MUG", 1)])
    channel_orders_import(channel=loop["amazon"])
    order = Order.objects.get(channel=loop["amazon"])
    assert wait_for(lambda: Order.objects.get(pk=order.pk).status == "shipped")
    return_request = return_request_create(
        order=order, lines=[(order.lines.get(), 1)], reason_code="DEFECTIVE", actor="cs"
    )
    if return_request.status == "requested":
        return_request_authorize(return_request=return_request, actor="cs")
    return_request.refresh_from_db()
    assert return_request.status == "authorized"
    return order, return_request


def test_return_receipt_from_the_3pl_receives_the_return_into_quarantine(world, loop, returned):
    order, return_request = returned
    receipt = loop["threepl"].receive_return(
        reference=order.reservation_reference,
        lines=[{"sku": "MUG", "quantity": 1}],
        rma=return_request.rma,
    )
    # Received into quarantine, then refunded through the channel at once.
    assert wait_for(lambda: ReturnRequest.objects.get(pk=return_request.pk).status == "refunded")
    event = InboundEvent.objects.get(kind="return")
    assert (event.event_id, event.ok) == (receipt["event_id"], True)
    return_request.refresh_from_db()
    assert return_request.received_at and return_request.lines.get().quantity_received == 1
    assert len(world.sims["amazon"].refunds) == 1
    quarantined = StockLevel.objects.get(sku=world.sku, warehouse__code="returns")
    assert quarantined.on_hand == 1
    assert stock_available(sku=world.sku, warehouse=quarantined.warehouse) == 0


def test_return_receipts_endpoint_is_per_warehouse_signed_and_once(client, world, loop, returned):
    _, return_request = returned
    sparks = Warehouse.objects.create(code="sparks", kind=Warehouse.Kind.THREE_PL)
    other = WarehouseConnection(warehouse=sparks, mode="api", endpoint_url="http://127.0.0.1:9")
    other.set_secret("sparks-secret")
    other.save()
    body = {"rma": return_request.rma, "lines": [{"sku": "MUG", "quantity": 1}]}
    url = "/api/warehouses/reno/return-receipts/"
    assert _post(client, url, body, secret="forged", key="rcv-1").status_code == 401
    # Each warehouse signs with its own secret: sparks' cannot speak for reno, nor reno's
    # for sparks.
    assert _post(client, url, body, secret="sparks-secret", key="rcv-1").status_code == 401
    sparks_url = "/api/warehouses/sparks/return-receipts/"
    assert _post(client, sparks_url, body, key="rcv-1").status_code == 401
    assert not InboundEvent.objects.filter(kind="return").exists()
    return_request.refresh_from_db()
    assert return_request.status == "authorized"

    first = _post(client, url, body, key="rcv-1")
    assert first.status_code == 201, first.content
    assert first.json()["outcome"] == f"received {return_request.rma}"
    again = _post(client, url, body, key="rcv-1")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    return_request.refresh_from_db()
    assert return_request.status == "refunded"  # received, and refunded through the channel
    assert return_request.lines.get().quantity_received == 1
    assert len(world.sims["amazon"].refunds) == 1
    assert StockLevel.objects.get(sku=world.sku, warehouse__code="returns").on_hand == 1

    unknown = _post(client, url, {**body, "rma": "RMA-NOPE"}, key="rcv-2")
    assert unknown.status_code == 422
    refused = InboundEvent.objects.get(event_id="rcv-2")
    assert not refused.ok and "Unknown RMA 'RMA-NOPE'" in refused.outcome

"""Order import from each channel simulator over real HTTP into the order domain."""

import json

import pytest

from channels_app.models import OrderImportError, SyncLog
from channels_app.services.confirmations import shipment_confirm
from channels_app.services.imports import channel_orders_import, import_error_retry
from inventory.models import StockLevel
from oms.models import Order
from oms.services.shipments import shipment_create

pytestmark = pytest.mark.django_db
KINDS = ["amazon", "shopify", "ebay", "walmart"]
UPS = "1Z999AA10123456784"


def reserved(world):
    return StockLevel.objects.get(sku=world.sku, warehouse=world.warehouse).reserved


@pytest.mark.parametrize("kind", KINDS)
def test_orders_import_across_pages_once(world, kind):
    sim, channel = world.sims[kind], world.channels[kind]
    channel.settings_json = {**channel.settings_json, "page_size": 10}
    channel.save()
    for _ in range(4):
        sim.create_order([("MUG", 1)])
    sim.seed_orders(21, skus=["MUG"])
    first = channel_orders_import(channel=channel)
    assert first.created == 25
    channel.refresh_from_db()
    again = channel_orders_import(channel=channel)
    assert again.created == 0
    assert Order.objects.filter(channel=channel).count() == 25
    assert SyncLog.objects.filter(channel=channel, kind="orders", ok=True).count() == 2
    assert channel.last_success_at is not None


@pytest.mark.parametrize("kind", KINDS)
def test_cancellation_seen_later_is_applied(world, kind):
    sim, channel = world.sims[kind], world.channels[kind]
    order_json = sim.create_order([("MUG", 2)])
    channel_orders_import(channel=channel)
    order = Order.objects.get(channel=channel)
    assert order.status == "allocated" and reserved(world) == 2
    external = order.external_id
    sim.cancel_order(next(k for k, v in sim.orders.items() if v is order_json))
    channel.refresh_from_db()
    channel_orders_import(channel=channel)
    order = Order.objects.get(channel=channel, external_id=external)
    assert order.status == "cancelled"
    assert reserved(world) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_malformed_record_is_quarantined_and_the_rest_import(world, kind):
    sim, channel = world.sims[kind], world.channels[kind]
    sim.create_order([("MUG", 1)])
    sim.create_order([("MUG", 1)], malformed=True)
    sim.create_order([("MUG", 1)])
    summary = channel_orders_import(channel=channel)
    assert (summary.created, summary.failed) == (2, 1)
    error = OrderImportError.objects.get(channel=channel)
    assert error.reason and error.raw_payload
    assert error.resolved_at is None
    # retrying the same broken payload keeps it visible with its reason
    assert import_error_retry(error=error) == "failed"
    error.refresh_from_db()
    assert error.attempts == 2 and error.resolved_at is None


@pytest.mark.parametrize("kind", KINDS)
def test_5xx_and_429_are_retried(world, kind):
    sim, channel = world.sims[kind], world.channels[kind]
    sim.create_order([("MUG", 1)])
    sim.faults.error_next = 1
    sim.faults.burst_429 = 1
    assert channel_orders_import(channel=channel).created == 1


@pytest.mark.parametrize("kind", KINDS)
def test_shipment_confirmation_reaches_the_channel(world, kind):
    sim, channel = world.sims[kind], world.channels[kind]
    sim.create_order([("MUG", 2)])
    channel_orders_import(channel=channel)
    order = Order.objects.get(channel=channel)
    shipment = shipment_create(order=order, carrier_code="UPS", tracking_number=UPS)
    assert shipment_confirm(shipment_id=shipment.pk)
    shipment.refresh_from_db()
    assert shipment.confirmation_status == "sent" and shipment.confirmed_at
    assert sim.shipments  # Walmart records one shipment entry per order line
    for sent in sim.shipments:
        assert sent["tracking_number"] == UPS
        carrier = sent.get("carrier_code") or sent.get("carrier") or ""
        assert "UPS" in carrier.upper()
    assert order.events.filter(kind="confirmation_sent").exists()


def test_permanent_confirmation_error_is_shown_not_retried(world):
    from channels_app.tasks import shipment_confirm_task

    sim, channel = world.sims["shopify"], world.channels["shopify"]
    sim.create_order([("MUG", 1)])
    channel_orders_import(channel=channel)
    order = Order.objects.get(channel=channel)
    shipment = shipment_create(order=order, carrier_code="UPS", tracking_number=UPS)
    sim.orders.clear()  # the channel no longer knows the order: a 404
    assert shipment_confirm_task.delay(shipment.pk).get() is False
    shipment.refresh_from_db()
    assert shipment.confirmation_status == "failed"
    assert shipment.confirmation_error


def test_unmappable_sku_order_is_held_not_lost(world):
    sim, channel = world.sims["ebay"], world.channels["ebay"]
    sim.set_listing(seller_sku="UNKNOWN-1", quantity=5)
    sim.create_order([("UNKNOWN-1", 1)])
    channel_orders_import(channel=channel)
    order = Order.objects.get(channel=channel)
    assert (order.status, order.hold_reason) == ("on_hold", "unknown_sku")
    assert json.dumps(order.raw_payload)


@pytest.mark.parametrize("kind", KINDS)
def test_a_page_beyond_the_stock_allocates_in_order_and_holds_the_rest(world, kind):
    sim, channel = world.sims[kind], world.channels[kind]
    for _ in range(4):  # 12 mugs asked for, 10 on hand
        sim.create_order([("MUG", 3)], respect_quantity=False)
    summary = channel_orders_import(channel=channel)
    assert (summary.created, summary.failed) == (4, 0)
    orders = list(Order.objects.filter(channel=channel).order_by("purchased_at", "pk"))
    assert [order.status for order in orders] == ["allocated"] * 3 + ["on_hold"]
    held = orders[-1]
    assert held.hold_reason == "insufficient_stock" and held.oversold
    assert reserved(world) == 9
    assert all(order.events.filter(kind="imported").count() == 1 for order in orders)


def test_a_page_that_cannot_be_stored_together_is_ingested_one_by_one(world):
    sim, channel = world.sims["shopify"], world.channels["shopify"]
    for _ in range(3):
        sim.create_order([("MUG", 1)])
    # A warehouse calendar nobody can compute: every order fails, none is lost.
    type(world.warehouse).objects.filter(pk=world.warehouse.pk).update(country="XX")
    summary = channel_orders_import(channel=channel)
    assert (summary.created, summary.failed) == (0, 3)
    errors = OrderImportError.objects.filter(channel=channel, resolved_at__isnull=True)
    assert errors.count() == 3
    assert all("No public holiday calendar for 'XX'" in e.reason for e in errors)
    assert not Order.objects.filter(channel=channel).exists() and reserved(world) == 0
    type(world.warehouse).objects.filter(pk=world.warehouse.pk).update(country="US")
    channel.refresh_from_db()
    assert [import_error_retry(error=e) for e in errors] == ["created"] * 3


def test_pages_are_read_ahead_in_order_and_a_fetch_error_comes_in_its_turn():
    import threading

    from channels_app.connectors.base import ConnectorRetryableError
    from channels_app.services.imports import _read_ahead

    fetched = []

    def channel_pages():
        for n in range(3):
            fetched.append((n, threading.current_thread().name))
            yield n
        raise ConnectorRetryableError("503 on page 4")

    pages = _read_ahead(channel_pages())
    seen = next(pages)
    assert seen[0] == 0
    assert wait_until(lambda: len(fetched) >= 2)  # page 1 is fetched while 0 is stored
    assert {thread for _, thread in fetched} == {"order-pages"}
    with pytest.raises(ConnectorRetryableError, match="503 on page 4"):
        for arrived in pages:
            seen.extend(arrived)
    assert seen == [0, 1, 2]  # every page before the error, in order, once


def test_pages_that_have_arrived_come_together():
    import threading

    from channels_app.services.imports import _read_ahead

    gate, fetched = threading.Event(), []

    def channel_pages():
        for n in range(6):
            fetched.append(n)
            yield n
            gate.wait(2)  # the channel answers page 1 only once page 0 is being stored

    pages = _read_ahead(channel_pages(), most=3)
    assert next(pages) == [0]
    gate.set()
    assert wait_until(lambda: len(fetched) == 5)  # 1-3 wait in turn, 4 is handed over next
    together = next(pages)
    assert together[:3] == [1, 2, 3] and len(together) <= 4  # at most 3 ahead, plus one
    rest = [n for arrived in pages for n in arrived]
    assert together + rest == [1, 2, 3, 4, 5]


def test_arrived_pages_are_stored_in_batches_of_at_most_so_many_orders():
    from channels_app.connectors.base import OrderPage, RejectedRecord
    from channels_app.services.imports import _batches

    def page(name, orders, rejects=0):
        return OrderPage(
            records=[f"{name}{i}" for i in range(orders)],
            rejects=[RejectedRecord(external_id=f"{name}-bad", raw={}, reason="x")] * rejects,
        )

    batches = _batches([page("a", 3, 1), page("b", 3), page("c", 5, 1), page("d", 9)], 6)
    assert [b.records for b in batches] == [
        ["a0", "a1", "a2", "b0", "b1", "b2"],
        ["c0", "c1", "c2", "c3", "c4"],
        [f"d{i}" for i in range(9)],  # a page bigger than a batch stays whole
    ]
    assert [len(b.rejects) for b in batches] == [1, 1, 0]


def test_closing_the_pages_stops_the_reader():
    from channels_app.services.imports import _read_ahead

    closed = []

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.append(True)

    pages = _read_ahead(endless())
    assert next(pages)[0] == 0
    pages.close()
    assert closed == [True]


def wait_until(condition, seconds=2.0):
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True

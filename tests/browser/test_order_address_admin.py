"""Change address on the order page, as customer service does it: the new ship-to shows on
the order and in its timeline, a missing-address hold is lifted by it, and a shipped order
offers no such button."""

from __future__ import annotations

import pytest

from inventory import services as stock
from inventory.models import SKU, Warehouse
from oms.models import HoldReason, Order, OrderStatus, RoutingRule, SalesChannel
from oms.records import AddressRecord
from oms.services.ingestion import order_ingest
from oms.services.shipments import shipment_create
from tests.oms.conftest import make_record

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = "/tmp/orders_admin_address_changed.png"
HOLD_SHOT = "/tmp/orders_admin_address_hold_lifted.png"


@pytest.fixture
def orders():
    """Webshop orders for MUG from nyc: MOVE-0001 (allocated, full address), NOADDR-0002
    (on hold: its address has no street or postal code) and SENT-0003 (shipped)."""
    nyc = Warehouse.objects.create(code="nyc", time_zone="America/New_York")
    stock.stock_receive(sku=SKU.objects.create(code="MUG"), warehouse=nyc, quantity=20)
    shop = SalesChannel.objects.create(code="shop", name="Webshop", kind="shopify")
    RoutingRule.objects.create(channel=shop, warehouse=nyc, priority=1)

    def ingest(order_id: str, **kwargs) -> Order:
        record = make_record(order_id, lines=(("MUG", 1),), **kwargs)
        return order_ingest(channel=shop, record=record).order

    move = ingest("MOVE-0001")
    no_address = ingest(
        "NOADDR-0002", ship_to=AddressRecord(name="Bo Buyer", city="Boston", country_code="US")
    )
    sent = ingest("SENT-0003")
    shipment_create(order=sent, carrier_code="UPS", tracking_number="1Z999AA10123456784")
    return {"move": move, "no_address": no_address, "sent": sent}


def _text(page, selector: str) -> str:
    return page.locator(selector).first.inner_text()


def _submit(page) -> None:
    with page.expect_navigation():
        page.click("input[type=submit][value='Change address']")


def test_change_address_of_an_unshipped_order(admin_page, live_server, orders):
    page, order = admin_page, orders["move"]
    assert order.status == OrderStatus.ALLOCATED
    page.goto(f"{live_server.url}/admin/oms/order/{order.pk}/change/")
    assert "1 Main St" in _text(page, ".field-ship_to .readonly")

    page.get_by_role("link", name="Change address").click()
    assert page.input_value("#id_ship_line1") == "1 Main St"  # starts from the current one
    assert page.input_value("#id_ship_city") == "Springfield"
    page.fill("#id_ship_line1", "")
    page.fill("#id_ship_country", "U")
    _submit(page)
    assert "This field is required." in _text(page, ".field-ship_line1 .errorlist")
    assert "at least 2 characters (it has 1)" in _text(page, ".field-ship_country .errorlist")
    assert Order.objects.get(pk=order.pk).ship_line1 == "1 Main St"

    page.fill("#id_ship_line1", "742 Evergreen Terrace")
    page.fill("#id_ship_line2", "Apt 2")
    page.fill("#id_ship_postal_code", "62704")
    page.fill("#id_ship_country", "us")
    _submit(page)

    assert _text(page, ".messagelist .success") == (
        "Address changed: order MOVE-0001 is now Allocated."
    )
    ship_to = _text(page, ".field-ship_to .readonly").splitlines()
    assert ship_to == ["Ada Buyer", "742 Evergreen Terrace", "Apt 2", "Springfield IL 62704", "US"]
    event = _text(page, "#order-timeline .oms-event-address_changed")
    assert "address corrected" in event
    assert '"ship_line1": ["1 Main St", "742 Evergreen Terrace"]' in event
    assert '"ship_postal_code": ["62701", "62704"]' in event
    page.screenshot(path=SCREENSHOT, full_page=True)


def test_a_missing_address_hold_is_lifted_by_the_new_address(admin_page, live_server, orders):
    page, order = admin_page, orders["no_address"]
    assert (order.status, order.hold_reason) == (OrderStatus.ON_HOLD, HoldReason.MISSING_ADDRESS)
    page.goto(f"{live_server.url}/admin/oms/order/{order.pk}/change/")
    assert _text(page, ".field-status_badge .readonly") == "On hold"
    assert "Missing" in _text(page, ".field-exception .readonly")

    page.get_by_role("link", name="Change address").click()
    assert "On hold" in _text(page, ".oms-order-summary")
    page.fill("#id_ship_line1", "4 Beacon St")
    page.fill("#id_ship_postal_code", "02108")
    _submit(page)

    assert _text(page, ".messagelist .success") == (
        "Address changed: order NOADDR-0002 is now Allocated."
    )
    assert _text(page, ".field-status_badge .readonly") == "Allocated"
    assert _text(page, ".field-exception .readonly") == "-"
    assert "4 Beacon St" in _text(page, ".field-ship_to .readonly")
    timeline = _text(page, "#order-timeline")
    assert '"ship_line1": ["", "4 Beacon St"]' in timeline
    assert "On hold → Awaiting fulfillment" in timeline and "hold released" in timeline
    assert "Awaiting fulfillment → Allocated" in timeline
    assert timeline.index("address_changed") < timeline.index("hold released")
    page.screenshot(path=HOLD_SHOT, full_page=True)

    page.goto(f"{live_server.url}/admin/oms/order/{orders['sent'].pk}/change/")
    assert "Shipped" in _text(page, ".field-status_badge .readonly")
    assert page.get_by_role("link", name="Change address").count() == 0

"""Manage Orders in a real browser: badges and countdowns, filters, search, the order page,
shipping through the ship form, a bulk cancel with a reason and a pick list download."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from inventory import services as stock
from inventory.models import SKU, StockLevel, Warehouse
from oms.models import Order, OrderStatus, RoutingRule, SalesChannel, Shipment
from oms.services.ingestion import order_ingest
from oms.services.shipments import shipment_create
from tests.oms.conftest import make_record

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

UPS = "1Z999AA10123456784"
UPS_2 = "1Z5R89390357567127"
CHANGELIST_SHOT = "/tmp/orders_admin_changelist.png"
ORDER_SHOT = "/tmp/orders_admin_order_page.png"


@pytest.fixture
def orders():
    """Amazon orders: LATE (MUG+LID, past its ship-by), RISK (MUG, pack-by close), HELD
    (unknown SKU), SENT (shipped with UPS) and WAVE (allocated, for the pick list)."""
    nyc = Warehouse.objects.create(code="nyc", time_zone="America/New_York")
    mug = SKU.objects.create(code="MUG", title="Enamel mug")
    lid = SKU.objects.create(code="LID", title="Mug lid")
    stock.stock_receive(sku=mug, warehouse=nyc, quantity=20)
    stock.stock_receive(sku=lid, warehouse=nyc, quantity=20)
    StockLevel.objects.filter(sku=mug).update(bin_location="A-01")
    channel = SalesChannel.objects.create(code="amazon-us", name="Amazon US", kind="amazon")
    RoutingRule.objects.create(channel=channel, warehouse=nyc, priority=1)

    def ingest(order_id: str, lines) -> Order:
        return order_ingest(channel=channel, record=make_record(order_id, lines=lines)).order

    late = ingest("LATE-0001", (("MUG", 2), ("LID", 1)))
    risk = ingest("RISK-0002", (("MUG", 1),))
    held = ingest("HELD-0003", (("GADGET", 1),))
    sent = ingest("SENT-0004", (("MUG", 1),))
    wave = ingest("WAVE-0005", (("MUG", 3),))
    shipment_create(order=sent, carrier_code="UPS", tracking_number=UPS_2)
    now = timezone.now()
    # Test set-up only: deadlines relative to the moment the test runs, with seconds to spare
    # so the countdowns read the same for the next minute.
    Order.objects.filter(pk=late.pk).update(
        ship_by=now - timedelta(hours=2, minutes=1, seconds=10), pack_by=now - timedelta(hours=3)
    )
    Order.objects.filter(pk=risk.pk).update(
        ship_by=now + timedelta(hours=3, minutes=20, seconds=50),
        pack_by=now + timedelta(minutes=30),
    )
    Order.objects.filter(pk=wave.pk).update(
        ship_by=now + timedelta(days=2, hours=1, minutes=30), pack_by=now + timedelta(days=2)
    )
    return {"late": late, "risk": risk, "held": held, "sent": sent, "wave": wave}


def _text(page, selector: str) -> str:
    return page.locator(selector).first.inner_text()


def _rows(page) -> str:
    return _text(page, "#result_list tbody")


def _filter(page, title: str, choice: str) -> None:
    page.locator(f'details[data-filter-title="{title}"] a', has_text=choice).first.click()
    page.wait_for_load_state()


def test_changelist_badges_filters_search_and_order_page(admin_page, live_server, orders):
    page = admin_page
    changelist = f"{live_server.url}/admin/oms/order/"
    page.goto(changelist)

    rows = _rows(page)
    for external_id in ("LATE-0001", "RISK-0002", "HELD-0003", "SENT-0004", "WAVE-0005"):
        assert external_id in rows
    assert page.locator("#result_list .oms-badge.oms-status-allocated").count() == 3
    assert _text(page, ".oms-badge.oms-status-on-hold") == "On hold"
    assert _text(page, ".oms-badge.oms-status-shipped") == "Shipped"
    assert _text(page, ".oms-deadline-late") == "2h 1m late"
    assert _text(page, ".oms-deadline-at-risk") == "in 3h 20m"
    assert _text(page, ".oms-deadline-on-time") == "in 2d 1h"
    assert "Unknown SKU: map it to one of ours" in rows
    badge_color = page.locator(".oms-badge.oms-status-on-hold").evaluate(
        "el => getComputedStyle(el).backgroundColor"
    )
    assert badge_color == "rgb(185, 28, 28)", "admin.css is served and applied"
    page.screenshot(path=CHANGELIST_SHOT, full_page=True)

    _filter(page, "status", "On hold")
    assert "status__exact=on_hold" in page.url
    rows = _rows(page)
    assert "HELD-0003" in rows and "LATE-0001" not in rows

    page.goto(changelist)
    _filter(page, "ship-by", "Late")
    rows = _rows(page)
    assert "LATE-0001" in rows and "RISK-0002" not in rows
    page.goto(changelist)
    _filter(page, "ship-by", "At risk")
    rows = _rows(page)
    assert "RISK-0002" in rows and "LATE-0001" not in rows

    page.goto(changelist)
    page.fill("#searchbar", "LID")
    page.press("#searchbar", "Enter")
    page.wait_for_load_state()
    rows = _rows(page)
    assert "LATE-0001" in rows and "RISK-0002" not in rows and "WAVE-0005" not in rows

    page.fill("#searchbar", UPS_2.lower())
    page.press("#searchbar", "Enter")
    page.wait_for_load_state()
    rows = _rows(page)
    assert "SENT-0004" in rows and "LATE-0001" not in rows

    page.goto(changelist)
    page.click("#result_list a:text-is('LATE-0001')")
    page.wait_for_selector("#order-timeline")
    timeline = _text(page, "#order-timeline")
    assert "imported" in timeline
    assert "Awaiting fulfillment → Allocated" in timeline
    lines = _text(page, "#order-lines")
    assert "MUG" in lines and "LID" in lines
    assert "A-01" in _text(page, "#order-reservations")
    assert "Nothing has shipped yet." in _text(page, "#order-shipments")
    page.locator("#order-payloads summary").first.click()
    assert "LATE-0001" in _text(page, "#order-payloads pre")
    page.screenshot(path=ORDER_SHOT, full_page=True)


def test_ship_cancel_and_pick_list(admin_page, live_server, orders):
    page = admin_page
    risk = orders["risk"]

    page.goto(f"{live_server.url}/admin/oms/order/{risk.pk}/change/")
    page.locator(".object-tools a", has_text="Ship").click()
    page.wait_for_selector("#order-action-form")
    page.select_option("#id_carrier_code", "UPS")
    page.fill("#id_tracking_number", "1Z999AA10123456785")
    page.click("input[name=_apply]")
    assert "wrong check digit" in _text(page, ".messagelist .error")
    assert Order.objects.get(pk=risk.pk).status == OrderStatus.ALLOCATED

    page.fill("#id_tracking_number", UPS)
    page.click("input[name=_apply]")
    page.wait_for_selector("#order-timeline")
    assert _text(page, ".messagelist .success") == (
        "Shipment recorded: order RISK-0002 is now Shipped."
    )
    assert _text(page, ".field-status_badge .readonly") == "Shipped"
    assert UPS in _text(page, "#order-shipments")
    assert Shipment.objects.get(order=risk).tracking_number == UPS

    page.goto(f"{live_server.url}/admin/oms/order/")
    page.check(f"input[name=_selected_action][value='{orders['late'].pk}']")
    page.select_option("select[name=action]", "cancel_orders")
    page.click("button[name=index]")
    page.wait_for_selector("#bulk-action-form")
    assert "LATE-0001" in _text(page, ".oms-selection")
    page.select_option("#id_reason", "buyer_request")
    page.fill("#id_message", "Buyer asked by e-mail")
    page.click("input[name=apply]")
    page.wait_for_selector("#result_list")
    assert _text(page, ".messagelist .success") == "Cancelled: 1 order(s)."
    late = Order.objects.get(pk=orders["late"].pk)
    assert (late.status, late.cancel_reason) == (OrderStatus.CANCELLED, "buyer_request")
    assert "Cancelled" in _text(page, "#result_list tr:has(a:text-is('LATE-0001'))")

    page.check(f"input[name=_selected_action][value='{orders['wave'].pk}']")
    page.select_option("select[name=action]", "print_pick_list")
    with page.expect_download() as download_info:
        page.click("button[name=index]")
    download = download_info.value
    assert download.suggested_filename.startswith("pick-list-")
    assert download.suggested_filename.endswith(".pdf")
    with open(download.path(), "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"


def test_order_page_shows_a_warehouse_request_in_retry(admin_page, live_server):
    """The order went to an API warehouse whose 3PL is down: the order page says so, and the
    changelist's "warehouse delivery" filter finds it."""
    from channels_app.models import WarehouseConnection
    from channels_app.simulators.threepl import ThreePLSimulator

    threepl = ThreePLSimulator(secret="browser-3pl-secret")
    endpoint = threepl.start()
    threepl.stop()  # the 3PL is down from the start
    reno = Warehouse.objects.create(code="reno", kind=Warehouse.Kind.THREE_PL)
    connection = WarehouseConnection(warehouse=reno, mode="api", endpoint_url=endpoint)
    connection.set_secret("browser-3pl-secret")
    connection.save()
    mug = SKU.objects.create(code="MUG", title="Enamel mug")
    stock.stock_receive(sku=mug, warehouse=reno, quantity=5)
    channel = SalesChannel.objects.create(code="amazon-us", name="Amazon US", kind="amazon")
    RoutingRule.objects.create(channel=channel, warehouse=reno, priority=1)
    order = order_ingest(
        channel=channel, record=make_record("RETRY-0001", lines=(("MUG", 1),))
    ).order
    request = order.fulfillment_requests.get()
    assert (request.state, request.attempts) == ("pending", 1)

    page = admin_page
    page.goto(f"{live_server.url}/admin/oms/order/")
    _filter(page, "warehouse delivery", "Retrying")
    assert "warehouse_delivery=retrying" in page.url
    assert "RETRY-0001" in _rows(page)
    page.click("#result_list a:text-is('RETRY-0001')")
    page.wait_for_selector("#order-warehouse-requests")
    row = page.locator("#order-warehouse-requests tbody tr")
    assert row.count() == 1
    cells = [c.strip() for c in row.locator("td").all_inner_texts()]
    assert cells[1:5] == ["reno", "Fulfil order", "Retrying", "1"]
    assert cells[5] == f"{request.next_attempt_at:%Y-%m-%d %H:%M:%S}"
    assert cells[6] and cells[6] != "-"  # why it failed
    assert cells[7] == "-"  # not acknowledged yet
    state_color = row.locator(".oms-request-state").evaluate("el => getComputedStyle(el).color")
    assert state_color == "rgb(180, 83, 9)"
    timeline = _text(page, "#order-timeline")
    assert "warehouse_order_retrying" in timeline and "not delivered, retrying" in timeline
    page.screenshot(path="/tmp/orders_admin_warehouse_retry.png", full_page=True)

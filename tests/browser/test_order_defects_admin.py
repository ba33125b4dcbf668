"""Order defects in a real browser, against the Shopify simulator: the defect list and page
show the channel's own status and whether each defect counts in the order defect rate, and a
chargeback on an order not imported yet waits on the import errors page until Retry import
attaches it to its order. Staff enter a defect the channel does not report, and stop it
counting."""

from __future__ import annotations

import pytest
from django.utils.text import capfirst

from channels_app.models import OrderImportError
from channels_app.services.defects import channel_defects_import
from channels_app.services.imports import channel_orders_import
from oms.health.services import order_defect_record, order_defect_remove
from oms.models import Order, OrderDefect, SalesChannel
from oms.services.ingestion import order_ingest
from tests.channels_django import conftest as channel_world
from tests.oms.conftest import make_record

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

simulators = channel_world.simulators
world = channel_world.world

LIST_SHOT = "/tmp/oms_admin_order_defects.png"
ERROR_SHOT = "/tmp/channels_admin_defect_import_error.png"
RETRIED_SHOT = "/tmp/channels_admin_defect_retried.png"


@pytest.fixture
def defects(world):
    """Shopify orders FIRST (imported) and LATE (placed after the last order import), each
    with a chargeback the bank opened; FIRST also has negative feedback staff entered and
    then took out of the rate. The defect import attaches FIRST's chargeback and keeps
    LATE's as an import error."""
    sim, channel = world.sims["shopify"], world.channels["shopify"]

    def placed() -> str:
        order = sim.create_order([("MUG", 1)])
        return next(key for key, value in sim.orders.items() if value is order)

    first_id = placed()
    channel_orders_import(channel=channel)
    late_id = placed()
    first = Order.objects.get(channel=channel, external_id=first_id)
    feedback = order_defect_record(
        order=first, kind=OrderDefect.Kind.NEGATIVE_FEEDBACK, note="buyer angry", actor="cs"
    )
    order_defect_remove(defect=feedback, actor="cs", note="feedback removed")
    disputes = {order_id: str(sim.open_defect(order_id)["id"]) for order_id in (first_id, late_id)}
    channel_defects_import(channel=channel)
    return {
        "channel": channel,
        "first": first,
        "late_id": late_id,
        "chargeback": OrderDefect.objects.get(order=first, kind=OrderDefect.Kind.CHARGEBACK),
        "error": OrderImportError.objects.get(external_id=f"defect:{disputes[late_id]}"),
    }


def _text(page, selector: str) -> str:
    return page.locator(selector).first.inner_text()


def _row(page, text: str):
    return page.locator("#result_list tbody tr", has_text=text)


def _counts(row) -> str:
    return row.locator("td.field-counts img").get_attribute("alt")


def test_defect_list_and_page_show_channel_status_and_counting(admin_page, live_server, defects):
    page, first = admin_page, defects["first"]
    page.goto(f"{live_server.url}/admin/oms/orderdefect/")

    chargeback = _row(page, "Chargeback")
    assert chargeback.count() == 1
    assert first.external_id in chargeback.inner_text()
    assert chargeback.locator("td.field-channel_status").inner_text() == "needs_response"
    assert "Imported from the channel" in chargeback.inner_text()
    assert _counts(chargeback) == "True"
    feedback = _row(page, "Negative feedback")
    assert "Entered by staff" in feedback.inner_text()
    assert _counts(feedback) == "False"
    page.screenshot(path=LIST_SHOT, full_page=True)

    with page.expect_navigation():
        page.locator('details[data-filter-title="removed at"]').get_by_role(
            "link", name="Empty", exact=True
        ).click()
    assert _row(page, "Chargeback").count() == 1
    assert _row(page, "Negative feedback").count() == 0

    with page.expect_navigation():
        _row(page, "Chargeback").locator("th a").click()
    assert _text(page, ".field-channel_status .readonly") == "needs_response"
    assert _text(page, ".field-source .readonly") == "Imported from the channel"
    assert _text(page, ".field-removed_at .readonly") == "-"
    assert defects["chargeback"].external_id in _text(page, ".field-raw_payload .readonly")


def test_retry_attaches_a_defect_once_its_order_has_arrived(admin_page, live_server, defects):
    page, error, late_id = admin_page, defects["error"], defects["late_id"]
    page.goto(f"{live_server.url}/admin/channels_app/orderimporterror/")
    row = _row(page, error.external_id)
    assert f"is on order {late_id}, which has not been imported" in row.inner_text()
    assert "open" in row.locator("td.field-state_badge").inner_text()

    with page.expect_navigation():
        row.locator("th a").click()
    retry = page.locator("button.oms-tool", has_text="Retry import")
    # Its order is still not here: the retry says so and the error stays open.
    with page.expect_navigation():
        retry.click()
    assert "still failing after 2 attempt(s)" in _text(page, ".messagelist .error")
    assert f"is on order {late_id}, which has not been imported" in _text(
        page, ".messagelist .error"
    )
    assert _text(page, ".field-state_badge .readonly") == "open"
    page.screenshot(path=ERROR_SHOT, full_page=True)

    channel_orders_import(channel=defects["channel"])  # the order has arrived since
    with page.expect_navigation():
        page.locator("button.oms-tool", has_text="Retry import").click()

    success = _text(page, ".messagelist .success")
    code = defects["channel"].code  # the admin shows messages with a capital first letter
    assert success == capfirst(
        f"{code} {error.external_id}: imported (created) on order {late_id}."
    )
    assert _text(page, ".field-state_badge .readonly") == "resolved"
    assert _text(page, ".field-order_link .readonly") == late_id
    assert page.locator("button.oms-tool", has_text="Retry import").count() == 0
    page.screenshot(path=RETRIED_SHOT, full_page=True)

    with page.expect_navigation():
        page.click(".messagelist .success a")
    order = Order.objects.get(channel=defects["channel"], external_id=late_id)
    assert page.url.endswith(f"/admin/oms/order/{order.pk}/change/")
    assert _text(page, "#content h2") == f"{defects['channel'].name} order {late_id}"
    page.goto(f"{live_server.url}/admin/oms/orderdefect/?q={late_id}")
    late = _row(page, late_id)
    assert "Chargeback" in late.inner_text() and _counts(late) == "True"


@pytest.fixture
def webshop_order():
    """Webshop order W-0001 bought on 24 November 2026, with no defect."""
    shop = SalesChannel.objects.create(code="shop", name="Webshop", kind="shopify")
    return order_ingest(channel=shop, record=make_record("W-0001", lines=(("MUG", 1),))).order


def test_staff_enter_a_defect_then_stop_counting_it(admin_page, live_server, webshop_order):
    page, order = admin_page, webshop_order
    page.goto(f"{live_server.url}/admin/oms/orderdefect/add/")
    page.fill("#id_order", str(order.pk))
    page.select_option("#id_kind", label="Negative feedback (1-2 stars)")
    page.fill("#id_opened_at_0", "2026-11-20")  # before the order was bought
    page.fill("#id_opened_at_1", "10:00:00")
    page.fill("#id_note", "2 stars: slow delivery")
    with page.expect_navigation():
        page.click("input[name=_save]")
    assert "A claim or feedback cannot predate the order." in _text(
        page, ".field-opened_at .errorlist"
    )
    assert not OrderDefect.objects.exists()

    page.fill("#id_opened_at_0", "2026-11-25")
    with page.expect_navigation():
        page.click("input[name=_save]")
    assert "was added successfully" in _text(page, ".messagelist .success")
    row = _row(page, "W-0001")
    assert "Entered by staff" in row.inner_text() and "browser-admin" in row.inner_text()
    assert _counts(row) == "True"

    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "stop_counting")
    with page.expect_navigation():
        page.click("button[name=index]")
    assert _text(page, ".messagelist .success") == "1 defect(s) no longer count."
    assert _counts(_row(page, "W-0001")) == "False"
    assert OrderDefect.objects.get(order=order).removed_at is not None

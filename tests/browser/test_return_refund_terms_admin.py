"""Refund terms on the return page, as customer service sets them: approve with the shipping
refunded and a partial amount on a line, change the terms after a first refund, refuse an
amount above what was paid, and stop waiting for units that will not come back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from inventory import services as stock
from inventory.models import SKU, Warehouse
from oms.models import Order, RoutingRule, SalesChannel
from oms.services.ingestion import order_ingest
from oms.services.shipments import shipment_create
from returns import services as svc
from returns.models import ReturnLine, ReturnRequest, ReturnStatus
from tests.oms.conftest import make_record

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

APPROVE_SHOT = "/tmp/returns_admin_approve_terms.png"
TERMS_SHOT = "/tmp/returns_admin_refund_terms_refused.png"
DONE_SHOT = "/tmp/returns_admin_partial_return.png"


@pytest.fixture
def return_request() -> ReturnRequest:
    """Order R-2001 (2 TEE + 1 MUG at 12.50, 4.99 shipping), shipped; the buyer asks to return
    all three."""
    nyc = Warehouse.objects.create(code="nyc", time_zone="America/New_York")
    Warehouse.objects.create(code="returns", kind=Warehouse.Kind.QUARANTINE)
    for code in ("TEE", "MUG"):
        stock.stock_receive(sku=SKU.objects.create(code=code), warehouse=nyc, quantity=20)
    shop = SalesChannel.objects.create(code="shop", name="Webshop", kind="shopify")
    RoutingRule.objects.create(channel=shop, warehouse=nyc, priority=1)
    record = make_record("R-2001", lines=(("TEE", 2), ("MUG", 1)))
    order = order_ingest(channel=shop, record=record).order
    Order.objects.filter(pk=order.pk).update(shipping_total=Decimal("4.99"))
    shipment_create(order=order, carrier_code="UPS", tracking_number="1Z999AA10123456784")
    return svc.return_request_create(
        order=order,
        lines=[(line, line.quantity) for line in order.lines.order_by("id")],
        reason_code="SIZE",
    )


def _text(page, selector: str) -> str:
    return page.locator(selector).first.inner_text()


def _submit(page, label: str) -> None:
    with page.expect_navigation():
        page.click(f"#return-action-form input[type=submit][value='{label}']")


def _line_row(page, sku: str):
    return page.locator("#return-lines tr.returns-line", has_text=sku)


def _cells(page, sku: str) -> dict[str, str]:
    headers = page.locator("#return-lines thead th").all_inner_texts()
    cells = _line_row(page, sku).locator("td").all_inner_texts()
    return {h.strip().lower(): c.strip() for h, c in zip(headers, cells, strict=True)}


def test_approve_with_terms_change_them_and_stop_waiting(admin_page, live_server, return_request):
    page, rma = admin_page, return_request.rma
    tee = return_request.lines.get(sku__code="TEE")
    mug = return_request.lines.get(sku__code="MUG")
    page.goto(f"{live_server.url}/admin/returns/returnrequest/{return_request.pk}/change/")

    # Approve with refund terms: shipping back, 20.00 of the 25.00 paid for the two tees.
    page.get_by_role("link", name="Approve with refund terms").click()
    assert "Paid 25.00 for these units" in _text(page, f".field-amount_{tee.pk} .help")
    assert page.input_value(f"#id_amount_{tee.pk}") == "25.00"
    page.check("#id_refund_shipping")
    page.fill(f"#id_amount_{tee.pk}", "30")
    _submit(page, "Approve return")
    assert _text(page, ".messagelist .error") == (
        f"Cannot set the refund of {rma}: 2 x TEE: 30.00 is more than the 25.00 paid for "
        "those units."
    )
    assert ReturnRequest.objects.get(pk=return_request.pk).status == ReturnStatus.REQUESTED
    assert page.input_value(f"#id_amount_{tee.pk}") == "30"  # what was typed is kept
    page.fill(f"#id_amount_{tee.pk}", "20.00")
    page.screenshot(path=APPROVE_SHOT, full_page=True)
    _submit(page, "Approve return")

    assert _text(page, ".messagelist .success") == f"Approve return: {rma} is now Authorized."
    assert _cells(page, "TEE")["refund for the line"] == "20.00 USD (partial, of 25.00)"
    assert _cells(page, "MUG")["refund for the line"] == "12.50 USD"

    # One tee and the mug come back: the first refund pays half the tees' 20.00, the mug
    # and the shipping.
    svc.return_receive(return_request=return_request, lines={tee.pk: 1, mug.pk: 1})
    page.reload()
    assert (_cells(page, "TEE")["received"], _cells(page, "TEE")["refunded"]) == ("1", "1")
    assert (_cells(page, "MUG")["received"], _cells(page, "MUG")["refunded"]) == ("1", "1")
    refunds = _text(page, "#return-refunds tbody")
    assert f"{rma}-1" in refunds and "22.50 USD" in refunds and "4.99" in refunds

    # Refund terms: the mug is all refunded (its amount is fixed); the tees' amount cannot go
    # above what was paid, nor below the 10.00 already gone back.
    page.get_by_role("link", name="Refund terms", exact=True).click()
    assert page.is_disabled(f"#id_amount_{mug.pk}")
    assert page.is_checked("#id_refund_shipping")
    page.fill(f"#id_amount_{tee.pk}", "25.01")
    _submit(page, "Refund terms")
    assert "2 x TEE: 25.01 is more than the 25.00 paid for those units" in _text(
        page, ".messagelist .error"
    )
    page.fill(f"#id_amount_{tee.pk}", "5")
    _submit(page, "Refund terms")
    assert "2 x TEE: 10.00 already went back" in _text(page, ".messagelist .error")
    page.screenshot(path=TERMS_SHOT, full_page=True)
    page.fill(f"#id_amount_{tee.pk}", "15.00")
    _submit(page, "Refund terms")

    assert _text(page, ".messagelist .success") == f"Refund terms: {rma} is now Received."
    assert _cells(page, "TEE")["refund for the line"] == "15.00 USD (partial, of 25.00)"
    assert "refund TEE 15.00 of 25.00, MUG 12.50 of 12.50, with shipping" in _text(
        page, "#return-timeline"
    )

    # The second tee is not coming back: stop waiting for it, with a reason.
    page.get_by_role("link", name="Stop waiting for the rest").click()
    _submit(page, "Stop waiting for the rest")
    assert "This field is required." in _text(page, ".field-reason .errorlist")
    page.fill("#id_reason", "buyer kept the second tee")
    _submit(page, "Stop waiting for the rest")

    assert _text(page, ".messagelist .success").startswith(f"Stop waiting for the rest: {rma} ")
    assert _cells(page, "TEE")["received"] == "1 (1 not coming back)"
    assert _cells(page, "TEE")["refunded"] == "1"
    assert "1 unit(s) not coming back: buyer kept the second tee" in _text(page, "#return-timeline")
    tools = _text(page, "#content-main .object-tools").lower()
    assert "stop waiting" not in tools and "receive" not in tools
    page.screenshot(path=DONE_SHOT, full_page=True)
    assert ReturnLine.objects.get(pk=tee.pk).quantity_not_returned == 1


def test_send_a_failed_refund_again(admin_page, live_server, return_request):
    """A refund the channel never took shows its error, and one click sends it again."""
    page = admin_page
    svc.return_request_authorize(return_request=return_request, actor="cs")
    svc.return_receive(return_request=return_request, actor="dock")
    refund = return_request.refunds.get()
    svc.refund_result(refund=refund, ok=False, error="Shopify answered 503 all day", final=True)

    page.goto(f"{live_server.url}/admin/returns/returnrequest/{return_request.pk}/change/")
    assert "Shopify answered 503 all day" in _text(page, "#return-refunds")
    with page.expect_navigation():
        page.click("button.oms-tool:has-text('Send failed refund again')")
    assert "1 failed refund(s) queued to send again" in _text(page, ".messagelist")
    assert page.locator("button.oms-tool:has-text('Send failed refund again')").count() == 0
    assert "sending" in _text(page, "#content-main").lower()
    page.screenshot(path="/tmp/returns_admin_refund_sent_again.png", full_page=True)

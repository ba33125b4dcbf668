"""Returns in a real browser: the queue with its deadline badges, the receive page driven like
a barcode scanner (type a code, press Enter), the return page timeline, and the inspect page
with its grade buttons."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from inventory import services as stock
from inventory.models import SKU, StockLevel, Warehouse
from inventory.selectors import stock_available
from oms.models import RoutingRule, SalesChannel
from oms.services.ingestion import order_ingest
from oms.services.shipments import shipment_create
from returns import services as svc
from returns.models import ReturnRequest
from tests.oms.conftest import make_record

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TEE_GTIN = "4006381333931"
QUEUE_SHOT = "/tmp/returns_admin_queue.png"
RECEIVE_SHOT = "/tmp/returns_admin_receive.png"
RETURN_SHOT = "/tmp/returns_admin_return_page.png"
INSPECT_SHOT = "/tmp/returns_admin_inspect.png"
DONE_SHOT = "/tmp/returns_admin_inspected.png"


@pytest.fixture
def returns(settings):
    """Order R-1001 (2 TEE + 1 MUG) with an authorized return of everything (PARCEL), and
    order R-1002 (3 TEE) with three unanswered requests: OVERDUE by 3h, RISK with 5h left
    and CALM with 31h left (seconds to spare, so the texts hold for a minute)."""
    settings.RETURNS_ALERT_BEFORE_HOURS = 12
    nyc = Warehouse.objects.create(code="nyc", time_zone="America/New_York")
    Warehouse.objects.create(code="returns", kind=Warehouse.Kind.QUARANTINE)
    tee = SKU.objects.create(code="TEE", title="Cotton tee", barcode=TEE_GTIN)
    mug = SKU.objects.create(code="MUG", title="Enamel mug")
    stock.stock_receive(sku=tee, warehouse=nyc, quantity=20)
    stock.stock_receive(sku=mug, warehouse=nyc, quantity=20)
    shop = SalesChannel.objects.create(code="shop", name="Webshop", kind="shopify")
    RoutingRule.objects.create(channel=shop, warehouse=nyc, priority=1)

    def shipped(order_id: str, lines, n: int):
        order = order_ingest(channel=shop, record=make_record(order_id, lines=lines)).order
        shipment_create(order=order, carrier_code="AMAZON", tracking_number=f"TBA{n:012d}")
        return order

    first = shipped("R-1001", (("TEE", 2), ("MUG", 1)), 1)
    second = shipped("R-1002", (("TEE", 3),), 2)
    now = timezone.now()

    def requested(order, lines, hours_ago: float) -> ReturnRequest:
        return svc.return_request_create(
            order=order,
            lines=lines,
            reason_code="SIZE",
            requested_at=now - timedelta(hours=hours_ago),
        )

    tee_line = second.lines.get()
    overdue = requested(second, [(tee_line, 1)], 51 + 10 / 60)
    risk = requested(second, [(tee_line, 1)], 43 - 10 / 60)
    calm = requested(second, [(tee_line, 1)], 17 - 10 / 60)
    parcel = requested(first, [(line, line.quantity) for line in first.lines.order_by("id")], 5)
    svc.return_request_authorize(return_request=parcel, actor="cs")
    return {"overdue": overdue, "risk": risk, "calm": calm, "parcel": parcel, "nyc": nyc}


def _text(page, selector: str) -> str:
    return page.locator(selector).first.inner_text()


def _scan(page, code: str) -> None:
    """What a barcode scanner does: type the code into the focused field, then Enter."""
    page.keyboard.type(code)
    page.keyboard.press("Enter")


def _focused(page) -> str:
    return page.evaluate("document.activeElement && document.activeElement.id")


def test_queue_shows_time_to_answer_badges(admin_page, live_server, returns):
    page = admin_page
    page.goto(f"{live_server.url}/admin/returns/returnrequest/")

    rows = _text(page, "#result_list tbody")
    order = [returns[name].rma for name in ("overdue", "risk", "calm", "parcel")]
    positions = [rows.index(rma) for rma in order]
    assert positions == sorted(positions), "most urgent first"
    assert _text(page, ".returns-answer-overdue") == "overdue 3h"
    assert _text(page, ".returns-answer-at-risk") == "at risk: 5h left"
    assert _text(page, ".returns-answer-on-time") == "31h left"
    assert _text(page, ".returns-answer-answered") == "answered"
    assert page.locator("#result_list .oms-badge.returns-status-requested").count() == 3
    assert _text(page, ".oms-badge.returns-status-authorized") == "Authorized"
    colours = page.evaluate(
        """() => ['.returns-answer-overdue', '.returns-answer-at-risk',
                  '.oms-badge.returns-status-requested']
            .map(s => getComputedStyle(document.querySelector(s)))
            .map((style, i) => i < 2 ? style.color : style.backgroundColor)"""
    )
    assert colours == ["rgb(185, 28, 28)", "rgb(180, 83, 9)", "rgb(37, 99, 235)"]
    page.screenshot(path=QUEUE_SHOT, full_page=True)

    with page.expect_navigation():
        page.locator('details[data-filter-title="answer deadline"] a', has_text="At risk").click()
    assert "answer=at_risk" in page.url
    rows = _text(page, "#result_list tbody")
    assert returns["risk"].rma in rows and returns["overdue"].rma not in rows


def test_receive_and_inspect_like_a_scanner(admin_page, live_server, returns):
    page = admin_page
    parcel, nyc = returns["parcel"], returns["nyc"]
    quarantine = Warehouse.objects.get(code="returns")
    page.goto(f"{live_server.url}/admin/returns/returnrequest/")
    page.get_by_role("link", name="Receive parcels").click()

    # Step 1: the scan field has the focus; an unknown code says so and keeps it.
    assert _focused(page) == "id_code"
    with page.expect_navigation():
        _scan(page, "R-9999")
    assert _text(page, "#scan-feedback") == "No RMA or order 'R-9999'."
    assert _focused(page) == "id_code"
    _scan(page, "R-1001")  # the channel order id finds its one authorized return
    page.wait_for_url(f"**/receive/?rma={parcel.rma}")

    # Step 2: scans count units without leaving the page.
    assert "Scan SKU or barcode" in page.content()
    assert _focused(page) == "id_scan"
    _scan(page, "tee")
    assert _text(page, "#scan-feedback") == "TEE: 1 of 2"
    _scan(page, "0" + TEE_GTIN)
    assert _text(page, "#scan-feedback") == "TEE: 2 of 2"
    _scan(page, "TEE")
    assert _text(page, "#scan-feedback") == "All 2 of TEE are already counted."
    _scan(page, "NOPE")
    assert _text(page, "#scan-feedback") == f"Unknown code 'NOPE': not on {parcel.rma}."
    feedback_colour = page.locator("#scan-feedback").evaluate("el => getComputedStyle(el).color")
    assert feedback_colour == "rgb(185, 28, 28)"
    _scan(page, "MUG")
    assert _text(page, "#scan-feedback") == "MUG: 1 of 1"
    assert _focused(page) == "id_scan"
    tee_line = parcel.lines.get(sku__code="TEE")
    mug_line = parcel.lines.get(sku__code="MUG")
    assert page.input_value(f"#id_qty_{tee_line.pk}") == "2"
    assert page.input_value(f"#id_qty_{mug_line.pk}") == "1"
    # The +/- buttons correct a count, and the scan field keeps the focus.
    page.click(f"#receive-line-{mug_line.pk} .returns-minus")
    assert page.input_value(f"#id_qty_{mug_line.pk}") == "0"
    page.click(f"#receive-line-{mug_line.pk} .returns-plus")
    assert page.input_value(f"#id_qty_{mug_line.pk}") == "1"
    assert _focused(page) == "id_scan"
    page.screenshot(path=RECEIVE_SHOT, full_page=True)

    sellable_tee = stock_available(sku=tee_line.sku)
    page.get_by_role("button", name="Receive", exact=True).click()
    page.wait_for_url(f"**/returnrequest/{parcel.pk}/change/")

    assert (
        f"Received 3 unit(s) of {parcel.rma} into quarantine returns: TEE x 2, MUG x 1."
        in _text(page, ".messagelist")
    )
    timeline = _text(page, "#return-timeline")
    assert "received" in timeline and "3 unit(s) into returns" in timeline
    assert "Authorized → Received" in timeline
    lines = _text(page, "#return-lines")
    assert "TEE" in lines and "MUG" in lines
    assert StockLevel.objects.get(sku__code="TEE", warehouse=quarantine).on_hand == 2
    assert stock_available(sku=tee_line.sku) == sellable_tee  # nothing sellable yet
    page.screenshot(path=RETURN_SHOT, full_page=True)

    # Inspect: from the return page's button, one form per line with units waiting.
    page.get_by_role("link", name="Inspect", exact=True).click()
    page.wait_for_url(f"**/inspect/?rma={parcel.rma}")
    assert page.locator("form.returns-inspect").count() == 2
    assert _focused(page) == "id_sku"
    tee_form = page.locator(f"#inspect-line-{tee_line.pk}")
    assert tee_form.locator("select[name$=restock_warehouse]").input_value() == str(nyc.pk)
    page.screenshot(path=INSPECT_SHOT, full_page=True)
    with page.expect_navigation():
        tee_form.get_by_role("button", name="Sellable").click()
    assert f"{parcel.rma}: 1 x TEE sellable, restocked (sellable) into nyc." in _text(
        page, ".messagelist"
    )
    assert StockLevel.objects.get(sku__code="TEE", warehouse=quarantine).on_hand == 1
    assert stock_available(sku=tee_line.sku) == sellable_tee + 1

    # A damaged unit needs a reason: refused first, then written off with one.
    tee_form = page.locator(f"#inspect-line-{tee_line.pk}")
    with page.expect_navigation():
        tee_form.get_by_role("button", name="Damaged").click()
    assert "Say why the unit is damaged or defective." in _text(
        page, f"#inspect-line-{tee_line.pk} .errornote"
    )
    tee_form = page.locator(f"#inspect-line-{tee_line.pk}")
    tee_form.locator("input[name$=reason]").fill("torn seam")
    with page.expect_navigation():
        tee_form.get_by_role("button", name="Damaged").click()
    assert "1 x TEE damaged, written off." in _text(page, ".messagelist")

    # The last unit by keyboard only: scan its SKU, then Enter on the focused Sellable button.
    page.focus("#id_sku")
    _scan(page, "MUG")
    page.wait_for_url("**&sku=MUG")
    assert page.evaluate("document.activeElement.textContent").strip() == "Sellable"
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/returnrequest/{parcel.pk}/change/")
    assert f"Every received unit of {parcel.rma} is inspected" in _text(page, ".messagelist")
    inspections = _text(page, "#return-lines")
    assert "1 x Sellable → Restocked (sellable) (nyc)" in inspections
    assert "1 x Damaged → Written off: torn seam" in inspections
    assert "inspected" in _text(page, "#return-timeline")
    page.screenshot(path=DONE_SHOT, full_page=True)
    assert StockLevel.objects.get(sku__code="TEE", warehouse=quarantine).on_hand == 0
    assert StockLevel.objects.get(sku__code="MUG", warehouse=quarantine).on_hand == 0

"""The inventory admin in a real browser: every page, a receipt, a refused count, explain."""

from __future__ import annotations

import pytest
from django.db.models import F

from inventory import services
from inventory.models import StockLevel
from tests.factories import BundleFactory, SKUFactory, WarehouseFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = "/tmp/inventory_admin_explain.png"


@pytest.fixture
def stock():
    """MUG in main: 10 on hand, 3 reserved for ORDER-1; a MUG-PAIR kit; one drifted counter."""
    main = WarehouseFactory(code="main", name="Main warehouse")
    WarehouseFactory(code="east", name="East 3PL", kind="3pl")
    mug = SKUFactory(code="MUG", title="Enamel mug")
    services.stock_receive(sku=mug, warehouse=main, quantity=10, reference="PO-1")
    services.stock_reserve(warehouse=main, items=[(mug, 3)], reference="ORDER-1")
    kit = BundleFactory(code="MUG-PAIR", title="Two mugs", components=[(mug, 2)])
    drift = services.stock_receive(sku=SKUFactory(code="DRIFT"), warehouse=main, quantity=1)
    StockLevel.objects.filter(pk=drift.pk).update(on_hand=F("on_hand") + 2)
    services.stock_ledger_repair(repair=False)
    return {"level": StockLevel.objects.get(sku=mug, warehouse=main), "kit": kit}


def _text(page, selector: str) -> str:
    return page.locator(selector).first.inner_text()


def test_every_inventory_admin_page_shows_its_rows(admin_page, live_server, stock):
    page, admin = admin_page, f"{live_server.url}/admin/inventory"

    page.goto(f"{admin}/warehouse/")
    assert "Main warehouse" in _text(page, "#result_list")
    assert "3PL" in _text(page, "#result_list")
    page.click("text=By kind >> .. >> text=Own warehouse")
    assert "East 3PL" not in _text(page, "#result_list")

    page.goto(f"{admin}/sku/?q=mug")
    rows = _text(page, "#result_list")
    assert "Enamel mug" in rows and "Two mugs" in rows

    page.goto(f"{admin}/sku/{stock['kit'].pk}/change/")
    inline = _text(page, ".inline-group")
    assert "bundle components (standard skus only)" in inline.lower()
    assert "MUG" in inline
    # The admin's CSS shows object tools and captions in capitals: compare case-blind.
    assert "explain availability" in _text(page, ".object-tools").lower()

    page.goto(f"{admin}/stocklevel/")
    rows = _text(page, "#result_list")
    assert "MUG" in rows and "receive | adjust | count | transfer | explain" in rows

    page.goto(f"{admin}/stockmovement/?q=MUG")
    rows = _text(page, "#result_list")
    assert "Receipt" in rows and "PO-1" in rows and "Reservation" in rows
    assert page.locator("#content-main .object-tools a.addlink").count() == 0

    page.goto(f"{admin}/reservation/")
    assert "ORDER-1" in _text(page, "#result_list")

    page.goto(f"{admin}/stockdiscrepancy/")
    assert "DRIFT @ main" in _text(page, "#result_list")


def test_receive_then_refused_count_then_explain(admin_page, live_server, stock):
    page = admin_page
    level = stock["level"]

    page.goto(f"{live_server.url}/admin/inventory/stocklevel/")
    page.click(f'a[href$="/stocklevel/{level.pk}/receive/"]')
    assert "current figures for mug @ main" in _text(page, "#stock-figures").lower()
    page.fill("#id_quantity", "5")
    page.fill("#id_reference", "PO-77")
    page.click("input[type=submit][value='Receive stock']")

    success = _text(page, ".messagelist .success")
    assert success == "Receive stock: done. MUG @ main: on hand 15, reserved 3, available 12"
    assert _text(page, ".field-on_hand .readonly") == "15"

    page.click("text=Record a stock count")
    page.fill("#id_counted_quantity", "2")
    page.click("input[type=submit][value='Record a stock count']")

    error = _text(page, ".messagelist .error")
    assert "Count of 2 for MUG in main is below the 3 units reserved" in error
    assert _text(page, "#stock-figures .on-hand") == "15"
    level.refresh_from_db()
    assert (level.on_hand, level.reserved) == (15, 3)

    page.goto(f"{live_server.url}/admin/inventory/stocklevel/{level.pk}/change/")
    page.click("text=Explain availability")
    assert "MUG: 12 available to sell" in _text(page, "#explain-summary")
    movements = _text(page, ".explain-movements")
    assert "Receipt" in movements and "+15" in movements
    assert "ORDER-1" in _text(page, ".explain-reservations")
    page.screenshot(path=SCREENSHOT, full_page=True)

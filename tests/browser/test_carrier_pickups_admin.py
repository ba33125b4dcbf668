"""Carrier pickups on the warehouse page, as a warehouse manager sets them up: a UPS pickup
with its cut-off and days, and the rule that exactly one pickup is the default."""

from __future__ import annotations

import datetime

import pytest

from inventory.models import CarrierPickup, Warehouse

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = "/tmp/inventory_admin_carrier_pickups.png"
REFUSED_SHOT = "/tmp/inventory_admin_carrier_pickups_refused.png"


def _text(page, selector: str) -> str:
    return page.locator(selector).first.inner_text()


def _save_and_continue(page) -> None:
    with page.expect_navigation():
        page.click("input[name=_continue]")


def _add_pickup(page, row: int, *, carrier: str, cutoff: str, days: list[str]) -> None:
    page.get_by_role("button", name="Add another carrier pickup").click()
    prefix = f"#id_pickups-{row}"
    page.fill(f"{prefix}-carrier", carrier)
    page.fill(f"{prefix}-cutoff", cutoff)
    for box in page.locator(f"input[name=pickups-{row}-weekdays]").all():
        box.set_checked(box.get_attribute("value") in days)


def test_add_a_ups_pickup_and_exactly_one_default(admin_page, live_server):
    page = admin_page
    nyc = Warehouse.objects.create(code="nyc", name="New York", time_zone="America/New_York")
    page.goto(f"{live_server.url}/admin/inventory/warehouse/{nyc.pk}/change/")
    assert "carrier pickups" in _text(page, ".inline-group").lower()

    # Monday to Saturday at 16:30, but not marked as the default: refused, with the reason.
    _add_pickup(page, 0, carrier="UPS", cutoff="16:30", days=["0", "1", "2", "3", "4", "5"])
    _save_and_continue(page)
    assert "Please correct the error below." in _text(page, ".errornote")
    assert _text(page, ".inline-group .errorlist.nonform") == (
        "Mark exactly one pickup as the default: it takes the orders no other pickup takes "
        "(0 marked)."
    )
    assert not CarrierPickup.objects.exists()
    # What was typed is kept: tick the default and save again.
    assert page.input_value("#id_pickups-0-carrier") == "UPS"
    page.check("#id_pickups-0-is_default")
    _save_and_continue(page)

    assert "was changed successfully" in _text(page, ".messagelist .success")
    assert page.input_value("#id_pickups-0-carrier") == "UPS"
    assert page.input_value("#id_pickups-0-cutoff") == "16:30:00"
    ticked = page.locator("input[name=pickups-0-weekdays]:checked").evaluate_all(
        "boxes => boxes.map(b => b.parentElement.textContent.trim())"
    )
    assert ticked == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    assert page.is_checked("#id_pickups-0-is_default")
    ups = CarrierPickup.objects.get(warehouse=nyc)
    assert (ups.carrier, ups.cutoff, ups.weekdays) == ("UPS", datetime.time(16, 30), "012345")
    page.screenshot(path=SCREENSHOT, full_page=True)

    # A second pickup also marked as the default: refused, nothing added.
    _add_pickup(page, 1, carrier="USPS", cutoff="11:00", days=["0", "2", "4"])
    page.check("#id_pickups-1-is_default")
    _save_and_continue(page)
    assert _text(page, ".inline-group .errorlist.nonform").endswith("(2 marked).")
    page.screenshot(path=REFUSED_SHOT, full_page=True)
    assert CarrierPickup.objects.filter(warehouse=nyc).count() == 1
    page.uncheck("#id_pickups-1-is_default")
    _save_and_continue(page)
    assert "was changed successfully" in _text(page, ".messagelist .success")
    assert nyc.default_pickup.carrier == "UPS"
    assert [p.carrier for p in nyc.carrier_pickups()] == ["UPS", "USPS"]


def test_move_or_delete_the_default_pickup_in_one_save(admin_page, live_server):
    page = admin_page
    nyc = Warehouse.objects.create(code="nyc", time_zone="America/New_York")
    CarrierPickup.objects.create(
        warehouse=nyc, carrier="UPS", cutoff=datetime.time(16, 30), is_default=True
    )
    CarrierPickup.objects.create(warehouse=nyc, carrier="USPS", cutoff=datetime.time(11, 0))
    page.goto(f"{live_server.url}/admin/inventory/warehouse/{nyc.pk}/change/")

    # Rows come by cut-off: USPS (11:00) first, UPS second.
    assert page.input_value("#id_pickups-0-carrier") == "USPS"
    page.check("#id_pickups-0-is_default")
    page.uncheck("#id_pickups-1-is_default")
    _save_and_continue(page)

    assert "was changed successfully" in _text(page, ".messagelist .success")
    assert page.is_checked("#id_pickups-0-is_default")
    assert not page.is_checked("#id_pickups-1-is_default")
    assert Warehouse.objects.get(pk=nyc.pk).default_pickup.carrier == "USPS"

    # Delete the default pickup and hand the default back to UPS, again in one save.
    page.check("#id_pickups-0-DELETE")
    page.check("#id_pickups-1-is_default")
    _save_and_continue(page)

    assert "was changed successfully" in _text(page, ".messagelist .success")
    assert page.input_value("#id_pickups-0-carrier") == "UPS"
    assert page.is_checked("#id_pickups-0-is_default")
    assert [p.carrier for p in CarrierPickup.objects.filter(warehouse=nyc)] == ["UPS"]

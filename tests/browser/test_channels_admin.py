"""The channels admin in a real browser, against the channel simulators: the channel page with
masked credentials and health, Test connection, a listing's quantity explained, an import
error retried, and the push queue and push log."""

from __future__ import annotations

import pytest

from channels_app.models import OrderImportError
from channels_app.services.sync import listing_push_enqueue
from tests.channels_django import conftest as channel_world

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The four simulators and channels connected to them (tests/channels_django/conftest.py).
simulators = channel_world.simulators
world = channel_world.world

SCREENSHOT = "/tmp/channels_admin_explain.png"


def _text(page, selector: str) -> str:
    return page.locator(selector).first.inner_text()


def test_channel_page_and_test_connection(admin_page, live_server, world):
    page = admin_page
    shopify = world.channels["shopify"]

    page.goto(f"{live_server.url}/admin/channels_app/channel/")
    rows = _text(page, "#result_list")
    for code in ("amazon-us", "shopify", "ebay-us", "walmart-us"):
        assert code in rows
    assert "never synced" in rows

    page.click(f'#result_list a[href$="/channel/{shopify.pk}/change/"]')
    credentials = _text(page, ".field-stored_credentials")
    assert "access_token" in credentials and "••••••••ator" in credentials
    assert "shpat_simulator" not in page.content()
    assert "never synced" in _text(page, ".field-health")
    # The admin's CSS shows fieldset titles and object tools in capitals: compare case-blind.
    legends = page.locator("fieldset h2, fieldset legend").all_inner_texts()
    assert {"connection", "quantity policy", "sync health"} <= {t.strip().lower() for t in legends}

    page.click("button.oms-tool:has-text('Test connection')")
    success = _text(page, ".messagelist .success")
    assert success.lower().startswith("shopify: connection ok. shopify store")
    assert "ok" in _text(page, ".field-health")
    page.screenshot(path="/tmp/channels_admin_channel.png", full_page=True)

    page.goto(f"{live_server.url}/admin/channels_app/synclog/")
    rows = _text(page, "#result_list")
    assert "Connection test" in rows and "Shopify store" in rows


def test_listing_explain_page_shows_the_rules(admin_page, live_server, world):
    page = admin_page
    channel = world.channels["amazon"]
    channel.safety_buffer = 2
    channel.max_shown = 5
    channel.save()
    listing = world.listings["amazon"]

    page.goto(f"{live_server.url}/admin/channels_app/listing/?q=MUG")
    assert "Amazon US" in _text(page, "#result_list")
    page.click(f'a.channels-explain[href$="/listing/{listing.pk}/explain/"]')

    assert "10 available" in _text(page, "#explain-available")
    steps = _text(page, "#explain-steps")
    assert "safety buffer\t8\t-2" in steps
    assert "maximum shown\t5\tat most 5" in steps
    assert "= 5 to show on amazon-us" in _text(page, "#explain-result")
    page.screenshot(path=SCREENSHOT, full_page=True)


def test_retry_an_import_error_from_the_list(admin_page, live_server, world):
    page = admin_page
    sim, channel = world.sims["shopify"], world.channels["shopify"]
    order_json = sim.create_order([("MUG", 1)])
    error = OrderImportError.objects.create(
        channel=channel,
        external_id=str(order_json["id"]),
        reason="unknown SKU MUG (listed since)",
        raw_payload=order_json,
    )

    page.goto(f"{live_server.url}/admin/channels_app/orderimporterror/?state=open")
    assert "unknown SKU MUG" in _text(page, "#result_list")
    page.click(f'#result_list a[href*="/orderimporterror/{error.pk}/change/"]')
    assert '"line_items"' in _text(page, ".field-payload")

    page.go_back()
    page.check(f"input[name=_selected_action][value='{error.pk}']")
    page.select_option("select[name=action]", "retry_import")
    page.click("button[name=index]")
    success = _text(page, ".messagelist .success")
    assert f"{order_json['id']}: imported (created) as order" in success
    assert "unknown SKU MUG" not in _text(page, "#changelist")  # no longer open
    error.refresh_from_db()
    assert error.resolved_at is not None


def test_pending_pushes_and_push_log_pages(admin_page, live_server, world):
    page = admin_page
    listing = world.listings["ebay"]
    listing_push_enqueue(listing=listing, quantity=7)
    listing_push_enqueue(listing=listing, quantity=6)  # supersedes the unsent 7

    page.goto(f"{live_server.url}/admin/channels_app/pendingpush/")
    assert _text(page, "#result_list .field-listing_link") == "ebay-us:MUG"
    assert _text(page, "#result_list .field-quantity") == "6"
    assert _text(page, "#result_list .field-version") == "2"
    assert _text(page, "#result_list .field-state_badge") == "pending"
    assert _text(page, "#result_list .field-superseded") == "1"

    page.goto(f"{live_server.url}/admin/channels_app/pushlog/")
    states = page.locator("#result_list .field-state_badge").all_inner_texts()
    assert states == ["Pending", "Superseded by a newer value", "Pending"]
    page.click("#changelist-filter >> text=Superseded by a newer value")
    assert page.locator("#result_list .field-state_badge").all_inner_texts() == [
        "Superseded by a newer value"
    ]
    assert _text(page, "#result_list .field-quantity") == "7"

    page.goto(f"{live_server.url}/admin/channels_app/listing/{listing.pk}/change/")
    assert _text(page, ".field-push_state .readonly") == "pending → 6"
    assert "Superseded by a newer value" in _text(page, ".field-recent_pushes")

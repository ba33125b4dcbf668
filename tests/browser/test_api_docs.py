"""The REST API's documentation page in a real browser: served entirely from our own static
files (the machine running the back office may have no outside network)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_swagger_ui_lists_the_endpoints_without_outside_network(admin_page, live_server):
    page = admin_page.context.new_page()  # the staff session, without the dashboard's fetches
    outside, failed = [], []
    page.on(
        "request",
        lambda request: (
            outside.append(request.url) if not request.url.startswith(live_server.url) else None
        ),
    )
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("pageerror", lambda error: failed.append(str(error)))

    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".opblock-tag", timeout=15_000)

    tags = page.locator(".opblock-tag").all_inner_texts()
    assert any("returns" in tag.lower() for tag in tags)
    assert any("orders" in tag.lower() for tag in tags)
    assert outside == []
    assert failed == []
    page.screenshot(path="/tmp/api_docs.png")

"""Every asset a staff member's browser asks for on the way in is there: no 404s in the
console (the site's icon included)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_login_and_front_page_load_every_asset(page, live_server, django_user_model):
    from tests.browser.conftest import ADMIN_PASSWORD

    django_user_model.objects.create_superuser("boss", "boss@example.com", ADMIN_PASSWORD)
    missing = []
    page.on(
        "response",
        lambda response: missing.append(response.url) if response.status >= 400 else None,
    )
    page.goto(f"{live_server.url}/admin/login/")
    page.wait_for_load_state("networkidle")
    assert page.locator("link[rel=icon]").count() == 1
    page.fill("#id_username", "boss")
    page.fill("#id_password", ADMIN_PASSWORD)
    with page.expect_navigation():
        page.click("input[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "Operations" in page.title()
    assert missing == []

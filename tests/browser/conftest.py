"""Browser tests: Debian's chromium driven by Playwright against pytest-django's live server.

Fixtures for the whole suite: ``browser`` (one Chromium per session), ``page`` (a fresh
context per test) and ``admin_page`` (logged in through the real admin login form as a new
superuser). Mark tests ``@pytest.mark.browser`` and
``@pytest.mark.django_db(transaction=True)``: the live server thread must see the data.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Playwright's sync API keeps an asyncio event loop running in this thread, which makes
# Django refuse ORM calls from the test body unless told the loop is not really serving.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM_MISSING = (
    "Chromium not found: install Debian's chromium (apt-get install chromium) to run browser tests"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_PASSWORD = "browser-test-password"


def chromium_path() -> str | None:
    """Debian's chromium binary, if installed (never a Playwright-downloaded browser)."""
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator:
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        executable = None
    if executable is None:
        pytest.skip(CHROMIUM_MISSING)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser(
        "browser-admin", "browser-admin@example.com", ADMIN_PASSWORD
    )


@pytest.fixture
def admin_page(page, live_server, admin_user):
    """A page logged in to the admin as a superuser, through the real login form."""
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", admin_user.username)
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert "Operations" in page.title()
    return page

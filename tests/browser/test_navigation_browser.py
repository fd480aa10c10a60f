"""Navigation in a real browser: deep links work even as the very first request to a server."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import FIRST_VISIT, wait_idle


def test_a_deep_link_as_the_first_visit_gets_the_apps_navigation(page: Page, app_url: str) -> None:
    page.goto(app_url + "/history?template=qa-basic")
    wait_idle(page, timeout=FIRST_VISIT)  # the first visit builds the demo
    nav = page.locator('[data-testid="stSidebarNav"]')
    expect(nav).to_contain_text("History & Diff")  # the titles from app.py, not file names
    expect(nav).to_contain_text("Templates")
    expect(page.get_by_text("Database:")).to_be_visible()  # app.py's shared sidebar ran
    assert "/history" in page.url

"""The Templates screen in a real browser: open the app, create a template, see it listed."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import shot, wait_idle


def test_create_a_template_through_the_ui(page: Page, app_url: str) -> None:
    page.goto(f"{app_url}/templates")
    wait_idle(page)
    expect(page.get_by_role("heading", name="Templates")).to_be_visible()
    shot(page, "templates-01-list")

    page.get_by_role("tab", name="New template").click()
    page.get_by_label("Name", exact=True).fill("browser-greeter")
    page.get_by_label("Name", exact=True).press("Tab")
    wait_idle(page)
    text = page.get_by_label("Text", exact=True).last
    text.fill("Hello {name}, welcome to {place}!")
    text.press("Control+Enter")
    wait_idle(page)
    expect(page.locator("p", has_text="Variables:").last).to_contain_text("place")

    page.get_by_role("button", name="Create template").click()
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"Created browser-greeter 1\.0\.0"))).to_be_visible()
    # listed: the editor now shows it, and the search finds it
    expect(page.get_by_text(re.compile(r"browser-greeter · 1\.0\.0"))).to_be_visible()
    assert "template=browser-greeter" in page.url
    shot(page, "templates-02-created")


def test_invalid_text_shows_its_position_in_the_browser(page: Page, app_url: str) -> None:
    page.goto(f"{app_url}/templates?tab=new")
    wait_idle(page)
    page.get_by_label("Name", exact=True).fill("bad")
    text = page.get_by_label("Text", exact=True).last
    text.fill("Hi {user.__class__}")
    text.press("Control+Enter")
    wait_idle(page)
    expect(
        page.get_by_role("alert").filter(has_text=re.compile(r"line 1, column 4: attribute access"))
    ).to_be_visible()
    expect(page.get_by_role("button", name="Create template")).to_be_disabled()

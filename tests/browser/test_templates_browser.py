"""The Templates screen in a real browser: open the app, create a template, see it listed."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import FIRST_VISIT, shot, wait_idle


def test_create_a_template_through_the_ui(page: Page, app_url: str) -> None:
    page.goto(f"{app_url}/templates")
    # the first run builds the demo workspace (slow on a loaded machine), then shows the screen
    page.get_by_role("heading", name="Templates").wait_for(timeout=FIRST_VISIT)
    wait_idle(page)
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
    page.get_by_role("heading", name="Templates").wait_for(timeout=FIRST_VISIT)
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


def test_save_without_editing_creates_no_version(page: Page, app_url: str, tmp_path) -> None:
    """Issue 22, item 1: the editor's own schema defaults (``required``) are not an edit, so on
    an untouched qa-basic Save is disabled and clicking it anyway writes nothing."""
    from promptver import Workspace

    def versions() -> list[str]:
        ws = Workspace.open(tmp_path / "browser.duckdb")
        try:
            return [c.commit for c in ws.versions.history("qa-basic")]
        finally:
            ws.close()

    page.set_viewport_size({"width": 1500, "height": 1000})
    page.goto(f"{app_url}/templates?template=qa-basic")
    # the first run builds the demo workspace, then shows the screen
    page.get_by_role("heading", name="Templates").wait_for(timeout=FIRST_VISIT)
    wait_idle(page)
    before = versions()
    expect(page.get_by_text(re.compile(r"qa-basic · 1\.1\.1"))).to_be_visible()
    save = page.get_by_role("button", name="Save new version")
    expect(save).to_be_disabled()
    expect(page.get_by_text("No changes to save yet")).to_be_visible()
    save.click(force=True)  # a click on the disabled button, as an impatient user would
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"Saved qa-basic"))).to_have_count(0)
    assert versions() == before
    shot(page, "templates-03-untouched")

"""A chat prompt edited in a real browser: change the temperature, save, see the new version and
its configuration diff on History & Diff (issue 16)."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.conftest import shot, wait_idle

MESSAGES = [
    {"role": "system", "content": "You answer questions about {product}. Be brief."},
    {"placeholder": "history"},
    {"role": "user", "content": "{question}"},
]


def _ws(tmp_path: Path):
    from promptver import Workspace

    return Workspace.open(tmp_path / "browser.duckdb")


def test_edit_a_chat_prompt_temperature_and_see_the_diff(
    page: Page, app_url: str, tmp_path: Path
) -> None:
    page.set_viewport_size({"width": 1500, "height": 1000})
    page.goto(app_url)  # the first run builds the demo workspace
    page.get_by_role("heading", name="Home").wait_for(timeout=90_000)
    wait_idle(page)
    ws = _ws(tmp_path)
    try:
        ws.templates.create(
            "browser-chat",
            messages=MESSAGES,
            config={"provider": "openai", "model": "gpt-4o-mini", "temperature": 0.2},
        )
    finally:
        ws.close()

    page.goto(f"{app_url}/templates?template=browser-chat")
    page.get_by_role("heading", name="Templates").wait_for(timeout=60_000)
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"browser-chat · 1\.0\.0"))).to_be_visible()
    # the conversation preview renders each message as a chat bubble
    expect(page.locator('[data-testid="stChatMessage"]').first).to_be_visible()
    save = page.get_by_role("button", name="Save new version")
    expect(save).to_be_disabled()  # nothing edited: nothing to save
    shot(page, "chat-01-editor")

    slider = (
        page.locator('[data-testid="stSlider"]')
        .filter(has_text="Temperature")
        .get_by_role("slider")
    )
    slider.focus()
    page.keyboard.press("ArrowRight")  # one step: 0.2 → 0.25
    wait_idle(page)
    expect(slider).to_have_value("0.25")
    message = page.get_by_role("textbox", name="Commit message").first
    expect(message).to_have_value(re.compile(r"temperature 0\.2 → 0\.25"))
    expect(save).to_be_enabled()
    save.click()
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"Saved browser-chat 1\.1\.0"))).to_be_visible()
    shot(page, "chat-02-saved")

    ws = _ws(tmp_path)
    try:
        t = ws.templates.get("browser-chat")
        assert (t.version, t.config["temperature"], t.messages) == ("1.1.0", 0.25, MESSAGES)
    finally:
        ws.close()

    page.get_by_role("link", name="Compare with the previous version").click()
    page.get_by_role("heading", name="History & Diff").wait_for(timeout=60_000)
    wait_idle(page)
    expect(page.get_by_text("Model configuration changes")).to_be_visible()
    table = page.locator('[data-testid="stDataFrame"]').filter(has_text="path")
    expect(table.first).to_be_visible()
    expect(page.locator("table.pv-diff").first).to_contain_text("temperature: 0.25")
    shot(page, "chat-03-diff")

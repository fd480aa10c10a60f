"""In a real browser: create a branch, commit on it from the Templates page, see the diff."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import FIRST_VISIT, shot, wait_idle


def _pick(page, label: str, option: str) -> None:
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def test_create_branch_edit_it_and_see_the_diff(page, app_url):
    page.goto(f"{app_url}/history?template=qa-basic")
    wait_idle(page, timeout=FIRST_VISIT)  # the first visit builds the demo
    page.get_by_role("tab", name="Branches").click()
    page.get_by_label("Name", exact=True).and_(page.locator("input")).fill("browser-branch")
    page.get_by_role("button", name="Create branch").click()
    wait_idle(page)
    # the new branch becomes the "to" side of the diff (and of the address)
    page.wait_for_url(re.compile(r"to=browser-branch"))
    shot(page, "history-branch-created")

    # commit on the branch from the Templates page, as a user would
    page.goto(f"{app_url}/templates?template=qa-basic")
    wait_idle(page)
    _pick(page, "Branch", "browser-branch")
    text = page.get_by_label("Text", exact=True).and_(page.locator("textarea")).first
    current = text.input_value()
    text.fill(
        current.replace(
            "You are a helpful support assistant", "You are a warm and precise support assistant"
        )
    )
    text.press("Control+Enter")
    wait_idle(page)
    page.get_by_label("Commit message").and_(page.locator("input")).first.fill("Warmer tone")
    page.get_by_label("Commit message").and_(page.locator("input")).first.press("Enter")
    wait_idle(page)
    commit = page.get_by_role("button", name="Commit to browser-branch")
    expect(commit).to_be_enabled()  # the text and the message have reached the server
    commit.click()
    wait_idle(page)
    # the commit is written before the diff is opened (a loaded machine once opened it first)
    expect(page.get_by_text("Saved qa-basic on browser-branch")).to_be_visible()

    # the deep link opens the diff with the changed words highlighted
    page.goto(f"{app_url}/history?template=qa-basic&from=main&to=browser-branch")
    wait_idle(page)
    inserted = page.locator("table.pv-diff ins")
    inserted.first.wait_for()
    words = " ".join(inserted.all_inner_texts())
    assert "warm and precise" in words
    deleted = " ".join(page.locator("table.pv-diff del").all_inner_texts())
    assert "helpful" in deleted
    assert page.get_by_text(re.compile(r"^browser-branch \(")).count() >= 1
    shot(page, "history-diff")

    # the history graph shows the branch lane
    page.get_by_role("tab", name="History").click()
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
    shot(page, "history-graph")

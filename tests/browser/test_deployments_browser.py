"""The Deployments screen in a real browser: deploy a version, then roll it back."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from promptver import Workspace
from tests.browser.conftest import FIRST_VISIT, shot, wait_idle


def test_deploy_then_roll_back(page, app_url, tmp_path: Path):
    page.goto(app_url)
    # the first run builds the demo workspace, then shows Home
    page.get_by_role("heading", name="Home").wait_for(timeout=FIRST_VISIT)
    wait_idle(page)
    ws = Workspace.open(tmp_path / "browser.duckdb")
    newest = ws.deployments.versions_of("qa-basic")[0].version
    live = ws.deployments.live("qa-basic", "production")
    assert newest != live.version

    nav = page.get_by_test_id("stSidebarNav")
    nav.get_by_role("link", name="Deployments", exact=True).click()
    page.get_by_role("heading", name="Deployments").wait_for()
    wait_idle(page)

    # deploy the newest version of qa-basic (preselected) to production
    page.locator(".st-key-dep_env").get_by_role("radio", name="production").click()
    wait_idle(page)
    note = page.locator(".st-key-dep_note input")
    note.fill("ship the product name")
    note.press("Enter")
    wait_idle(page)
    deploy = page.locator(".st-key-dep_deploy button")
    assert deploy.inner_text().strip().endswith(f"Deploy {newest} to production")
    deploy.click()
    expect(page.get_by_text(f"Deployed qa-basic {newest} to production")).to_be_visible()
    wait_idle(page)
    card = (
        page.locator(".stColumn")
        .filter(has_text="production")
        .filter(has=page.locator(".st-key-dep_rollback_production"))
        .last
    )
    assert newest in card.inner_text()
    shot(page, "deployments-after-deploy")

    # roll back from the production card, through the confirmation dialog
    # (a button with a tooltip is rendered twice, once hidden: click the visible one)
    rollback = page.locator(".st-key-dep_rollback_production button:visible")
    expect(rollback).to_have_count(1)
    rollback.click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    wait_idle(page)
    assert f"from {newest} to {live.version}" in dialog.inner_text()
    # the reason is required: Roll back stays disabled until one is given
    # (during a rerun the dialog briefly holds the stale button beside the new one: wait on
    # the button in the wanted state rather than on a settled page)
    yes = dialog.locator(".st-key-dep_rb_yes button:visible")
    expect(yes).to_have_count(1)
    expect(yes).to_be_disabled()
    note = dialog.locator(".st-key-dep_rb_note input")
    note.fill("the product name confused users")
    note.press("Enter")
    enabled = dialog.locator(".st-key-dep_rb_yes button:visible:not([disabled])")
    expect(enabled).to_have_count(1)
    expect(dialog.get_by_text("Give the reason for the rollback")).to_have_count(0)
    wait_idle(page)
    expect(enabled).to_have_count(1)
    shot(page, "deployments-rollback-dialog")
    enabled.click()
    expect(
        page.get_by_text(f"Rolled back qa-basic in production to {live.version}")
    ).to_be_visible()
    expect(page.get_by_role("dialog")).to_have_count(0)
    wait_idle(page)

    # the timeline shows the rollback first, with the diff one click away
    first = page.locator('[data-testid="stExpander"]').first
    assert "rollback" in first.inner_text() and live.version in first.inner_text()
    first.locator("summary").click()
    first.locator('[data-testid="stCode"]').wait_for()
    assert f"qa-basic {newest} (replaced)" in first.inner_text()
    shot(page, "deployments-timeline")

    log = ws.deployments.history("qa-basic", "production")
    assert [(d.action, d.version) for d in log[:2]] == [
        ("rollback", live.version),
        ("deploy", newest),
    ]
    assert log[0].note == "the product name confused users"
    assert (log[1].note, log[1].author) == ("ship the product name", "browser-tester")
    assert ws.get_prompt("qa-basic", "production").version == live.version
    ws.close()

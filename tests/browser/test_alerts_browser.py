"""Alerts in a real browser: create a rule, upload a CSV on the Metrics screen, see it fire."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from playwright.sync_api import expect

from promptver.versioning import utcnow
from tests.browser.conftest import FIRST_VISIT, shot, wait_idle


def open_count(page) -> int:
    return int(page.locator('[data-testid="stMetricValue"]').first.inner_text().strip())


def test_a_new_rule_fires_after_a_csv_upload(page, app_url, tmp_path: Path):
    page.goto(f"{app_url}/alerts")
    page.get_by_role("heading", name="Alerts").wait_for(timeout=FIRST_VISIT)  # builds the demo
    wait_idle(page)
    before = open_count(page)

    # a rule on qa-basic's mean latency, through the dialog
    page.get_by_role("tab", name="Rules").click()
    page.locator(".st-key-alr_new button").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    wait_idle(page)
    dialog.locator(".st-key-alr_form_new_name input").fill("browser: slow qa-basic")
    dialog.locator(".st-key-alr_form_new_metric").click()
    page.get_by_role("option", name="mean latency").click()
    wait_idle(page)
    threshold = dialog.locator(".st-key-alr_form_new_threshold input")
    threshold.fill("4000")
    threshold.press("Enter")
    window = dialog.locator(".st-key-alr_form_new_window input")
    window.fill("1h")
    window.press("Enter")
    events = dialog.locator(".st-key-alr_form_new_min input")
    events.fill("3")
    events.press("Enter")
    dialog.locator(".st-key-alr_form_new_template").click()
    page.get_by_role("option", name="qa-basic", exact=True).click()
    wait_idle(page)
    expect(dialog.get_by_text("over a 1h window")).to_be_visible()
    shot(page, "alerts-new-rule")
    dialog.locator(".st-key-alr_form_new_save button").click()
    expect(page.get_by_text("Created rule")).to_be_visible()
    wait_idle(page)

    # very slow calls of qa-basic an hour ago (five minutes each: with the demo's few dozen fast
    # calls of that hour the mean stays far above 4 s), uploaded on the Metrics screen
    t = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    lines = ["timestamp,template,environment,user_id,latency_ms"] + [
        f"{(t + timedelta(minutes=i)).strftime('%Y-%m-%dT%H:%M:%SZ')},qa-basic,production,"
        f"browser-{i},{300000 + 100 * i}"
        for i in range(4)
    ]
    csv = tmp_path / "slow.csv"
    csv.write_text("\n".join(lines) + "\n")
    page.get_by_role("link", name="Metrics").click()
    page.get_by_role("heading", name="Metrics").wait_for()
    wait_idle(page)
    page.get_by_role("tab", name="Import CSV").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(csv))
    wait_idle(page)
    page.get_by_text("All 4 rows are valid").wait_for()
    page.get_by_role("button", name="Import 4 events").click()
    wait_idle(page)
    page.get_by_text("Imported 4 events from slow.csv").wait_for()

    # the rule fired on the import (the demo's p95 rule may fire on today's window too): its
    # alert is the newest, with the link to its trend
    page.get_by_role("link", name="Alerts", exact=True).click()
    page.get_by_role("heading", name="Alerts").wait_for()
    wait_idle(page)
    assert open_count(page) > before
    # its group (rule and template) has the newest window: it is the one picked below the table
    pick = page.locator(".st-key-alr_group input")  # the selectbox shows its value in an input
    expect(pick).to_have_value(re.compile(r"qa-basic · browser: slow qa-basic · 1 window"))
    link = page.get_by_role("link", name="Open the mean latency trend of qa-basic")
    expect(link).to_be_visible()
    shot(page, "alerts-fired-after-upload")

    # the link opens the Trends screen on that template and metric
    link.click()
    page.get_by_role("heading", name="Trends").wait_for()
    wait_idle(page)
    assert "metric=latency_avg" in page.url and "template=qa-basic" in page.url
    expect(page.get_by_role("heading", name="Mean latency")).to_be_visible()
    shot(page, "alerts-trend-link")

    # acknowledge from the table rows (issue 22 item 9): back on Alerts, tick the first row's
    # box in the grid (the new rule's group, the newest window)
    page.get_by_role("link", name="Alerts", exact=True).click()
    page.get_by_role("heading", name="Alerts").wait_for()
    wait_idle(page)
    expect(page.locator(".st-key-alr_group input")).to_have_value(
        re.compile(r"browser: slow qa-basic")
    )
    grid = page.locator(".st-key-alr_groups [data-testid='stDataFrameResizable']")
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 16, box["y"] + 35 + 35 / 2)  # row marker of the first row
    wait_idle(page)
    button = page.locator(".st-key-alr_ack_rows button").first
    expect(button).to_have_text(re.compile(r"Acknowledge 1 selected"))
    opened = open_count(page)
    button.click()
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"Acknowledged 1 alert"))).to_be_visible()
    assert open_count(page) == opened - 1
    shot(page, "alerts-acknowledged-from-rows")

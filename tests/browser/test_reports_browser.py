"""In a real browser: download the HTML report from the Experiments screen, open the file from
disk, and check that it shows its charts without errors and without asking the network for
anything."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS, FIRST_VISIT, shot, start_app, wait_idle
from tests.reports_helpers import NAME, TREATMENT, build_hostile


@pytest.fixture
def report_app(tmp_path: Path, browser_type_launch_args: dict):
    """The dashboard on a database holding the stopped, payload-laden experiment."""
    from promptver import Settings, Workspace

    db = tmp_path / "reports.duckdb"
    with Workspace.open(db, settings=Settings()) as ws:
        build_hostile(ws, n=60)
    proc, url = start_app(db)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_download_the_html_report_and_open_it_offline(
    page: Page, report_app: str, tmp_path: Path
) -> None:
    page.goto(report_app)
    wait_idle(page, timeout=FIRST_VISIT)  # the first visit builds the demo
    nav = page.get_by_test_id("stSidebarNav")
    nav.get_by_role("link", name="Experiments", exact=True).click()
    wait_idle(page)
    page.get_by_role("tab", name="Results").click()
    wait_idle(page)
    button = page.get_by_test_id("stDownloadButton").filter(has_text="HTML").get_by_role("button")
    button.scroll_into_view_if_needed()
    expect(button).to_be_visible()
    shot(page, "reports-download-buttons")
    with page.expect_download() as info:
        button.click()
    download = info.value
    assert download.suggested_filename.startswith("report-") and (
        download.suggested_filename.endswith(".html")
    )
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    assert path.read_bytes().startswith(b"<!DOCTYPE html>")

    report = page.context.new_page()
    requests: list[str] = []
    problems: list[str] = []
    report.on("request", lambda r: requests.append(r.url))
    report.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    report.on("pageerror", lambda e: problems.append(str(e)))
    report.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))
    report.goto(path.as_uri())
    report.wait_for_load_state("load")  # a static file: parsed, charts (inline SVG) included
    expect(report).to_have_title(f"Experiment report: {NAME}")
    expect(report.locator("h1")).to_have_text(f"Experiment report: {NAME}")
    expect(report.get_by_text(f"Winner: {TREATMENT}.")).to_be_visible()
    charts = report.locator("figure svg")
    assert charts.count() >= 5
    box = charts.first.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 100  # drawn, not collapsed
    assert report.locator("script").count() == 0
    assert report.evaluate("() => document.querySelectorAll('[onmouseover]').length") == 0
    ARTIFACTS.mkdir(exist_ok=True)
    shot(report, "report-html")
    # printing: nothing wider than A4's printable width (182 mm ≈ 688 CSS px), A4 pages
    report.emulate_media(media="print")
    report.set_viewport_size({"width": 688, "height": 1000})
    assert report.evaluate("() => document.documentElement.scrollWidth") <= 688
    pdf = report.pdf(prefer_css_page_size=True, print_background=False)
    (ARTIFACTS / "report-html.pdf").write_bytes(pdf)
    boxes = [
        (float(w), float(h))
        for w, h in re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    ]
    assert len(boxes) > 1  # several pages: sections start on new pages
    assert all(abs(w - 595.3) < 2 and abs(h - 841.9) < 2 for w, h in boxes), boxes  # A4
    assert not problems, problems
    assert requests and all(u.startswith(("file:", "data:")) for u in requests), requests

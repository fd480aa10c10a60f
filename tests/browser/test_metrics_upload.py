"""The Metrics screen in a real browser: drag-and-drop upload, validation, the problem list,
import, and the import history with the refused file."""

from __future__ import annotations

from pathlib import Path

from promptver.metrics import example_csv
from tests.browser.conftest import FIRST_VISIT, shot, wait_idle


def test_upload_a_csv_validate_and_import(page, app_url, tmp_path: Path):
    good = tmp_path / "events.csv"
    good.write_bytes(example_csv())
    bad = tmp_path / "broken.csv"
    bad.write_bytes(b"timestamp,template,user_id,latency_ms\n2026-01-05T10:00:00Z,qa-basic,u1,-4\n")

    page.set_viewport_size({"width": 1500, "height": 1000})
    page.goto(f"{app_url}/metrics")
    wait_idle(page, timeout=FIRST_VISIT)  # the first visit builds the demo
    page.get_by_role("tab", name="Import CSV").click()

    # a broken file: the problems table names the line and the column, no import button
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(bad))
    wait_idle(page)
    page.get_by_text("cannot be imported").first.wait_for()
    assert page.get_by_role("button", name="Import").count() == 0
    page.get_by_text("Rows with problems").wait_for()
    shot(page, "metrics-upload-refused")
    # the problem list downloads as a CSV that names line, column and reason
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the problem list (CSV)").click()
    assert download.value.suggested_filename == "broken-problems.csv"
    listed = Path(download.value.path()).read_text(encoding="utf-8-sig").splitlines()
    assert listed == ["line,column,problem,code", "2,latency_ms,must be ≥ 0 (got -4),row"]

    # a valid file: preview, "all rows valid", then the import with its summary
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(good))
    wait_idle(page)
    page.get_by_text("All 24 rows are valid").wait_for()
    page.get_by_role("button", name="Import 24 events").click()
    wait_idle(page)
    page.get_by_text("Imported 24 events from events.csv").wait_for()
    shot(page, "metrics-upload-imported")

    # the history lists the import and, separately, the refused file with who and why
    page.get_by_role("tab", name="Import history").click()
    page.get_by_text("Purging old events").wait_for()
    page.get_by_text("Refused files").wait_for()
    history = page.locator('[data-testid="stDataFrame"]').filter(has_text="Why it was refused")
    history.wait_for()
    wait_idle(page)
    shot(page, "metrics-import-history")
    with page.expect_download() as again:
        page.get_by_role("button", name="Download the problem list", exact=True).click()
    assert again.value.suggested_filename == "broken-problems.csv"
    assert "must be ≥ 0 (got -4)" in Path(again.value.path()).read_text(encoding="utf-8-sig")

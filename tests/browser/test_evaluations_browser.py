"""The Evaluations screen in a real browser: a refused upload with its problems, then a valid
file imported and compared."""

from __future__ import annotations

from pathlib import Path

from tests.browser.conftest import FIRST_VISIT, shot, wait_idle

H = "dataset,item_id,template,version,output,quality,quality_human"


def test_upload_refused_then_import_and_compare(page, app_url, tmp_path: Path):
    bad = tmp_path / "broken.csv"
    bad.write_text(f"{H}\nbrowser-set,a,qa-basic,1.0.0,x,12ms,\n")
    good = tmp_path / "scores.csv"
    rows = [H]
    for i in range(30):
        b = 0.4 + (i % 6) / 10
        c = b + (0.05 if i % 4 else -0.03)
        rows.append(f"browser-set,item-{i},qa-basic,1.0.0,old answer {i},{b:.3f},")
        rows.append(f"browser-set,item-{i},qa-basic,1.1.0,new answer {i},{c:.3f},")
    good.write_text("\n".join(rows) + "\n")

    page.set_viewport_size({"width": 1500, "height": 1000})
    page.goto(f"{app_url}/evaluations?tab=import")
    wait_idle(page, timeout=FIRST_VISIT)  # the first visit builds the demo
    upload = page.locator('[data-testid="stFileUploaderDropzoneInput"]')

    upload.set_input_files(str(bad))
    wait_idle(page)
    page.get_by_text("broken.csv cannot be imported").first.wait_for()
    page.get_by_text("'12ms' is not a number").first.wait_for()
    assert page.get_by_role("button", name="Import").count() == 0
    shot(page, "evaluations-upload-refused")

    upload.set_input_files(str(good))
    wait_idle(page)
    page.get_by_text("All 60 rows are valid").wait_for()
    page.get_by_role("button", name="Import 60 rows").click()
    wait_idle(page)
    page.get_by_text("Imported 60 rows from scores.csv").wait_for()

    page.get_by_role("tab", name="Compare").click()
    wait_idle(page)
    page.get_by_text("1.1.0 against 1.0.0").wait_for()
    page.get_by_text("Regressions").first.wait_for()
    assert page.locator('[data-testid="stDataFrame"]').count() >= 3
    shot(page, "evaluations-compare")

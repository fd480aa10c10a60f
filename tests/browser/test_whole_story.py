"""The whole story in a real browser, as an analyst lives it, with a screenshot of every step
(``test-artifacts/story-NN-….png``):

create a template → branch it → edit the branch → view the diff → deploy the main version →
configure and start an experiment between main and the branch → upload a CSV of results →
see the winner → stop the experiment → export the HTML report → merge the winning branch →
deploy it → roll back.

The CSV's users are routed with the contract's formula (md5 of ``salt:user_id``, computed here
independently), so every row carries the variant the experiment gives that user, and the branch
clearly wins on quality. Widgets are found by their keys (``.st-key-…``), and every step waits
for Streamlit to finish its run rather than for a fixed time.
"""

from __future__ import annotations

import csv
import hashlib
import random
import re
from datetime import timedelta
from pathlib import Path

from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from promptver import Workspace
from tests.browser.conftest import FIRST_VISIT, shot, wait_idle

TEMPLATE = "story-qa"
BRANCH = "story-short"
EXPERIMENT = "story-exp"
SALT = "story-salt"
USERS = 500


def key(page: Page, k: str):
    """The element of the widget with key ``k``."""
    return page.locator(f".st-key-{k}")


def button(page: Page, k: str):
    """The button with key ``k`` (one with help text has a hidden twin: take the visible one)."""
    return page.locator(f".st-key-{k} button:visible")


def pick(page: Page, box, option: str) -> None:
    """Choose ``option`` in the selectbox ``box`` (retrying if a rerun closes the list)."""
    choice = page.get_by_role("option", name=option, exact=True)
    for _ in range(5):
        box.get_by_role("combobox").click()
        try:
            choice.wait_for(timeout=10_000)  # else a rerun closed the list: retry
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            wait_idle(page)
    choice.click()
    wait_idle(page)


def flash(page: Page, pattern: str) -> None:
    """The success message a write leaves after its rerun."""
    expect(page.get_by_text(re.compile(pattern)).first).to_be_visible()


def variant_of(user: str) -> str:
    """The contract's routing for a 50/50 split of control and variant-1."""
    bucket = int.from_bytes(hashlib.md5(f"{SALT}:{user}".encode()).digest()[:8], "big") / 2**64
    return "control" if bucket < 0.5 else "variant-1"


def results_csv(path: Path, start) -> int:  # type: ignore[no-untyped-def]
    """One event per user after the start: the branch (variant-1) answers clearly better."""
    rng = random.Random(11)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "timestamp",
                "template",
                "user_id",
                "experiment",
                "variant",
                "quality_score",
                "latency_ms",
                "success",
            ]  # fmt: skip
        )
        for i in range(USERS):
            user = f"story-user-{i:03d}"
            variant = variant_of(user)
            mean = 0.78 if variant == "variant-1" else 0.62
            quality = min(1.0, max(0.0, rng.gauss(mean, 0.08)))
            at = start + timedelta(milliseconds=i + 1)
            w.writerow(
                [
                    at.isoformat().replace("+00:00", "Z"),
                    TEMPLATE,
                    user,
                    EXPERIMENT,
                    variant,
                    f"{quality:.3f}",
                    f"{rng.gauss(700, 80):.1f}",
                    "true",
                ]
            )
    return USERS


def test_the_whole_story(page: Page, app_url: str, tmp_path: Path) -> None:
    db = tmp_path / "browser.duckdb"
    page.goto(app_url)
    page.get_by_role("heading", name="Home").wait_for(timeout=FIRST_VISIT)  # builds the demo
    wait_idle(page)
    shot(page, "story-00-home")

    # 1. create a template
    page.goto(f"{app_url}/templates?tab=new")
    wait_idle(page)
    key(page, "tpl_new_name").locator("input").fill(TEMPLATE)
    text = key(page, "tpl_new_content").locator("textarea")
    text.fill("Answer the customer's question.\nQuestion: {question}\nBe accurate and helpful.")
    text.press("Control+Enter")
    wait_idle(page)
    key(page, "tpl_new_message").locator("input").fill("First version")
    button(page, "tpl_create").click()
    wait_idle(page)
    flash(page, rf"Created {TEMPLATE} 1\.0\.0")
    shot(page, "story-01-template-created")

    # 2. branch it
    page.goto(f"{app_url}/history?template={TEMPLATE}")
    wait_idle(page)
    page.get_by_role("tab", name="Branches").click()
    wait_idle(page)
    key(page, "hist_branch_name").locator("input").fill(BRANCH)
    page.get_by_role("button", name="Create branch").click()
    wait_idle(page)
    flash(page, f"Created branch {BRANCH}")
    shot(page, "story-02-branch-created")

    # 3. edit the branch
    page.goto(f"{app_url}/templates?template={TEMPLATE}")
    wait_idle(page)
    pick(page, key(page, f"tpl_branch_{TEMPLATE}"), BRANCH)
    content = page.locator('[class*="st-key-tpl_content_"] textarea')
    content.fill(
        "Answer the customer's question in two short sentences.\nQuestion: {question}\n"
        "Be accurate and helpful."
    )
    content.press("Control+Enter")
    wait_idle(page)
    message = page.locator('[class*="st-key-tpl_msg_"] input')
    message.fill("Two short sentences")
    message.press("Enter")
    wait_idle(page)
    button(page, "tpl_save").click()
    wait_idle(page)
    flash(page, f"Saved {TEMPLATE} on {BRANCH}")
    shot(page, "story-03-branch-edited")

    # 4. view the diff
    page.goto(f"{app_url}/history?template={TEMPLATE}&from=main&to={BRANCH}")
    wait_idle(page)
    inserted = page.locator("table.pv-diff ins")
    inserted.first.wait_for()
    expect(inserted.first).to_contain_text("in two short sentences")
    shot(page, "story-04-diff")

    # 5. deploy the main version to production
    page.goto(f"{app_url}/deployments?template={TEMPLATE}")
    wait_idle(page)
    key(page, "dep_env").get_by_role("radio", name="production").click()
    wait_idle(page)
    key(page, "dep_note").locator("input").fill("first release")
    key(page, "dep_note").locator("input").press("Enter")
    wait_idle(page)
    deploy = button(page, "dep_deploy")
    expect(deploy).to_contain_text("Deploy 1.0.0 to production")
    deploy.click()
    wait_idle(page)
    flash(page, rf"Deployed {TEMPLATE} 1\.0\.0 to production")
    shot(page, "story-05-deployed")

    # 6. configure and start an experiment between main and the branch
    page.goto(f"{app_url}/experiments?tab=configure")
    wait_idle(page)
    name = key(page, "exp_f_name").locator("input")
    name.fill(EXPERIMENT)
    name.press("Enter")
    wait_idle(page)
    pick(page, key(page, "exp_f_template"), TEMPLATE)
    # main against the branch: the form offers the branch for the second variant
    # (the labels go on with where a ref is live, e.g. "1.0.0 (latest) · live in production")
    expect(key(page, "exp_f_ref_0").locator("input")).to_have_value(
        re.compile(r"^1\.0\.0 \(latest\)")
    )
    expect(key(page, "exp_f_ref_1").locator("input")).to_have_value(
        re.compile(rf"^branch {BRANCH}\b")
    )
    salt = key(page, "exp_f_salt").locator("input")
    salt.fill(SALT)
    salt.press("Enter")
    wait_idle(page)
    shot(page, "story-06-experiment-configured")
    button(page, "exp_save").click()
    wait_idle(page)
    flash(page, f"Saved draft {EXPERIMENT}")
    page.get_by_role("tab", name="Overview").click()
    wait_idle(page)
    button(page, "exp_start").click()
    wait_idle(page)
    button(page, "exp_start_yes").click()
    wait_idle(page)
    flash(page, f"Started {EXPERIMENT}")
    shot(page, "story-07-experiment-started")

    # 7. upload a CSV of results (users routed by the contract's formula)
    with Workspace.open(db) as ws:
        exp = ws.experiments.get(EXPERIMENT)
    assert exp.status == "running" and exp.salt == SALT
    rows = results_csv(tmp_path / "story-results.csv", exp.started_at)
    page.goto(f"{app_url}/metrics?tab=import")
    wait_idle(page)
    uploader = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    uploader.set_input_files(str(tmp_path / "story-results.csv"))
    wait_idle(page)
    page.get_by_text(f"All {rows} rows are valid").wait_for()
    page.get_by_role("button", name=f"Import {rows} events").click()
    wait_idle(page)
    page.get_by_text(f"Imported {rows} events").wait_for()
    shot(page, "story-08-results-imported")

    # 8. see the winner
    page.goto(f"{app_url}/experiments?experiment={exp.id}&tab=results")
    wait_idle(page)
    expect(page.get_by_text("Winner: variant-1").first).to_be_visible()
    shot(page, "story-09-winner")

    # 9. stop the experiment (its results freeze), then export the HTML report
    page.get_by_role("tab", name="Overview").click()
    wait_idle(page)  # a tab switch reruns the screen
    button(page, "exp_stop").click()
    wait_idle(page)
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Routing ends at once")
    if dialog.get_by_text("needs a reason").count():  # a planned end still ahead: stopping early
        key(page, "exp_stop_reason").locator("textarea").fill("variant-1 clearly wins")
        key(page, "exp_stop_reason").locator("textarea").press("Control+Enter")
        wait_idle(page)
    button(page, "exp_stop_yes").click()
    wait_idle(page)
    flash(page, f"{EXPERIMENT} is now completed")
    page.get_by_role("tab", name="Results").click()
    wait_idle(page)
    html = page.get_by_test_id("stDownloadButton").filter(has_text="HTML").get_by_role("button")
    html.scroll_into_view_if_needed()
    expect(html).to_be_visible()
    with page.expect_download() as info:
        html.click()
    report = tmp_path / info.value.suggested_filename
    info.value.save_as(report)
    body = report.read_text(encoding="utf-8")
    assert body.startswith("<!DOCTYPE html>") and "Winner: variant-1" in body
    shot(page, "story-10-report-exported")

    # 10. merge the winning branch into main
    page.goto(f"{app_url}/history?template={TEMPLATE}")
    wait_idle(page)
    page.get_by_role("tab", name="Merge").click()
    wait_idle(page)
    expect(page.get_by_text("Fast-forward").first).to_be_visible()
    button(page, "hist_merge_go").click()
    wait_idle(page)
    flash(page, rf"Fast-forwarded {BRANCH} into main: commit \w+, version 1\.1\.0")
    shot(page, "story-11-merged")

    # 11. deploy it
    page.goto(f"{app_url}/deployments?template={TEMPLATE}")
    wait_idle(page)
    key(page, "dep_env").get_by_role("radio", name="production").click()
    wait_idle(page)
    deploy = button(page, "dep_deploy")
    expect(deploy).to_contain_text("Deploy 1.1.0 to production")
    deploy.click()
    wait_idle(page)
    flash(page, rf"Deployed {TEMPLATE} 1\.1\.0 to production")
    shot(page, "story-12-winner-deployed")

    # 12. roll back
    button(page, "dep_rollback_production").click()
    wait_idle(page)
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("from 1.1.0 to 1.0.0")
    # a rollback needs its reason: the button stays disabled until one is given
    expect(button(page, "dep_rb_yes")).to_be_disabled()
    note = key(page, "dep_rb_note").locator("input")
    note.fill("answers got too short for complex questions")
    note.press("Enter")
    wait_idle(page)
    expect(button(page, "dep_rb_yes")).to_be_enabled()
    button(page, "dep_rb_yes").click()
    wait_idle(page)
    flash(page, rf"Rolled back {TEMPLATE} in production to 1\.0\.0")
    shot(page, "story-13-rolled-back")

    # what the database says happened
    with Workspace.open(db) as ws:
        live = ws.deployments.live(TEMPLATE, "production")
        assert (live.action, live.version, live.replaced_version) == ("rollback", "1.0.0", "1.1.0")
        assert live.note == "answers got too short for complex questions"
        exp = ws.experiments.get(EXPERIMENT)
        assert exp.status == "completed"
        assert ws.experiment_results(exp).winner == "variant-1"
        assert [v.version for v in ws.deployments.versions_of(TEMPLATE)] == ["1.1.0", "1.0.0"]

    # and Home shows it: the rollback is the latest deployment, and why
    page.goto(app_url)
    wait_idle(page)
    expect(page.get_by_text(f"{TEMPLATE} → production: rollback 1.0.0").first).to_be_visible()
    expect(page.get_by_text("answers got too short for complex questions").first).to_be_visible()
    shot(page, "story-14-home")

"""The Deployments screen, driven with Streamlit's AppTest on the demo workspace."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from promptver import Workspace

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/deployments.py"


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory) -> Path:
    """The demo workspace, built once and copied for each test."""
    from promptver import Settings
    from promptver.demo import build_demo

    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    ws = Workspace.open(path, settings=Settings())
    build_demo(ws)
    ws.close()
    return path


@pytest.fixture
def app(db_path, demo_file, monkeypatch):
    shutil.copy(demo_file, db_path)
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def reopen(db_path) -> Workspace:
    return Workspace.open(db_path)


def button(at, key):
    return at.button(key=key)


def button_missing(at, key) -> bool:
    return all(b.key != key for b in at.button)


def test_matrix_shows_what_is_live_everywhere(app, db_path):
    ws = reopen(db_path)
    df = app.dataframe[0].value
    assert list(df.columns) == [
        "template",
        "development",
        "staging",
        "production",
        "running experiment",
    ]
    names = [t.name for t in ws.templates.list()]
    assert list(df["template"]) == names
    for _, row in df.iterrows():
        for env in ("development", "staging", "production"):
            live = ws.deployments.live(row["template"], env)
            assert row[env] == (live.label() if live else "—")
    # the demo's running experiments: qa-basic's concise branch and support-chat's cheaper
    # model, both in production
    running = dict(zip(df["template"], df["running experiment"]))
    assert running["qa-basic"] == "concise-answers (production)"
    assert running["support-chat"] == "cheaper-model (production)"
    assert all(v == "" for k, v in running.items() if k not in ("qa-basic", "support-chat"))


def test_running_experiment_column_appears_when_one_runs(app, db_path):
    from tests.deployments_helpers import add_experiment, commit_of

    ws = reopen(db_path)
    c0 = commit_of(ws, "summarize-article", "1.0.0")
    c1 = ws.templates.get("summarize-article").commit
    add_experiment(
        ws,
        "summarize-article",
        "staging",
        [("control", c0), ("new", c1)],
        status="running",
        name="tone *test*",
    )
    app.run()
    df = app.dataframe[0].value
    row = df[df["template"] == "summarize-article"].iloc[0]
    assert row["running experiment"] == "tone *test* (staging)"
    app.selectbox(key="dep_template").set_value("summarize-article").run()
    assert any("Running experiment: tone \\*test\\*" in c.value for c in app.caption)


def test_deploy_a_version_from_the_form(app, db_path):
    ws = reopen(db_path)
    app.selectbox(key="dep_template").set_value("qa-citations").run()
    app.segmented_control(key="dep_env").set_value("production").run()
    app.selectbox(key="dep_version_qa-citations").set_value("1.1.0").run()
    assert button_missing(app, "dep_deploy")
    assert any("1\\.1\\.0 is already live in production" in i.value for i in app.info)
    app.selectbox(key="dep_version_qa-citations").set_value("1.0.0").run()
    assert not app.exception
    statuses = [m.value for m in app.markdown if "Syntax" in m.value or "Promotion" in m.value]
    assert any("passed" in s and "Syntax" in s for s in statuses)
    app.text_input(key="dep_note").input("citations at the end again").run()
    btn = button(app, "dep_deploy")
    assert btn.label == "Deploy 1.0.0 to production" and not btn.disabled
    btn.click().run()
    assert not app.exception, app.exception
    live = ws.deployments.live("qa-citations", "production")
    assert (live.version, live.note, live.author, live.replaced_version) == (
        "1.0.0",
        "citations at the end again",
        "tester",
        "1.1.0",
    )
    assert any(
        "Deployed qa-citations 1.0.0 to production" in s.value.replace("\\", "")
        for s in app.success
    )
    assert (
        app.query_params["template"] == ["qa-citations"]
        or app.query_params["template"] == "qa-citations"
    )


def test_a_refusing_gate_disables_deploy_until_forced_with_a_reason(db_path, monkeypatch, tmp_path):
    (tmp_path / "promptver.yaml").write_text(
        "deployment:\n  rules:\n    production: {require_previous: true}\n"
    )
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    ws = reopen(db_path)
    from promptver.demo import build_demo

    build_demo(ws)
    ws.templates.update("translate-chat", "Translate into {language}: {message}")  # 1.1.0
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    at.selectbox(key="dep_template").set_value("translate-chat").run()
    at.selectbox(key="dep_version_translate-chat").set_value("1.1.0").run()
    at.segmented_control(key="dep_env").set_value("production").run()
    assert button(at, "dep_deploy").disabled
    assert any("failed" in m.value and "Promotion order" in m.value for m in at.markdown)
    suffix = f"translate-chat_{ws.templates.get('translate-chat').commit[:12]}_production"
    at.checkbox(key=f"dep_deploy_{suffix}_force").check().run()
    assert button(at, "dep_deploy").disabled  # a reason is still missing
    assert not at.error
    assert any("Give a reason to force" in c.value for c in at.caption)
    at.text_input(key=f"dep_deploy_{suffix}_reason").input("urgent translation fix").run()
    assert any("overridden" in m.value and "Promotion order" in m.value for m in at.markdown)
    assert not button(at, "dep_deploy").disabled
    button(at, "dep_deploy").click().run()
    assert not at.exception, at.exception
    d = ws.deployments.live("translate-chat", "production")
    assert (d.version, d.forced, d.force_reason) == ("1.1.0", True, "urgent translation fix")
    # another deployment does not inherit the force and reason typed for this one
    at.segmented_control(key="dep_env").set_value("staging").run()
    assert not [c for c in at.checkbox if c.value]
    assert all(not t.value for t in at.text_input if "reason" in str(t.key))


def test_promote_through_the_dialog(app, db_path):
    ws = reopen(db_path)
    app.selectbox(key="dep_template").set_value("qa-basic").run()
    staging_before = ws.deployments.live("qa-basic", "staging")
    assert ws.deployments.live("qa-basic", "production").commit != staging_before.commit
    button(app, "dep_promote_staging").click().run()  # staging → production
    assert not app.exception, app.exception
    yes = button(app, "dep_promote_yes")
    assert yes.label == "Promote to production"
    app.text_input(key="dep_promote_note").input("reviewed").run()
    button(app, "dep_promote_yes").click().run()
    assert not app.exception, app.exception
    prod = ws.deployments.live("qa-basic", "production")
    assert (prod.commit, prod.note) == (staging_before.commit, "reviewed")
    assert "dep_dialog" not in app.session_state


def test_rollback_asks_for_confirmation(app, db_path):
    ws = reopen(db_path)
    app.selectbox(key="dep_template").set_value("qa-basic").run()
    before = ws.deployments.live("qa-basic", "production")
    button(app, "dep_rollback_production").click().run()
    assert not app.exception, app.exception
    assert any("Roll back" in m.value and "qa\\-basic" in m.value for m in app.markdown)
    assert any(c.language == "diff" for c in app.code)
    button(app, "dep_rb_no").click().run()  # cancel: nothing happens
    assert ws.deployments.live("qa-basic", "production") == before
    assert "dep_dialog" not in app.session_state

    button(app, "dep_rollback_production").click().run()
    app.text_input(key="dep_rb_note").input("bad answers").run()
    button(app, "dep_rb_yes").click().run()
    assert not app.exception, app.exception
    after = ws.deployments.live("qa-basic", "production")
    assert (after.action, after.commit, after.note) == (
        "rollback",
        before.replaced_commit,
        "bad answers",
    )


def test_rollback_to_a_chosen_version(app, db_path):
    ws = reopen(db_path)
    app.selectbox(key="dep_template").set_value("qa-basic").run()
    button(app, "dep_rollback_production").click().run()
    app.radio(key="dep_rb_mode").set_value("named").run()
    app.selectbox(key="dep_rb_to").set_value("1.0.0").run()
    app.text_input(key="dep_rb_note").input("the first wording was better").run()
    button(app, "dep_rb_yes").click().run()
    assert not app.exception, app.exception
    after = ws.deployments.live("qa-basic", "production")
    assert (after.version, after.rollback_mode) == ("1.0.0", "named")


def test_timeline_lists_history_with_diffs(app, db_path):
    ws = reopen(db_path)
    app.selectbox(key="dep_template").set_value("qa-basic").run()
    history = ws.deployments.history("qa-basic")
    labels = [e.label for e in app.expander]
    assert len(labels) == len(history)
    assert labels[0].startswith(f":material/undo: #{history[0].id} · **production** · rollback")
    diffs = [c for c in app.code if c.language == "diff"]
    assert len(diffs) == sum(1 for d in history if d.replaced_commit)
    assert diffs[0].value.rstrip() == ws.deployments.diff(history[0]).rstrip()
    app.segmented_control(key="dep_scope").set_value("staging").run()
    assert len(app.expander) == len(ws.deployments.history("qa-basic", "staging"))


def test_a_rollback_needs_a_reason_and_records_the_name_from_the_sidebar(app, db_path):
    """Issue 22, item 14: no reason, no rollback; the analyst's name from the sidebar is the
    author (not the OS user), also after moving to another screen and back."""
    ws = reopen(db_path)
    app.sidebar.text_input(key="common_author_input").input("dara.kim").run()
    app.switch_page("pages/templates.py").run()
    app.switch_page(PAGE).run()
    assert app.sidebar.text_input(key="common_author_input").value == "dara.kim"
    app.selectbox(key="dep_template").set_value("summarize-article").run()
    before = ws.deployments.live("summarize-article", "staging")
    button(app, "dep_rollback_staging").click().run()
    assert button(app, "dep_rb_yes").disabled
    assert any("reason" in c.value.lower() for c in app.caption)
    app.text_input(key="dep_rb_note").input("   ").run()
    assert button(app, "dep_rb_yes").disabled
    app.text_input(key="dep_rb_note").input("summaries lost the numbers").run()
    assert not button(app, "dep_rb_yes").disabled
    button(app, "dep_rb_yes").click().run()
    assert not app.exception, app.exception
    after = ws.deployments.live("summarize-article", "staging")
    assert (after.action, after.commit, after.note, after.author) == (
        "rollback",
        before.replaced_commit,
        "summaries lost the numbers",
        "dara.kim",
    )


def test_promote_is_offered_only_when_the_next_environment_runs_something_else(app, db_path):
    """qa-citations runs 1.1.0 everywhere: nothing to promote; qa-basic's staging (1.1.1) is
    ahead of production (1.1.0): promoting it is offered."""
    app.selectbox(key="dep_template").set_value("qa-citations").run()
    assert button_missing(app, "dep_promote_development")
    assert button_missing(app, "dep_promote_staging")
    assert any("already live in production" in c.value for c in app.caption)
    app.selectbox(key="dep_template").set_value("qa-basic").run()
    assert button_missing(app, "dep_promote_development")  # 1.1.1 in both
    assert not button(app, "dep_promote_staging").disabled


def test_deploy_a_version_starts_from_one_that_is_not_live(app, db_path):
    """Issue 22, item 17: the form opens on a deployable pair, not on what is already live."""
    ws = reopen(db_path)
    app.selectbox(key="dep_template").set_value("qa-basic").run()
    env = app.segmented_control(key="dep_env").value
    version = app.selectbox(key="dep_version_qa-basic").value
    assert (env, version) == ("production", "1.1.1")  # the newest, where it is not live yet
    assert ws.deployments.live("qa-basic", env).version != version
    assert button(app, "dep_deploy").label == "Deploy 1.1.1 to production"
    # an environment where the chosen version is live: the form moves to one that is not
    app.segmented_control(key="dep_env").set_value("staging").run()
    assert app.selectbox(key="dep_version_qa-basic").value == "1.1.0"
    assert not any("already live" in i.value for i in app.info)


def test_a_link_can_ask_for_a_version(db_path, demo_file, monkeypatch):
    """``?template=qa-basic&version=1.0.0`` (the Templates screen's "Deploy …" after a save)."""
    shutil.copy(demo_file, db_path)
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page(PAGE)
    at.query_params["template"] = "qa-basic"
    at.query_params["version"] = "1.0.0"
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="dep_template").value == "qa-basic"
    assert at.selectbox(key="dep_version_qa-basic").value == "1.0.0"

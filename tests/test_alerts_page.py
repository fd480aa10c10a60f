"""The Alerts screen under AppTest, on the demo workspace: fired alerts, acknowledging, the link
to their trend, and rules created, edited, switched and deleted through dialogs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from promptver import Settings, Workspace

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/alerts.py"


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory) -> Path:
    from promptver.demo import build_demo

    path = tmp_path_factory.mktemp("alerts-demo") / "demo.duckdb"
    ws = Workspace.open(path, settings=Settings())
    build_demo(ws)
    ws.close()
    return path


@pytest.fixture
def app(db_path, demo_file, monkeypatch) -> AppTest:
    shutil.copy(demo_file, db_path)
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def reopen(db_path) -> Workspace:
    return Workspace.open(db_path)


def frame_with(at, *columns: str):
    for df in at.dataframe:
        if all(c in df.value.columns for c in columns):
            return df.value
    raise AssertionError(f"no table with columns {columns}")


def flashes(at) -> list[str]:
    return [s.value.replace("\\", "") for s in at.success]


def test_fired_alerts_grouped_per_rule_and_template(app, db_path):
    """Issue 22 item 9: one row per rule and template, with how many windows fired, the latest
    one's value against the threshold (enough digits to differ), its trend and its
    deployment; the picked group shows its windows and what became of the deployment."""
    ws = reopen(db_path)
    open_alerts = ws.alerts.alerts(status="open")
    assert open_alerts  # the demo's rules fired
    assert app.metric[0].value == str(len(open_alerts))
    table = frame_with(app, "template", "rule", "latest value", "windows", "trend", "deployment")
    pairs = {(a.rule_id, a.template_id) for a in open_alerts}
    assert len(table) == len(pairs) < len(open_alerts)
    slow = [a for a in open_alerts if a.metric == "latency_p95"]
    latest = max(slow, key=lambda a: a.window_start)
    first = min(a.window_start for a in slow)
    row = table[table["rule"] == latest.rule_name].iloc[0]
    assert row["windows"] == f"{len(slow)} × 24h since {first:%m-%d}"
    assert row["latest value"] == (
        f"p95 latency {latest.value:,.0f} ms > {latest.threshold:,.0f} ms"
    )
    assert row["latest window (UTC)"] == pd.Timestamp(latest.window_start)
    history = ws.deployments.history("qa-basic", "production")
    back, released = history[0], history[1]
    assert row["deployment"] == (
        f"{released.version}, now {back.version} (rollback {back.created_at:%m-%d})"
    )
    parsed = urlparse(row["trend"])
    assert parsed.path == "trends"
    assert parse_qs(parsed.query) == {
        "template": ["qa-basic"],
        "metric": ["latency_p95"],
        "period": [parse_qs(parsed.query)["period"][0]],
        "by": ["version"],
        "env": ["production"],
        "bucket": ["day"],  # a 24h window: daily points
    }
    # the error-rate rule's values are written with enough digits for the comparison to show
    rates = table[table["latest value"].str.startswith("error rate")]
    assert len(rates)
    for text in rates["latest value"]:
        value, threshold = re.fullmatch(r"error rate ([\d.]+) % > ([\d.]+) %", text).groups()
        assert float(value) > float(threshold)
    # the group with the newest window is picked: its windows, and the rollback since
    assert app.selectbox(key="alr_group").value == (latest.rule_id, latest.template_id)
    windows = frame_with(app, "id", "status", "value", "source")
    assert list(windows["id"]) == sorted((a.id for a in slow), key=lambda i: -i)
    said = " ".join(c.value.replace("\\", "") for c in app.caption)
    assert (
        f"Since then production was rolled back to {back.version} on "
        f"{back.created_at:%Y-%m-%d} by {back.author}." in said
    )
    # the sidebar of every screen links here while alerts are open
    links = app.get("page_link")
    assert any("open alert" in link.proto.label for link in links)
    app.segmented_control(key="alr_status").set_value("acknowledged").run()
    acked = frame_with(app, "status", "acknowledged by")
    assert set(acked["status"]) == {"acknowledged"} and all(acked["acknowledged by"] != "–")


def test_acknowledge_selected_rows_a_group_and_all(app, db_path):
    ws = reopen(db_path)
    groups = ws.alerts.groups()
    # rows selected in the table (the selection the grid reports)
    app.session_state["alr_groups"] = {"selection": {"rows": [1, 2], "columns": [], "cells": []}}
    app.run()
    chosen = groups[1].open_ids + groups[2].open_ids
    assert app.button(key="alr_ack_rows").label == f"Acknowledge {len(chosen)} selected"
    app.button(key="alr_ack_rows").click().run()
    assert not app.exception
    assert any(f"Acknowledged {len(chosen)} alert(s) in 2 row(s)" in f for f in flashes(app))
    for i in chosen:
        done = ws.alerts.get_alert(i)
        assert (done.status, done.acknowledged_by) == ("acknowledged", "tester")
    assert ws.alerts.open_count() == sum(len(g.open_ids) for g in groups) - len(chosen)
    # one group's open alerts, from its panel
    app.session_state["alr_groups"] = {"selection": {"rows": [], "columns": [], "cells": []}}
    app.run()
    first = ws.alerts.groups()[0]
    app.selectbox(key="alr_group").set_value((first.rule_id, first.template_id)).run()
    app.button(key="alr_ack_group").click().run()
    assert all(ws.alerts.get_alert(i).status == "acknowledged" for i in first.open_ids)
    if ws.alerts.open_count():
        app.button(key="alr_ack_all").click().run()
        assert ws.alerts.open_count() == 0
        assert any("No open alerts" in i.value for i in app.info)


def test_create_a_rule_in_the_dialog_and_check_now(app, db_path):
    app.button(key="alr_new").click().run()
    app.text_input(key="alr_form_new_name").input("citations slow").run()
    app.selectbox(key="alr_form_new_metric").set_value("latency_avg").run()
    app.selectbox(key="alr_form_new_cmp").set_value(">=").run()
    app.number_input(key="alr_form_new_threshold").set_value(1.0).run()
    app.text_input(key="alr_form_new_window").input("7d").run()
    app.number_input(key="alr_form_new_min").set_value(5).run()
    app.selectbox(key="alr_form_new_template").set_value("qa-citations").run()
    app.selectbox(key="alr_form_new_env").set_value("production").run()
    assert any("over a 7d window is" in c.value for c in app.caption)
    app.button(key="alr_form_new_save").click().run()
    assert not app.exception and not app.error
    ws = reopen(db_path)
    rule = ws.alerts.rules()[-1]
    assert (rule.name, rule.metric, rule.comparator, rule.threshold, rule.window) == (
        "citations slow",
        "latency_avg",
        ">=",
        1.0,
        "7d",
    )
    assert (rule.template, rule.environment, rule.min_events, rule.created_by) == (
        "qa-citations",
        "production",
        5,
        "tester",
    )
    assert any("Created rule" in f for f in flashes(app))
    app.button(key="alr_check").click().run()
    assert any("Checked" in f for f in flashes(app))
    assert ws.alerts.alerts(rule_id=rule.id)  # the new rule fired on the demo events


def test_a_bad_rule_shows_the_error_and_saves_nothing(app, db_path):
    before = len(reopen(db_path).alerts.rules())
    app.button(key="alr_new").click().run()
    app.text_input(key="alr_form_new_window").input("90s").run()
    app.button(key="alr_form_new_save").click().run()
    assert not app.exception
    assert any("window" in e.value for e in app.error)
    assert len(reopen(db_path).alerts.rules()) == before
    app.button(key="alr_form_new_cancel").click().run()
    assert "alr_dialog" not in app.session_state


def test_edit_disable_enable_and_delete_with_confirmation(app, db_path):
    ws = reopen(db_path)
    rule = ws.alerts.rules()[0]
    app.selectbox(key="alr_rule").set_value(rule.id).run()
    app.button(key="alr_edit").click().run()
    form = f"alr_form_{rule.id}"
    assert app.number_input(key=f"{form}_threshold").value == rule.threshold
    assert app.text_input(key=f"{form}_window").value == rule.window
    app.number_input(key=f"{form}_threshold").set_value(1800.0).run()
    app.button(key=f"{form}_save").click().run()
    assert not app.exception
    assert ws.alerts.get(rule.id).threshold == 1800.0
    app.button(key="alr_disable").click().run()
    assert ws.alerts.get(rule.id).enabled is False
    app.button(key="alr_enable").click().run()
    assert ws.alerts.get(rule.id).enabled is True
    fired = len(ws.alerts.alerts(rule_id=rule.id))
    # delete asks first; cancel keeps the rule
    app.button(key="alr_delete").click().run()
    assert any(f"Delete rule **#{rule.id}**" in m.value for m in app.markdown)
    app.button(key="alr_del_no").click().run()
    assert ws.alerts.get(rule.id)
    app.button(key="alr_delete").click().run()
    app.button(key="alr_del_yes").click().run()
    assert not app.exception
    assert rule.id not in [r.id for r in ws.alerts.rules()]
    assert len(ws.alerts.alerts(rule_id=rule.id)) == fired  # its alerts stay


def test_names_are_escaped(app, db_path):
    ws = reopen(db_path)
    ws.alerts.add("error_rate", ">", 0.5, "1h", name="**bold** [x](http://evil)")
    app.run()
    app.selectbox(key="alr_rule").set_value(ws.alerts.rules()[-1].id).run()
    app.button(key="alr_delete").click().run()
    shown = [m.value for m in app.markdown if "Delete rule" in m.value][0]
    assert "\\*\\*bold\\*\\*" in shown and "\\[x\\]\\(http\\:" in shown

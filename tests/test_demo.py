"""The demo workspace: deterministic from its seed, the stories it tells (90 days of events
served by what was live, a completed experiment with a clear winner, a running one, a regression
rolled back, alerts), and ``promptver demo --events N``."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from promptver import Workspace
from promptver.demo import CHEAPER, CITE, CONCISE, build_demo
from promptver.metrics.demo import DEMO_DAYS, DEMO_EVENTS, add_bulk_events

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TABLES = (
    "templates",
    "commits",
    "versions",
    "branches",
    "deployments",
    "experiments",
    "experiment_variants",
    "experiment_log",
    "experiment_running",
    "metric_events",
    "alert_rules",
    "alerts",
    "workspace_info",
)


def build(path: Path, seed: int = 7, now: datetime = NOW) -> Workspace:
    ws = Workspace.open(path)
    build_demo(ws, seed=seed, now=now)
    return ws


def dump(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table, with the random ids (templates, experiments) and what derives
    from them (commit ids hash the template id, alert ids follow their order) replaced by
    stable labels, and floats to nine significant digits."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        ids: dict[str, str] = {}
        for tid, name in con.execute("SELECT id, name FROM templates").fetchall():
            ids[tid] = f"<template {name}>"
        for eid, name in con.execute("SELECT id, name FROM experiments").fetchall():
            ids[eid] = f"<experiment {name}>"
        commits = con.execute(
            "SELECT c.id, t.name FROM commits c JOIN templates t ON t.id = c.template_id"
            " ORDER BY t.name, c.created_at, c.message"
        ).fetchall()
        for i, (cid, name) in enumerate(commits):
            ids[cid] = f"<commit {name} #{i}>"

        def canon(v: Any) -> Any:
            if isinstance(v, str):
                if v in ids:
                    return ids[v]
                if len(v) > 60:  # JSON documents (gate reports, results) hold ids inside
                    for raw, label in ids.items():
                        v = v.replace(raw, label)
                    if v[:1] in "[{":
                        return canon(json.loads(v))
                return v
            if isinstance(v, float):
                # DuckDB sums in parallel: the last bits of an aggregate may differ run to run
                return float(f"{v:.9g}")
            if isinstance(v, list | tuple):
                return tuple(canon(x) for x in v)
            if isinstance(v, dict):
                return tuple(sorted((k, canon(x)) for k, x in v.items()))
            return v

        out = {}
        for table in TABLES:
            rows = con.execute(f"SELECT * FROM {table}").fetchall()
            if table == "alerts":  # ids follow the order of the (random) template ids
                rows = [r[1:] for r in rows]
            out[table] = sorted((tuple(canon(v) for v in r) for r in rows), key=repr)
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    build(path).close()
    return path


# ---- determinism ---------------------------------------------------------------------------


def test_the_same_seed_and_time_build_the_same_rows(tmp_path, demo):
    again = tmp_path / "again.duckdb"
    build(again).close()
    a, b = dump(demo), dump(again)
    for table in TABLES:
        assert a[table] == b[table], table
    assert len(a["metric_events"]) == DEMO_EVENTS


def test_another_seed_builds_another_demo(tmp_path, demo):
    other = tmp_path / "other.duckdb"
    build(other, seed=8).close()
    a, b = dump(demo), dump(other)
    assert [r[1] for r in a["templates"]] == [r[1] for r in b["templates"]]  # same templates
    assert a["metric_events"] != b["metric_events"]
    assert a["deployments"] != b["deployments"]  # other authors and times


# ---- the stories ---------------------------------------------------------------------------


def events(path: Path) -> pd.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(
            "SELECT m.ts, t.name AS template, m.environment, m.version, m.commit_id, m.user_id,"
            " m.experiment_id, m.variant FROM metric_events m"
            " JOIN templates t ON t.id = m.template_id"
        ).df()
    finally:
        con.close()


def bucket(salt: str, user: str) -> float:
    """The contract's routing formula, written out independently."""
    return int.from_bytes(hashlib.md5(f"{salt}:{user}".encode()).digest()[:8], "big") / 2**64


def assert_served_by_what_was_live(ws: Workspace, frame: pd.DataFrame) -> None:
    """Events outside experiments carry the commit live in their environment at their time;
    experiment events carry their variant's commit, the variant the contract's formula gives
    their user, and lie in the experiment's window."""
    plain = frame[frame["experiment_id"].isna()]
    for (template, env), group in plain.groupby(["template", "environment"]):
        log = sorted(ws.deployments.history(template, env), key=lambda d: d.created_at)
        times = pd.Series([d.created_at for d in log])
        idx = times.searchsorted(group["ts"], side="right") - 1
        assert (idx >= 0).all(), (template, env)  # nothing before the first deployment
        live = [log[i].commit for i in idx]
        assert list(group["commit_id"]) == live, (template, env)
    for exp in ws.experiments.list():
        mine = frame[frame["experiment_id"] == exp.id]
        start, end = exp.window()
        assert (mine["ts"] >= start).all()
        if end is not None:
            assert (mine["ts"] <= end).all()
        weights = exp.weights()
        for user, variant in zip(mine["user_id"], mine["variant"], strict=True):
            b = bucket(exp.salt, user)
            expected = exp.variants[0].name if b < weights[0] else exp.variants[1].name
            assert variant == expected, (exp.name, user)
        commits = {v.name: v.commit for v in exp.variants}
        assert (mine["commit_id"] == mine["variant"].map(commits)).all()


def test_ninety_days_of_events_served_by_what_was_live(demo):
    ws = Workspace.open(demo)
    frame = events(demo)
    assert len(frame) == DEMO_EVENTS
    assert NOW - timedelta(days=DEMO_DAYS) <= frame["ts"].min() < NOW - timedelta(days=85)
    assert frame["ts"].max() <= NOW
    assert set(frame["environment"]) == {"development", "staging", "production"}
    assert frame["user_id"].nunique() > 1000
    assert_served_by_what_was_live(ws, frame)
    ws.close()


def test_a_completed_experiment_with_a_clear_winner_that_shipped(demo):
    from scipy import stats

    ws = Workspace.open(demo)
    exp = ws.experiments.get(CITE.name)
    assert exp.status == "completed" and exp.stopped_at == NOW + timedelta(days=CITE.end)
    frozen = ws.experiments.stored_results(exp.id)
    assert frozen["winner"] == "cite-each-claim" and frozen["srm"]["ok"]
    assert all(v["users"] >= exp.minimum_sample_size for v in frozen["variants"])
    # the frozen figures are the events in its window: Welch on per-user means agrees in sign
    # and is far past the threshold (a clear winner, not a lucky one)
    con = duckdb.connect(str(demo), read_only=True)
    per_user = con.execute(
        "SELECT variant, user_id, avg(quality_score) FROM metric_events"
        " WHERE experiment_id = ? AND quality_score IS NOT NULL GROUP BY ALL",
        [exp.id],
    ).df()
    con.close()
    a = per_user[per_user["variant"] == "control"].iloc[:, 2]
    b = per_user[per_user["variant"] == "cite-each-claim"].iloc[:, 2]
    t = stats.ttest_ind(b, a, equal_var=False)
    assert b.mean() > a.mean() and t.pvalue < 1e-6
    # then the winner shipped to production, after the experiment ended
    live = ws.deployments.live(CITE.template, "production")
    assert live.version == exp.variants[1].ref and live.created_at > exp.stopped_at
    assert CITE.name in live.note
    ws.close()


def test_a_running_experiment_collecting_toward_its_minimum_sample(demo):
    ws = Workspace.open(demo)
    exp = ws.experiments.get(CONCISE.name)
    assert exp.status == "running"
    rollback = ws.deployments.history(CONCISE.template, "production")[0]
    assert rollback.action == "rollback" and exp.started_at > rollback.created_at
    assert exp.variants[0].ref == rollback.version  # the control is the live version
    assert exp.variants[1].ref == "concise-tone"  # the branch
    (progress,) = [r for r in ws.overview.build().running if r.name == CONCISE.name]
    assert progress.srm_ok
    assert all(v.users > 30 for v in progress.variants)
    assert 0.1 < progress.progress < 1.0
    results = ws.experiment_results(exp)
    assert results.winner is None and not results.sample_size_ok
    ws.close()


def test_the_regressed_release_its_rollback_and_the_alerts(demo):
    ws = Workspace.open(demo)
    history = ws.deployments.history("qa-basic", "production")
    regressed = history[1]
    assert history[0].action == "rollback" and history[0].replaced_version == regressed.version
    fired = ws.alerts.alerts(limit=1000)
    slow = [a for a in fired if a.metric == "latency_p95"]
    assert slow and all(a.window_start >= regressed.created_at - timedelta(days=1) for a in slow)
    assert {a.status for a in slow} == {"open", "acknowledged"}
    errors = [a for a in fired if a.metric == "error_rate"]
    assert any(a.template.startswith("translate-") for a in errors)  # the provider outage
    assert not [a for a in fired if a.metric == "quality_score"]
    ws.close()


# ---- demo --events -------------------------------------------------------------------------


def test_bulk_events_are_deterministic_and_served_like_the_demo(tmp_path, demo):
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    for path in (a, b):
        ws = build(path)
        assert add_bulk_events(ws, 20_000, now=NOW) == 20_000
        ws.close()
    assert dump(a)["metric_events"] == dump(b)["metric_events"]
    ws = Workspace.open(a)
    frame = events(a)
    assert len(frame) == DEMO_EVENTS + 20_000
    assert_served_by_what_was_live(ws, frame)
    assert frame["experiment_id"].notna().sum() > 1000  # the experiments got their share
    # a second batch is another draw, not the same events again
    add_bulk_events(ws, 5_000, now=NOW)
    after = events(a)
    assert len(after) == DEMO_EVENTS + 25_000
    assert len(after.drop_duplicates()) > len(frame) + 4_900
    ws.close()


def test_demo_events_from_the_command_line(cli, db_path):
    r = cli("demo", "--events", "3000", json=True)
    assert r.code == 0, r.err
    out = r.json()
    assert out["events_added"] == 3000 and "qa-basic" in out["templates"]
    # on a database that holds the demo, only events are added
    r = cli("demo", "--events", "2000", json=True)
    assert r.code == 0, r.err
    assert r.json()["templates"] == [] and r.json()["events_added"] == 2000
    summary = cli("metrics", "summary", json=True).json()
    assert summary["events"] == DEMO_EVENTS + 5000
    # the demo itself refuses to be built twice
    again = cli("demo")
    assert again.code == 1 and "already exist" in again.err


@pytest.mark.parametrize("bad", ["-1", "100000001"])
def test_demo_events_out_of_range_is_a_usage_error(cli, bad):
    r = cli("demo", "--events", bad)
    assert r.code == 2 and "--events" in r.err


def test_the_frozen_results_match_a_fresh_analysis(demo):
    """Stopping froze what the events said at the end of the window (the same analysis run
    again on the same events gives the same figures)."""
    ws = Workspace.open(demo)
    exp = ws.experiments.get(CITE.name)
    frozen = ws.experiments.stored_results(exp.id)
    fresh = ws.experiment_results(exp, sequential=False).model_dump(mode="json")
    for key in ("winner", "sample_size_ok"):
        assert fresh[key] == frozen[key]
    assert json.dumps([v["users"] for v in fresh["variants"]]) == json.dumps(
        [v["users"] for v in frozen["variants"]]
    )
    ws.close()


# ---- chat prompts with their model configuration ------------------------------------------


def test_chat_templates_with_their_model_configuration(demo):
    from jsonschema import Draft202012Validator

    ws = Workspace.open(demo)
    chat = ws.templates.get("support-chat")
    assert chat.kind == "chat"
    roles = [m.get("role") or f"placeholder:{m['placeholder']}" for m in chat.messages]
    assert roles == ["system", "placeholder:history", "user"]
    assert {"product", "question"} <= set(chat.variables)
    assert chat.config["provider"] == "openai" and chat.config["model"] == "gpt-4o-mini"
    assert chat.config["temperature"] == 0.2 and chat.config["max_tokens"] >= 1
    # the newest version changes only the configuration: it asks for a JSON answer
    log = [c for c in ws.versions.log(chat.id, chat.commit, first_parent=True) if c.version]
    assert len(log) == 3
    d = ws.versions.diff("support-chat", log[1].id, log[0].id)
    assert d.config_changes and all(
        c["path"].startswith("response_format.") and c["old"] is None for c in d.config_changes
    )
    assert d.messages_changed == [] and log[0].messages == log[1].messages
    assert log[0].config["response_format"]["type"] == "json_schema"
    Draft202012Validator.check_schema(log[0].config["response_format"]["json_schema"]["schema"])

    extract = ws.templates.get("ticket-entities")
    assert extract.kind == "chat" and extract.config["temperature"] == 0
    assert {m["role"] for m in extract.messages} <= {"system", "developer", "user"}
    (tool,) = extract.config["tools"]
    assert tool["type"] == "function"
    Draft202012Validator.check_schema(tool["function"]["parameters"])
    assert tool["function"]["parameters"]["type"] == "object"
    # both walked the promotion path like the text templates, and render for a model API
    for name in ("support-chat", "ticket-entities"):
        assert ws.deployments.live(name, "production") is not None
        assert ws.deployments.live(name, "staging") is not None
    p = ws.get_prompt("support-chat", env="staging")
    payload = p.openai(
        history=[{"role": "user", "content": "Hi"}], product="Acme", question="Why {x}?"
    )
    assert payload["model"] == "gpt-4o-mini" and payload["messages"][-1]["content"] == "Why {x}?"
    ws.close()


def test_an_experiment_whose_variants_differ_only_in_model(demo):
    ws = Workspace.open(demo)
    exp = ws.experiments.get(CHEAPER.name)
    assert exp.status == "running" and exp.template == "support-chat"
    live = ws.deployments.live(CHEAPER.template, "production")
    control, treatment = exp.variants
    assert control.ref == live.version and control.commit == live.commit
    assert treatment.ref == "cheaper-model"  # the branch
    d = ws.versions.diff(CHEAPER.template, control.commit, treatment.commit)
    assert d.config_changes == [{"path": "model", "old": "gpt-4o-mini", "new": "gpt-4.1-nano"}]
    assert d.messages_changed == []
    a, b = ws.versions.get_commit(control.commit), ws.versions.get_commit(treatment.commit)
    assert a.messages == b.messages
    assert {**a.config, "model": "gpt-4.1-nano"} == b.config
    # its events are served by the routing rule like the others'
    frame = events(demo)
    mine = frame[frame["experiment_id"] == exp.id]
    assert set(mine["variant"]) == {control.name, treatment.name}
    assert_served_by_what_was_live(ws, frame)
    # the cheaper model is faster and cheaper per call (the story the demo tells)
    con = duckdb.connect(str(demo), read_only=True)
    means = dict(
        con.execute(
            "SELECT variant, avg(cost_usd) FROM metric_events WHERE experiment_id = ? GROUP BY 1",
            [exp.id],
        ).fetchall()
    )
    lat = dict(
        con.execute(
            "SELECT variant, median(latency_ms) FROM metric_events WHERE experiment_id = ?"
            " GROUP BY 1",
            [exp.id],
        ).fetchall()
    )
    con.close()
    assert means[treatment.name] < 0.8 * means[control.name]
    assert lat[treatment.name] < lat[control.name]
    ws.close()


def test_reports_name_the_model_change(demo):
    from promptver.reports import report_json, report_markdown

    ws = Workspace.open(demo)
    md_text = report_markdown(ws, CHEAPER.name).decode()
    assert "model configuration: model gpt-4o-mini → gpt-4.1-nano" in md_text
    doc = json.loads(report_json(ws, CHEAPER.name))
    control, treatment = doc["variants"]
    assert control["diff_against_control"] is None
    diff = treatment["diff_against_control"]
    assert diff["config_changes"] == [
        {"path": "model", "old": "gpt-4o-mini", "new": "gpt-4.1-nano"}
    ]
    assert diff["config_summary"] == "model gpt-4o-mini → gpt-4.1-nano"
    assert treatment["config"]["model"] == "gpt-4.1-nano"
    assert treatment["messages"] == control["messages"]
    ws.close()


def test_an_offline_evaluation_of_three_versions(demo):
    ws = Workspace.open(demo)
    try:
        (ds,) = ws.evals.datasets()
        assert (ds.dataset, ds.items, ds.commits, ds.templates) == (
            "qa-golden-200",
            200,
            3,
            ["qa-basic"],
        )
        runs = sorted(ws.evals.runs(ds.dataset), key=lambda r: r.created_at)
        cmp = ws.evals.compare(ds.dataset, runs[0].commit, runs[1].commit)
        q = cmp.metric("quality")
        assert q.items == 200 and q.significant and q.diff > 0
        cal = q.calibrated
        assert cal.baseline_labelled_items == cal.candidate_labelled_items == 40
        assert cal.agreement.mean_bias > 0.03  # a generous judge
        assert cal.candidate_mean < q.candidate_mean
    finally:
        ws.close()

"""The Home screen under AppTest: what it shows on the demo workspace, that every kind of link
opens its target with the right selection, the empty workspace, and fresh data after writes
(in this process and from another one)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from streamlit.testing.v1 import AppTest

from promptver import Settings, Workspace

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    "pages/home.py",
    "pages/templates.py",
    "pages/history.py",
    "pages/deployments.py",
    "pages/experiments.py",
    "pages/metrics.py",
    "pages/trends.py",
    "pages/alerts.py",
]


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory) -> Path:
    from promptver.demo import build_demo

    path = tmp_path_factory.mktemp("home-demo") / "demo.duckdb"
    ws = Workspace.open(path, settings=Settings())
    build_demo(ws)
    ws.close()
    return path


@pytest.fixture
def demo_db(db_path, demo_file, monkeypatch) -> Path:
    shutil.copy(demo_file, db_path)
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    return db_path


def home() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def links(at: AppTest) -> list[tuple[str, str, dict[str, str]]]:
    """(target page file, label, query parameters) of every page link on the screen."""
    out = []
    for link in at.get("page_link"):
        p = link.proto
        params = {k: v[0] for k, v in parse_qs(p.query_string, keep_blank_values=True).items()}
        out.append((f"pages/{p.page}.py", p.label.replace("\\", ""), params))
    return out


def opened_tab(at: AppTest) -> str:
    """The tab the screen's first set of tabs opens on (what the browser shows first)."""
    from streamlit.proto.Block_pb2 import Block as BlockProto

    def walk(node):  # type: ignore[no-untyped-def]
        for child in getattr(node, "children", {}).values():
            p = getattr(child, "proto", None)
            if isinstance(p, BlockProto) and p.WhichOneof("type") == "tab_container":
                return list(child.children.values())[p.tab_container.default_tab_index].label
            found = walk(child)
            if found:
                return found
        return None

    return walk(at._tree)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def open_link(page: str, params: dict[str, str]) -> AppTest:
    """What a click on a page link opens: the target screen with those query parameters."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    for k, v in params.items():
        at.query_params[k] = v
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# ---- content ----------------------------------------------------------------------------------


def test_home_is_the_default_screen_and_shows_the_demo(demo_db):
    at = home()
    assert [t.value for t in at.title] == ["Home"]
    ws = Workspace.open(demo_db)
    overview = ws.overview.build()
    assert metric(at, "Templates") == "8"  # six text prompts, two chat prompts
    assert metric(at, "Running experiments") == "2"  # concise-answers, cheaper-model
    assert metric(at, "Open alerts") == str(ws.alerts.open_count())
    found = links(at)

    # what is live where: one link per deployed cell, labelled with the live version
    for cell in ws.deployments.matrix():
        want = {"template": cell.template, "env": cell.environment}
        hits = [x for x in found if x[0] == "pages/deployments.py" and x[2] == want]
        if cell.deployment is None:
            assert not hits
        else:
            assert any(label == cell.deployment.label() for _, label, _ in hits), want
    # the running experiment: progress counted from its events, a link to its results
    running = ws.experiments.list(status="running")[0]
    with ws.db.read() as con:
        users = dict(
            con.execute(
                "SELECT variant, count(DISTINCT user_id) FROM metric_events"
                " WHERE experiment_id = ? AND ts >= ? GROUP BY variant",
                [running.id, running.started_at],
            ).fetchall()
        )
    smallest = min(users.get(v.name, 0) for v in running.variants)
    assert 0 < smallest < running.minimum_sample_size  # the demo's is still collecting
    bars = [p for p in at.get("progress")]
    assert any(
        f"{smallest:,} of {running.minimum_sample_size:,} users" in b.proto.text for b in bars
    )
    assert (
        "pages/experiments.py",
        f"{running.name} ({running.environment})",
        {"experiment": running.id, "tab": "results"},
    ) in found
    # the completed experiment and its winner
    done = ws.experiments.list(status="completed")[0]
    assert done.name in " ".join(m.value.replace("\\", "") for m in at.markdown)
    winner = ws.experiment_results(done).winner
    assert winner and any(f"winner **{winner}**" in m.value.replace("\\", "") for m in at.markdown)
    # open alerts, one line per rule and template (issue 22 item 9: the demo's p95 rule has
    # the five newest windows, and used to take every slot), each with its alerts, its trend
    # and its deployment
    groups = overview.alert_groups
    assert len({(g.rule_id, g.template_id) for g in groups}) == len(groups) > 1
    assert len({g.rule_id for g in groups}) > 1
    for g in groups:
        label = "Alerts" if len(g.open_ids) > 1 else "Alert"
        assert ("pages/alerts.py", label, {"alert": str(g.latest.id)}) in found
    assert sum(1 for x in found if x[0] == "pages/trends.py" and x[1] == "Trend") == len(groups)
    slow = next(g for g in groups if g.latest.metric == "latency_p95")
    open_p95 = [
        a.id
        for a in ws.alerts.alerts()
        if a.rule_id == slow.rule_id and a.template == "qa-basic" and a.status == "open"
    ]
    assert sorted(slow.open_ids) == sorted(open_p95) and len(open_p95) > 1
    shown = " ".join(m.value.replace("\\", "") for m in at.markdown)
    assert f"{len(open_p95)} open windows since" in shown
    # the p95 rule's template was rolled back since: its link says what is deployed, not
    # "Roll back…"
    assert slow.deployed.version != slow.live_now.version
    assert ("pages/deployments.py", "Deployed", {"template": "qa-basic", "env": "production"}) in (
        found
    )
    # recent commits open their diff; recent deployments their environment
    newest = overview.commits[0]
    assert any(
        x[0] == "pages/history.py"
        and x[2]
        == {"template": newest.template, "from": newest.parents[0][:12], "to": newest.commit[:12]}
        for x in found
    )
    latest = overview.deployments[0]
    assert latest.action == "rollback"  # the demo's last deployment
    assert any(
        x[0] == "pages/history.py"
        and x[1] == "Diff"
        and x[2]
        == {
            "template": latest.template,
            "from": latest.replaced_commit[:12],
            "to": latest.commit[:12],
        }
        for x in found
    )
    # where to find what: every screen of the app, from Home
    targets = {x[0] for x in found}
    assert set(PAGES) - {"pages/home.py"} <= targets
    ws.close()


def test_each_kind_of_link_opens_its_target_with_that_selection(demo_db):
    at = home()
    found = links(at)

    def first(page: str, **must: str) -> dict[str, str]:
        return next(
            p for t, _, p in found if t == page and all(p.get(k) == v for k, v in must.items())
        )

    params = first("pages/templates.py")
    t = open_link("pages/templates.py", params)
    assert t.selectbox(key="tpl_pick").value == params["template"]

    params = first("pages/deployments.py", env="production")
    t = open_link("pages/deployments.py", params)
    assert t.selectbox(key="dep_template").value == params["template"]
    assert t.segmented_control(key="dep_scope").value == "production"
    assert "env" not in t.query_params  # one-shot: later clicks are not overridden

    params = first("pages/experiments.py", tab="results")
    t = open_link("pages/experiments.py", params)
    assert t.selectbox(key="exp_pick").value == params["experiment"]
    assert opened_tab(t) == "Results"

    params = first("pages/alerts.py")
    t = open_link("pages/alerts.py", params)
    linked = Workspace.open(demo_db).alerts.get_alert(int(params["alert"]))
    assert t.selectbox(key="alr_group").value == (linked.rule_id, linked.template_id)

    params = first("pages/trends.py", by="variant")  # the running experiment's trend
    t = open_link("pages/trends.py", params)
    assert t.multiselect(key="trd_templates").value == [params["template"]]
    assert t.multiselect(key="trd_metrics").value == [params["metric"]]
    assert (t.selectbox(key="trd_by").value, t.selectbox(key="trd_env").value) == (
        "variant",
        params["env"],
    )

    params = first("pages/history.py", template="qa-basic")
    t = open_link("pages/history.py", params)
    assert t.selectbox(key="hist_template").value == "qa-basic"
    assert t.selectbox(key="hist_from_qa-basic").value == params["from"]
    assert t.selectbox(key="hist_to_qa-basic").value == params["to"]
    assert any(m.label == "Lines added" for m in t.metric)  # the diff is shown


def test_links_from_the_other_screens(demo_db):
    """Deployments → the diff and the trend of an entry; Experiments → the trend by variant."""
    ws = Workspace.open(demo_db)
    d = ws.deployments.history("qa-basic", "production")[0]
    at = open_link("pages/deployments.py", {"template": "qa-basic", "env": "production"})
    found = links(at)
    assert (
        "pages/history.py",
        "Side-by-side diff",
        {"template": "qa-basic", "from": d.replaced_commit[:12], "to": d.commit[:12]},
    ) in found
    trend = next(p for t, label, p in found if label == "Trends around it")
    assert (trend["template"], trend["env"], trend["by"]) == ("qa-basic", "production", "version")
    running = ws.experiments.list(status="running")[0]
    at = open_link("pages/experiments.py", {"experiment": running.id})
    found = links(at)
    trend = next(p for t, label, p in found if label == "Trend by variant")
    assert (trend["template"], trend["by"], trend["metric"]) == (
        "qa-basic",
        "variant",
        "quality_score",
    )
    diff = next(p for t, label, p in found if label == "Diff of the variants")
    assert diff["from"] == running.variants[0].commit[:12]
    ws.close()


# ---- empty workspaces --------------------------------------------------------------------------


@pytest.fixture
def empty_db(db_path, monkeypatch) -> Path:
    """A workspace made through the API without the demo (the dashboard must not add it)."""
    ws = Workspace.open(db_path)
    ws.mark("seeded", "api")
    ws.close()
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    return db_path


def guidance(at: AppTest) -> str:
    return " ".join(
        x.value.replace("\\", "") for kind in (at.info, at.caption, at.markdown) for x in kind
    )


def test_home_of_an_empty_workspace_says_where_to_start(empty_db):
    at = home()
    assert metric(at, "Templates") == "0"
    assert any("no template yet" in i.value for i in at.info)
    found = links(at)
    assert ("pages/templates.py", "Create a template", {"tab": "new"}) in found
    assert ("pages/experiments.py", "Configure an experiment", {"tab": "configure"}) in found
    assert ("pages/metrics.py", "Record results", {"tab": "import"}) in found
    assert ("pages/alerts.py", "Set alert rules", {"tab": "rules"}) in found
    t = open_link("pages/templates.py", {"tab": "new"})
    assert t.session_state["tpl_tab"] == "New template"
    t = open_link("pages/experiments.py", {"tab": "configure"})
    assert opened_tab(t) == "Configure"
    t = open_link("pages/metrics.py", {"tab": "import"})
    assert opened_tab(t) == "Import CSV"
    t = open_link("pages/alerts.py", {"tab": "rules"})
    assert opened_tab(t) == "Rules"
    assert opened_tab(open_link("pages/alerts.py", {})) == "Fired alerts"
    assert Workspace.open(empty_db).templates.list(include_archived=True) == []  # no demo


EMPTY_HINTS = {
    "pages/home.py": ["no template yet", "Step 1: a prompt with"],
    "pages/templates.py": ["There is no template yet", "New template"],
    "pages/history.py": ["There is no template yet"],
    "pages/deployments.py": ["There is no template yet", "then deploy it here"],
    "pages/experiments.py": ["No experiments yet", "There is no template yet"],
    "pages/metrics.py": ["No events in this window", "No CSV has been imported yet"],
    "pages/trends.py": ["There is no template yet"],
    "pages/alerts.py": ["No open alerts", "No rules yet"],
}


@pytest.mark.parametrize("page", PAGES)
def test_every_screen_of_an_empty_workspace_says_what_to_do(empty_db, page):
    at = open_link(page, {})
    assert not at.error, [e.value for e in at.error]
    text = guidance(at)
    for hint in EMPTY_HINTS[page]:
        assert hint in text, (hint, text[:800])
    if page in ("pages/history.py", "pages/deployments.py", "pages/trends.py"):
        assert ("pages/templates.py", "Create a template", {"tab": "new"}) in links(at)


@pytest.mark.parametrize("page", PAGES)
def test_every_screen_with_only_archived_templates(db_path, demo_file, monkeypatch, page):
    shutil.copy(demo_file, db_path)
    ws = Workspace.open(db_path)
    for e in ws.experiments.list(status="running"):
        ws.experiments.stop(e.id)
    for t in ws.templates.list():
        ws.templates.archive(t.name)
    ws.close()
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    at = open_link(page, {})
    assert not at.error, [e.value for e in at.error]
    if page == "pages/home.py":
        assert any("archived" in i.value for i in at.info)


# ---- fresh after writes ------------------------------------------------------------------------


def test_a_write_in_this_process_shows_on_the_next_run(demo_db):
    at = home()
    ws = Workspace.open(demo_db)
    assert metric(at, "Open alerts") == str(ws.alerts.open_count()) != "0"
    at.run()  # answered from the cache
    ws.alerts.acknowledge([a.id for a in ws.alerts.alerts(status="open")], author="me")
    at.run()
    assert metric(at, "Open alerts") == "0"
    assert any("Nothing needs attention" in s.value for s in at.success)
    ws.close()


def test_a_write_by_another_process_shows_on_the_next_run(demo_db):
    at = home()
    before = metric(at, "Running experiments")
    assert before == "2"
    code = (
        "from promptver import Workspace\n"
        f"ws = Workspace.open({str(demo_db)!r})\n"
        "for e in ws.experiments.list(status='running'):\n"
        "    ws.experiments.stop(e.id, author='cron')\n"
        "ws.close()\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr
    at.run()
    assert metric(at, "Running experiments") == "0"
    assert any("No experiment is running" in i.value for i in at.info)


def test_the_rollback_marker_says_why(demo_db):
    """Issue 22, item 14: why qa-basic was rolled back in production reads on Home itself, by
    the marker in the live grid (not three clicks away)."""
    ws = Workspace.open(demo_db)
    live = ws.deployments.live("qa-basic", "production")
    ws.close()
    assert live.action == "rollback" and live.note
    at = home()
    captions = [c.value.replace("\\", "") for c in at.caption]
    marker = [c for c in captions if c.startswith(":material/undo:") and live.note in c]
    assert marker, captions

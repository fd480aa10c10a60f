"""The Experiments screen under AppTest: configure, validate, start, stop, preview routing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from promptver import Workspace
from promptver.routing import Router
from tests.experiments_helpers import seed_lab, spec

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/experiments.py"


@pytest.fixture
def db(db_path, monkeypatch):
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    ws = Workspace.open(db_path)
    seed_lab(ws)
    yield ws
    ws.close()


def open_page(**state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def key(at: AppTest, k: str):
    """The widget with key ``k`` (any kind)."""
    for kind in (
        "text_input",
        "selectbox",
        "slider",
        "number_input",
        "multiselect",
        "button",
        "text_area",
        "toggle",
        "select_slider",
    ):
        for w in getattr(at, kind):
            if w.key == k:
                return w
    raise KeyError(k)


def shown(markdown: str) -> str:
    """Markdown as read on screen: escaping backslashes removed."""
    return re.sub(r"\\(.)", r"\1", markdown)


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_empty_list_and_the_form(db) -> None:
    at = open_page()
    assert any("No experiments yet" in i.value for i in at.info)
    assert key(at, "exp_save").disabled  # no name yet
    assert key(at, "exp_f_template").value == "qa-basic"
    assert key(at, "exp_f_ref_0").value == "1.1.0"  # the latest version is the default control
    assert key(at, "exp_f_ref_1").value == "concise-tone"  # a branch is the default treatment
    assert key(at, "exp_f_ref_1").options == ["1.1.0 (latest)", "1.0.0", "branch concise-tone"]


def test_configure_and_create_a_draft(db) -> None:
    tid = db.templates.row("qa-basic")["id"]
    from tests.experiments_helpers import add_custom_metric_event

    add_custom_metric_event(db, tid, "thumbs_up")
    at = open_page()
    key(at, "exp_f_name").input("Tone *test* [1]")
    key(at, "exp_f_hypothesis").input("Shorter answers keep quality")
    key(at, "exp_f_ref_0").select("1.0.0")
    key(at, "exp_f_w_0").set_value(70)  # the last variant's share is the rest: 30 %
    key(at, "exp_f_primary").select("quality_score")
    key(at, "exp_f_secondary").select("thumbs_up")
    key(at, "exp_f_guard").select("latency_ms")
    key(at, "exp_f_cov").set_value(40)
    key(at, "exp_f_salt").input("tone-salt")
    rerun(at)
    split = [m.value for m in at.markdown if m.value.startswith("Split:")]
    assert split and "**70 %**" in split[0] and "**30 %**" in split[0]
    yaml_code = [c.value for c in at.code if "variants:" in c.value]
    assert yaml_code and "weight: 70" in yaml_code[0] and "coverage: 0.4" in yaml_code[0]
    key(at, "exp_save").click()
    rerun(at)
    [e] = db.experiments.list()
    assert e.name == "Tone *test* [1]" and e.status == "draft"
    assert e.hypothesis == "Shorter answers keep quality"
    assert [(v.name, v.ref, v.weight) for v in e.variants] == [
        ("control", "1.0.0", 70),
        ("variant-1", "concise-tone", 30),
    ]
    assert [(m.name, m.role, m.direction) for m in e.metrics] == [
        ("quality_score", "primary", "higher"),
        ("thumbs_up", "secondary", "higher"),
        ("latency_ms", "guardrail", "lower"),
    ]
    assert e.coverage == 0.4 and e.salt == "tone-salt"
    assert at.session_state["exp_pick"] == e.id
    # names are shown escaped (free text must not turn into Markdown)
    assert any(r"Tone \*test\* \[1\]" in m.value for m in at.markdown)


def test_validation_errors_are_shown_and_nothing_is_written(db) -> None:
    at = open_page()
    key(at, "exp_f_name").input("dup")
    key(at, "exp_f_vname_1").input("control")
    rerun(at)
    # shown as the form changes, in the form's words; the button waits for a fix
    assert any(shown(e.value).startswith("Variant 2 name: duplicate") for e in at.error)
    assert key(at, "exp_save").disabled
    assert db.experiments.list() == []


def test_start_and_stop_with_confirmation(db) -> None:
    e = db.experiments.create(spec(end="2099-01-01T00:00:00Z"))
    at = open_page()
    key(at, "exp_start").click()
    rerun(at)
    assert db.experiments.get(e.id).status == "draft"  # only asked so far
    key(at, "exp_start_yes").click()
    rerun(at)
    assert db.experiments.get(e.id).status == "running"
    key(at, "exp_stop").click()
    rerun(at)
    key(at, "exp_stop_yes").click()  # no reason, before the planned end: refused
    rerun(at)
    assert any("reason" in x.value for x in at.error)
    assert db.experiments.get(e.id).status == "running"
    key(at, "exp_stop_reason").input("guardrail breached")
    key(at, "exp_stop_yes").click()
    rerun(at)
    stopped = db.experiments.get(e.id)
    assert stopped.status == "stopped" and stopped.stop_reason == "guardrail breached"


def test_a_second_running_experiment_is_refused_in_the_dialog(db) -> None:
    a = db.experiments.create(spec(name="a *b* <i>"))
    db.experiments.start(a.id)
    b = db.experiments.create(spec(name="b"))
    at = open_page(exp_pick=b.id)
    key(at, "exp_start").click()
    rerun(at)
    assert any("already running" in w.value for w in at.warning)
    key(at, "exp_start_yes").click()
    rerun(at)
    assert any("environment" in x.value for x in at.error)
    # the running experiment's free-text name is escaped, not rendered as Markdown or HTML
    assert any(r"a \*b\* \<i\>" in x.value for x in at.error), [x.value for x in at.error]
    assert db.experiments.get(b.id).status == "draft"


def test_routing_preview_matches_the_router(db) -> None:
    e = db.experiments.create(spec(coverage=0.5))
    at = open_page()
    key(at, "exp_route_user").input("user-42")
    rerun(at)
    variant, bucket = Router.from_experiment(e).route("user-42")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Bucket"] == f"{bucket:.6f}"
    assert metrics["Variant"] == (variant or "not in the experiment")
    tables = [d.value for d in at.dataframe if "target %" in d.value.columns]
    split = tables[0]
    assert int(split["users"].sum()) == 10_000
    assert list(split["target %"]) == [25.0, 25.0, 50.0]
    assert list(split["variant"]) == ["control", "concise", "(outside coverage)"]


def test_results_tab_a_draft_has_none_yet(db) -> None:
    db.experiments.create(spec())
    at = open_page()
    assert any("Results of" in h.value for h in at.subheader)
    assert any("has not started" in i.value for i in at.info)
    assert any("Primary metric **quality\\_score**" in m.value for m in at.markdown)


def test_results_tab_shows_the_statistics_of_a_running_experiment(db) -> None:
    import numpy as np

    from promptver.routing import route

    db.deployments.deploy("qa-basic", "1.1.0", "production", author="t")
    e = db.experiments.create(spec(minimum_sample_size=20, salt="page"))
    db.experiments.start(e.id)
    e = db.experiments.get(e.id)
    rng = np.random.default_rng(4)
    for i in range(120):
        p = db.get_prompt("qa-basic", env="production", user_id=f"u{i}")
        assert p.variant == route(e, f"u{i}")[0]
        lift = 0.15 if p.variant == "concise" else 0.0
        db.track(p, quality_score=float(np.clip(rng.normal(0.6 + lift, 0.05), 0, 1)))
    db.metrics.flush()
    at = open_page()
    assert not at.exception
    assert any("Winner: concise" in s.value for s in at.success)
    assert len(at.get("vega_lite_chart")) >= 1  # the forest plot


def test_running_experiments_offer_a_copy_and_drafts_an_edit(db) -> None:
    e = db.experiments.create(spec(name="frozen", coverage=0.3))
    db.experiments.start(e.id)
    at = open_page()
    key(at, "exp_copy").click()
    rerun(at)
    assert key(at, "exp_f_name").value == "frozen (copy)"
    assert key(at, "exp_f_cov").value == 30
    key(at, "exp_f_cov").set_value(60)
    key(at, "exp_save").click()
    rerun(at)
    copy = db.experiments.get("frozen (copy)")
    assert copy.status == "draft" and copy.coverage == 0.6
    assert db.experiments.get("frozen").coverage == 0.3  # the running one is untouched
    # the copy is selected; edit it in place
    key(at, "exp_edit_selected").click()
    rerun(at)
    key(at, "exp_f_hypothesis").input("edited")
    key(at, "exp_save").click()
    rerun(at)
    assert db.experiments.get(copy.id).hypothesis == "edited"
    assert len(db.experiments.list()) == 2


def test_shares_always_add_up_to_100(db) -> None:
    at = open_page()
    key(at, "exp_f_n").set_value(3)
    rerun(at)
    assert [key(at, f"exp_f_w_{i}").value for i in range(2)] == [50, 33]  # the new one: 1/3
    split = [m.value for m in at.markdown if m.value.startswith("Split:")][0]
    assert split.endswith("**17 %**")  # the last variant gets the rest
    key(at, "exp_f_w_0").set_value(60)
    key(at, "exp_f_w_1").set_value(45)
    key(at, "exp_f_name").input("too much")
    rerun(at)
    assert any("leaving nothing for the last variant" in e.value for e in at.error)
    assert key(at, "exp_save").disabled
    key(at, "exp_equal").click()
    rerun(at)
    assert [key(at, f"exp_f_w_{i}").value for i in range(2)] == [33, 33]
    assert not key(at, "exp_save").disabled
    key(at, "exp_save").click()
    rerun(at)
    e = db.experiments.get("too much")
    assert [v.weight for v in e.variants] == [33, 33, 34]


def test_the_status_filter_shows_what_the_list_shows(db) -> None:
    """Issue 22, item 17: the filter starts with every status selected (it looked unset while
    the list showed everything); clearing it lists nothing and says why."""
    exp = db.experiments.create(
        {
            "name": "filter-me",
            "template": "qa-basic",
            "variants": [
                {"name": "control", "ref": "1.1.0", "weight": 50},
                {"name": "concise", "ref": "concise-tone", "weight": 50},
            ],
            "metrics": ["quality_score"],
        }
    )
    at = open_page()
    control = next(
        s for s in at.get("button_group") if s.proto.id and "exp_status_filter" in s.proto.id
    )
    assert set(at.session_state["exp_status_filter"]) == {
        "running",
        "draft",
        "completed",
        "stopped",
    }
    assert any(exp.name in str(df.value) for df in at.dataframe)
    at.session_state["exp_status_filter"] = ["running"]
    rerun(at)
    assert not any(exp.name in str(df.value) for df in at.dataframe)  # a draft
    at.session_state["exp_status_filter"] = []
    rerun(at)
    assert any("No status selected" in c.value for c in at.caption)
    assert control is not None

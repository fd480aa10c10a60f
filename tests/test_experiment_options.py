"""The "More statistics" options of an experiment file: cuped, engine, guardrail margins."""

from __future__ import annotations

import pytest

from promptver import ValidationError
from promptver.experiments import to_spec
from tests.api_helpers import api_fixture, serve_fixture  # noqa: F401 - fixtures
from tests.experiments_helpers import lab_fixture, spec  # noqa: F401 - the fixture


def test_options_round_trip_through_storage(lab):
    exp = lab.experiments.create(
        spec(
            metrics=["quality_score"],
            cuped={"lookback_days": 14},
            engine="bayesian",
            guardrails=[{"name": "latency_ms", "margin": 0.05}, "cost_usd"],
        )
    )
    again = lab.experiments.get(exp.id)
    assert again.cuped_lookback_days == 14 and again.engine == "bayesian"
    assert {m.name: m.margin for m in again.metrics} == {
        "quality_score": None,
        "latency_ms": 0.05,
        "cost_usd": None,
    }
    written = to_spec(again)
    assert written["cuped"] == {"lookback_days": 14} and written["engine"] == "bayesian"
    assert written["guardrails"] == [{"name": "latency_ms", "margin": 0.05}, "cost_usd"]


def test_margin_is_stored_on_the_guardrail(lab):
    exp = lab.experiments.create(
        spec(metrics=["quality_score"], guardrails=[{"name": "latency_ms", "margin": 0.05}])
    )
    got = lab.experiments.get(exp.id)
    (g,) = [m for m in got.metrics if m.role == "guardrail"]
    assert g.name == "latency_ms" and g.margin == 0.05
    assert to_spec(got)["guardrails"] == [{"name": "latency_ms", "margin": 0.05}]
    # the file written back creates the same experiment
    copy = lab.experiments.create({**to_spec(got), "name": "copy"})
    assert [m.model_dump() for m in copy.metrics] == [m.model_dump() for m in got.metrics]


def test_defaults_are_frequentist_without_cuped(lab):
    exp = lab.experiments.create(spec())
    assert exp.engine == "frequentist" and exp.cuped_lookback_days is None
    assert "cuped" not in to_spec(exp) and "engine" not in to_spec(exp)


@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        ({"engine": "bayes"}, "engine", "frequentist, bayesian"),
        ({"cuped": 14}, "cuped", "lookback_days"),
        ({"cuped": {"lookback_days": 0}}, "cuped.lookback_days", "1 to 365"),
        ({"cuped": {"lookback_days": 2.5}}, "cuped.lookback_days", "whole number"),
        ({"cuped": {}}, "cuped.lookback_days", "whole number"),
        ({"cuped": {"lookback_days": 7, "days": 1}}, "cuped.days", "unknown field"),
        (
            {"metrics": ["quality_score"], "guardrails": [{"name": "latency_ms", "margin": -1}]},
            "guardrails[0].margin",
            "greater than 0",
        ),
        (
            {"metrics": ["quality_score"], "guardrails": [{"name": "latency_ms", "margin": "5%"}]},
            "guardrails[0].margin",
            "relative margin",
        ),
        (
            {"metrics": ["quality_score", {"name": "latency_ms", "margin": 0.05}]},
            "metrics[1].margin",
            "belongs to a guardrail",
        ),
    ],
)
def test_invalid_options_name_the_field(lab, changes, field, text):
    with pytest.raises(ValidationError) as err:
        lab.experiments.create(spec(**changes))
    problems = {p.field: p.message for p in err.value.problems}
    assert field in problems and text in problems[field]
    assert lab.experiments.list() == []


def test_metric_with_guardrail_flag_takes_a_margin(lab):
    exp = lab.experiments.create(
        spec(metrics=["quality_score", {"name": "latency_ms", "guardrail": True, "margin": 0.1}])
    )
    assert lab.experiments.get(exp.id).metric("latency_ms").margin == 0.1


def test_running_experiment_cannot_change_engine(lab):
    exp = lab.experiments.create(spec())
    lab.experiments.start(exp.id)
    from promptver.errors import Conflict

    with pytest.raises(Conflict, match="engine"):
        lab.experiments.update(
            exp.id, {**to_spec(lab.experiments.get(exp.id)), "engine": "bayesian"}
        )


def test_api_accepts_the_options_and_returns_the_readout(ws, api):
    from tests.api_helpers import EXPERIMENT, seed

    seed(ws)
    body = {
        **EXPERIMENT,
        "metrics": ["quality_score"],
        "guardrails": [{"name": "latency_ms", "margin": 0.05}],
        "cuped": {"lookback_days": 7},
        "engine": "bayesian",
    }
    r = api.post("/prompts/qa-basic/experiments", json=body)
    assert r.status_code == 201, r.text
    exp = r.json()
    assert exp["engine"] == "bayesian" and exp["cuped_lookback_days"] == 7
    assert [m.get("margin") for m in exp["metrics"]] == [None, 0.05]
    bad = api.post(
        "/prompts/qa-basic/experiments", json={**body, "name": "x", "cuped": {"lookback_days": 0}}
    )
    assert bad.status_code == 422 and "cuped.lookback_days" in bad.text
    eid = exp["id"]
    assert api.post(f"/experiments/{eid}/start").status_code == 200
    from promptver.versioning import utcnow

    now = utcnow().isoformat()
    events = [
        {
            "timestamp": now,
            "template": "qa-basic",
            "user_id": f"u{i}",
            "experiment": eid,
            "variant": "control" if i % 2 else "concise",
            "quality_score": 0.5 + (i % 7) / 20,
            "latency_ms": 900 + (i % 5) * 20,
        }
        for i in range(40)
    ]
    assert api.post("/events", json={"events": events}).status_code in (200, 202)
    res = api.get(f"/experiments/{eid}/results").json()
    c = res["comparisons"][0]
    assert set(c["bayesian"]) >= {"chance_to_win", "expected_loss", "credible_low", "credible_high"}
    assert set(c["cuped"]) >= {
        "theta",
        "diff",
        "ci_low",
        "ci_high",
        "p_value",
        "variance_reduction",
    }
    (g,) = res["guardrails"]
    assert g["margin"] == 0.05 and g["status"] in ("within margin", "worse than allowed")


def test_cli_file_and_results_json(lab, cli, tmp_path):
    import json

    path = tmp_path / "exp.yaml"
    path.write_text(
        "name: cli-options\ntemplate: qa-basic\nvariants:\n"
        "  - {name: control, ref: 1.0.0}\n  - {name: concise, ref: concise-tone}\n"
        "metrics: [quality_score]\nguardrails:\n  - {name: latency_ms, margin: 0.05}\n"
        "cuped: {lookback_days: 14}\nengine: bayesian\n"
    )
    out = cli("--json", "experiment", "create", "--file", str(path))
    assert out.code == 0, out.err
    eid = json.loads(out.out)["id"]
    res = cli("--json", "experiment", "results", eid)
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert data["engine"] == "bayesian" and data["cuped_lookback_days"] == 14
    text = cli("experiment", "results", eid)
    assert text.code == 0 and "guardrail" in text.out
    bad = tmp_path / "bad.yaml"
    bad.write_text(path.read_text().replace("engine: bayesian", "engine: magic"))
    refused = cli("experiment", "create", "--file", str(bad))
    assert refused.code == 1 and "engine" in refused.err

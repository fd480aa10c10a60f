"""The statistics engine wired into the experiment lifecycle and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as ss

from promptver.versioning import utcnow
from tests.experiments_helpers import lab_fixture, spec  # noqa: F401 - fixture


def _events(ws, exp, n=150, effect=0.08, seed=1):
    """One event per user, routed by the experiment's own rule."""
    from promptver.routing import route

    rng = np.random.default_rng(seed)
    rows = []
    now = utcnow()
    for i in range(2 * n):
        u = f"u{i}"
        variant, _ = route(exp, u)
        q = float(np.clip(rng.normal(0.6 + (effect if variant == "concise" else 0), 0.1), 0, 1))
        rows.append(
            {
                "ts": now,
                "user_id": u,
                "variant": variant,
                "quality_score": q,
                "latency_ms": float(rng.lognormal(6, 0.3)),
            }
        )
    frame = pd.DataFrame(rows)
    tpl = ws.templates.get("qa-basic")
    for r in frame.itertuples():
        p = ws.get_prompt("qa-basic", env="production", user_id=r.user_id)
        assert p.variant == r.variant
        ws.track(p, quality_score=r.quality_score, latency_ms=r.latency_ms)
    ws.metrics.flush()
    assert tpl.id
    return frame


@pytest.fixture
def running(lab):
    lab.deployments.deploy("qa-basic", "1.1.0", "production", author="t")
    exp = lab.experiments.create(spec(minimum_sample_size=50, salt="integration"), author="t")
    lab.experiments.start(exp.id, author="t")
    return lab, lab.experiments.get(exp.id)


def test_results_of_a_running_experiment_match_welch(running):
    ws, exp = running
    frame = _events(ws, exp)
    r = ws.experiment_results(exp.id)
    a = frame.loc[frame.variant == "control", "quality_score"]
    b = frame.loc[frame.variant == "concise", "quality_score"]
    ref = ss.ttest_ind(b, a, equal_var=False)
    c = r.comparisons[0]
    assert (c.control, c.treatment) == ("control", "concise")
    assert c.p_value == pytest.approx(ref.pvalue, abs=1e-6)
    assert r.status == "running" and r.winner == "concise", r.winner_reason


def test_stop_freezes_results_and_later_events_do_not_change_them(running, cli):
    ws, exp = running
    _events(ws, exp)
    ws.experiments.stop(exp.id, author="t", reason="enough evidence")
    frozen = ws.experiments.stored_results(exp.id)
    assert frozen["experiment_id"] == exp.id and frozen["winner"] == "concise"
    assert frozen["status"] in ("stopped", "completed")
    # a late import inside the window would change a fresh analysis, not the frozen decision
    r1 = ws.experiment_results(exp.id)
    assert r1.model_dump(mode="json") == frozen
    again = ws.experiment_results(exp.id, resamples=500)  # an option asks for a new analysis
    assert again.comparisons[0].p_value == pytest.approx(r1.comparisons[0].p_value)


def test_cli_experiment_results_json_is_the_contract_object(running, cli):
    ws, exp = running
    _events(ws, exp)
    r = cli("experiment", "results", exp.name, json=True, db=ws.path)
    assert r.code == 0, r.err
    data = r.json()
    assert list(data)[:9] == [
        "experiment_id",
        "status",
        "metric",
        "alpha",
        "variants",
        "comparisons",
        "srm",
        "sample_size_ok",
        "winner",
    ]
    assert data["metric"] == "quality_score" and data["winner"] == "concise"
    r = cli("experiment", "results", exp.id, "--metric", "latency_ms", json=True, db=ws.path)
    assert r.code == 0 and r.json()["metric"] == "latency_ms"
    r = cli("experiment", "results", exp.id, "--metric", "nope", db=ws.path)
    assert r.code == 1 and r.err.startswith("error:")


def test_the_evidence_gate_accepts_the_version_that_won(lab):
    """End to end: with the evidence gate on, the winning branch may replace the live version
    because it won a completed experiment against it; another version needs a reason."""
    from promptver import Workspace
    from promptver.errors import DeploymentRefused

    lab.deployments.deploy("qa-basic", "1.1.0", "production", author="t")
    exp = lab.experiments.create(
        spec(
            minimum_sample_size=50,
            variants=[
                {"name": "control", "ref": "1.1.0", "weight": 50},
                {"name": "concise", "ref": "concise-tone", "weight": 50},
            ],
        ),
        author="t",
    )
    lab.experiments.start(exp.id, author="t")
    exp = lab.experiments.get(exp.id)
    _events(lab, exp)
    assert lab.experiments.stop(exp.id, author="t").status == "completed"
    gated = Workspace.open(
        lab.path,
        settings=lab.settings.with_overrides(
            deployment__rules={"production": {"require_experiment_win": True}}
        ),
    )
    with pytest.raises(DeploymentRefused, match="experiment"):
        gated.deployments.deploy("qa-basic", "1.0.0", "production", author="t")
    winner = lab.templates.get("qa-basic", "concise-tone").commit
    d = gated.deployments.deploy("qa-basic", winner[:12], "production", author="t")
    assert d.evidence_experiment_id == exp.id

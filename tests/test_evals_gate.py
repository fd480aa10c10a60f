"""The ``eval`` deployment gate: non-inferiority on a dataset, or a recorded override."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from promptver import Settings, Workspace
from promptver.errors import ConfigError, DeploymentRefused

PROD = "production"


def _ws(db_path: Path, metric: str = "quality", margin: float = 0.02) -> Workspace:
    settings = Settings().with_overrides(
        deployment__gates={
            PROD: {"eval": {"dataset": "golden", "metric": metric, "margin": margin}}
        }
    )
    ws = Workspace.open(db_path, settings=settings)
    ws.templates.create("qa", "Answer {q}.", author="ana")
    ws.templates.update("qa", "Answer {q} briefly.", author="ana")  # 1.1.0: as good
    ws.templates.update("qa", "Answer {q} badly.", author="ana")  # 1.2.0: worse
    ws.templates.update("qa", "Answer {q} unevaluated.", author="ana")  # 1.3.0: no eval
    return ws


def _import(ws: Workspace, tmp: Path, seed: int = 3) -> dict[str, np.ndarray]:
    """quality per item: 1.1.0 ≈ 1.0.0 (+0.01), 1.2.0 clearly worse (−0.1); latency too."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.3, 0.9, 60)
    scores = {
        "1.0.0": base,
        "1.1.0": base + 0.01 + rng.normal(0, 0.01, 60),
        "1.2.0": base - 0.1 + rng.normal(0, 0.02, 60),
    }
    lines = ["dataset,item_id,template,version,quality,latency_ms"]
    for v, q in scores.items():
        lat = 100 + (30 if v == "1.2.0" else 0)
        lines += [f"golden,i{i},qa,{v},{float(x)!r},{lat + i % 7}" for i, x in enumerate(q)]
    path = tmp / "golden.csv"
    path.write_text("\n".join(lines) + "\n")
    ws.evals.import_csv(path)
    return scores


def test_non_inferior_candidate_passes_and_the_report_is_stored(db_path, tmp_path):
    ws = _ws(db_path)
    scores = _import(ws, tmp_path)
    first = ws.deployments.deploy("qa", "1.0.0", PROD)
    assert first.gate_report["gates"][-1]["status"] == "passed"  # nothing live yet
    d = ws.deployments.deploy("qa", "1.1.0", PROD)
    gate = d.gate_report["gates"][-1]
    assert gate["gate"] == "eval" and gate["status"] == "passed"
    ci = sps.ttest_rel(scores["1.1.0"], scores["1.0.0"]).confidence_interval(0.95)
    facts = gate["eval"]
    assert (facts["dataset"], facts["metric"], facts["margin"], facts["items"]) == (
        "golden",
        "quality",
        0.02,
        60,
    )
    assert facts["ci_low"] == pytest.approx(ci.low, abs=1e-9)
    assert facts["lower_bound"] == pytest.approx(ci.low, abs=1e-9)
    assert ci.low > -0.02
    assert ws.deployments.history("qa", PROD)[0].gate_report["gates"][-1]["eval"] == facts
    ws.close()


def test_inferior_candidate_is_refused_with_nothing_written(db_path, tmp_path):
    ws = _ws(db_path)
    _import(ws, tmp_path)
    ws.deployments.deploy("qa", "1.1.0", PROD)
    before = len(ws.deployments.history("qa"))
    with pytest.raises(DeploymentRefused) as e:
        ws.deployments.deploy("qa", "1.2.0", PROD)
    msg = e.value.message
    assert "dataset 'golden'" in msg and "metric quality" in msg
    assert "60 paired items" in msg and "more than the margin" in msg
    assert "--force --reason" in msg
    assert len(ws.deployments.history("qa")) == before
    assert ws.deployments.live("qa", PROD).version == "1.1.0"
    # the gate also refuses a version without an evaluation, saying so
    with pytest.raises(DeploymentRefused, match="1.3.0 \\(candidate\\) has no evaluation"):
        ws.deployments.deploy("qa", "1.3.0", PROD)
    # other environments have no eval gate
    assert ws.deployments.deploy("qa", "1.2.0", "staging").version == "1.2.0"
    ws.close()


def test_force_with_reason_overrides_and_is_recorded(db_path, tmp_path):
    ws = _ws(db_path)
    _import(ws, tmp_path)
    ws.deployments.deploy("qa", "1.1.0", PROD)
    d = ws.deployments.deploy("qa", "1.2.0", PROD, force=True, reason="hotfix for a legal issue")
    gate = d.gate_report["gates"][-1]
    assert gate["status"] == "overridden" and "hotfix for a legal issue" in gate["message"]
    assert gate["eval"]["diff"] < -0.05
    assert d.forced and d.force_reason == "hotfix for a legal issue"
    # rollbacks are exempt
    r = ws.deployments.rollback("qa", PROD)
    assert r.version == "1.1.0"
    assert r.gate_report["gates"][-1]["status"] == "skipped"
    ws.close()


def test_lower_is_better_metric_uses_the_upper_bound(db_path, tmp_path):
    ws = _ws(db_path, metric="latency_ms", margin=5)
    _import(ws, tmp_path)
    ws.deployments.deploy("qa", "1.0.0", PROD)
    assert ws.deployments.deploy("qa", "1.1.0", PROD).version == "1.1.0"  # same latency
    with pytest.raises(DeploymentRefused, match="lower is better"):
        ws.deployments.deploy("qa", "1.2.0", PROD)  # 30 ms slower
    ws.close()


def test_check_previews_the_gate_without_writing(db_path, tmp_path):
    ws = _ws(db_path)
    _import(ws, tmp_path)
    ws.deployments.deploy("qa", "1.1.0", PROD)
    report = ws.deployments.check("qa", "1.2.0", PROD)
    assert not report.ok and report.gate("eval").status == "failed"
    assert len(ws.deployments.history("qa")) == 1
    ws.close()


def test_gate_settings_are_validated():
    with pytest.raises(ConfigError, match="gates names environment 'prod'"):
        Settings.from_dict(
            {"deployment": {"gates": {"prod": {"eval": {"dataset": "d", "metric": "m"}}}}}
        )
    with pytest.raises(ConfigError, match="margin"):
        Settings.from_dict(
            {
                "deployment": {
                    "gates": {PROD: {"eval": {"dataset": "d", "metric": "m", "margin": -1}}}
                }
            }
        )
    with pytest.raises(ConfigError, match="unknown key"):
        Settings.from_dict({"deployment": {"gates": {PROD: {"evals": {}}}}})

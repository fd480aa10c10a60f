"""The ``experiment results`` handler (promptver.cli.commands.results)."""

from __future__ import annotations

import argparse
import io
import json

import numpy as np
import pytest
import scipy.stats as ss

from promptver import ValidationError
from promptver.cli.commands.results import add_arguments, show_results
from promptver.cli.context import Context
from tests.stats_helpers import insert_events, make_experiment, one_event_per_user

CONTRACT_TOP = [
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


def _run(db_path, experiment, *argv: str, as_json: bool = True) -> tuple[str, object]:
    parser = argparse.ArgumentParser()
    parser.add_argument("id")
    add_arguments(parser)
    args = parser.parse_args([experiment.id, *argv])
    args.db, args.config, args.json = str(db_path), None, as_json
    out = io.StringIO()
    ctx = Context(args, out=out)
    try:
        result = show_results(ctx, experiment)
    finally:
        ctx.close()
    return out.getvalue(), result


@pytest.fixture
def experiment(ws):
    rng = np.random.default_rng(2)
    frame, a, b = one_event_per_user(rng, 250, 260, loc=(0.6, 0.66))
    frame["latency_ms"] = rng.lognormal(6, 0.5, len(frame))
    insert_events(ws, frame)
    return make_experiment(metrics=["quality_score", "latency_ms"]), a, b


def test_json_output_is_the_contract_results_object(db_path, experiment):
    exp, a, b = experiment
    out, _ = _run(db_path, exp)
    data = json.loads(out)
    assert list(data)[: len(CONTRACT_TOP)] == CONTRACT_TOP
    ref = ss.ttest_ind(b, a, equal_var=False)
    c = data["comparisons"][0]
    assert c["p_value"] == pytest.approx(ref.pvalue, abs=1e-6)
    assert (c["ci_low"], c["ci_high"]) == pytest.approx(tuple(ref.confidence_interval()), abs=1e-6)
    assert data["winner"] == "treatment"
    assert data["computed_at"].endswith("+00:00")


def test_options_reach_the_analysis(db_path, experiment):
    exp, _, _ = experiment
    out, r = _run(
        db_path,
        exp,
        "--metric",
        "latency_ms",
        "--sequential",
        "--winsorize",
        "--resamples",
        "500",
        "--seed",
        "3",
        "--target-lift",
        "2",
    )
    data = json.loads(out)
    assert data["metric"] == "latency_ms" and data["method"] == "sequential"
    assert data["winsorized"]["percentile"] == 99.9 and data["uncapped"] is not None
    assert data["bootstrap"]["resamples"] == 500 and data["bootstrap"]["seed"] == 3
    assert data["power"][0]["target_lift"] == pytest.approx(0.02)
    out, _ = _run(db_path, exp, "--no-sequential")
    assert json.loads(out)["method"] == "fixed-horizon"


def test_human_output(db_path, experiment):
    exp, _, _ = experiment
    out, _ = _run(db_path, exp, as_json=False)
    assert "metric quality_score (primary, higher is better)" in out
    assert "SRM: ok" in out
    assert "treatment vs control" in out
    assert "winner: treatment" in out
    assert "p95 latency_ms" not in out  # p95 shows with the latency metric
    out, _ = _run(db_path, exp, "--metric", "latency_ms", as_json=False)
    assert "p95 latency_ms" in out


def test_unknown_metric_is_a_domain_error(db_path, experiment):
    exp, _, _ = experiment
    with pytest.raises(ValidationError, match="use one of: quality_score, latency_ms"):
        _run(db_path, exp, "--metric", "nope")

"""The results view's "More statistics" panels (AppTest): Bayesian readout, CUPED side by side,
non-inferiority guardrails."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from tests.stats_helpers import T0, insert_events, make_experiment
from tests.test_results_ui import _app, _frames, _text


def test_panels_show_adjusted_and_unadjusted_and_the_readout(ws, db_path):
    rng = np.random.default_rng(9)
    n = 300
    level = rng.normal(0.6, 0.1, 2 * n)
    users = [f"u{i}" for i in range(2 * n)]
    frame = pd.DataFrame(
        {
            "user_id": users,
            "variant": ["control"] * n + ["treatment"] * n,
            "quality_score": level
            + rng.normal(0, 0.03, 2 * n)
            + np.r_[np.zeros(n), np.full(n, 0.02)],
            "latency_ms": rng.normal(1000, 50, 2 * n),
        }
    )
    insert_events(ws, frame)
    pre = pd.DataFrame(
        {
            "user_id": users,
            "quality_score": level,
            "ts": T0 - timedelta(days=2),
            "experiment_id": None,
            "variant": None,
        }
    )
    insert_events(ws, pre, experiment_id=None)
    exp = make_experiment(
        metrics=[
            "quality_score",
            {"name": "latency_ms", "direction": "lower", "role": "guardrail", "margin": 0.05},
        ],
        cuped_lookback_days=14,
        engine="bayesian",
    )
    at = _app(db_path, exp)
    assert not at.exception
    text = _text(at)
    assert "Bayesian readout" in text and "decides the winner" in text
    assert "CUPED" in text
    frames = _frames(at)
    cuped = next(f for f in frames if "adjusted difference" in f)
    assert {"difference", "CI", "adjusted CI", "variance reduction"} <= set(cuped.columns)
    bayes = next(f for f in frames if "chance to win" in f)
    assert bayes.loc[0, "chance to win"].endswith("%")
    guard = next(f for f in frames if "status" in f and "metric" in f)
    assert guard.loc[0, "status"].startswith("within margin (bound +")
    charts = [c.proto.spec for c in at.get("vega_lite_chart")]
    assert any("posterior" in s for s in charts)

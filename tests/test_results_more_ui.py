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


def test_segment_picker_and_forest_plot(ws, db_path):
    from tests.test_segments import _data, _set_dims

    rng = np.random.default_rng(4)
    frame = _data(rng, {"DE": (120, 120, 0.05), "FR": (100, 100, 0.0)})
    insert_events(ws, frame.drop(columns="seg"))
    _set_dims(ws, frame)
    at = _app(db_path, make_experiment())
    assert not at.exception
    by = next(s for s in at.selectbox if s.label == "Break down by")
    assert by.options == ["(none)", "dim_country"]
    before = len(at.get("vega_lite_chart"))
    by.set_value("dim_country").run()
    assert not at.exception
    charts = at.get("vega_lite_chart")
    assert len(charts) == before + 1
    assert '"segment"' in charts[-1].proto.spec or any('"segment"' in c.proto.spec for c in charts)
    seg_table = next(f for f in _frames(at) if "p (Holm, all segments)" in f)
    assert list(seg_table.segment) == ["DE", "FR"]
    assert "Heterogeneity" in _text(at)
    pick = next(s for s in at.selectbox if s.label == "Segment")
    pick.set_value("FR").run()
    assert not at.exception and "Segment FR: per-variant figures" in [e.label for e in at.expander]


def test_bandit_panel_plots_the_split_over_time(ws, db_path):
    from promptver.store import bandits as bsql

    rng = np.random.default_rng(2)
    n = 200
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(2 * n)],
            "variant": ["control"] * n + ["treatment"] * n,
            "quality_score": rng.normal(0.6, 0.1, 2 * n),
        }
    )
    insert_events(ws, frame)
    exp = make_experiment(allocation="bandit")
    with ws.db.transaction() as con:
        bsql.insert_weights(con, exp.id, 1, T0 + timedelta(hours=1), [0.3, 0.7])
        for i, (u, v) in enumerate(zip(frame.user_id, frame.variant)):
            bsql.assign(con, exp.id, u, v, 0 if i % 2 else 1, T0)
    at = _app(db_path, exp)
    assert not at.exception
    assert "Bandit" in _text(at) and "bandit allocation" in _text(at)
    specs = [c.proto.spec for c in at.get("vega_lite_chart")]
    assert any("share of new users" in s for s in specs)
    assert any("difference (period-weighted)" in f for f in _frames(at))

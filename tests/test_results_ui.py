"""ui.results.render_results through AppTest (a tiny test-only script hosts the view)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.stats_helpers import insert_events, make_experiment


def _host(db_path: str, experiment_json: str) -> None:
    """The test-only page: open the workspace and draw the results view."""
    from promptver import Workspace
    from promptver.models import Experiment
    from ui.results import render_results

    ws = Workspace.open(db_path)
    render_results(ws, Experiment.model_validate_json(experiment_json))


def _app(db_path, experiment) -> AppTest:
    at = AppTest.from_function(
        _host,
        kwargs={"db_path": str(db_path), "experiment_json": experiment.model_dump_json()},
        default_timeout=60,
    )
    return at.run()


def _text(at: AppTest) -> str:
    parts = []
    for kind in ("markdown", "success", "info", "warning", "error", "caption"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def _frames(at: AppTest) -> list[pd.DataFrame]:
    return [d.value for d in at.dataframe]


@pytest.fixture
def data(ws):
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(2 * n)],
            "variant": ["control"] * n + ["treatment"] * n,
            "quality_score": np.r_[rng.normal(0.6, 0.1, n), rng.normal(0.65, 0.1, n)],
            "latency_ms": np.r_[rng.lognormal(6.6, 0.4, n), rng.lognormal(6.6, 0.4, n)],
        }
    )
    frame.loc[5, "latency_ms"] = 5e6
    insert_events(ws, frame)
    guard = {"name": "latency_ms", "direction": "lower", "role": "guardrail"}
    return make_experiment(metrics=["quality_score", guard])


def test_results_view_shows_the_decision_tables_and_charts(db_path, data):
    at = _app(db_path, data)
    assert not at.exception
    assert "Winner: treatment" in at.success[0].value
    frames = _frames(at)
    variants = frames[0]
    assert list(variants.variant) == ["control", "treatment"]
    assert list(variants.users) == [400, 400]
    comparisons, details = frames[1], frames[2]  # the decision's figures, then test details
    assert details.loc[0, "significant"] and "df" in details
    assert "CI (bootstrap)" in comparisons and "CI (BCa)" in comparisons
    assert comparisons.loc[0, "CI (bootstrap)"].startswith("[")
    assert comparisons.loc[0, "verdict"] == "better"
    charts = at.get("vega_lite_chart")
    # the means per variant, the forest plot, the posterior of the lift, the sample against its
    # minimum, the overview
    assert len(charts) == 5
    assert "posterior" in charts[2].proto.spec
    spec = charts[1].proto.spec
    assert '"yOffset"' in spec and '"interval"' in spec
    guard = [f for f in frames if "status" in f]
    assert guard and guard[0].loc[0, "metric"] == "latency_ms"
    assert "How these figures are computed" in [e.label for e in at.expander]


def test_forest_frame_holds_both_kinds_of_interval(ws, data):
    from promptver.analysis import experiment_results
    from ui.results import forest_chart, forest_frame

    r = experiment_results(ws, data)
    frame = forest_frame(r.for_metric("quality_score"), "abs")
    c = r.comparisons[0]
    assert list(frame.interval) == ["analytic", "bootstrap (percentile)", "bootstrap (BCa)"]
    assert list(frame.low) == [c.ci_low, c.bootstrap_ci_low, c.bootstrap_bca_ci_low]
    assert set(frame.verdict) == {"better"}
    rel = forest_frame(r.for_metric("latency_ms"), "rel")
    assert list(rel.comparison) == ["latency_ms · treatment"] * 2
    assert list(rel.high) == [
        r.for_metric("latency_ms").comparisons[0].relative_lift_ci_high,
        r.for_metric("latency_ms").comparisons[0].bootstrap_relative_lift_ci_high,
    ]
    forest_chart(frame, "x").to_dict()  # a valid Vega-Lite spec


def test_metric_switcher_and_p95(db_path, data):
    at = _app(db_path, data)
    at.selectbox(key="res_exp-1_metric").set_value("latency_ms").run()
    assert not at.exception
    text = _text(at)
    assert r"latency\_ms (mean per event" in text  # names are Markdown-escaped
    assert "p95 latency" in text
    assert "one-sided (worse)" in text and "90% intervals" in text
    p95 = [f for f in _frames(at) if "p95" in f]
    assert p95 and list(p95[0].variant[:2]) == ["control", "treatment"]
    # the winner is still the primary metric's
    assert "Winner: treatment" in at.success[0].value


def test_sequential_and_winsorise_toggles(db_path, data):
    at = _app(db_path, data)
    at.toggle(key="res_exp-1_seq").set_value(True).run()
    assert not at.exception
    assert "CI (sequential)" in _frames(at)[1]
    assert "Sequential" in _text(at)
    at.selectbox(key="res_exp-1_metric").set_value("latency_ms")
    at.toggle(key="res_exp-1_wins").set_value(True).run()
    assert not at.exception
    assert "Winsorised vs uncapped" in _text(at)
    table = [f for f in _frames(at) if "difference (uncapped)" in f][0]
    assert table.loc[0, "difference (uncapped)"] != table.loc[0, "difference (winsorised)"]


def test_power_calculator_reacts_to_the_target(db_path, data):
    at = _app(db_path, data)
    needed = [c for c in _frames(at)[-1] if c.startswith("users needed")]
    before = _frames(at)[-1][needed[0]][0]
    at.number_input(key="res_exp-1_lift").set_value(1.0).run()
    assert not at.exception
    after_frame = _frames(at)[-1]
    col = [c for c in after_frame if c.startswith("users needed")][0]
    assert col == "users needed for 1 %"
    a = int(before.split("/")[0].replace(",", ""))
    b = int(after_frame[col][0].split("/")[0].replace(",", ""))
    assert b > 10 * a  # 5× smaller effect: ~25× more users


def test_banners_for_srm_and_sample_size(ws, db_path):
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(700)],
            "variant": ["control"] * 400 + ["treatment"] * 300,
            "quality_score": rng.random(700),
        }
    )
    insert_events(ws, frame)
    at = _app(db_path, make_experiment(minimum_sample_size=1000))
    assert not at.exception
    assert "Sample ratio mismatch" in at.error[0].value
    assert any("Sample size" in w.value for w in at.warning)
    assert "No winner" in at.info[0].value or any("No winner" in i.value for i in at.info)
    sample = [c for c in at.get("vega_lite_chart") if "minimum 1,000" in c.proto.spec]
    assert sample and "#1565c0" in sample[0].proto.spec  # blue: growing, not an alarm


def test_no_events_and_hostile_names_render_safely(ws, db_path):
    exp = make_experiment(variants=[("control", 1), ("**bold** [x](http://evil.example)", 1)])
    at = _app(db_path, exp)
    assert not at.exception
    assert any("no events" in i.value for i in at.info)
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(400)],
            "variant": ["control"] * 200 + ["**bold** [x](http://evil.example)"] * 200,
            "quality_score": np.r_[rng.normal(0.5, 0.1, 200), rng.normal(0.6, 0.1, 200)],
        }
    )
    insert_events(ws, frame)
    at = _app(db_path, exp)
    assert not at.exception
    banner = at.success[0].value
    assert r"\*\*bold\*\* \[x\]\(http://evil" in banner.replace(r"\:", ":").replace(r"\.", ".")
    assert "](http" not in banner


# ---- issue 22: charts of the means and the difference, user counts, sample progress ----------


def _chart_data(chart) -> pd.DataFrame:
    """The rows a Vega-Lite chart of the page was given (its first dataset, Arrow IPC)."""
    import pyarrow as pa

    return pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_all().to_pandas()


@pytest.fixture
def partial(ws):
    """Some users have latency only: no quality_score."""
    rng = np.random.default_rng(8)
    sizes = {"control": (300, 40), "treatment": (310, 25)}
    rows = []
    for variant, (with_q, without) in sizes.items():
        for i in range(with_q + without):
            rows.append(
                {
                    "user_id": f"{variant}-{i}",
                    "variant": variant,
                    "quality_score": float(rng.normal(0.6, 0.1)) if i < with_q else None,
                    "latency_ms": float(rng.lognormal(6.6, 0.4)),
                }
            )
    frame = pd.DataFrame(rows)
    insert_events(ws, frame)
    return frame, make_experiment(metrics=["quality_score", "latency_ms"])


def test_the_variants_chart_shows_each_mean_and_the_difference_chart_says_so(db_path, partial):
    frame, exp = partial
    at = _app(db_path, exp)
    assert not at.exception
    charts = at.get("vega_lite_chart")
    means = [c for c in charts if '"mean"' in c.proto.spec]
    assert means, [c.proto.spec[:200] for c in charts]
    data = _chart_data(means[0])
    analytic = data[data.interval == "analytic"].set_index("variant")
    expected = frame.groupby("variant").quality_score.mean()  # one event per user
    for v in ("control", "treatment"):
        assert analytic.loc[v, "mean"] == pytest.approx(expected[v], rel=1e-9)
        assert analytic.loc[v, "low"] < expected[v] < analytic.loc[v, "high"]
    assert "quality_score: mean per event" in means[0].proto.spec
    # the forest plot is labelled as a difference, with its unit and a zero line
    forest = [c for c in charts if '"estimate"' in c.proto.spec][0]
    spec = json.dumps(json.loads(forest.proto.spec), ensure_ascii=False)
    assert "difference in mean quality_score per event" in spec and "score 0–1" in spec
    zero = [layer for layer in json.loads(forest.proto.spec)["layer"] if "rule" in str(layer)]
    assert zero  # the dashed zero line


def test_users_with_the_metric_are_shown_and_explained(db_path, partial):
    frame, exp = partial
    at = _app(db_path, exp)
    every = frame.groupby("variant").user_id.nunique()
    measured = frame.dropna(subset=["quality_score"]).groupby("variant").user_id.nunique()
    table = _frames(at)[0]
    assert list(table["users"]) == [every["control"], every["treatment"]]
    assert list(table["users with quality_score"]) == [
        measured["control"],
        measured["treatment"],
    ]
    text = _text(at)
    assert "users with any event" in text and r"users with a quality\_score value" in text
    power = [f for f in _frames(at) if "users now (control / treatment)" in f][0]
    assert power.iloc[0]["users now (control / treatment)"] == (
        f"{measured['control']:,} / {measured['treatment']:,}"
    )


def test_a_met_minimum_reads_as_reached_and_nothing_is_alarm_red(db_path, partial):
    _, exp = partial
    at = _app(db_path, exp)  # minimum 100, the smallest variant has 340 users
    text = _text(at)
    assert "Minimum sample reached" in text and "of 100 users" not in text
    assert at.get("progress") == []  # Streamlit's bar takes the theme's red
    sample = [c for c in at.get("vega_lite_chart") if "minimum" in c.proto.spec]
    assert sample and "#2e7d32" in sample[0].proto.spec  # green: reached


def test_a_variant_on_another_model_names_what_differs(ws, db_path, data):
    """Variants that differ only in their model configuration: the view says how."""
    import re

    t = ws.templates.create(
        "support",
        messages=[
            {"role": "system", "content": "Help with {product}."},
            {"role": "user", "content": "{question}"},
        ],
        config={"provider": "openai", "model": "gpt-4o-mini", "temperature": 0.2},
    )
    ws.versions.create_branch("support", "nano")
    b = ws.templates.update(
        "support", config={**t.config, "model": "gpt-4.1-nano", "temperature": 0.7}, branch="nano"
    )
    exp = data.model_copy(
        update={
            "template_id": t.id,
            "template": "support",
            "variants": [
                data.variants[0].model_copy(update={"commit": t.commit}),
                data.variants[1].model_copy(update={"ref": "nano", "commit": b.commit}),
            ],
        }
    )
    at = _app(db_path, exp)
    assert not at.exception
    captions = [re.sub(r"\\(.)", r"\1", str(c.value)) for c in at.caption]
    named = [c for c in captions if "model configuration" in c]
    assert len(named) == 1  # one treatment; the control is what it is compared with
    assert "treatment" in named[0]
    assert "model gpt-4o-mini → gpt-4.1-nano, temperature 0.2 → 0.7" in named[0]
    # the same prompt on the same model: nothing to name
    same = data.model_copy(
        update={
            "template_id": t.id,
            "template": "support",
            "variants": [v.model_copy(update={"commit": t.commit}) for v in data.variants],
        }
    )
    at = _app(db_path, same)
    assert not [c for c in at.caption if "model configuration" in str(c.value)]

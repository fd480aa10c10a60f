"""experiment_results end to end: events in the database → the contract's results object."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import scipy.stats as ss
from statsmodels.stats.multitest import multipletests

from promptver import ValidationError
from promptver.analysis import experiment_results
from promptver.models import ExperimentResults, MetricSpec
from tests.stats_helpers import T0, insert_events, make_experiment, one_event_per_user

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
CONTRACT_VARIANT = ["name", "users", "events", "mean", "std", "ci_low", "ci_high"]
CONTRACT_COMPARISON = [
    "control",
    "treatment",
    "diff",
    "ci_low",
    "ci_high",
    "relative_lift",
    "p_value",
    "p_value_adjusted",
    "significant",
    "effect_size",
    "bootstrap_ci_low",
    "bootstrap_ci_high",
]


def _frame(rng, n_c, n_t, **metrics) -> pd.DataFrame:
    """One event per user; ``metrics`` maps a column to (control values, treatment values)."""
    data = {
        "user_id": [f"c{i}" for i in range(n_c)] + [f"t{i}" for i in range(n_t)],
        "variant": ["control"] * n_c + ["treatment"] * n_t,
    }
    for name, (a, b) in metrics.items():
        data[name] = np.concatenate([a, b])
    return pd.DataFrame(data)


@pytest.fixture
def basic(ws):
    rng = np.random.default_rng(1)
    frame, a, b = one_event_per_user(rng, 300, 320)
    frame["latency_ms"] = rng.lognormal(6, 0.5, len(frame))
    insert_events(ws, frame)
    exp = make_experiment(metrics=["quality_score", "latency_ms"])
    return exp, a, b


def test_results_are_a_superset_of_the_contract_shape_in_order(ws, basic):
    exp, _, _ = basic
    dump = experiment_results(ws, exp).model_dump()
    assert list(dump)[: len(CONTRACT_TOP)] == CONTRACT_TOP
    for v in dump["variants"]:
        assert list(v)[: len(CONTRACT_VARIANT)] == CONTRACT_VARIANT
    for c in dump["comparisons"]:
        assert list(c)[: len(CONTRACT_COMPARISON)] == CONTRACT_COMPARISON
    assert list(dump["srm"])[:2] == ["p_value", "ok"]
    assert isinstance(dump["sample_size_ok"], bool)
    assert dump["metric"] == "quality_score" and dump["alpha"] == 0.05
    assert dump["status"] == "running" and dump["experiment_id"] == "exp-1"
    # JSON without NaN or infinities
    json.dumps(experiment_results(ws, exp).model_dump(mode="json"), allow_nan=False)


def test_one_event_per_user_equals_welch_through_the_database(ws, basic):
    exp, a, b = basic
    r = experiment_results(ws, exp)
    c = r.comparisons[0]
    ref = ss.ttest_ind(b, a, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert c.diff == pytest.approx(b.mean() - a.mean(), abs=1e-9)
    assert c.p_value == pytest.approx(ref.pvalue, abs=1e-6)
    assert (c.ci_low, c.ci_high) == pytest.approx((ci.low, ci.high), abs=1e-6)
    assert c.df == pytest.approx(ref.df, rel=1e-9)
    assert c.relative_lift == pytest.approx(b.mean() / a.mean() - 1, rel=1e-9)
    assert c.p_value_adjusted == c.p_value  # one comparison: Holm changes nothing
    control, treatment = r.variants
    assert (control.users, control.events, treatment.users) == (300, 300, 320)
    assert control.mean == pytest.approx(a.mean(), rel=1e-12)
    assert control.std == pytest.approx(a.std(ddof=1), rel=1e-9)
    assert (control.ci_low, control.ci_high) == pytest.approx(
        ss.t.interval(0.95, 299, loc=a.mean(), scale=ss.sem(a)), abs=1e-9
    )
    # the bootstrap interval sits beside the analytic one
    assert c.bootstrap_ci_low == pytest.approx(c.ci_low, abs=0.2 * (c.ci_high - c.ci_low))
    assert c.bootstrap_ci_high == pytest.approx(c.ci_high, abs=0.2 * (c.ci_high - c.ci_low))
    assert c.bootstrap_bca_ci_low < c.diff < c.bootstrap_bca_ci_high
    assert r.bootstrap.unit == "user" and r.bootstrap.units == {"control": 300, "treatment": 320}


def _assert_close(a, b, path="") -> None:
    """Equal up to the last bits of floating point (DuckDB sums in parallel, in any order)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and not isinstance(a, bool):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), path
    else:
        assert a == b, path


def test_results_are_deterministic(ws, basic):
    exp, _, _ = basic
    now = T0 + timedelta(days=3)
    one = experiment_results(ws, exp, now=now).model_dump()
    two = experiment_results(ws, exp, now=now).model_dump()
    _assert_close(one, two)
    other = experiment_results(ws, exp, seed=99).comparisons[0]
    assert other.bootstrap_ci_low != one["comparisons"][0]["bootstrap_ci_low"]


def test_clear_improvement_wins(ws, basic):
    exp, _, _ = basic
    r = experiment_results(ws, exp)
    assert r.comparisons[0].significant and r.comparisons[0].verdict == "better"
    assert r.srm.ok and r.sample_size_ok
    assert r.winner == "treatment"
    assert "treatment beats control" in r.winner_reason


def test_metric_switch_and_unknown_metric(ws, basic):
    exp, _, _ = basic
    r = experiment_results(ws, exp, metric="latency_ms")
    assert r.metric == "latency_ms" and r.direction == "lower"
    assert r.winner == "treatment"  # the winner is decided on the primary metric
    assert r.select("quality_score").metric == "quality_score"
    assert [m.metric for m in r.metrics] == ["quality_score", "latency_ms"]
    with pytest.raises(ValidationError, match="tokens_in.*use one of: quality_score, latency_ms"):
        experiment_results(ws, exp, metric="tokens_in")


def test_below_minimum_sample_no_winner(ws, basic):
    exp, _, _ = basic
    r = experiment_results(ws, exp.model_copy(update={"minimum_sample_size": 310}))
    assert r.comparisons[0].significant
    assert r.sample_size_ok is False and r.winner is None
    assert "control has 300" in r.winner_reason
    assert r.power[0].progress == pytest.approx(300 / 310)


def test_sample_ratio_mismatch_flags_and_blocks_the_winner(ws):
    rng = np.random.default_rng(2)
    frame, a, b = one_event_per_user(rng, 400, 560, loc=(0.5, 0.6))
    insert_events(ws, frame)
    r = experiment_results(ws, make_experiment())
    ref = ss.chisquare([400, 560])
    assert r.srm.p_value == pytest.approx(ref.pvalue)
    assert r.srm.ok is False and r.winner is None
    assert r.comparisons[0].significant
    assert any("sample ratio mismatch" in m for m in r.messages)
    # the same counts are fine against a 40/60 split
    r = experiment_results(ws, make_experiment(variants=[("control", 40), ("treatment", 60)]))
    assert r.srm.ok and r.winner == "treatment"


def test_guardrail_significantly_worse_blocks_the_winner(ws):
    rng = np.random.default_rng(3)
    n = 400
    frame = _frame(
        rng,
        n,
        n,
        quality_score=(rng.normal(0.6, 0.1, n), rng.normal(0.65, 0.1, n)),
        latency_ms=(rng.normal(800, 100, n), rng.normal(840, 100, n)),
    )
    insert_events(ws, frame)
    guard = {"name": "latency_ms", "direction": "lower", "role": "guardrail"}
    r = experiment_results(ws, make_experiment(metrics=["quality_score", guard]))
    assert r.comparisons[0].verdict == "better"
    g = r.guardrails[0]
    lat = frame.latency_ms.to_numpy()
    ref = ss.ttest_ind(lat[n:], lat[:n], equal_var=False, alternative="greater")
    assert g.metric == "latency_ms" and g.worse
    assert g.p_value == pytest.approx(ref.pvalue, abs=1e-9)
    assert r.winner is None and "worse on guardrail latency_ms" in r.winner_reason
    latency = r.select("latency_ms")
    assert latency.role == "guardrail" and latency.comparisons[0].alternative == "greater"
    assert latency.comparisons[0].confidence == pytest.approx(0.9)
    assert latency.comparisons[0].verdict == "worse"


def test_guardrail_that_improves_does_not_block(ws):
    rng = np.random.default_rng(4)
    n = 400
    frame = _frame(
        rng,
        n,
        n,
        quality_score=(rng.normal(0.6, 0.1, n), rng.normal(0.65, 0.1, n)),
        latency_ms=(rng.normal(800, 100, n), rng.normal(700, 100, n)),
    )
    insert_events(ws, frame)
    guard = {"name": "latency_ms", "direction": "lower", "role": "guardrail"}
    r = experiment_results(ws, make_experiment(metrics=["quality_score", guard]))
    assert not r.guardrails[0].worse and r.guardrails[0].p_value > 0.5
    assert r.winner == "treatment"


def test_lower_is_better_primary_and_wrong_direction(ws):
    rng = np.random.default_rng(5)
    n = 300
    frame = _frame(
        rng,
        n,
        n,
        latency_ms=(rng.normal(800, 80, n), rng.normal(760, 80, n)),
        quality_score=(rng.normal(0.7, 0.1, n), rng.normal(0.6, 0.1, n)),
    )
    insert_events(ws, frame)
    r = experiment_results(ws, make_experiment(metrics=["latency_ms"]))
    assert r.comparisons[0].diff < 0 and r.winner == "treatment"
    r = experiment_results(ws, make_experiment(metrics=["quality_score"]))
    assert r.comparisons[0].significant and r.comparisons[0].verdict == "worse"
    assert r.winner is None and "no treatment is significantly better" in r.winner_reason


def test_holm_across_three_treatments_and_the_best_wins(ws):
    rng = np.random.default_rng(6)
    n = 400
    names = ["control", "a", "b", "c"]
    shifts = [0.0, 0.02, 0.06, 0.04]
    frame = pd.DataFrame(
        {
            "user_id": [f"{v}{i}" for v in names for i in range(n)],
            "variant": [v for v in names for _ in range(n)],
            "quality_score": np.concatenate([rng.normal(0.6 + s, 0.1, n) for s in shifts]),
        }
    )
    insert_events(ws, frame)
    exp = make_experiment(variants=[(v, 25) for v in names])
    r = experiment_results(ws, exp)
    raw = [c.p_value for c in r.comparisons]
    ref = multipletests(raw, method="holm")[1]
    assert [c.p_value_adjusted for c in r.comparisons] == pytest.approx(list(ref))
    assert [c.significant for c in r.comparisons] == [bool(p < 0.05) for p in ref]
    assert r.winner == "b"


def test_sequential_mode_widens_the_intervals_and_keeps_the_fixed_ones(ws, basic):
    exp, _, _ = basic
    fixed = experiment_results(ws, exp).comparisons[0]
    r = experiment_results(ws, exp, sequential=True)
    seq = r.comparisons[0]
    assert r.method == "sequential" and seq.method == "sequential"
    assert seq.ci_high - seq.ci_low > fixed.ci_high - fixed.ci_low
    assert seq.p_value > fixed.p_value
    assert seq.fixed_horizon.p_value == pytest.approx(fixed.p_value, rel=1e-9)
    assert fixed.sequential.p_value == pytest.approx(seq.p_value, rel=1e-9)
    assert seq.diff == pytest.approx(fixed.diff, rel=1e-12)


def test_winsorisation_leaves_events_without_the_metric_out(ws):
    """An event with no latency is not an event at the cap: DuckDB's least() (like PostgreSQL's
    and Spark's) ignores a NULL argument, so capping must keep the NULL."""
    rng = np.random.default_rng(11)
    n = 400
    lat_c = rng.lognormal(6, 0.5, n)
    lat_t = rng.lognormal(6, 0.5, n)
    lat_c[::4] = np.nan  # a quarter of the calls report no latency
    lat_t[1::5] = np.nan
    insert_events(
        ws,
        _frame(rng, n, n, latency_ms=(lat_c, lat_t), quality_score=(rng.random(n), rng.random(n))),
    )
    exp = make_experiment(metrics=["quality_score", "latency_ms"])
    r = experiment_results(ws, exp, metric="latency_ms", winsorize=True)
    both = np.concatenate([lat_c, lat_t])
    cap = np.quantile(both[~np.isnan(both)], 0.999)
    assert r.winsorized.cap == pytest.approx(cap)
    for v, lat in zip(r.variants, (lat_c, lat_t), strict=True):
        kept = lat[~np.isnan(lat)]
        assert (v.users, v.events, v.metric_users) == (n, kept.size, kept.size)
        assert v.mean == pytest.approx(np.minimum(kept, cap).mean())


def test_sequential_default_comes_from_the_settings(ws, basic):
    exp, _, _ = basic
    ws.settings = ws.settings.with_overrides(ab_testing__statistical_analysis__sequential=True)
    assert experiment_results(ws, exp).method == "sequential"


def test_winsorisation_caps_latency_over_all_arms_and_keeps_the_uncapped_result(ws):
    rng = np.random.default_rng(7)
    n = 500
    lat_c = rng.lognormal(6, 0.5, n)
    lat_t = rng.lognormal(6, 0.5, n)
    lat_t[:3] = 1e6  # three pathological calls
    insert_events(
        ws,
        _frame(rng, n, n, latency_ms=(lat_c, lat_t), quality_score=(rng.random(n), rng.random(n))),
    )
    exp = make_experiment(metrics=["quality_score", "latency_ms"])
    r = experiment_results(ws, exp, metric="latency_ms", winsorize=True)
    cap = np.quantile(np.concatenate([lat_c, lat_t]), 0.999)
    assert r.winsorized.percentile == 99.9 and r.winsorized.cap == pytest.approx(cap)
    assert r.variants[1].mean == pytest.approx(np.minimum(lat_t, cap).mean())
    assert r.variants[0].mean == pytest.approx(np.minimum(lat_c, cap).mean())
    assert r.uncapped.variants[1].mean == pytest.approx(lat_t.mean())
    assert r.uncapped.winsorized is None
    assert r.uncapped.comparisons[0].diff == pytest.approx(lat_t.mean() - lat_c.mean())
    # quality is not a capped metric; without winsorize nothing is capped
    assert r.select("quality_score").winsorized is None
    plain = experiment_results(ws, exp, metric="latency_ms")
    assert plain.winsorized is None and plain.uncapped is None
    assert plain.variants[1].mean == pytest.approx(lat_t.mean())


def test_window_excludes_events_outside_it(ws):
    rng = np.random.default_rng(8)
    frame, a, b = one_event_per_user(rng, 100, 100)
    frame["ts"] = T0 + pd.to_timedelta(np.arange(200) * 3600, unit="s")
    insert_events(ws, frame)
    start, end = T0 + timedelta(hours=10), T0 + timedelta(hours=150)
    r = experiment_results(ws, make_experiment(start_at=start, end_at=end))
    inside = frame[(frame.ts >= start) & (frame.ts <= end)]
    assert sum(v.users for v in r.variants) == len(inside)
    assert r.window_start == start and r.window_end == end
    c = inside[inside.variant == "control"].quality_score
    assert r.variants[0].mean == pytest.approx(c.mean())


def test_no_events_gives_a_result_with_messages(ws):
    r = experiment_results(ws, make_experiment(metrics=["quality_score", "latency_ms"]))
    assert r.winner is None and r.sample_size_ok is False
    assert r.variants[0].users == 0 and r.variants[0].mean is None
    assert r.comparisons[0].p_value is None and r.comparisons[0].verdict == "not tested"
    assert r.srm.ok and r.srm.p_value is None
    assert any("no events" in m for m in r.messages)
    assert r.select("latency_ms").quantile.message == "no latency events yet"
    json.dumps(r.model_dump(mode="json"), allow_nan=False)


def test_a_variant_without_users_and_tiny_arms_give_messages(ws):
    rng = np.random.default_rng(9)
    frame, _, _ = one_event_per_user(rng, 50, 1)
    insert_events(ws, frame)
    exp = make_experiment(variants=[("control", 1), ("treatment", 1), ("empty", 1)])
    r = experiment_results(ws, exp)
    by = {c.treatment: c for c in r.comparisons}
    assert "at least 2" in by["treatment"].message and by["treatment"].p_value is None
    assert "no events" in by["empty"].message
    assert "variant 'empty' has no users yet" in r.messages
    assert r.srm.ok is False  # 50 / 1 / 0 against an even split
    json.dumps(r.model_dump(mode="json"), allow_nan=False)


def test_zero_variance_is_reported_not_raised(ws):
    frame = _frame(
        np.random.default_rng(0), 20, 20, quality_score=(np.full(20, 0.5), np.full(20, 0.5))
    )
    insert_events(ws, frame)
    r = experiment_results(ws, make_experiment(minimum_sample_size=5))
    c = r.comparisons[0]
    assert c.p_value is None and "zero variance" in c.message and c.diff == 0
    assert r.winner is None


def test_unknown_variants_are_ignored_and_reported(ws, basic):
    exp, _, _ = basic
    ghost = pd.DataFrame(
        {"user_id": ["g1", "g2"], "variant": ["ghost", "ghost"], "quality_score": [0.1, 0.2]}
    )
    insert_events(ws, ghost)
    r = experiment_results(ws, exp)
    assert sum(v.users for v in r.variants) == 620
    assert any("2 event(s)" in m and "'ghost'" in m for m in r.messages)


def test_clustered_events_use_users_as_the_unit(ws):
    rng = np.random.default_rng(10)
    rows = []
    for variant in ("control", "treatment"):
        for u in range(150):
            level = rng.normal(0.6, 0.15)
            for _ in range(rng.integers(1, 8)):
                rows.append((f"{variant}-{u}", variant, level + rng.normal(0, 0.05)))
    frame = pd.DataFrame(rows, columns=["user_id", "variant", "quality_score"])
    insert_events(ws, frame)
    r = experiment_results(ws, make_experiment())
    control, treatment = r.variants
    assert control.users == 150 and control.events > 150
    events = frame[frame.variant == "control"].quality_score
    assert control.mean == pytest.approx(events.mean()) and control.std == pytest.approx(
        events.std()
    )
    # the user-level SE is larger than the naive event-level one (events are correlated)
    assert control.se > events.std() / np.sqrt(len(events)) * 1.5
    # and it equals the delta method computed directly from the users
    per_user = (
        frame[frame.variant == "control"].groupby("user_id").quality_score.agg(["sum", "count"])
    )
    x, y = per_user["sum"].to_numpy(), per_user["count"].to_numpy()
    ratio = x.sum() / y.sum()
    var = ((x - ratio * y) ** 2).sum() / (len(x) - 1) / len(x) / y.mean() ** 2
    assert control.se == pytest.approx(np.sqrt(var), rel=1e-9)


def test_p95_latency_with_bootstrap_ci(ws, basic):
    exp, _, _ = basic
    q = experiment_results(ws, exp, metric="latency_ms").quantile
    lat = None
    with ws.db.read() as con:
        lat = con.execute("SELECT variant, latency_ms FROM metric_events").df()
    assert q.method == "exact" and q.quantile == 0.95
    for v in q.variants:
        values = lat[lat.variant == v.name].latency_ms
        assert v.value == pytest.approx(np.quantile(values, 0.95))
        assert v.bootstrap_ci_low < v.value < v.bootstrap_ci_high
    d = q.comparisons[0]
    assert d.diff == pytest.approx(q.variants[1].value - q.variants[0].value)
    assert d.bootstrap_ci_low < d.diff < d.bootstrap_ci_high


def test_bucket_mode_and_binned_p95_agree_with_user_mode(ws):
    rng = np.random.default_rng(11)
    n = 1500
    rows = {"user_id": [], "variant": [], "latency_ms": [], "quality_score": []}
    for variant, shift in (("control", 0.0), ("treatment", 0.05)):
        for u in range(n):
            k = rng.integers(1, 6)
            rows["user_id"] += [f"{variant}{u}"] * k
            rows["variant"] += [variant] * k
            rows["latency_ms"] += list(rng.lognormal(6 + shift + rng.normal(0, 0.2), 0.4, k))
            rows["quality_score"] += list(rng.random(k))
    insert_events(ws, pd.DataFrame(rows))
    exp = make_experiment(metrics=["latency_ms", "quality_score"])
    users = experiment_results(ws, exp, resamples=3000)
    buckets = experiment_results(ws, exp, resamples=3000, buckets=400, user_limit=0)
    assert users.bootstrap.unit == "user" and buckets.bootstrap.unit == "bucket"
    assert users.quantile.method == "exact" and buckets.quantile.method == "binned"
    assert buckets.quantile.message is None
    for a, b in zip(
        users.quantile.variants + users.quantile.comparisons,
        buckets.quantile.variants + buckets.quantile.comparisons,
    ):
        width = a.bootstrap_ci_high - a.bootstrap_ci_low
        assert b.bootstrap_ci_low == pytest.approx(a.bootstrap_ci_low, abs=0.15 * width)
        assert b.bootstrap_ci_high == pytest.approx(a.bootstrap_ci_high, abs=0.15 * width)
    cu, cb = users.comparisons[0], buckets.comparisons[0]
    assert (cu.p_value, cu.ci_low) == pytest.approx((cb.p_value, cb.ci_low), rel=1e-9)
    width = cu.bootstrap_ci_high - cu.bootstrap_ci_low
    assert cb.bootstrap_ci_low == pytest.approx(cu.bootstrap_ci_low, abs=0.15 * width)
    assert cb.bootstrap_ci_high == pytest.approx(cu.bootstrap_ci_high, abs=0.15 * width)


def test_power_figures(ws, basic):
    exp, _, _ = basic
    r = experiment_results(ws, exp, target_lift=0.02, now=T0 + timedelta(days=10))
    p = r.power[0]
    assert p.treatment == "treatment" and p.power == 0.8 and p.alpha == 0.05
    assert p.mde > 0 and p.mde_relative == pytest.approx(p.mde / r.variants[0].mean)
    assert p.users_needed_control > 300 and p.users_needed_treatment == p.users_needed_control
    assert p.users_control == 300 and p.users_treatment == 320
    assert p.progress == pytest.approx(300 / 100)  # the smaller arm over minimum_sample_size
    # 620 users in 10 days: 62 a day
    need = p.users_needed_control + p.users_needed_treatment
    assert p.days_to_target == pytest.approx((need - 620) / 62.0)
    assert experiment_results(ws, exp, target_lift=None).power[0].users_needed_control is None
    with pytest.raises(ValidationError, match="power"):
        experiment_results(ws, exp, power=1.5)


def test_custom_metric_from_the_map(ws):
    rng = np.random.default_rng(12)
    n = 200
    frame = pd.DataFrame(
        {"user_id": [f"u{i}" for i in range(2 * n)], "variant": ["control"] * n + ["treatment"] * n}
    )
    thumbs = (rng.random(2 * n) < np.r_[np.full(n, 0.3), np.full(n, 0.45)]).astype(float)
    frame["custom"] = [{"thumbs_up": t} for t in thumbs]
    insert_events(ws, frame)
    exp = make_experiment(metrics=[MetricSpec(name="thumbs_up", direction="higher")])
    r = experiment_results(ws, exp)
    ref = ss.ttest_ind(thumbs[n:], thumbs[:n], equal_var=False)
    assert r.comparisons[0].p_value == pytest.approx(ref.pvalue, abs=1e-9)
    assert r.binary is False  # custom metrics are not the built-in binary ones


def test_results_round_trip_through_json(ws, basic):
    exp, _, _ = basic
    r = experiment_results(ws, exp, winsorize=True)
    again = ExperimentResults.model_validate_json(r.model_dump_json())
    assert again == r
    assert again.select("latency_ms").uncapped is not None

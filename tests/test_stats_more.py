"""More statistics: the Bayesian readout, non-inferiority guardrails and CUPED.

Every figure is pinned to a reference computed here independently: Monte-Carlo draws from the
conjugate (flat-prior normal) posteriors of the two means, scipy's Welch test, statsmodels' OLS,
hand formulas with scipy's t quantiles, and simulations with fixed seeds.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import scipy.stats as ss
import statsmodels.api as sm_api

from promptver import stats_more as sm
from promptver.analysis import experiment_results
from promptver.models import MetricSpec
from promptver.stats import MetricStats, compare
from tests.stats_helpers import T0, insert_events, make_experiment, one_event_per_user

# ---- Bayesian readout -----------------------------------------------------------------------


def _delta_lift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Relative lift and its delta-method se, from the raw values (numpy only)."""
    ma, mb = a.mean(), b.mean()
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    return mb / ma - 1, float(np.sqrt(vb / ma**2 + mb**2 * va / ma**4))


@pytest.mark.parametrize("direction", ["higher", "lower"])
def test_bayesian_matches_flat_prior_posterior_monte_carlo(direction):
    rng = np.random.default_rng(7)
    a = rng.normal(10.0, 3.0, 800)
    b = rng.normal(10.0, 3.2, 900)
    # a lift near zero, where the loss is not a far tail (the delta method's normal and the
    # exact ratio differ in the far tails only)
    b = b - b.mean() + a.mean() * 1.002
    c = compare(MetricStats.from_values(a), MetricStats.from_values(b), alpha=0.1)
    r = sm.bayesian_readout(c.relative_lift, c.relative_lift_se, direction, alpha=0.1)
    lift, se = _delta_lift(a, b)
    # the closed form of GrowthBook's effect test (flat prior): normal posterior on the lift
    g = 1 if direction == "higher" else -1
    assert r.chance_to_win == pytest.approx(ss.norm.sf(0, loc=g * lift, scale=se), abs=1e-9)
    lo, hi = ss.norm.ppf([0.05, 0.95], loc=lift, scale=se)
    assert (r.credible_low, r.credible_high) == (pytest.approx(lo), pytest.approx(hi))
    # an independent reference: draw each arm's mean from its conjugate posterior (flat prior,
    # known variance) and look at the ratio's lift; the delta method's normal is close to it
    draws = rng.standard_normal((2, 2_000_000))
    mu_a = a.mean() + draws[0] * a.std(ddof=1) / np.sqrt(len(a))
    mu_b = b.mean() + draws[1] * b.std(ddof=1) / np.sqrt(len(b))
    mc_lift = g * (mu_b / mu_a - 1)
    assert r.chance_to_win == pytest.approx(np.mean(mc_lift > 0), abs=0.005)
    assert r.expected_loss == pytest.approx(np.mean(np.maximum(0, -mc_lift)), rel=0.03)
    q_lo, q_hi = np.quantile(mu_b / mu_a - 1, [0.05, 0.95])
    assert r.credible_low == pytest.approx(q_lo, abs=0.1 * se)
    assert r.credible_high == pytest.approx(q_hi, abs=0.1 * se)


def test_bayesian_expected_loss_closed_form_against_quadrature():
    from scipy import integrate

    for m, s in [(0.02, 0.01), (-0.01, 0.03), (0.0, 0.05)]:
        r = sm.bayesian_readout(m, s, "higher")
        ref, _ = integrate.quad(
            lambda x, m=m, s=s: max(0.0, -x) * ss.norm.pdf(x, m, s), -1, 1, points=[0]
        )
        assert r.expected_loss == pytest.approx(ref, rel=1e-6, abs=1e-12)


def _experiment_frame(a, b, metric="quality_score", extra=None):
    data = {
        "user_id": [f"c{i}" for i in range(len(a))] + [f"t{i}" for i in range(len(b))],
        "variant": ["control"] * len(a) + ["treatment"] * len(b),
        metric: np.concatenate([a, b]),
    }
    for name, (ea, eb) in (extra or {}).items():
        data[name] = np.concatenate([ea, eb])
    return pd.DataFrame(data)


def test_engine_bayesian_switches_the_winner_rule(ws):
    rng = np.random.default_rng(3)
    a = rng.normal(0.6, 0.1, 1500)
    b = rng.normal(0.6, 0.1, 1500)
    # shift the treatment so that Welch's t is exactly 1.8: two-sided p ≈ 0.07 (no frequentist
    # winner) while the chance to win is ≈ 0.96 (a Bayesian winner)
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    b = b + (1.8 * se - (b.mean() - a.mean()))
    insert_events(ws, _experiment_frame(a, b))
    freq = experiment_results(ws, make_experiment(), resamples=200)
    bayes = experiment_results(ws, make_experiment(engine="bayesian"), resamples=200)
    c = bayes.comparisons[0]
    assert ss.ttest_ind(b, a, equal_var=False).pvalue == pytest.approx(c.p_value)
    assert c.p_value > 0.05 and freq.winner is None
    lift, lse = _delta_lift(a, b)
    assert c.bayesian.chance_to_win == pytest.approx(ss.norm.cdf(lift / lse), abs=1e-9)
    assert c.bayesian.chance_to_win >= 0.95
    assert bayes.winner == "treatment" and bayes.engine == "bayesian"
    assert "chance to win" in bayes.winner_reason
    # the same figures whatever the engine: the readout is there for every comparison
    # (to rounding: DuckDB sums in parallel, in whatever order its threads finish)
    fb, cb = freq.comparisons[0].bayesian.model_dump(), c.bayesian.model_dump()
    assert fb.keys() == cb.keys()
    assert all(fb[k] == pytest.approx(cb[k], rel=1e-9, abs=1e-12) for k in fb)
    dumped = bayes.model_dump(mode="json")["comparisons"][0]["bayesian"]
    assert {"chance_to_win", "expected_loss", "credible_low", "credible_high"} <= set(dumped)


def test_bayesian_lower_is_better_metric(ws):
    rng = np.random.default_rng(4)
    a = rng.normal(1000, 100, 1000)
    b = rng.normal(960, 100, 1000)
    insert_events(ws, _experiment_frame(a, b, "latency_ms"))
    r = experiment_results(ws, make_experiment(metrics=["latency_ms"], engine="bayesian"))
    bay = r.comparisons[0].bayesian
    lift, lse = _delta_lift(a, b)
    assert bay.chance_to_win == pytest.approx(ss.norm.cdf(-lift / lse), abs=1e-9)
    assert bay.chance_to_win > 0.99 and r.winner == "treatment"


# ---- non-inferiority -------------------------------------------------------------------------


def _hand_bound(a: np.ndarray, b: np.ndarray, alpha: float, direction: str) -> float:
    lift, lse = _delta_lift(a, b)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    crit = ss.t.ppf(1 - alpha, df)
    return lift + crit * lse if direction == "lower" else lift - crit * lse


@pytest.mark.parametrize(
    ("shift", "status", "winner"),
    [
        # 1.5 % slower: significantly worse (one-sided), yet within the 5 % margin: may win
        (15.0, "within margin", "treatment"),
        # 8 % slower: beyond the margin: blocks the winner
        (80.0, "worse than allowed", None),
    ],
)
def test_non_inferiority_guardrail(ws, shift, status, winner):
    rng = np.random.default_rng(11)
    n = 5000
    qa, qb = rng.normal(0.6, 0.1, n), rng.normal(0.65, 0.1, n)
    la, lb = rng.normal(1000, 100, n), rng.normal(1000 + shift, 100, n)
    insert_events(ws, _experiment_frame(qa, qb, extra={"latency_ms": (la, lb)}))
    exp = make_experiment(
        metrics=[
            "quality_score",
            MetricSpec(name="latency_ms", direction="lower", role="guardrail", margin=0.05),
        ]
    )
    r = experiment_results(ws, exp, resamples=200)
    (g,) = r.guardrails
    bound = _hand_bound(la, lb, r.alpha, "lower")
    assert g.bound == pytest.approx(bound, rel=1e-9)
    assert g.margin == 0.05 and g.status == status
    assert g.non_inferior == bool(bound <= 0.05)
    lat = r.for_metric("latency_ms").comparisons[0]
    assert lat.non_inferior is g.non_inferior and lat.non_inferiority_bound == g.bound
    assert r.winner == winner
    if winner is None:
        assert "worse than allowed on guardrail latency_ms" in r.winner_reason
    else:
        assert g.worse  # the plain one-sided test calls it worse; the margin allows it


def test_non_inferiority_higher_is_better_bound():
    rng = np.random.default_rng(12)
    a, b = rng.normal(0.9, 0.2, 700), rng.normal(0.88, 0.25, 650)
    bound = sm.non_inferiority_bound(*_delta_lift(a, b), _welch_df(a, b), 0.05, "higher")
    assert bound == pytest.approx(_hand_bound(a, b, 0.05, "higher"), rel=1e-12)
    assert sm.is_non_inferior(bound, 0.1, "higher") == bool(bound >= -0.1)


def _welch_df(a, b):
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    return (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))


# ---- CUPED ------------------------------------------------------------------------------------


def _pre_events(users, values_per_user, metric="quality_score"):
    """Pre-period events (no experiment) for ``users``: a list of value lists."""
    rows = []
    for u, vals in zip(users, values_per_user):
        for j, v in enumerate(vals):
            rows.append({"user_id": u, metric: v, "ts": T0 - timedelta(days=1 + j, hours=3)})
    frame = pd.DataFrame(rows)
    frame["experiment_id"] = None
    frame["variant"] = None
    return frame


def _cuped_data(rng, n_c, n_t, effect=0.02):
    """One event per user in the experiment; 0–3 pre-period events correlated with it."""
    level = rng.normal(0.6, 0.1, n_c + n_t)
    n_pre = rng.integers(0, 4, n_c + n_t)
    pre = [list(level[i] + rng.normal(0, 0.05, k)) for i, k in enumerate(n_pre)]
    y = level + rng.normal(0, 0.05, n_c + n_t)
    y[n_c:] += effect
    users = [f"c{i}" for i in range(n_c)] + [f"t{i}" for i in range(n_t)]
    x = np.array([np.mean(p) if p else 0.0 for p in pre])
    frame = pd.DataFrame(
        {"user_id": users, "variant": ["control"] * n_c + ["treatment"] * n_t, "quality_score": y}
    )
    return frame, _pre_events(users, pre), y, x


def test_cuped_one_event_per_user_equals_regression_adjustment(ws):
    rng = np.random.default_rng(21)
    n_c, n_t = 900, 1100
    frame, pre, y, x = _cuped_data(rng, n_c, n_t)
    insert_events(ws, frame)
    insert_events(ws, pre, experiment_id=None)
    # pre-period events of another template, and ones older than the lookback, do not count
    other = _pre_events(["c0", "t0"], [[5.0], [5.0]]).assign(template_id="tpl-other")
    old = _pre_events(["c1", "t1"], [[9.0], [9.0]]).assign(ts=T0 - timedelta(days=30))
    insert_events(ws, other, experiment_id=None)
    insert_events(ws, old, experiment_id=None)
    r = experiment_results(ws, make_experiment(cuped_lookback_days=14), resamples=200)
    cu = r.comparisons[0].cuped
    # θ: the slope of the pooled OLS of Y on X (cov/var over both arms)
    theta = sm_api.OLS(y, sm_api.add_constant(x)).fit().params[1]
    assert cu.theta == pytest.approx(theta, rel=1e-9)
    # Welch on the adjusted values Y − θX is the contract's test on the adjusted means
    za, zb = y[:n_c] - theta * x[:n_c], y[n_c:] - theta * x[n_c:]
    ref = ss.ttest_ind(zb, za, equal_var=False)
    lo, hi = ref.confidence_interval(1 - r.alpha)
    assert cu.diff == pytest.approx(zb.mean() - za.mean(), rel=1e-9)
    assert cu.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    assert (cu.ci_low, cu.ci_high) == (pytest.approx(lo, rel=1e-9), pytest.approx(hi, rel=1e-9))
    unadj = y[:n_c].var(ddof=1) / n_c + y[n_c:].var(ddof=1) / n_t
    adj = za.var(ddof=1) / n_c + zb.var(ddof=1) / n_t
    assert cu.variance_reduction == pytest.approx(1 - adj / unadj, rel=1e-9)
    # users without history have X = 0 (the contract's rule), which weakens the correlation
    assert cu.variance_reduction > 0.02
    assert sum(cu.users_with_history.values()) == int(np.sum([len(p) > 0 for p in pre_lists(pre)]))
    # the unadjusted figures stay beside the adjusted ones
    assert r.comparisons[0].diff == pytest.approx(y[n_c:].mean() - y[:n_c].mean())
    assert r.cuped_lookback_days == 14
    dumped = r.model_dump(mode="json")["comparisons"][0]["cuped"]
    assert {"theta", "diff", "ci_low", "ci_high", "p_value", "variance_reduction"} <= set(dumped)


def pre_lists(pre: pd.DataFrame) -> list[list[float]]:
    return [list(g["quality_score"]) for _, g in pre.groupby("user_id")]


def test_cuped_winner_uses_the_adjusted_result(ws):
    rng = np.random.default_rng(5)
    n = 400
    # the same users' levels in both arms, so that the arms differ by the effect and the noise
    level = np.tile(rng.normal(0.6, 0.15, n), 2)
    y = level + rng.normal(0, 0.03, 2 * n)
    y[n:] += 0.008  # too small to see without the adjustment, clear with it
    users = [f"c{i}" for i in range(n)] + [f"t{i}" for i in range(n)]
    frame = pd.DataFrame({"user_id": users, "variant": ["control"] * n + ["treatment"] * n})
    frame["quality_score"] = y
    insert_events(ws, frame)
    insert_events(ws, _pre_events(users, [[v] for v in level]), experiment_id=None)
    plain = experiment_results(ws, make_experiment(), resamples=200)
    cuped = experiment_results(ws, make_experiment(cuped_lookback_days=7), resamples=200)
    assert plain.winner is None and not plain.comparisons[0].significant
    assert cuped.comparisons[0].cuped.significant and cuped.winner == "treatment"
    assert "CUPED" in cuped.winner_reason


def test_cuped_several_events_per_user_sql_equals_per_user_sums(ws):
    """The SQL pass returns exactly the per-user sums the delta-method formulas need."""
    rng = np.random.default_rng(8)
    rows, pre_rows, per_user = [], [], []
    for arm, n in (("control", 300), ("treatment", 320)):
        for i in range(n):
            u = f"{arm[0]}{i}"
            lvl = rng.normal(1.0, 0.3)
            k = int(rng.integers(1, 5))
            vals = lvl + rng.normal(0, 0.2, k) + (0.05 if arm == "treatment" else 0)
            rows += [{"user_id": u, "variant": arm, "quality_score": v} for v in vals]
            pv = list(lvl + rng.normal(0, 0.2, int(rng.integers(0, 3))))
            pre_rows.append(pv)
            per_user.append((arm, vals.sum(), k, np.mean(pv) if pv else 0.0))
    insert_events(ws, pd.DataFrame(rows))
    users = [f"{a[0]}{i}" for a, n in (("control", 300), ("treatment", 320)) for i in range(n)]
    insert_events(ws, _pre_events(users, pre_rows), experiment_id=None)
    r = experiment_results(ws, make_experiment(cuped_lookback_days=14), resamples=200)
    cu = r.comparisons[0].cuped
    arms = {}
    for arm in ("control", "treatment"):
        sel = [(x, y, c) for a, x, y, c in per_user if a == arm]
        x, y, c = (np.array(v) for v in zip(*sel))
        arms[arm] = (MetricStats.from_users(x, y, x * x), sm.CovariateSums.from_users(x, y, c))
    ref = sm.cuped_test(*arms["control"], *arms["treatment"], alpha=r.alpha)
    assert cu.theta == pytest.approx(ref.theta, rel=1e-9)
    assert cu.diff == pytest.approx(ref.diff, rel=1e-9)
    assert cu.p_value == pytest.approx(ref.p_value, rel=1e-6)
    # with y ≡ 1 the linearised formulas are the textbook ones; here ȳ > 1 and θ still
    # multiplies the per-user covariate: check the ratio estimate against a direct computation
    xs = {a: np.array([x for b, x, _, _ in per_user if b == a]) for a in ("control", "treatment")}
    ys = {a: np.array([y for b, _, y, _ in per_user if b == a]) for a in ("control", "treatment")}
    cs = {a: np.array([c for b, _, _, c in per_user if b == a]) for a in ("control", "treatment")}
    adj = {a: xs[a].sum() / ys[a].sum() - ref.theta * cs[a].mean() for a in xs}
    assert cu.diff == pytest.approx(adj["treatment"] - adj["control"], rel=1e-9)


def test_cuped_simulation_variance_reduction_and_coverage():
    """One event per user, X and Y correlated with ρ: the adjusted difference's variance
    shrinks by ≈ ρ² and its 95 % CI covers the true effect 93–97 % of the time."""
    rng = np.random.default_rng(2026)
    runs, n, rho, effect = 4000, 400, 0.7, 0.1
    x = rng.standard_normal((2, runs, n))
    y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal((2, runs, n))
    y[1] += effect
    ones = np.ones((runs, n))
    a = MetricStats.from_users(y[0], ones, y[0] ** 2)
    b = MetricStats.from_users(y[1], ones, y[1] ** 2)
    ca = sm.CovariateSums.from_users(y[0], ones, x[0])
    cb = sm.CovariateSums.from_users(y[1], ones, x[1])
    r = sm.cuped_test(ca=ca, a=a, b=b, cb=cb, alpha=0.05)
    covered = np.mean((r.ci_low <= effect) & (effect <= r.ci_high))
    assert 0.93 <= covered <= 0.97
    plain = y[1].mean(axis=1) - y[0].mean(axis=1)
    ratio = np.var(r.diff) / np.var(plain)
    assert ratio == pytest.approx(1 - rho**2, abs=0.05)
    assert np.mean(r.variance_reduction) == pytest.approx(rho**2, abs=0.02)
    assert np.mean(r.diff) == pytest.approx(effect, abs=3 * np.std(r.diff) / np.sqrt(runs))


def test_cuped_without_history_changes_nothing(ws):
    rng = np.random.default_rng(1)
    frame, a, b = one_event_per_user(rng, 300, 300)
    insert_events(ws, frame)
    r = experiment_results(ws, make_experiment(cuped_lookback_days=14), resamples=200)
    c = r.comparisons[0]
    assert c.cuped.theta == 0 and c.cuped.variance_reduction == pytest.approx(0, abs=1e-12)
    assert c.cuped.diff == pytest.approx(c.diff) and c.cuped.p_value == pytest.approx(c.p_value)
    assert "lookback" in c.cuped.message

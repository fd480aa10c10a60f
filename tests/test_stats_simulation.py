"""Accuracy by simulation: false-positive rates, CI coverage, sequential peeking, power.

Every simulation is seeded and vectorised: thousands of experiments are drawn at once as per-user
sums (``tests.stats_helpers.clustered_users``), and the tests run element-wise on arrays.
Clustered events with user effects are the realistic case: a user's events are correlated, so a test
that treats events as independent is too optimistic (shown here failing the same check).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as ss

from promptver import stats as st
from promptver.stats import MetricStats
from tests.stats_helpers import clustered_users

ALPHA = 0.05


def _arms(seed: int, runs: int, users: int, effect: float = 0.0, **kw):
    rng = np.random.default_rng(seed)
    a = MetricStats.from_users(*clustered_users(rng, runs, users, **kw))
    b = MetricStats.from_users(*clustered_users(rng, runs, users, effect=effect, **kw))
    return a, b


def test_aa_false_positive_rate_is_alpha_and_the_naive_event_level_test_fails():
    a, b = _arms(2026, runs=4000, users=200, user_sd=1.0, event_sd=0.5, events_mean=4.0)
    ours = st.welch_test(a, b, alpha=ALPHA)
    fpr = np.mean(ours.p_value < ALPHA)
    assert 0.035 <= fpr <= 0.065, fpr
    # the naive test: every event an independent observation (scipy, from event-level moments)
    naive = ss.ttest_ind_from_stats(a.mean, a.std, a.sum_y, b.mean, b.std, b.sum_y, equal_var=False)
    naive_fpr = np.mean(naive.pvalue < ALPHA)
    assert naive_fpr > 0.065, naive_fpr
    assert naive_fpr > 3 * fpr  # not a borderline miss: the clustering makes it wildly wrong


def test_aa_false_positive_rate_of_a_binary_metric_with_user_propensities():
    rng = np.random.default_rng(7)
    runs, users = 4000, 300

    def arm():
        y = 1 + rng.poisson(3, (runs, users)).astype(float)
        p = rng.beta(2, 8, (runs, users))  # each user has their own success rate
        x = rng.binomial(y.astype(int), p).astype(float)
        return MetricStats.from_users(x, y, x)  # 0/1 values: Σv² = Σv

    a, b = arm(), arm()
    fpr = np.mean(st.welch_test(a, b).p_value < ALPHA)
    assert 0.035 <= fpr <= 0.065, fpr


def test_analytic_interval_coverage():
    effect = 0.3
    a, b = _arms(11, runs=4000, users=250, effect=effect, user_sd=1.0, events_mean=3.0)
    r = st.welch_test(a, b, alpha=ALPHA)
    cover = np.mean((r.ci_low <= effect) & (effect <= r.ci_high))
    assert 0.93 <= cover <= 0.97, cover
    # the relative lift: true value (1 + 0.3) / 1 − 1
    lift_cover = np.mean((r.lift_ci_low <= effect) & (effect <= r.lift_ci_high))
    assert 0.93 <= lift_cover <= 0.97, lift_cover
    # each variant's CI of its mean per event
    lo, hi = a.ci(ALPHA)
    mean_cover = np.mean((lo <= 1.0) & (hi >= 1.0))
    assert 0.93 <= mean_cover <= 0.97, mean_cover


def test_guardrail_one_sided_test_keeps_its_level():
    a, b = _arms(12, runs=4000, users=200)
    for alternative in ("greater", "less"):
        r = st.welch_test(a, b, alternative=alternative)
        assert 0.035 <= np.mean(r.p_value < ALPHA) <= 0.065


@pytest.mark.slow
def test_bootstrap_interval_coverage_resampling_users():
    rng = np.random.default_rng(21)
    runs, users, effect = 1000, 200, 0.3
    xa, ya, _ = clustered_users(rng, runs, users, events_mean=3.0)
    xb, yb, _ = clustered_users(rng, runs, users, events_mean=3.0, effect=effect)
    hits = np.zeros((runs, 2), dtype=bool)
    for i in range(runs):
        ua = st.ArmUnits(xa[i][:, None], ya[i][:, None])
        ub = st.ArmUnits(xb[i][:, None], yb[i][:, None])
        r = st.bootstrap_difference(ua, ub, resamples=1000, alpha=ALPHA, seed=i)
        hits[i, 0] = r.diff_low[0] <= effect <= r.diff_high[0]
        hits[i, 1] = r.bca_low[0] <= effect <= r.bca_high[0]
    percentile, bca = hits.mean(axis=0)
    assert 0.93 <= percentile <= 0.97, percentile
    assert 0.93 <= bca <= 0.97, bca


@pytest.mark.slow
def test_bootstrap_interval_coverage_resampling_hashed_buckets():
    """Large arms resample buckets of users; the interval must still cover."""
    rng = np.random.default_rng(22)
    runs, users, buckets, effect = 1000, 4000, 250, 0.1
    hits = np.zeros(runs, dtype=bool)
    for i in range(runs):
        xa, ya, _ = clustered_users(rng, 1, users, events_mean=3.0)
        xb, yb, _ = clustered_users(rng, 1, users, events_mean=3.0, effect=effect)
        ua = st.bucket_units(rng.integers(0, buckets, users), xa[0], ya[0], buckets)
        ub = st.bucket_units(rng.integers(0, buckets, users), xb[0], yb[0], buckets)
        r = st.bootstrap_difference(ua, ub, resamples=1000, alpha=ALPHA, seed=i)
        hits[i] = r.diff_low[0] <= effect <= r.diff_high[0]
    assert 0.93 <= hits.mean() <= 0.97, hits.mean()


@pytest.mark.slow
def test_sequential_mode_survives_daily_peeking_where_the_fixed_test_does_not():
    """A/A, one look a day for 30 days: stop at the first significant look."""
    rng = np.random.default_rng(31)
    runs, days, per_day = 1000, 30, 40

    def arm():
        x, y, q = clustered_users(rng, runs * days, per_day)
        daily = [a.reshape(runs, days, per_day) for a in (x, y, q)]
        s = MetricStats.from_users(*daily)  # per run and day
        return MetricStats(
            *(
                np.cumsum(getattr(s, f), axis=1)
                for f in ("n", "sum_x", "sum_x2", "sum_y", "sum_y2", "sum_xy", "event_sum_x2")
            )
        )

    a, b = arm(), arm()
    fixed = st.welch_test(a, b, alpha=ALPHA)
    seq = st.welch_test(a, b, alpha=ALPHA, sequential_tuning_n=2 * 1000)
    fixed_peeking = np.mean((fixed.p_value < ALPHA).any(axis=1))
    seq_peeking = np.mean((seq.p_value < ALPHA).any(axis=1))
    fixed_final = np.mean(fixed.p_value[:, -1] < ALPHA)
    assert 0.035 <= fixed_final <= 0.065, fixed_final  # one look at the end is fine …
    assert fixed_peeking > 2 * ALPHA, fixed_peeking  # … looking every day is not
    assert seq_peeking <= ALPHA, seq_peeking  # the confidence sequence holds at every look
    # and the sequence still covers the true difference (0) at every look, simultaneously
    covered = ((seq.ci_low <= 0) & (seq.ci_high >= 0)).all(axis=1).mean()
    assert covered >= 1 - ALPHA


def test_users_needed_deliver_the_promised_power():
    """Plan with power_analysis, then run the planned experiment many times."""
    rng = np.random.default_rng(41)
    sd, mean, lift = 2.0, 10.0, 0.05
    pilot_a = MetricStats.from_values(rng.normal(mean, sd, 2000))
    pilot_b = MetricStats.from_values(rng.normal(mean, sd, 2000))
    se = float(np.sqrt(pilot_a.var_mean + pilot_b.var_mean))
    plan = st.power_analysis(se, 2000, 2000, mean, alpha=ALPHA, power=0.8, target_lift=lift)
    n = plan.users_needed_control
    runs = 3000
    a = MetricStats.from_values(rng.normal(mean, sd, (runs, n)))
    b = MetricStats.from_values(rng.normal(mean * (1 + lift), sd, (runs, n)))
    achieved = np.mean(st.welch_test(a, b).p_value < ALPHA)
    assert 0.77 <= achieved <= 0.83, (n, achieved)

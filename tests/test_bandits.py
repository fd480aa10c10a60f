"""The bandit statistics: Thompson weights with a floor, and the period-weighted estimate.

Simulations with fixed seeds: a bandit finds a clearly better arm, and the period-weighted
difference stays unbiased while the split and the users' behaviour both change over time (where
the naive pooled difference is biased)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as ss

from promptver.bandits import FLOOR, apply_floor, period_weighted, thompson_weights
from promptver.stats import MetricStats


def _stats(values: np.ndarray) -> MetricStats:
    return MetricStats.from_values(values)


def test_floor_keeps_every_arm_at_one_percent():
    w = apply_floor([0.999, 0.001, 0.0])
    assert w.sum() == pytest.approx(1.0)
    assert np.all(w >= FLOOR - 1e-12)
    assert w[1] == pytest.approx(FLOOR) and w[2] == pytest.approx(FLOOR)
    assert apply_floor([0.5, 0.5]) == pytest.approx([0.5, 0.5])


def test_thompson_weight_is_the_posterior_chance_of_being_best():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 1.0, 400), rng.normal(1.1, 1.0, 400)
    w = thompson_weights([_stats(a), _stats(b)], "higher", draws=200_000)
    se = np.sqrt(a.var(ddof=1) / 400 + b.var(ddof=1) / 400)
    p_best = ss.norm.cdf((b.mean() - a.mean()) / se)  # two normal posteriors: closed form
    assert w[1] == pytest.approx(min(max(p_best, FLOOR), 1 - FLOOR), abs=0.005)
    # lower is better: the roles swap
    w_low = thompson_weights([_stats(a), _stats(b)], "lower", draws=200_000)
    assert w_low[0] == pytest.approx(w[1], abs=0.005)


def test_arms_without_data_share_equally():
    assert list(thompson_weights([MetricStats(), _stats(np.ones(5))])) == [0.5, 0.5]


def _run_bandit(rng, rates, periods=24, users_per_period=1000, drift=0.0):
    """Simulate a bandit on success rates; returns (final weights, per-period stats)."""
    k = len(rates)
    w = np.full(k, 1 / k)
    cumulative = [MetricStats() for _ in range(k)]
    history = []
    for t in range(periods):
        n = rng.multinomial(users_per_period, w)
        per = []
        for arm in range(k):
            p = min(1.0, rates[arm] + drift * t / periods)
            x = (rng.random(n[arm]) < p).astype(float)
            per.append(_stats(x))
            cumulative[arm] = cumulative[arm] + per[-1]
        history.append(per)
        w = thompson_weights(cumulative, "higher", draws=4000, rng=rng)
    return w, history


def test_bandit_sends_most_traffic_to_a_clearly_better_arm():
    rng = np.random.default_rng(2026)
    finals = [_run_bandit(rng, [0.10, 0.15, 0.10])[0] for _ in range(10)]
    best = np.array([f[1] for f in finals])
    assert np.all(best >= 0.8), best
    assert np.all(np.array(finals) >= FLOOR - 1e-12)


def test_period_weighted_estimate_is_unbiased_under_a_changing_split():
    rng = np.random.default_rng(7)
    effect, runs = 0.03, 200
    errors, ses, naive = [], [], []
    for _ in range(runs):
        # success rises over time for everyone (drift) while traffic moves to the better arm:
        # the pooled treatment mean over-weights late periods and so over-states the effect
        _, hist = _run_bandit(
            rng, [0.10, 0.10 + effect], periods=12, users_per_period=800, drift=0.2
        )
        r = period_weighted(hist)
        errors.append(r.diffs[0] - effect)
        ses.append(r.diff_ses[0])
        pooled = [sum((h[a] for h in hist), MetricStats()) for a in range(2)]
        naive.append(float(pooled[1].mean) - float(pooled[0].mean) - effect)
    errors = np.array(errors)
    se_of_mean = errors.std(ddof=1) / np.sqrt(runs)
    assert abs(errors.mean()) < 2 * se_of_mean
    # the reported standard errors match the spread of the estimates (within 25 %)
    assert np.mean(ses) == pytest.approx(errors.std(ddof=1), rel=0.25)
    # and the naive pooled difference is biased (what the weighting is for)
    assert np.mean(naive) > 5 * np.std(naive, ddof=1) / np.sqrt(runs)


def test_period_weighted_equals_the_plain_estimate_with_one_period():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 300), rng.normal(0.2, 1, 350)
    r = period_weighted([[_stats(a), _stats(b)]])
    assert r.diffs[0] == pytest.approx(b.mean() - a.mean())
    assert r.diff_ses[0] == pytest.approx(np.sqrt(a.var(ddof=1) / 300 + b.var(ddof=1) / 350))
    assert r.periods_used == 1

"""Multi-armed bandit statistics: Thompson-sampling weights and the period-weighted estimate.

This is the statistical core of ``allocation: bandit`` (see docs/statistics.md, "Bandits"); it
works on the same per-arm sufficient statistics as the rest of the engine.

- **Weights** (:func:`thompson_weights`): each arm's mean per event has the flat-prior normal
  posterior ``N(mean, se²)`` (the delta-method standard error, users as the unit); an arm's new
  weight is the posterior probability that it is the best in the metric's good direction,
  estimated from seeded draws, with a floor (1 % by default) so that no arm starves and the
  estimates of every arm keep improving. Arms with fewer than 2 users share the traffic equally
  until each has data.
- **Estimate** (:func:`period_weighted`): the split changes between periods, and what users do
  changes over time too, so pooling all users of an arm mixes periods in different proportions per
  arm and biases the comparison (Simpson's paradox). Like GrowthBook's bandits, each arm's mean is
  a weighted average of its per-period means with the *same* period weights for every arm (each
  period's share of all users), and its variance is ``Σ wₚ² var(meanₐ,ₚ)``. Periods where some arm
  has fewer than 2 users are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from promptver.stats import MetricStats

#: the smallest share of traffic a bandit gives any arm
FLOOR = 0.01
#: posterior draws per weight update
DRAWS = 10_000


def apply_floor(p: Sequence[float], floor: float = FLOOR) -> np.ndarray:
    """Probabilities with every entry at least ``floor``, still summing to 1: arms below the floor
    are raised to it and the rest share what remains in proportion to their probability."""
    p = np.clip(np.asarray(p, dtype=float), 0, None)
    k = len(p)
    if k * floor >= 1:
        return np.full(k, 1 / k)
    p = p / p.sum() if p.sum() > 0 else np.full(k, 1 / k)
    fixed = np.zeros(k, dtype=bool)
    while True:
        low = (~fixed) & (p < floor)
        if not low.any():
            return p
        fixed |= low
        free = ~fixed
        rest = 1 - floor * fixed.sum()
        mass = p[free].sum()
        p = np.where(fixed, floor, p * (rest / mass if mass > 0 else 0))
        if mass <= 0:
            p[free] = rest / free.sum()


def thompson_weights(
    stats: Sequence[MetricStats],
    direction: str = "higher",
    *,
    floor: float = FLOOR,
    draws: int = DRAWS,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Traffic weights (summing to 1) from each arm's sufficient statistics of the primary metric.

    Args:
        stats: per arm, in variant order.
        direction: ``higher`` or ``lower`` is better.
        floor: the smallest weight of an arm.
        draws: posterior draws.
        rng: a seeded generator (default: seed 0, so that the same data give the same weights).
    """
    k = len(stats)
    if any(int(s.n) < 2 for s in stats):
        return np.full(k, 1 / k)
    rng = rng or np.random.default_rng(0)
    means = np.array([float(s.mean) for s in stats])
    ses = np.array([float(s.se) for s in stats])
    ses = np.where(np.isfinite(ses) & (ses > 0), ses, 1e-12)
    samples = rng.normal(means, ses, size=(draws, k))
    g = 1.0 if direction == "higher" else -1.0
    best = np.argmax(g * samples, axis=1)
    p = np.bincount(best, minlength=k) / draws
    return apply_floor(p, floor)


@dataclass(frozen=True)
class PeriodWeighted:
    """Period-weighted means per arm and each treatment's difference from the control (arm 0)."""

    means: np.ndarray
    ses: np.ndarray
    diffs: np.ndarray
    diff_ses: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_values: np.ndarray
    periods_used: int


def period_weighted(
    periods: Sequence[Sequence[MetricStats]], alpha: float = 0.05
) -> PeriodWeighted:
    """Combine per-period sufficient statistics (``periods[p][arm]``) into unbiased arm means.

    Each period's weight is its share of all users (every arm alike); the difference of a
    treatment from the control is the difference of the weighted means, with a normal interval.
    """
    usable = [ps for ps in periods if all(int(s.n) >= 2 for s in ps)]
    k = len(periods[0]) if periods else 0
    if not usable:
        nan = np.full(k, np.nan)
        return PeriodWeighted(nan, nan, nan[1:], nan[1:], nan[1:], nan[1:], nan[1:], 0)
    users = np.array([sum(int(s.n) for s in ps) for ps in usable], dtype=float)
    w = users / users.sum()
    m = np.array([[float(s.mean) for s in ps] for ps in usable])  # (periods, arms)
    v = np.array([[float(s.var_mean) for s in ps] for ps in usable])
    means = w @ m
    var = (w**2) @ v
    diffs = means[1:] - means[0]
    diff_var = var[1:] + var[0]
    se = np.sqrt(diff_var)
    z = sps.norm.ppf(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * sps.norm.sf(np.abs(diffs / se))
    return PeriodWeighted(
        means, np.sqrt(var), diffs, se, diffs - z * se, diffs + z * se, p, len(usable)
    )

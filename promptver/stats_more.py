"""More statistics on sufficient statistics: the Bayesian readout, non-inferiority and CUPED.

Like :mod:`promptver.stats`, everything here works on per-arm sums (never on events), and the
numeric functions are element-wise over numpy arrays so that simulations run thousands of
experiments in one call.

- **Bayesian readout** (GrowthBook's effect-Bayesian test with an improper flat prior): the
  posterior of the relative lift is normal, centred on the delta-method lift ``mean_t/mean_c − 1``
  with the delta-method standard error. From it: the chance to win, the expected loss of shipping
  the treatment and the credible interval.
- **Non-inferiority**: a guardrail with a relative margin ``m`` passes when the one-sided
  ``1 − alpha`` bound of its relative lift on the bad side stays within ``m``.
- **CUPED** (Deng, Xu, Kohavi and Walker 2013): each user's pre-experiment mean of the metric is a
  covariate ``c``; the adjusted mean of an arm is ``R − θ·c̄`` with θ pooled over both arms. The
  estimand is the mean per event ``R = Σx / Σy`` (a ratio of user sums), so the variances come
  from the delta method (Deng, Knoblich and Lu 2018): each user contributes the linearised value
  ``L = (x − R·y) / ȳ``, and with one event per user ``L = Y − Ȳ`` and every formula reduces to the
  textbook CUPED ``Ȳ − θX̄``, ``var(Y) + θ²var(X) − 2θcov(Y, X)`` with ``θ = cov(Y, X)/var(X)``
  (GrowthBook's ``RegressionAdjustedStatistic``). See docs/statistics.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from promptver.stats import Additive, Alternative, ArrayLike, MetricStats, _div, _out, welch_df

#: a treatment wins under ``engine: bayesian`` when its chance to win reaches this
CHANCE_TO_WIN_THRESHOLD = 0.95


# ---- Bayesian readout ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BayesianReadout:
    """Posterior summaries of the relative lift (element-wise; ``nan`` where undefined)."""

    mean: ArrayLike
    sd: ArrayLike
    chance_to_win: ArrayLike
    expected_loss: ArrayLike
    credible_low: ArrayLike
    credible_high: ArrayLike


def bayesian_readout(
    lift: ArrayLike, lift_se: ArrayLike, direction: str = "higher", alpha: float = 0.05
) -> BayesianReadout:
    """The flat-prior posterior ``N(lift, lift_se²)`` of the relative lift, summarised.

    Args:
        lift: the delta-method relative lift, ``mean_t / mean_c − 1``.
        lift_se: its delta-method standard error.
        direction: ``higher`` or ``lower``: which way the metric is better.
        alpha: the credible interval is ``1 − alpha``.

    Returns:
        ``chance_to_win`` = P(treatment better in the good direction); ``expected_loss`` =
        E[max(0, −g·lift)] with g = ±1 the good direction (the relative loss expected from
        shipping the treatment); the equal-tailed credible interval of the lift.
    """
    mu = np.asarray(lift, dtype=float)
    sd = np.asarray(lift_se, dtype=float)
    g = 1.0 if direction == "higher" else -1.0
    m = g * mu  # the lift signed so that positive is good
    with np.errstate(invalid="ignore", divide="ignore"):
        z = _div(m, sd)
        ok = np.isfinite(mu) & np.isfinite(sd) & (sd > 0)
        ctw = np.where(ok, sps.norm.cdf(z), np.nan)
        # E[max(0, −M)] for M ~ N(m, sd²) is sd·φ(m/sd) − m·Φ(−m/sd)
        loss = np.where(ok, sd * sps.norm.pdf(z) - m * sps.norm.cdf(-z), np.nan)
        q = sps.norm.ppf(1 - alpha / 2)
        lo = np.where(ok, mu - q * sd, np.nan)
        hi = np.where(ok, mu + q * sd, np.nan)
    return BayesianReadout(
        _out(np.where(ok, mu, np.nan)),
        _out(np.where(ok, sd, np.nan)),
        _out(ctw),
        _out(np.maximum(loss, 0.0)),
        _out(lo),
        _out(hi),
    )


# ---- non-inferiority ----------------------------------------------------------------------------


def non_inferiority_bound(
    lift: ArrayLike, lift_se: ArrayLike, df: ArrayLike, alpha: float, direction: str
) -> ArrayLike:
    """The one-sided ``1 − alpha`` bound of the relative lift on the metric's bad side.

    For a metric where lower is better (latency) the bad side is up: the upper bound
    ``lift + t(1 − alpha, df)·se``; where higher is better, the lower bound.
    """
    crit = sps.t.ppf(1 - alpha, np.asarray(df, dtype=float))
    mu = np.asarray(lift, dtype=float)
    se = np.asarray(lift_se, dtype=float)
    return _out(mu + crit * se if direction == "lower" else mu - crit * se)


def is_non_inferior(bound: float, margin: float, direction: str) -> bool:
    """The bound stays within the margin on the bad side (``lower`` is better: bound ≤ margin;
    ``higher`` is better: bound ≥ −margin)."""
    return bound <= margin if direction == "lower" else bound >= -margin


# ---- CUPED --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CovariateSums(Additive):
    """Per-arm sums of the covariate ``c`` (a user's pre-period mean, 0 without history) over the
    users counted in the arm's :class:`MetricStats`; instances add together.

    Attributes:
        sum_c: Σc. sum_c2: Σc². sum_xc: Σ(metric sum × c). sum_yc: Σ(event count × c).
        with_history: users with at least one event in the lookback window.
    """

    sum_c: ArrayLike = 0.0
    sum_c2: ArrayLike = 0.0
    sum_xc: ArrayLike = 0.0
    sum_yc: ArrayLike = 0.0
    with_history: ArrayLike = 0

    @classmethod
    def from_users(
        cls, x: ArrayLike, y: ArrayLike, c: ArrayLike, has: ArrayLike | None = None, axis: int = -1
    ) -> CovariateSums:
        """Sums over users (along ``axis``) of users with ``y > 0``."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        c = np.where(y > 0, np.asarray(c, dtype=float), 0.0)
        h = np.ones_like(c) if has is None else np.asarray(has, dtype=float)
        return cls(
            sum_c=_out(np.sum(c, axis=axis)),
            sum_c2=_out(np.sum(c * c, axis=axis)),
            sum_xc=_out(np.sum(x * c, axis=axis)),
            sum_yc=_out(np.sum(y * c, axis=axis)),
            with_history=_out(np.sum((y > 0) * h, axis=axis)),
        )


def _moments(s: MetricStats, c: CovariateSums) -> tuple[Any, Any, Any, Any, Any, Any]:
    """(n, R, c̄, var(L), cov(L, c), var(c)) of one arm, sample moments with ddof 1."""
    n = np.asarray(s.n, dtype=float)
    sy = np.asarray(s.sum_y, dtype=float)
    r = np.nan_to_num(_div(s.sum_x, sy))
    ybar = _div(sy, n)
    var_l = _div(np.asarray(s.residual_ss), (n - 1) * ybar**2)
    cov_lc = _div(np.asarray(c.sum_xc) - r * np.asarray(c.sum_yc), (n - 1) * ybar)
    css = np.asarray(c.sum_c2, dtype=float) - _div(np.asarray(c.sum_c, dtype=float) ** 2, n)
    css = np.where(css <= 1e-12 * np.abs(np.asarray(c.sum_c2, dtype=float)), 0.0, css)
    var_c = _div(css, n - 1)
    return n, _div(s.sum_x, sy), _div(c.sum_c, n), var_l, cov_lc, var_c


def pooled_theta(a: MetricStats, ca: CovariateSums, b: MetricStats, cb: CovariateSums) -> ArrayLike:
    """θ = cov(L, c) / var(c) over both arms together (0 when the covariate does not vary)."""
    _, _, _, _, cov, var = _moments(a + b, ca + cb)
    return _out(np.where(np.asarray(var) > 0, _div(cov, var), 0.0))


@dataclass(frozen=True)
class CupedTest:
    """Treatment − control of the CUPED-adjusted means (element-wise)."""

    theta: ArrayLike
    diff: ArrayLike
    se: ArrayLike
    df: ArrayLike
    t: ArrayLike
    p_value: ArrayLike
    ci_low: ArrayLike
    ci_high: ArrayLike
    variance_reduction: ArrayLike
    relative_lift: ArrayLike


def cuped_test(
    a: MetricStats,
    ca: CovariateSums,
    b: MetricStats,
    cb: CovariateSums,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
) -> CupedTest:
    """Welch's test on the CUPED-adjusted means of treatment ``b`` against control ``a``.

    Per arm: adjusted mean ``R − θc̄``, variance of that mean ``(var(L) + θ²var(c) −
    2θcov(L, c)) / n``; θ pooled over both arms (:func:`pooled_theta`); Welch–Satterthwaite
    degrees of freedom from the adjusted variances. ``variance_reduction`` is ``1 −`` the
    adjusted variance of the difference over the unadjusted one.
    """
    theta = np.asarray(pooled_theta(a, ca, b, cb), dtype=float)
    na, ra, cbar_a, vla, cova, vca = _moments(a, ca)
    nb, rb, cbar_b, vlb, covb, vcb = _moments(b, cb)
    var_a = _div(vla + theta**2 * vca - 2 * theta * cova, na)
    var_b = _div(vlb + theta**2 * vcb - 2 * theta * covb, nb)
    var_a = np.clip(var_a, 0, None)
    var_b = np.clip(var_b, 0, None)
    diff = (rb - theta * cbar_b) - (ra - theta * cbar_a)
    se = np.sqrt(var_a + var_b)
    df = np.asarray(welch_df(var_a, na, var_b, nb))
    t = _div(diff, se)
    with np.errstate(invalid="ignore"):
        if alternative == "two-sided":
            p = 2 * sps.t.sf(np.abs(t), df)
            crit = sps.t.ppf(1 - alpha / 2, df)
        else:
            p = sps.t.sf(t, df) if alternative == "greater" else sps.t.cdf(t, df)
            crit = sps.t.ppf(1 - alpha, df)
    unadjusted = _div(vla, na) + _div(vlb, nb)
    return CupedTest(
        theta=_out(theta),
        diff=_out(diff),
        se=_out(se),
        df=_out(df),
        t=_out(t),
        p_value=_out(p),
        ci_low=_out(diff - crit * se),
        ci_high=_out(diff + crit * se),
        variance_reduction=_out(1 - _div(var_a + var_b, unadjusted)),
        relative_lift=_out(_div(diff, ra)),
    )

"""Statistics on sufficient statistics: Welch / delta method, bootstrap, SRM, Holm, power.

Design. Events never reach this module. SQL (``promptver.store.stats``) reduces them to one row
per user — the metric's sum ``x`` and the number of events that carry it ``y`` — and then to
per-variant sums (:class:`MetricStats`: users ``n``, Σx, Σx², Σy, Σy², Σxy and the event-level
Σv²). These sums add together, so a variant, a day or a shard can be combined by ``+``, and the cost
of everything here is independent of the number of events (the habit of GrowthBook's gbstats).

The estimand is the metric's mean per event, ``Σx / Σy``, a ratio of two user-level sums. Users are
the unit of randomisation, so the user is the unit of inference: the variance of the ratio comes
from the delta method over users, and with exactly one event per user every formula collapses to
Welch's unequal-variance t-test on the events. The bootstrap resamples users (or, for large
samples, hashed buckets of users) with a seeded ``numpy.random.Generator``, fully vectorised.

The numeric functions accept floats or numpy arrays (element-wise) so that simulations can run
thousands of experiments in one call; degenerate inputs give ``nan`` there. The higher-level
:func:`compare` and :func:`summarise` turn degenerate cases (fewer than two users, zero variance, a
variant without users) into results that carry a message, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
from scipy import optimize, special
from scipy import stats as sps

Alternative = Literal["two-sided", "greater", "less"]
"""``greater``: the alternative is *treatment > control*; ``less``: *treatment < control*."""

ArrayLike = Any  # a float or a numpy array: the numeric functions work element-wise

#: relative size below which a sum of squared residuals counts as zero (floating-point noise)
_ZERO_VARIANCE_RTOL = 1e-12


def _out(value: Any) -> Any:
    """0-d arrays back to Python floats so scalar callers get plain numbers."""
    arr = np.asarray(value)
    return float(arr) if arr.ndim == 0 else arr


def _div(a: ArrayLike, b: ArrayLike) -> Any:
    """``a / b`` with ``nan`` where ``b`` is zero (no warnings)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.true_divide(a, b)
    return np.where(b == 0, np.nan, r)


# ---- sufficient statistics --------------------------------------------------------------------


class Additive:
    """Mixin for dataclasses of sums: instances of one class add field by field (arms pooled,
    segments and buckets summed)."""

    def __add__(self, other: Any) -> Any:
        if type(other) is not type(self):
            return NotImplemented
        return type(self)(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class MetricStats(Additive):
    """Per-variant sufficient statistics of one metric; instances add together.

    Attributes:
        n: users with at least one value of the metric.
        sum_x: Σ over users of the user's metric sum.
        sum_x2: Σ over users of the squared user sum.
        sum_y: Σ over users of the user's number of events with a value (= events).
        sum_y2: Σ over users of the squared event count.
        sum_xy: Σ over users of (metric sum × event count).
        event_sum_x2: Σ over events of the squared value (for the event-level std and effect size).
    """

    n: ArrayLike = 0
    sum_x: ArrayLike = 0.0
    sum_x2: ArrayLike = 0.0
    sum_y: ArrayLike = 0.0
    sum_y2: ArrayLike = 0.0
    sum_xy: ArrayLike = 0.0
    event_sum_x2: ArrayLike = 0.0

    @classmethod
    def from_users(
        cls, x: ArrayLike, y: ArrayLike, event_x2: ArrayLike | None = None, axis: int = -1
    ) -> MetricStats:
        """Sums over users (along ``axis``) of per-user metric sums ``x`` and event counts ``y``.

        ``event_x2`` is each user's Σ value²; it may be omitted only when every user has at most
        one event (then it equals ``x²``).

        Raises:
            ValueError: ``event_x2`` is missing while some user has several events.
        """
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        if event_x2 is None:
            if np.any(y > 1):
                raise ValueError("event_x2 is required when a user has more than one event")
            event_x2 = x * x
        event_x2 = np.asarray(event_x2, dtype=float)
        return cls(
            n=_out(np.sum(y > 0, axis=axis)),
            sum_x=_out(np.sum(x, axis=axis)),
            sum_x2=_out(np.sum(x * x, axis=axis)),
            sum_y=_out(np.sum(y, axis=axis)),
            sum_y2=_out(np.sum(y * y, axis=axis)),
            sum_xy=_out(np.sum(x * y, axis=axis)),
            event_sum_x2=_out(np.sum(event_x2, axis=axis)),
        )

    @classmethod
    def from_values(cls, values: ArrayLike, axis: int = -1) -> MetricStats:
        """One event per user: ``values`` are the users' single observations."""
        v = np.asarray(values, dtype=float)
        return cls.from_users(v, np.ones_like(v), v * v, axis=axis)

    @property
    def events(self) -> ArrayLike:
        return self.sum_y

    @property
    def finite(self) -> bool:
        """Every sum is a finite number (values near the float limit make Σx² overflow)."""
        return all(bool(np.all(np.isfinite(getattr(self, f.name)))) for f in fields(self))

    @property
    def mean(self) -> ArrayLike:
        """The mean per event, Σx / Σy (``nan`` without events)."""
        return _out(_div(self.sum_x, self.sum_y))

    @property
    def residual_ss(self) -> ArrayLike:
        """Σ (xᵢ − R·yᵢ)² over users, from the sums (exact algebra, clamped at zero)."""
        r = np.nan_to_num(_div(self.sum_x, self.sum_y))
        ss = self.sum_x2 - 2 * r * self.sum_xy + r * r * self.sum_y2
        scale = np.abs(self.sum_x2) + r * r * np.abs(self.sum_y2)
        return _out(np.where(ss <= _ZERO_VARIANCE_RTOL * scale, 0.0, ss))

    @property
    def var_mean(self) -> ArrayLike:
        """Delta-method variance of the mean per event, users as the unit.

        ``Var(Σx/Σy) ≈ n / (n − 1) · Σ(xᵢ − R yᵢ)² / (Σy)²``; with one event per user this is
        ``s² / n``, the usual variance of a sample mean.
        """
        n = np.asarray(self.n, dtype=float)
        v = _div(np.asarray(self.residual_ss) * n, (n - 1) * np.asarray(self.sum_y) ** 2)
        return _out(np.where(n < 2, np.nan, v))

    @property
    def se(self) -> ArrayLike:
        return _out(np.sqrt(self.var_mean))

    @property
    def event_var(self) -> ArrayLike:
        """Sample variance of the values over events (denominator events − 1)."""
        m = np.asarray(self.sum_y, dtype=float)
        ss = self.event_sum_x2 - _div(np.asarray(self.sum_x, dtype=float) ** 2, m)
        ss = np.where(ss <= _ZERO_VARIANCE_RTOL * np.abs(self.event_sum_x2), 0.0, ss)
        return _out(np.where(m < 2, np.nan, _div(ss, m - 1)))

    @property
    def std(self) -> ArrayLike:
        """Standard deviation of the values over events."""
        return _out(np.sqrt(self.event_var))

    def ci(self, alpha: float = 0.05) -> tuple[ArrayLike, ArrayLike]:
        """Two-sided ``1 − alpha`` CI of the mean per event (t with n − 1 df, users as unit)."""
        n = np.asarray(self.n, dtype=float)
        with np.errstate(invalid="ignore"):
            half = sps.t.ppf(1 - alpha / 2, np.where(n > 1, n - 1, np.nan)) * np.asarray(self.se)
        return _out(self.mean - half), _out(self.mean + half)


# ---- two-sample tests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TwoSampleTest:
    """Treatment − control on the mean per event (element-wise when built from arrays).

    ``ci_low``/``ci_high`` are ``diff ± crit · se`` where ``crit`` is the critical value of the test
    actually run, so the interval excludes zero exactly when ``p_value < alpha``: two-sided tests
    give a ``1 − alpha`` interval, one-sided tests the ``1 − 2·alpha`` interval whose bound on the
    tested side is the one-sided ``1 − alpha`` bound.
    """

    diff: ArrayLike
    se: ArrayLike
    df: ArrayLike
    t: ArrayLike
    p_value: ArrayLike
    ci_low: ArrayLike
    ci_high: ArrayLike
    relative_lift: ArrayLike
    lift_se: ArrayLike
    lift_ci_low: ArrayLike
    lift_ci_high: ArrayLike
    effect_size: ArrayLike
    alternative: Alternative
    sequential: bool
    alpha: float


def welch_df(var_a: ArrayLike, n_a: ArrayLike, var_b: ArrayLike, n_b: ArrayLike) -> ArrayLike:
    """Welch–Satterthwaite degrees of freedom from the variances of the two means."""
    var_a = np.asarray(var_a, dtype=float)
    var_b = np.asarray(var_b, dtype=float)
    num = (var_a + var_b) ** 2
    den = _div(var_a**2, np.asarray(n_a, dtype=float) - 1) + _div(
        var_b**2, np.asarray(n_b, dtype=float) - 1
    )
    return _out(_div(num, den))


def hedges_g(a: MetricStats, b: MetricStats) -> ArrayLike:
    """Hedges' g of treatment ``b`` vs control ``a``: the difference in means per event over the
    pooled event-level standard deviation, with the exact small-sample correction
    ``J = Γ(ν/2) / (√(ν/2) Γ((ν−1)/2))``, ν = events_a + events_b − 2."""
    na = np.asarray(a.sum_y, dtype=float)
    nb = np.asarray(b.sum_y, dtype=float)
    ss_a = a.event_sum_x2 - _div(np.asarray(a.sum_x, dtype=float) ** 2, na)
    ss_b = b.event_sum_x2 - _div(np.asarray(b.sum_x, dtype=float) ** 2, nb)
    nu = na + nb - 2
    pooled = np.sqrt(np.clip(_div(ss_a + ss_b, nu), 0, None))
    d = _div(np.asarray(b.mean) - np.asarray(a.mean), pooled)
    with np.errstate(invalid="ignore", divide="ignore"):
        safe = np.where(nu > 1, nu, np.nan)
        j = np.exp(special.gammaln(safe / 2) - special.gammaln((safe - 1) / 2)) / np.sqrt(safe / 2)
    return _out(d * j)


def sequential_rho2(alpha: float, tuning_n: float) -> float:
    """ρ² of the normal-mixture confidence sequence tightest at ``tuning_n`` observations
    (Howard et al. 2021; the form used by GrowthBook): ``(−2 ln α + ln(1 − 2 ln α)) / N``."""
    la = math.log(alpha)
    return (-2 * la + math.log(1 - 2 * la)) / tuning_n


def sequential_p_value(
    z: ArrayLike, n: ArrayLike, rho2: float, alternative: Alternative = "two-sided"
) -> ArrayLike:
    """Always-valid p-value of the normal-mixture martingale after ``n`` observations.

    Two-sided: ``p = √(1 + nρ²) · exp(−z² nρ² / (2(1 + nρ²)))``. One-sided (``greater`` tests
    z > 0, ``less`` z < 0) mixes over one half-line only, which multiplies the martingale by
    ``2 Φ(z √(nρ²/(1 + nρ²)))`` (still a test martingale under the null, so Ville's inequality
    keeps it valid at every look).
    """
    z = np.asarray(z, dtype=float)
    v = np.asarray(n, dtype=float) * rho2
    c2 = v / (1 + v)
    log_lr = 0.5 * z * z * c2 - 0.5 * np.log1p(v)
    if alternative == "two-sided":
        p = np.exp(-log_lr)
    else:
        zs = z if alternative == "greater" else -z
        p = np.exp(-(log_lr + np.log(2.0) + sps.norm.logcdf(zs * np.sqrt(c2))))
    return _out(np.minimum(1.0, p))


def sequential_critical(
    n: ArrayLike, rho2: float, alpha: float, alternative: Alternative = "two-sided"
) -> ArrayLike:
    """The |z| at which :func:`sequential_p_value` equals ``alpha`` (the CS half-width in SEs)."""
    v = np.asarray(n, dtype=float) * rho2
    c2 = v / (1 + v)
    if alternative == "two-sided":
        return _out(np.sqrt(_div(2 * (np.log(1 / alpha) + 0.5 * np.log1p(v)), c2)))

    def one(vi: float) -> float:
        if not np.isfinite(vi) or vi <= 0:
            return math.nan
        c = math.sqrt(vi / (1 + vi))

        def f(z: float) -> float:
            return (
                math.log(2)
                + float(sps.norm.logcdf(z * c))
                + 0.5 * z * z * c * c
                - 0.5 * math.log1p(vi)
                - math.log(1 / alpha)
            )

        hi = 1.0
        while f(hi) < 0:
            hi *= 2
        return optimize.brentq(f, 0.0 if f(0.0) < 0 else -50.0, hi, xtol=1e-12)

    return _out(np.vectorize(one, otypes=[float])(v))


def welch_test(
    a: MetricStats,
    b: MetricStats,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    sequential_tuning_n: float | None = None,
) -> TwoSampleTest:
    """Welch's t-test (delta method for the ratio) of treatment ``b`` against control ``a``.

    With ``sequential_tuning_n`` the p-value and intervals come from the always-valid normal-mixture
    confidence sequence instead (n = users in both arms), valid however often one looks.
    """
    va = np.asarray(a.var_mean, dtype=float)
    vb = np.asarray(b.var_mean, dtype=float)
    ma = np.asarray(a.mean, dtype=float)
    mb = np.asarray(b.mean, dtype=float)
    diff = mb - ma
    se = np.sqrt(va + vb)
    df = np.asarray(welch_df(va, a.n, vb, b.n))
    t = _div(diff, se)
    # relative lift (mb/ma − 1) by the delta method
    lift = _div(mb, ma) - 1
    lift_se = np.sqrt(_div(vb, ma**2) + _div(mb**2 * va, ma**4))
    one_sided = alternative != "two-sided"
    if sequential_tuning_n is not None:
        rho2 = sequential_rho2(alpha, sequential_tuning_n)
        n = np.asarray(a.n, dtype=float) + np.asarray(b.n, dtype=float)
        p = np.asarray(sequential_p_value(t, n, rho2, alternative))
        crit = np.asarray(sequential_critical(n, rho2, alpha, alternative))
    else:
        with np.errstate(invalid="ignore"):
            if alternative == "two-sided":
                p = 2 * sps.t.sf(np.abs(t), df)
            elif alternative == "greater":
                p = sps.t.sf(t, df)
            else:
                p = sps.t.cdf(t, df)
            crit = sps.t.ppf(1 - (alpha if one_sided else alpha / 2), df)
    return TwoSampleTest(
        diff=_out(diff),
        se=_out(se),
        df=_out(df),
        t=_out(t),
        p_value=_out(p),
        ci_low=_out(diff - crit * se),
        ci_high=_out(diff + crit * se),
        relative_lift=_out(lift),
        lift_se=_out(lift_se),
        lift_ci_low=_out(lift - crit * lift_se),
        lift_ci_high=_out(lift + crit * lift_se),
        effect_size=hedges_g(a, b),
        alternative=alternative,
        sequential=sequential_tuning_n is not None,
        alpha=alpha,
    )


# ---- scalar results with messages ----------------------------------------------------------------


#: the message of a figure whose sums overflowed (never reported as zero variance or as a test)
NON_FINITE = "cannot be computed: the values are too large (their sums overflow)"


def finite(value: Any) -> float | None:
    """A finite Python float, or ``None`` (JSON null) for nan/inf."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class VariantSummary:
    """One variant's mean per event, its spread and CI (``None`` where undefined)."""

    users: int
    events: int
    mean: float | None
    std: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    message: str | None = None


def summarise(s: MetricStats, alpha: float = 0.05, name: str = "variant") -> VariantSummary:
    """Mean, std and CI of one variant; messages instead of errors for thin data."""
    n, events = int(s.n), int(round(float(s.sum_y)))
    if events == 0:
        return VariantSummary(
            n, 0, None, None, None, None, None, f"{name} has no events with this metric yet"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        se = s.se
        overflow = not s.finite or (n >= 2 and finite(se) is None)
        if overflow:
            return VariantSummary(
                n, events, None, None, None, None, None, f"{name}: mean, spread and CI {NON_FINITE}"
            )
        lo, hi = s.ci(alpha)
    message = None
    if n < 2:
        message = f"{name} has {n} user with this metric; a CI needs at least 2"
    elif finite(s.se) == 0:
        message = f"{name}: every user has the same value, so its CI has zero width"
    return VariantSummary(
        n, events, finite(s.mean), finite(s.std), finite(s.se), finite(lo), finite(hi), message
    )


@dataclass(frozen=True)
class Comparison:
    """Treatment vs control for one metric, plain floats (``None`` where undefined)."""

    diff: float | None
    se: float | None
    df: float | None
    t: float | None
    p_value: float | None
    ci_low: float | None
    ci_high: float | None
    relative_lift: float | None
    relative_lift_ci_low: float | None
    relative_lift_ci_high: float | None
    effect_size: float | None
    alternative: Alternative
    sequential: bool
    confidence: float
    message: str | None = None
    #: the delta-method standard error of the relative lift (the Bayesian posterior's sd)
    relative_lift_se: float | None = None

    @property
    def tested(self) -> bool:
        return self.p_value is not None


def compare(
    a: MetricStats,
    b: MetricStats,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    sequential_tuning_n: float | None = None,
    names: tuple[str, str] = ("control", "treatment"),
) -> Comparison:
    """Test treatment ``b`` against control ``a``; degenerate data gives a message, no exception."""
    confidence = 1 - (2 * alpha if alternative != "two-sided" else alpha)
    empty = Comparison(
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        alternative,
        sequential_tuning_n is not None,
        confidence,
    )
    for s, name in ((a, names[0]), (b, names[1])):
        if float(s.sum_y) == 0:
            return _replace(empty, message=f"{name} has no events with this metric yet")
    for s, name in ((a, names[0]), (b, names[1])):
        if not s.finite:
            return _replace(empty, message=f"the test {NON_FINITE} in {name}")
    diff = finite(np.asarray(b.mean) - np.asarray(a.mean))
    lift = finite(_div(b.mean, a.mean) - 1)
    for s, name in ((a, names[0]), (b, names[1])):
        if int(s.n) < 2:
            return _replace(
                empty,
                diff=diff,
                relative_lift=lift,
                message=f"{name} has {int(s.n)} user(s) with this metric; "
                "a test needs at least 2 per variant",
            )
    with np.errstate(over="ignore", invalid="ignore"):
        r = welch_test(
            a, b, alpha=alpha, alternative=alternative, sequential_tuning_n=sequential_tuning_n
        )
    if finite(r.se) is None:  # n ≥ 2 and events in both arms: only an overflow leaves no se
        return _replace(empty, message=f"the test {NON_FINITE}")
    if not (finite(r.se) or 0) > 0:
        return _replace(
            empty,
            diff=diff,
            relative_lift=lift,
            se=0.0,
            message="zero variance: every user has the same value in both variants, "
            "so there is nothing to test",
        )
    message = None
    if finite(a.mean) == 0:
        message = f"{names[0]} mean is 0, so the relative lift is undefined"
    return Comparison(
        diff=finite(r.diff),
        se=finite(r.se),
        df=finite(r.df),
        t=finite(r.t),
        p_value=finite(r.p_value),
        ci_low=finite(r.ci_low),
        ci_high=finite(r.ci_high),
        relative_lift=finite(r.relative_lift),
        relative_lift_ci_low=finite(r.lift_ci_low),
        relative_lift_ci_high=finite(r.lift_ci_high),
        effect_size=finite(r.effect_size),
        alternative=alternative,
        sequential=r.sequential,
        confidence=confidence,
        message=message,
        relative_lift_se=finite(r.lift_se),
    )


def _replace(c: Comparison, **changes: Any) -> Comparison:
    from dataclasses import replace

    return replace(c, **changes)


# ---- sample ratio mismatch and multiple comparisons -------------------------------------------------


@dataclass(frozen=True)
class SRMTest:
    """Chi-square goodness of fit of users per variant against the configured split."""

    chi2: float | None
    df: int
    p_value: float | None
    ok: bool
    observed: list[int]
    expected: list[float]


#: SRM flags an experiment when its p-value falls below this
SRM_THRESHOLD = 0.001


def srm_test(
    observed: Sequence[int], weights: Sequence[float], threshold: float = SRM_THRESHOLD
) -> SRMTest:
    """Pearson's chi-square of ``observed`` users against ``weights`` (normalised here).

    Without users there is nothing to test: ``p_value`` is ``None`` and ``ok`` is ``True``.
    """
    obs = np.asarray(observed, dtype=float)
    w = np.asarray(weights, dtype=float)
    total = obs.sum()
    expected = total * w / w.sum()
    df = len(obs) - 1
    if total == 0 or df < 1:
        return SRMTest(None, df, None, True, [int(o) for o in obs], [float(e) for e in expected])
    chi2 = float(((obs - expected) ** 2 / expected).sum())
    p = float(sps.chi2.sf(chi2, df))
    return SRMTest(chi2, df, p, p >= threshold, [int(o) for o in obs], [float(e) for e in expected])


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm step-down adjusted p-values; ``None`` stays ``None``.

    The same arithmetic as ``statsmodels``' ``multipletests(method="holm")`` (tests pin it),
    written out: that function runs a full ``gc.collect()`` per call, which costs tens of
    milliseconds in a process as large as the dashboard. The one Holm of the package: results,
    segments, bandits, trends and evaluations all call it.
    """
    idx = [i for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    if not idx:
        return out
    p = np.asarray([p_values[i] for i in idx], dtype=float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * np.arange(m, 0, -1)))
    for rank, j in enumerate(order):
        out[idx[j]] = float(adjusted[rank])
    return out


# ---- power and sample size ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Power:
    """Power figures of one comparison (absolute effects in the metric's unit).

    ``sigma`` is the per-user standard deviation implied by the delta-method standard error,
    ``se / √(1/n_control + 1/n_treatment)``; it turns absolute effects into the standardised effect
    sizes that statsmodels' ``TTestIndPower`` works with.
    """

    alpha: float
    power: float
    sigma: float | None
    mde: float | None
    mde_relative: float | None
    target_lift: float | None
    users_needed_control: int | None
    users_needed_treatment: int | None
    message: str | None = None


def _power_alternative(alternative: Alternative) -> str:
    return "two-sided" if alternative == "two-sided" else "larger"


def power_analysis(
    se: float | None,
    n_control: int,
    n_treatment: int,
    control_mean: float | None,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    target_lift: float | None = None,
    weight_ratio: float = 1.0,
    alternative: Alternative = "two-sided",
) -> Power:
    """Minimum detectable effect now, and users needed for ``target_lift`` (a relative lift).

    Args:
        se: the standard error of the difference at the current sample.
        n_control, n_treatment: users with the metric in each arm now.
        control_mean: the control's mean per event (turns relative lifts into absolute ones).
        alpha: the significance level of the test (already divided for multiplicity if needed).
        power: the wanted probability of detecting the effect.
        target_lift: the relative lift to plan for (0.05 = 5 %).
        weight_ratio: treatment users per control user in the configured split.
        alternative: the test's alternative; one-sided tests need fewer users.
    """
    from statsmodels.stats.power import TTestIndPower

    solver = TTestIndPower()
    alt = _power_alternative(alternative)
    base = Power(alpha, power, None, None, None, target_lift, None, None)
    if se is None or not se > 0 or n_control < 2 or n_treatment < 2:
        return _power_replace(
            base, message="power needs at least 2 users per variant and a non-zero variance"
        )
    sigma = se / math.sqrt(1 / n_control + 1 / n_treatment)
    d = solver.solve_power(
        effect_size=None,
        nobs1=n_control,
        ratio=n_treatment / n_control,
        alpha=alpha,
        power=power,
        alternative=alt,
    )
    mde = float(np.asarray(d).item()) * sigma
    mde_rel = mde / abs(control_mean) if control_mean else None
    need_c = need_t = None
    message = None
    if target_lift is not None and control_mean:
        effect = abs(target_lift * control_mean) / sigma
        if effect > 0:
            n1 = users_needed(
                solver, effect, alpha=alpha, power=power, alternative=alt, ratio=weight_ratio
            )
            if n1 is None:
                message = (
                    f"no sample size reaches {power:.0%} power for a {target_lift:.1%} lift "
                    "(the solver did not converge)"
                )
            else:
                need_c = max(2, math.ceil(n1))
                need_t = max(2, math.ceil(n1 * weight_ratio))
    elif target_lift is not None:
        message = "the control mean is 0, so a relative target cannot be planned"
    return Power(alpha, power, sigma, mde, mde_rel, target_lift, need_c, need_t, message)


def users_needed(
    solver: Any,
    effect: float,
    *,
    alpha: float,
    power: float,
    alternative: str,
    ratio: float | None = None,
) -> float | None:
    """Units for ``power`` at standardised ``effect`` with a statsmodels power ``solver``
    (``TTestIndPower``: control users, ``ratio`` treatment per control; ``TTestPower``: paired
    items), as a real number (callers round up); at least 2.

    The root of the solver's own ``power`` function, bracketed by doubling and found with
    ``brentq``: statsmodels' ``solve_power`` returns NaN when the answer lies near its starting
    bracket (a large effect, e.g. a 100 % lift, needs 2 or 3 users). None only for an answer
    above 10^12 units.
    """
    from scipy.optimize import brentq

    size = "nobs1" if ratio is not None else "nobs"
    extra = {"ratio": ratio} if ratio is not None else {}

    def achieved(n: float, alt: str, a: float) -> float:
        got = solver.power(effect_size=effect, alpha=a, alternative=alt, **{size: n}, **extra)
        return float(np.asarray(got).item())

    def short(n: float) -> float:
        got = achieved(n, alternative, alpha)
        if math.isnan(got) and alternative == "two-sided":
            # the noncentral t's far lower tail underflows to NaN (scipy's nct too) when the
            # effect is large: the upper tail alone, P(T > t_{alpha/2}), is the power but for
            # that vanishing term
            got = achieved(n, "larger", alpha / 2)
        return got - power

    first = short(2.0)
    if math.isnan(first):
        return None
    if first >= 0:
        return 2.0
    lo, hi = 2.0, 4.0
    while (gap := short(hi)) < 0:
        lo, hi = hi, hi * 2
        if hi > 1e12:
            return None
    if math.isnan(gap):
        return None
    return float(brentq(short, lo, hi, xtol=1e-10, rtol=1e-12))


def _power_replace(p: Power, **changes: Any) -> Power:
    from dataclasses import replace

    return replace(p, **changes)


# ---- bootstrap -------------------------------------------------------------------------------------


def resample_counts(
    rng: np.random.Generator, n_units: int, resamples: int, chunk_elems: int = 1 << 20
) -> np.ndarray:
    """How often each unit appears in each resample: a ``(resamples, n_units)`` float matrix.

    Each row is a multinomial(n_units, uniform) draw made by drawing ``n_units`` indices with
    replacement and counting them (``bincount``), in chunks small enough for the CPU cache.
    """
    out = np.empty((resamples, n_units), dtype=float)
    if n_units == 0:
        return out
    step = max(1, chunk_elems // n_units)
    for start in range(0, resamples, step):
        b = min(step, resamples - start)
        idx = rng.integers(0, n_units, size=(b, n_units))
        idx += (np.arange(b) * n_units)[:, None]
        out[start : start + b] = np.bincount(idx.ravel(), minlength=b * n_units).reshape(b, n_units)
    return out


def bootstrap_ratio(counts: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Resampled Σx/Σy for each resample (rows of ``counts``) and metric (columns of x, y)."""
    # one pass over the (large) count matrix; values too large overflow to inf, which the
    # intervals report as undefined (this runs in worker threads: errstate is per thread)
    with np.errstate(over="ignore", invalid="ignore"):
        both = counts @ np.hstack([x, y])
    return _div(both[:, : x.shape[1]], both[:, x.shape[1] :])


def jackknife_ratio(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Leave-one-unit-out Σx/Σy, shape ``(units, metrics)``."""
    return _div(x.sum(axis=0) - x, y.sum(axis=0) - y)


def percentile_interval(dist: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval at ``1 − alpha`` along axis 0 (resamples), nan-aware."""
    dist = np.asarray(dist, dtype=float)
    some = np.isfinite(dist).any(axis=0)  # all-NaN columns stay NaN (and warn nothing)
    if np.all(some):
        lo, hi = np.nanquantile(dist, [alpha / 2, 1 - alpha / 2], axis=0)
        return lo, hi
    lo = np.full(dist.shape[1:], np.nan)
    hi = np.full(dist.shape[1:], np.nan)
    if np.any(some):
        lo[some], hi[some] = np.nanquantile(dist[:, some], [alpha / 2, 1 - alpha / 2], axis=0)
    return lo, hi


def bca_interval(
    dist: np.ndarray, estimate: np.ndarray, jackknife: Sequence[np.ndarray], alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected and accelerated interval (Efron 1987; multi-sample acceleration).

    Args:
        dist: bootstrap replicates, shape ``(resamples, k)``.
        estimate: the statistic on the data, shape ``(k,)``.
        jackknife: per sample, leave-one-unit-out values of the statistic, shape ``(units, k)``.
        alpha: ``1 − confidence``.
    """
    dist = np.asarray(dist, dtype=float)
    squeeze = dist.ndim == 1
    dist = dist.reshape(dist.shape[0], -1)
    est = np.asarray(estimate, dtype=float).reshape(-1)
    valid = np.isfinite(dist)
    b = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        below = ((dist < est) & valid).sum(axis=0) + ((dist <= est) & valid).sum(axis=0)
        z0 = special.ndtri(_div(below, 2 * b))
        nums = np.zeros(dist.shape[1])
        dens = np.zeros(dist.shape[1])
        for jk in jackknife:
            jk = np.asarray(jk, dtype=float).reshape(np.shape(jk)[0], -1)
            n = jk.shape[0]
            if n < 2:
                continue
            finite = np.isfinite(jk)
            counts = finite.sum(axis=0)
            mean = np.where(finite, jk, 0.0).sum(axis=0) / np.maximum(counts, 1)
            mean[counts == 0] = np.nan  # nanmean without its all-NaN warning
            u = (n - 1) * (mean - jk)
            nums += np.nansum(u**3, axis=0) / n**3
            dens += np.nansum(u**2, axis=0) / n**2
        a = np.nan_to_num(_div(nums / 6, dens**1.5))
        z_lo, z_hi = special.ndtri(alpha / 2), special.ndtri(1 - alpha / 2)
        q_lo = special.ndtr(z0 + (z0 + z_lo) / (1 - a * (z0 + z_lo)))
        q_hi = special.ndtr(z0 + (z0 + z_hi) / (1 - a * (z0 + z_hi)))
    lo = np.full(dist.shape[1], np.nan)
    hi = np.full(dist.shape[1], np.nan)
    for j in range(dist.shape[1]):
        col = dist[:, j][valid[:, j]]
        # all replicates equal (or on one side of the estimate): BCa is undefined
        if col.size and np.isfinite(q_lo[j]) and np.isfinite(q_hi[j]):
            lo[j], hi[j] = np.quantile(col, [q_lo[j], q_hi[j]])
    if squeeze:
        return lo[0], hi[0]
    return lo, hi


@dataclass(frozen=True)
class ArmUnits:
    """One arm's resampling units (users, or hashed buckets of users) and their sums.

    ``x[k, j]`` and ``y[k, j]`` are unit k's metric sum and event count for metric j.
    """

    x: np.ndarray
    y: np.ndarray

    @property
    def n_units(self) -> int:
        return int(self.x.shape[0])


def bucket_units(bucket: np.ndarray, x: np.ndarray, y: np.ndarray, buckets: int) -> ArmUnits:
    """Sum per-user ``x``/``y`` (shape ``(users, metrics)``) into hashed user buckets and keep the
    non-empty ones. SQL does the same in ``promptver.store.stats`` for data in the database."""
    x = np.asarray(x, dtype=float).reshape(len(bucket), -1)
    y = np.asarray(y, dtype=float).reshape(len(bucket), -1)
    users = np.bincount(bucket, minlength=buckets)
    keep = users > 0
    bx = np.column_stack(
        [np.bincount(bucket, weights=x[:, j], minlength=buckets)[keep] for j in range(x.shape[1])]
    )
    by = np.column_stack(
        [np.bincount(bucket, weights=y[:, j], minlength=buckets)[keep] for j in range(y.shape[1])]
    )
    return ArmUnits(bx, by)


@dataclass(frozen=True)
class BootstrapComparison:
    """Bootstrap intervals of treatment − control (and of the relative lift), per metric."""

    diff_low: np.ndarray
    diff_high: np.ndarray
    bca_low: np.ndarray
    bca_high: np.ndarray
    lift_low: np.ndarray
    lift_high: np.ndarray


def bootstrap_arm(
    units: ArmUnits, resamples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Resample one arm: returns the count matrix and the resampled means ``(resamples, metrics)``."""
    counts = resample_counts(rng, units.n_units, resamples)
    return counts, bootstrap_ratio(counts, units.x, units.y)


def bootstrap_compare(
    control: ArmUnits, treatment: ArmUnits, means_c: np.ndarray, means_t: np.ndarray, alpha: float
) -> BootstrapComparison:
    """Percentile and BCa intervals of the difference, percentile interval of the lift."""
    est_c = _div(control.x.sum(axis=0), control.y.sum(axis=0))
    est_t = _div(treatment.x.sum(axis=0), treatment.y.sum(axis=0))
    diff = means_t - means_c
    lo, hi = percentile_interval(diff, alpha)
    jk_c = est_t - jackknife_ratio(control.x, control.y)
    jk_t = jackknife_ratio(treatment.x, treatment.y) - est_c
    blo, bhi = bca_interval(diff, est_t - est_c, [jk_c, jk_t], alpha)
    llo, lhi = percentile_interval(_div(means_t, means_c) - 1, alpha)
    return BootstrapComparison(lo, hi, blo, bhi, llo, lhi)


def bootstrap_difference(
    control: ArmUnits,
    treatment: ArmUnits,
    *,
    resamples: int = 2000,
    alpha: float = 0.05,
    seed: int | Sequence[int] = 0,
) -> BootstrapComparison:
    """Convenience: resample both arms (independent streams of one seed) and compare them."""
    rc, rt = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    _, mc = bootstrap_arm(control, resamples, rc)
    _, mt = bootstrap_arm(treatment, resamples, rt)
    return bootstrap_compare(control, treatment, mc, mt, alpha)


# ---- bootstrap of a quantile (p95 latency) -------------------------------------------------------


def bootstrap_quantile_exact(
    values: np.ndarray, unit: np.ndarray, counts: np.ndarray, q: float, chunk_elems: int = 4_000_000
) -> np.ndarray:
    """The ``q`` quantile (linear interpolation, numpy's default) of each resampled event set.

    Args:
        values: the arm's event values.
        unit: each event's unit index (row of ``counts``' columns).
        counts: ``(resamples, units)`` unit multiplicities from :func:`resample_counts`.
        q: the quantile level.
    """
    order = np.argsort(values, kind="stable")
    v = np.asarray(values, dtype=float)[order]
    u = np.asarray(unit)[order]
    n_ev = v.size
    out = np.full(counts.shape[0], np.nan)
    if n_ev == 0:
        return out
    step = max(1, chunk_elems // n_ev)
    for start in range(0, counts.shape[0], step):
        w = counts[start : start + step][:, u]
        cw = np.cumsum(w, axis=1)
        total = cw[:, -1]
        h = (total - 1) * q
        lo = np.floor(h)
        i0 = np.minimum((cw <= lo[:, None]).sum(axis=1), n_ev - 1)
        i1 = np.minimum((cw <= (lo + 1)[:, None]).sum(axis=1), n_ev - 1)
        res = v[i0] + (h - lo) * (v[i1] - v[i0])
        out[start : start + step] = np.where(total > 0, res, np.nan)
    return out


def bootstrap_quantile_binned(
    below: np.ndarray,
    hist: np.ndarray,
    edges: np.ndarray,
    totals: np.ndarray,
    counts: np.ndarray,
    q: float,
) -> tuple[np.ndarray, float]:
    """The ``q`` quantile of each resample from per-unit histograms over a window of values.

    For large arms the exact event values are not fetched; instead SQL counts, per unit, the events
    below the window, in each of ``M`` equal bins between ``edges[0]`` and ``edges[-1]`` (chosen
    around the quantile so that every resampled quantile falls inside), and in total. The quantile
    is interpolated linearly inside its bin.

    Returns:
        The resampled quantiles, and the share of resamples whose quantile fell outside the window
        (they are clamped to its edge; the caller widens the window when this is not tiny).
    """
    m = hist.shape[1]
    n_below, n_total = (counts @ np.column_stack([below, totals])).T
    if hist.sum() * max(1.0, float(counts.max(initial=0))) < 2**24:
        # float32 is exact for these integer counts and halves the cost of the largest product
        n_bins = (counts.astype(np.float32) @ hist.astype(np.float32)).astype(float)
    else:
        n_bins = counts @ hist  # (resamples, M)
    h = (n_total - 1) * q  # 0-based rank wanted
    cum = n_below[:, None] + np.cumsum(n_bins, axis=1)  # events up to the end of each bin
    j = np.minimum((cum <= h[:, None]).sum(axis=1), m - 1)
    before = np.where(j > 0, cum[np.arange(len(j)), np.maximum(j - 1, 0)], n_below)
    in_bin = n_bins[np.arange(len(j)), j]
    frac = np.clip(_div(h - before + 0.5, in_bin), 0, 1)
    frac = np.where(np.isfinite(frac), frac, 0.5)
    width = edges[1:] - edges[:-1]
    res = edges[j] + frac * width[j]
    outside = (h < n_below) | (h >= cum[:, -1])
    res = np.where(h < n_below, edges[0], res)
    res = np.where(h >= cum[:, -1], edges[-1], res)
    return res, float(outside.mean()) if len(outside) else 0.0

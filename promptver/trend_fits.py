"""The statistics of a trend: a robust line through buckets, a percentile change before/after.

:func:`fit_line` fits a straight line by robust regression (statsmodels ``RLM`` with Huber's T
norm, so that an incident hour or a half-empty bucket is down-weighted instead of dragging the
slope) and gives its slope with a t-based CI. :func:`quantile_change` bootstraps the change of a
percentile across a deployment, users as the unit. :func:`_change_metric` turns a metric's
sums on both sides of a deployment into a :class:`~promptver.models.ChangeMetric` (the
experiment engine's test for means). The analysis that calls them is :mod:`promptver.trends`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from promptver import stats
from promptver.metric_defs import MetricDef
from promptver.models.trends import ChangeMetric
from promptver.store import trends as sql

#: fewest usable buckets for a trend line
MIN_FIT_BUCKETS = 5
#: fewest events for a p95 bucket to enter a fit (below that the p95 is about the maximum)
MIN_P95_EVENTS = 20


# ---- the line through the buckets ----------------------------------------------------------


@dataclass(frozen=True)
class LineFit:
    """A straight line through (x days, y) points (see :func:`fit_line`)."""

    method: str | None
    n: int
    slope: float | None = None
    se: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    level: float | None = None
    outliers: int = 0
    message: str | None = None


def fit_line(x: Sequence[float], y: Sequence[float], alpha: float = 0.05) -> LineFit:
    """Robust straight line ``y = level + slope · (x − mean x)``.

    Huber's M-estimator (``statsmodels.RLM`` with the ``HuberT`` norm, its default MAD scale and
    ``H1`` covariance): buckets far from the line are down-weighted, so a few outlier buckets
    cannot drag the slope. Inference uses Student's t with ``(n − 2) / 2`` degrees of freedom:
    the MAD scale is estimated with about a third of the efficiency of a standard deviation,
    and with the full ``n − 2`` the test fires in 6–10 % of trendless series of 5–15 buckets at
    α = 5 %; halving keeps that at or below 5 % from 5 to 30 buckets, with or without outliers
    (simulations in ``tests/test_trends.py`` and ``docs/trends.md``).

    Degenerate cases answer without warnings: fewer than :data:`MIN_FIT_BUCKETS` points, a
    constant series (slope 0), points exactly on a line (exact slope, no uncertainty), and a
    robust fit that cannot be computed (more than half the buckets on the line, so the MAD is
    zero), which falls back to ordinary least squares (``method="ols"``, ``n − 2`` df).
    """
    import statsmodels.api as sm

    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    n = int(xa.size)
    if n < MIN_FIT_BUCKETS:
        return LineFit(None, n, message=f"{n} usable bucket(s); a trend needs {MIN_FIT_BUCKETS}")
    if np.ptp(xa) == 0:
        return LineFit(None, n, message="every bucket has the same time")
    level = float(ya.mean())
    if np.ptp(ya) == 0:
        return LineFit("constant", n, 0.0, 0.0, 0.0, 0.0, 1.0, level, 0, "the value is constant")
    xc = xa - xa.mean()
    design = np.column_stack([np.ones(n), xc])
    ols = sm.OLS(ya, design).fit()
    if np.all(np.abs(ols.resid) <= 1e-12 * max(1.0, float(np.abs(ya).max()))):
        slope = float(ols.params[1])
        return LineFit(
            "exact", n, slope, 0.0, slope, slope, 0.0 if slope else 1.0, float(ols.params[0]), 0
        )
    method = "rlm-huber"
    outliers = 0
    try:
        with warnings.catch_warnings(), np.errstate(all="raise"):
            warnings.simplefilter("error")
            fit = sm.RLM(ya, design, M=sm.robust.norms.HuberT()).fit()
            params, bse = np.asarray(fit.params), np.asarray(fit.bse)
            if not (np.all(np.isfinite(params)) and np.all(np.isfinite(bse)) and fit.scale > 0):
                raise FloatingPointError("degenerate robust scale")
            outliers = int(np.sum(np.asarray(fit.weights) < 0.5))
    except (FloatingPointError, ZeroDivisionError, ValueError, Warning, np.linalg.LinAlgError):
        method = "ols"
        params, bse = np.asarray(ols.params), np.asarray(ols.bse)
    slope, se = float(params[1]), float(bse[1])
    df = (n - 2) / 2 if method == "rlm-huber" else n - 2
    if not se > 0:
        return LineFit(method, n, slope, 0.0, slope, slope, 0.0 if slope else 1.0, float(params[0]))
    t = slope / se
    p = float(2 * sps.t.sf(abs(t), df))
    crit = float(sps.t.ppf(1 - alpha / 2, df))
    return LineFit(
        method, n, slope, se, slope - crit * se, slope + crit * se, p, float(params[0]), outliers
    )


# ---- the bootstrap of a percentile change --------------------------------------------------


@dataclass(frozen=True)
class QuantileChange:
    """After − before of a percentile, with its bootstrap interval and p-value."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    resamples: int


def quantile_change(
    before: tuple[Sequence[Any], Sequence[float]],
    after: tuple[Sequence[Any], Sequence[float]],
    *,
    q: float = sql.P95,
    resamples: int = 2000,
    alpha: float = 0.05,
    seed: int | Sequence[int] = 0,
) -> QuantileChange:
    """Bootstrap of the change of the ``q`` quantile between two windows of events.

    Each side is ``(units, values)``: an event's unit (the user, like every other interval
    of the trends) and its value. Each window is resampled on its own, units with
    replacement, every event of a drawn unit coming along (so a heavy user cannot make the
    interval narrower than the users justify); the quantile of each resampled event set is
    numpy's linear one (:func:`promptver.stats.bootstrap_quantile_exact`, vectorised over the
    resamples). The interval is the percentile interval of the resampled differences; the
    two-sided p-value is ``2 · (1 + min(#{d* ≤ 0}, #{d* ≥ 0})) / (resamples + 1)`` (at most 1),
    the share of resampled differences on the far side of zero.
    """
    rb, ra = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    d = resampled_quantiles(*after, q, resamples, ra) - resampled_quantiles(
        *before, q, resamples, rb
    )
    diff = float(np.quantile(np.asarray(after[1], float), q)) - float(
        np.quantile(np.asarray(before[1], float), q)
    )
    lo, hi = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    far = min(int((d <= 0).sum()), int((d >= 0).sum()))
    p = min(1.0, 2 * (1 + far) / (resamples + 1))
    return QuantileChange(diff, float(lo), float(hi), p, resamples)


def resampled_quantiles(
    units: Sequence[Any],
    values: Sequence[float],
    q: float,
    resamples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The ``q`` quantile of ``resamples`` resampled event sets (units drawn with replacement
    by :func:`promptver.stats.resample_counts`, each bringing all its events; numpy's linear
    quantile of the events).

    The same numbers as :func:`promptver.stats.bootstrap_quantile_exact`, about three times
    faster: a resample's quantile sits far above the lower events, so their weight is summed
    per resample in one product with the per-unit counts, and only the upper third of the
    sorted events is accumulated event by event (the rare resample whose quantile falls
    lower is computed in full).
    """
    v_all = np.asarray(values, dtype=float)
    _, idx = np.unique(np.asarray(units, dtype=object), return_inverse=True)
    n_units = int(idx.max()) + 1 if idx.size else 0
    counts = stats.resample_counts(rng, n_units, resamples)
    if v_all.size == 0:
        return np.full(resamples, np.nan)
    order = np.argsort(v_all, kind="stable")
    v, u = v_all[order], idx[order]
    cut = int(v.size * max(0.0, q - 0.25))
    lower = counts @ np.bincount(u[:cut], minlength=n_units).astype(float)
    total = counts @ np.bincount(u, minlength=n_units).astype(float)
    h = (total - 1) * q
    lo = np.floor(h)
    out = np.full(resamples, np.nan)
    fits = (lower <= lo) & (total > 0)
    rows = np.flatnonzero(fits)
    tail_v, tail_u = v[cut:], u[cut:]
    step = max(1, 4_000_000 // max(1, tail_v.size))
    last = v.size - 1
    for start in range(0, rows.size, step):
        r = rows[start : start + step]
        cw = lower[r, None] + np.cumsum(counts[r][:, tail_u], axis=1)
        i0 = np.minimum(cut + (cw <= lo[r, None]).sum(axis=1), last)
        i1 = np.minimum(cut + (cw <= (lo[r] + 1)[:, None]).sum(axis=1), last)
        out[r] = v[i0] + (h[r] - lo[r]) * (v[i1] - v[i0])
    rest = np.flatnonzero(~fits & (total > 0))
    if rest.size:
        out[rest] = stats.bootstrap_quantile_exact(v_all, idx, counts[rest], q)
    return out


def _change_metric(
    d: MetricDef,
    i: int,
    b: dict[str, Any],
    a: dict[str, Any],
    alpha: float,
    boot: QuantileChange | str | None = None,
) -> ChangeMetric:
    if d.p95:
        before, after = stats.finite(b[f"p{i}"]), stats.finite(a[f"p{i}"])
        diff = None if before is None or after is None else after - before
        rel = None if diff is None or not before else diff / abs(before)
        common = {
            "metric": d.key,
            "label": d.label,
            "direction": d.direction,
            "before": before,
            "after": after,
            "events_before": int(b[f"k{i}"]),
            "events_after": int(a[f"k{i}"]),
            "users_before": int(b["users"] or 0),
            "users_after": int(a["users"] or 0),
            "diff": diff,
            "relative_change": rel,
        }
        if isinstance(boot, QuantileChange):
            return ChangeMetric(
                **common,
                ci_low=boot.ci_low,
                ci_high=boot.ci_high,
                p_value=boot.p_value,
                verdict="inconclusive",
                message=f"bootstrap over users ({boot.resamples:,} resamples)",
            )
        return ChangeMetric(
            **common,
            message=boot or f"not tested: fewer than {MIN_P95_EVENTS} events on a side",
        )

    def ms(r: dict[str, Any]) -> stats.MetricStats:
        return stats.MetricStats(
            n=int(r[f"n{i}"]),
            sum_x=float(r[f"sx{i}"]),
            sum_x2=float(r[f"sxx{i}"]),
            sum_y=float(r[f"sy{i}"]),
            sum_y2=float(r[f"syy{i}"]),
            sum_xy=float(r[f"sxy{i}"]),
            event_sum_x2=float(r[f"sq{i}"]),
        )

    sb, sa = ms(b), ms(a)
    c = stats.compare(sb, sa, alpha=alpha, names=("before", "after"))
    before = stats.finite(sb.mean) if float(sb.sum_y) else None
    after = stats.finite(sa.mean) if float(sa.sum_y) else None
    rel = None
    if before is not None and after is not None and before:
        rel = (after - before) / abs(before)
    return ChangeMetric(
        metric=d.key,
        label=d.label,
        direction=d.direction,
        before=before,
        after=after,
        events_before=int(round(float(sb.sum_y))),
        events_after=int(round(float(sa.sum_y))),
        users_before=int(b["users"] or 0),
        users_after=int(a["users"] or 0),
        diff=c.diff,
        relative_change=rel,
        ci_low=c.ci_low,
        ci_high=c.ci_high,
        p_value=c.p_value,
        verdict="not tested" if c.p_value is None else "inconclusive",
        message=c.message,
    )

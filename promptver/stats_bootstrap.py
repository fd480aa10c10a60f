"""The bootstrap on sufficient statistics: resample users (or hashed buckets of users).

Each arm's units are resampled with a seeded ``numpy.random.Generator`` as count matrices, so
that every metric's resampled mean per event is one matrix product; the intervals are percentile
and BCa (with a jackknife acceleration). The p95 has its own bootstraps: exact event values for
small arms, binned histograms around the quantile for large ones. Fully vectorised; see
``docs/statistics.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from promptver.stats_base import _div


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

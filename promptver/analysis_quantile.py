"""The p95 latency of an experiment's arms and its bootstrap CIs, users as the unit.

Small arms resample their exact event values; large arms resample histograms over a narrow
window around the quantile (widened when too many resamples fall outside it). The SQL half
(:meth:`QuantileBootstrap._quantile_fetch`) runs on the analysis' connection while the worker
threads resample the means; the numpy half runs in those threads.

:class:`QuantileBootstrap` is a part of :class:`promptver.analysis._Analysis`, which provides
``rd``, ``flt``, ``opts``, ``names``, ``alpha``, ``sums``, ``col_index``, ``pool``, ``_q_plan``
and ``_arm``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from promptver import stats as st
from promptver.models.results import QuantileComparison, QuantileResult, QuantileVariant

#: the metric whose upper quantile gets a bootstrap CI, and the quantile
QUANTILE_METRIC = "latency_ms"
QUANTILE = 0.95
#: arms with at most this many events resample the exact event values for the p95 bootstrap
EXACT_QUANTILE_EVENTS = 20_000
#: bins of the p95 histograms of large arms (inside a narrow window around the quantile)
QUANTILE_BINS = 128
#: the widest window, in quantile levels either side of the quantile
MAX_DELTA = 0.045
#: the window holds this many standard errors of the level either side of the quantile
WINDOW_SES = 8
#: the narrowest window, which an arm gets from this many users with a value on (its standard
#: errors fit inside: see QuantileBootstrap._quantile_fetch)
MIN_DELTA = 0.003
MIN_DELTA_USERS = math.ceil(WINDOW_SES**2 * QUANTILE * (1 - QUANTILE) / MIN_DELTA**2)
#: suffix of the key of a metric's uncapped column (not printable, so no metric name ends so)
UNCAPPED = "\x00uncapped"


@dataclass
class _QuantilePlan:
    """What SQL returned for the p95 bootstrap of one metric, per arm."""

    metric: str
    method: str
    events: dict[str, int]
    present: list[str]
    delta: float = 0.0
    points: dict[str, float | None] = field(default_factory=dict)
    #: exact method: (event values, their unit index)
    exact: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: binned method: (events below the window, in-window histogram, bin edges, totals) per unit
    binned: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict
    )
    #: arms whose window is a single value (ties): that value
    flat: dict[str, float] = field(default_factory=dict)


def window_levels(delta: float) -> list[float]:
    """The quantile levels of a window ``delta`` either side of the quantile."""
    return [QUANTILE - delta, QUANTILE, QUANTILE + delta]


class QuantileBootstrap:
    """The p95 part of an analysis."""

    def _quantile_prefetch(self, metric: str, buckets: int) -> bool:
        """Start the p95's statements before the sums where the source can run them beside
        the per-user reduction (a Parquet source: a second DuckDB on the other core), for an
        experiment large enough that every arm gets the narrowest window; an arm with fewer
        users gets a wider one, which :meth:`_quantile_fetch` then asks for as usual."""
        return self.rd.prefetch_quantiles(
            self.flt,
            metric,
            window_levels(MIN_DELTA),
            bins=QUANTILE_BINS,
            buckets=buckets,
            min_users=len(self.names) * MIN_DELTA_USERS,
        )

    def _quantile_fetch(self, metric: str, delta: float | None = None) -> _QuantilePlan:
        """The SQL half of the p95 bootstrap (main thread, the analysis' connection)."""
        q = QUANTILE
        key = metric + UNCAPPED if metric + UNCAPPED in self.col_index else metric
        j = self.col_index[key]
        stats = self.sums.stats[key]
        events = {n: int(round(float(stats[n].sum_y))) for n in self.names}
        present = [n for n in self.names if events[n] > 0 and self.sums.units[n].n_units > 0]
        exact = (
            self.sums.unit_kind == "user"
            and max(events.values(), default=0) <= EXACT_QUANTILE_EVENTS
        )
        plan = _QuantilePlan(metric, "exact" if exact else "binned", events, present)
        if not present:
            return plan
        if exact:
            values = self.rd.metric_event_values(
                self.flt, metric, self.sums.unit_kind, self.opts.buckets
            )
            for n in present:
                keys, vals = values[n]
                plan.points[n] = float(np.quantile(vals, q))
                plan.exact[n] = (vals, pd.Index(self.sums.unit_keys[n]).get_indexer(keys))
            return plan
        if delta is None:
            # ±8 standard errors of the level, widened for events clustered in users
            delta = max(
                WINDOW_SES
                * math.sqrt(q * (1 - q) / events[n])
                * math.sqrt(max(1.0, events[n] / max(1.0, float(stats[n].n))))
                for n in present
            )
            delta = min(max(delta, MIN_DELTA), MAX_DELTA)
        plan.delta = delta
        qs = self.rd.variant_quantiles(self.flt, metric, window_levels(delta))
        windows = {n: (qs[n][1][0], qs[n][1][2]) for n in present if n in qs}
        live = {n: w for n, w in windows.items() if w[1] > w[0]}
        hists = (
            self.rd.metric_histograms(
                self.flt,
                metric,
                live,
                QUANTILE_BINS,
                self.sums.unit_kind,
                self.opts.buckets,
            )
            if live
            else {}
        )
        for n in present:
            plan.points[n] = qs[n][1][1] if n in qs else None
            if n not in live:  # the window is one value: every resample has that quantile
                plan.flat[n] = windows[n][0]
                continue
            keys, bins, cnt = hists[n]
            k_units = self.sums.units[n].n_units
            idx = pd.Index(self.sums.unit_keys[n]).get_indexer(keys)
            ok = idx >= 0  # always true: the same events define the units
            dense = np.bincount(
                idx[ok] * (QUANTILE_BINS + 1) + bins[ok],
                weights=cnt[ok],
                minlength=k_units * (QUANTILE_BINS + 1),
            ).reshape(k_units, QUANTILE_BINS + 1)
            totals = self.sums.units[n].y[:, j]
            lo, hi = live[n]
            plan.binned[n] = (
                totals - dense.sum(axis=1),
                dense[:, :QUANTILE_BINS],
                np.linspace(lo, hi, QUANTILE_BINS + 1),
                totals,
            )
        return plan

    def _quantile_boot(self, plan: _QuantilePlan) -> tuple[dict[str, np.ndarray], float]:
        """The numpy half: each arm's resampled p95 (arms in parallel); the worst share of
        resamples that fell outside a binned window."""
        q = QUANTILE
        jobs = {}
        for n in plan.present:
            counts = self._arm(n)[0]
            if n in plan.exact:
                vals, idx = plan.exact[n]
                jobs[n] = self.pool.submit(st.bootstrap_quantile_exact, vals, idx, counts, q)
            elif n in plan.binned:
                below, hist, edges, totals = plan.binned[n]
                jobs[n] = self.pool.submit(
                    st.bootstrap_quantile_binned, below, hist, edges, totals, counts, q
                )
        boot = {n: np.full(self.opts.resamples, v) for n, v in plan.flat.items()}
        worst = 0.0
        for n, job in jobs.items():
            out = job.result()
            if isinstance(out, tuple):
                boot[n], outside = out
                worst = max(worst, outside)
            else:
                boot[n] = out
        return boot, worst

    def _quantile(self, metric: str) -> QuantileResult:
        plan = self._q_plan if self._q_plan is not None else self._quantile_fetch(metric)
        message = None
        boot, worst = self._quantile_boot(plan)
        while plan.method == "binned" and worst > 0.002 and plan.delta < MAX_DELTA:
            plan = self._quantile_fetch(metric, min(plan.delta * 3, MAX_DELTA))
            boot, worst = self._quantile_boot(plan)
        if worst > 0.002:
            message = (
                f"{worst:.1%} of the resampled p95 values fell outside the binned window; "
                "the bootstrap CI may be slightly too narrow"
            )
        alpha = self.alpha
        points = plan.points
        variants = []
        for n in self.names:
            lo = hi = None
            if n in boot:
                a, b = st.percentile_interval(boot[n], alpha)
                lo, hi = st.finite(a), st.finite(b)
            variants.append(
                QuantileVariant(
                    name=n,
                    events=plan.events[n],
                    value=points.get(n),
                    bootstrap_ci_low=lo,
                    bootstrap_ci_high=hi,
                )
            )
        control = self.names[0]
        comparisons = []
        for n in self.names[1:]:
            diff = lo = hi = None
            if points.get(control) is not None and points.get(n) is not None:
                diff = points[n] - points[control]
            if control in boot and n in boot:
                a, b = st.percentile_interval(boot[n] - boot[control], alpha)
                lo, hi = st.finite(a), st.finite(b)
            comparisons.append(
                QuantileComparison(
                    control=control,
                    treatment=n,
                    diff=diff,
                    bootstrap_ci_low=lo,
                    bootstrap_ci_high=hi,
                )
            )
        if not plan.present:
            message = "no latency events yet"
        return QuantileResult(
            metric=metric,
            quantile=QUANTILE,
            method=plan.method,
            variants=variants,
            comparisons=comparisons,
            message=message,
        )

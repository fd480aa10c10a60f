"""Trends: metrics per time bucket, robust trend lines, change points around deployments.

Design. SQL (``promptver.store.trends``) reduces a period's events to one row per template,
series (version, variant or environment) and time bucket, with each metric's value and CI: means
are ratios of user-level sums with the delta-method CI over users (the experiment statistics'
estimator, so one heavy user cannot narrow a band), the p95 comes with its order-statistic CI.
Python sees a few hundred rows whatever the number of events.

On those buckets each metric gets a straight line fitted by robust regression (statsmodels
``RLM`` with Huber's T norm: a few outlier buckets, an incident hour or a half-empty bucket, are
down-weighted instead of dragging the slope), its slope per day with a t-based CI and p-value,
and the slope in % of the level per day. When the series lives in one environment, the line
starts at the latest deployment there (a release changes the level; a line across it would
report the step as a drift). Change points compare the windows before and after each deployment
with the experiment engine (:func:`promptver.stats.compare`, users as the unit): observational
evidence, not an experiment. Plain-language recommendations are written from those numbers.
``docs/trends.md`` states every rule.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

from promptver import stats
from promptver.clock import utcnow
from promptver.config import Settings
from promptver.errors import NotFound, Problem, ValidationError
from promptver.metric_defs import (  # noqa: F401 (re-exports the catalogue for the screens)
    ALIASES,
    CUSTOM_PREFIX,
    METRICS,
    MetricDef,
    canonical_metric,
    duration_text,
    metric_def,
    metric_label,
    p_text,
    parse_duration,
    pct_text,
    signed_pct_text,
    value_text,
)
from promptver.models import (
    ChangeMetric,
    ChangePoint,
    DeploymentMarker,
    TrendFit,
    TrendPoint,
    TrendReport,
    TrendSeries,
)
from promptver.sources import EventSource
from promptver.sources.file import FileSource
from promptver.store import templates as template_sql
from promptver.store import trends as sql
from promptver.store.db import Database

Bucket = Literal["hour", "day", "week"]
By = Literal["version", "variant", "environment"]

#: fewest usable buckets for a trend line
MIN_FIT_BUCKETS = 5
#: fewest events for a p95 bucket to enter a fit (below that the p95 is about the maximum)
MIN_P95_EVENTS = 20
#: the most buckets one analysis may draw per series
MAX_BUCKETS = 5000
#: t critical values are looked up for up to this many degrees of freedom, then z is used
_T_TABLE = 5000
#: above this many events in the period, users are pooled into hashed clusters for the CIs
EXACT_USERS_LIMIT = 100_000
#: the number of hashed clusters of users per bucket (and per change window) then
CLUSTERS = 2048
#: the most events on either side of a deployment for the bootstrap of a percentile change
#: (the bootstrap costs resamples × events); above, the change is shown untested and counted
#: among the large untested changes
BOOTSTRAP_MAX_EVENTS = 20_000
#: a relative change of a percentile at least this large counts as large when it is not tested
LARGE_UNTESTED = 0.2
#: resamples of each side of a deployment for a percentile change (at most the experiments'
#: setting): p-values resolve to 0.002, enough for Holm over a few metrics at α = 5 %, and the
#: Trends screen stays quick with a dozen deployments in view
CHANGE_RESAMPLES = 1000


def choose_bucket(span: timedelta) -> Bucket:
    """The bucket that fits a period: hours up to 3 days, days up to 90 days, weeks beyond."""
    if span <= timedelta(days=3):
        return "hour"
    if span <= timedelta(days=90):
        return "day"
    return "week"


_BUCKET_DELTA = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}


holm = stats.holm  # re-exported: the trend tests and older imports use promptver.trends.holm


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


def large_untested(m: ChangeMetric) -> bool:
    """An untested change of a percentile that moved by :data:`LARGE_UNTESTED` or more with
    enough events on both sides: worth counting next to the tested ones."""
    return (
        m.verdict == "not tested"
        and m.relative_change is not None
        and min(m.events_before, m.events_after) >= MIN_P95_EVENTS
        and abs(m.relative_change) >= LARGE_UNTESTED
    )


# ---- the service ---------------------------------------------------------------------------


class TrendService:
    """Trend analysis over the metric events of one workspace (``Workspace.trends``)."""

    def __init__(self, db: Database, settings: Settings, source: EventSource | None = None) -> None:
        self.db = db
        self.settings = settings
        #: where the events are read (deployments, templates and branches: the promptver file)
        self.source: EventSource = source if source is not None else FileSource(db)
        self._tcrit: dict[float, list[float]] = {}

    # -- inputs -------------------------------------------------------------------------------
    def custom_metrics(self) -> list[str]:
        with self.source.reader() as rd:
            return rd.custom_metric_names()

    def resolve_metrics(self, metrics: str | Sequence[str] | None) -> list[str]:
        """Canonical keys of the requested metrics (default: every built-in one)."""
        if metrics is None:
            return list(METRICS)
        names = [metrics] if isinstance(metrics, str) else list(metrics)
        if not names:
            raise ValidationError("invalid input:", [Problem("pick a metric", field="metric")])
        custom: list[str] | None = None
        out: list[str] = []
        for name in names:
            low = str(name).strip().lower()
            if low in METRICS or low in ALIASES or low.startswith(CUSTOM_PREFIX):
                key = canonical_metric(name)
            else:
                if custom is None:
                    custom = self.custom_metrics()
                key = canonical_metric(name, custom)
            if key not in out:
                out.append(key)
        return out

    def _templates(self, con: Any, refs: Sequence[str]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for ref in refs:
            row = template_sql.template_row(con, ref)
            if row is None:
                raise NotFound(f"unknown template '{ref}'")
            if (row["id"], row["name"]) not in out:
                out.append((row["id"], row["name"]))
        return out

    def _crit(self, alpha: float) -> list[float]:
        if alpha not in self._tcrit:
            df = np.arange(1, _T_TABLE + 1)
            self._tcrit[alpha] = [float(v) for v in sps.t.ppf(1 - alpha / 2, df)]
        return self._tcrit[alpha]

    # -- the analysis -------------------------------------------------------------------------
    def analyse(
        self,
        templates: str | Sequence[str],
        metrics: str | Sequence[str] | None = None,
        *,
        period: str | timedelta = "7d",
        start: datetime | None = None,
        end: datetime | None = None,
        by: By | None = None,
        environment: str | None = None,
        bucket: Bucket | None = None,
        min_bucket_events: int = 5,
        change_window: str | timedelta = "7d",
        alpha: float | None = None,
        now: datetime | None = None,
    ) -> TrendReport:
        """Trends of ``metrics`` for ``templates`` over a period.

        Args:
            templates: names or ids.
            metrics: canonical keys, aliases or custom metric names (default: all built-ins).
            period: how far back from ``end`` (``24h``, ``7d``, ``30d``, ``12w`` …); ignored when
                ``start`` is given.
            start, end: an explicit period (``end`` defaults to now).
            by: one series per ``version``, ``variant`` or ``environment`` (default: one per
                template).
            environment: only events of this environment.
            bucket: ``hour``, ``day`` or ``week`` (default: chosen from the period's length).
            min_bucket_events: fewest events for a bucket to enter a trend line (p95 buckets
                need at least 20).
            change_window: the longest window compared before and after each deployment.
            alpha: significance level (default: the experiments' setting).

        Raises:
            NotFound: an unknown template or environment.
            ValidationError: a bad metric, period, grouping, bucket or threshold.
        """
        problems: list[Problem] = []
        refs = [templates] if isinstance(templates, str) else list(templates)
        if not refs:
            problems.append(Problem("pick at least one template", field="template"))
        if by not in (None, "version", "variant", "environment"):
            problems.append(
                Problem(f"cannot group by '{by}': use version, variant or environment", field="by")
            )
        if bucket not in (None, "hour", "day", "week"):
            problems.append(Problem(f"'{bucket}' is not hour, day or week", field="bucket"))
        if (
            isinstance(min_bucket_events, bool)
            or not isinstance(min_bucket_events, int)
            or min_bucket_events < 1
        ):
            problems.append(
                Problem("must be a whole number of at least 1", field="min_bucket_events")
            )
        a = self.settings.ab_testing.statistical_analysis.significance_level
        alpha = a if alpha is None else alpha
        if not (isinstance(alpha, int | float) and 0 < alpha < 1):
            problems.append(Problem("must be between 0 and 1", field="alpha"))
        if problems:
            raise ValidationError("invalid input:", problems)
        if environment is not None:
            envs = self.settings.deployment.environments
            if environment not in envs:
                raise NotFound(
                    f"unknown environment '{environment}': environments are {', '.join(envs)}"
                )
        keys = self.resolve_metrics(metrics)
        now = now or utcnow()
        end = end or now
        if start is None:
            span = parse_duration(period, "period")
            start = end - span
            period_text = duration_text(period)
        else:
            if start >= end:
                raise ValidationError(
                    "invalid input:",
                    [Problem("the period's start is not before its end", field="start")],
                )
            period_text = f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC"
        unit: Bucket = bucket or choose_bucket(end - start)
        n_buckets = (end - start) / _BUCKET_DELTA[unit]
        if n_buckets > MAX_BUCKETS:
            raise ValidationError(
                "invalid input:",
                [
                    Problem(
                        f"{n_buckets:,.0f} {unit} buckets is too many for one chart (at most "
                        f"{MAX_BUCKETS:,}): pick a coarser bucket or a shorter period",
                        field="bucket",
                    )
                ],
            )
        window = parse_duration(change_window, "change_window")
        defs = [metric_def(k) for k in keys]
        with self.db.read() as con:
            tpl = self._templates(con, refs)
            ids = [t[0] for t in tpl]
            # up to now, not only to the period's end: the recommendations speak of what is
            # live today
            every = sql.deployments(con, ids, max(end, now), environment)
            heads = sql.branch_heads(con, ids) if by == "version" else {}
        with self.source.reader() as rd:
            many = rd.count_events(ids, start, end, environment) > EXACT_USERS_LIMIT
        clusters = CLUSTERS if many else None
        history = [d for d in every if d.at <= end]
        markers = [d for d in history if d.at >= start]
        live: dict[tuple[str, str], DeploymentMarker] = {}
        for d in every:  # oldest first: the last one per environment is live
            live[(d.template_id, d.environment)] = d
        # The change points' SQL runs in a worker thread (its own connection; DuckDB releases
        # the GIL) while the buckets are reduced and the trend lines fitted here.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(
                self._change_points, markers, history, defs, window, end, alpha, clusters
            )
            with self.source.reader() as rd:
                rows = rd.bucket_series(
                    template_ids=ids,
                    start=start,
                    end=end,
                    unit=unit,
                    by=by,
                    environment=environment,
                    measures=[d.measure for d in defs],
                    tcrit=self._crit(alpha),
                    z=float(sps.norm.ppf(1 - alpha / 2)),
                    clusters=clusters,
                )
            series = self._series(rows, dict(tpl), defs, heads)
            fits = [
                _fit_series(s, by, environment, history, start, end, alpha, min_bucket_events)
                for s in series
            ]
            changes = pending.result()
        series = [s.model_copy(update={"fit": f, "points": p}) for s, (f, p) in zip(series, fits)]
        report = TrendReport(
            templates=[t[1] for t in tpl],
            metrics=keys,
            period=period_text,
            start=start,
            end=end,
            bucket=unit,
            by=by,
            environment=environment,
            alpha=alpha,
            min_bucket_events=min_bucket_events,
            clusters=clusters,
            series=series,
            deployments=markers,
            change_points=changes,
            live=list(live.values()),
            computed_at=now,
        )
        report.recommendations = recommendations(report)
        return report

    def _series(
        self,
        rows: list[dict[str, Any]],
        names: dict[str, str],
        defs: list[MetricDef],
        heads: dict[tuple[str, str], str] | None = None,
    ) -> list[TrendSeries]:
        groups: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
        for r in rows:
            key = r["series"]
            if key is not None and key.startswith("commit:"):
                # a commit off main: named after the branch it heads, else by its id
                commit = key[len("commit:") :]
                branch = (heads or {}).get((r["template_id"], commit))
                key = f"branch {branch}" if branch else f"commit {commit[:10]}"
            groups.setdefault((r["template_id"], key), []).append(r)
        out: list[TrendSeries] = []
        for (tid, group), buckets in groups.items():
            for i, d in enumerate(defs):
                points = [
                    TrendPoint(
                        bucket=b["bucket"],
                        events=int(b[f"events{i}"] or 0),
                        users=int(b["users"] or 0),
                        value=stats.finite(b[f"value{i}"]),
                        ci_low=d.clip(stats.finite(b[f"lo{i}"])),
                        ci_high=d.clip(stats.finite(b[f"hi{i}"])),
                    )
                    for b in buckets
                    if (b[f"events{i}"] or 0) > 0
                ]
                out.append(
                    TrendSeries(
                        template_id=tid,
                        template=names[tid],
                        group=group,
                        metric=d.key,
                        label=d.label,
                        unit=d.unit,
                        direction=d.direction,
                        points=points,
                        fit=TrendFit(),
                    )
                )
        return out

    # -- change points ------------------------------------------------------------------------
    def _change_points(
        self,
        markers: list[DeploymentMarker],
        history: list[DeploymentMarker],
        defs: list[MetricDef],
        window: timedelta,
        end: datetime,
        alpha: float,
        clusters: int | None = None,
    ) -> list[ChangePoint]:
        plans: list[tuple[DeploymentMarker, sql.Span]] = []
        for m in markers:
            same = [
                d
                for d in history
                if (d.template_id, d.environment) == (m.template_id, m.environment)
            ]
            i = next(k for k, d in enumerate(same) if d.deployment_id == m.deployment_id)
            lo = m.at - window
            if i > 0:
                lo = max(lo, same[i - 1].at)
            hi = min(m.at + window, end)
            if i + 1 < len(same):
                hi = min(hi, same[i + 1].at)
            if hi <= m.at:
                continue
            plans.append((m, sql.Span(m.template_id, m.environment, lo, m.at, hi)))
        if not plans:
            return []
        spans = [sp for _, sp in plans]
        boots: dict[tuple[int, int], QuantileChange | str] = {}
        sa = self.settings.ab_testing.statistical_analysis
        with self.source.reader() as rd:
            sums = rd.change_sums(spans, [d.measure for d in defs], clusters)
            for i, d in enumerate(defs):
                if not d.p95:
                    continue
                todo = []
                for k, (b, a) in enumerate(sums):
                    n = (int(b[f"k{i}"] or 0), int(a[f"k{i}"] or 0))
                    if min(n) < MIN_P95_EVENTS:
                        continue
                    if max(n) > BOOTSTRAP_MAX_EVENTS:
                        boots[(k, i)] = (
                            f"not tested: more than {BOOTSTRAP_MAX_EVENTS:,} events on a side "
                            "(too many for the bootstrap here)"
                        )
                        continue
                    todo.append(k)
                values = rd.change_values([spans[k] for k in todo], d.measure, clusters)
                for k, (before, after) in zip(todo, values, strict=True):
                    boots[(k, i)] = quantile_change(
                        before,
                        after,
                        resamples=min(sa.bootstrap_resamples, CHANGE_RESAMPLES),
                        alpha=alpha,
                        seed=[sa.bootstrap_seed, plans[k][0].deployment_id, i],
                    )
        out = []
        for k, ((m, span), (b, a)) in enumerate(zip(plans, sums, strict=True)):
            metrics = [
                _change_metric(d, i, b, a, alpha, boots.get((k, i))) for i, d in enumerate(defs)
            ]
            adjusted = holm([c.p_value for c in metrics])
            final = []
            for c, p_adj in zip(metrics, adjusted, strict=True):
                if p_adj is None:
                    final.append(c)
                    continue
                significant = p_adj < alpha
                good = (c.diff or 0) > 0 if c.direction == "higher" else (c.diff or 0) < 0
                verdict = ("better" if good else "worse") if significant else "inconclusive"
                final.append(
                    c.model_copy(
                        update={
                            "p_value_adjusted": p_adj,
                            "significant": significant,
                            "verdict": verdict,
                        }
                    )
                )
            out.append(
                ChangePoint(
                    deployment=m, before_start=span.start, after_end=span.end, metrics=final
                )
            )
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


def change_tally(cp: ChangePoint) -> str:
    """The headline of a change point: ``1 worse, 1 better``, plus the large changes that were
    not tested (``1 large change not tested``), or ``no significant change``."""
    worse = sum(m.verdict == "worse" for m in cp.metrics)
    better = sum(m.verdict == "better" for m in cp.metrics)
    untested = sum(large_untested(m) for m in cp.metrics)
    parts = [f"{worse} worse, {better} better"] if worse or better else []
    if untested:
        parts.append(f"{untested} large change{'s' if untested != 1 else ''} not tested")
    return ", ".join(parts) or "no significant change"


# ---- fitting one series ----------------------------------------------------------------------


def _fit_series(
    s: TrendSeries,
    by: str | None,
    environment: str | None,
    history: list[DeploymentMarker],
    start: datetime,
    end: datetime,
    alpha: float,
    min_events: int,
) -> tuple[TrendFit, list[TrendPoint]]:
    need = max(min_events, MIN_P95_EVENTS) if metric_def(s.metric).p95 else min_events
    points = [p.model_copy(update={"thin": p.events < need or p.value is None}) for p in s.points]
    usable = [p for p in points if not p.thin]
    env = s.group if by == "environment" else environment
    since: DeploymentMarker | None = None
    note = None
    if env is not None:
        candidates = [
            d
            for d in history
            if d.template_id == s.template_id
            and d.environment == env
            and start < d.at <= end
            and (by != "version" or d.version == s.group)
        ]
        if candidates:
            latest = candidates[-1]
            after = [p for p in usable if p.bucket >= latest.at]
            if len(after) >= MIN_FIT_BUCKETS:
                since, usable = latest, after
            else:
                note = (
                    f"{_deployed_text(latest)} too recently for a line of its own "
                    f"({len(after)} usable bucket(s) since); the line covers the whole period"
                )
    fit_start = since.at if since else start
    x = [(p.bucket - fit_start).total_seconds() / 86400 for p in usable]
    y = [p.value for p in usable]
    line = fit_line(x, y, alpha)
    base = {
        "fit_start": fit_start,
        "first_bucket": usable[0].bucket if usable else None,
        "last_bucket": usable[-1].bucket if usable else None,
        "center": fit_start + timedelta(days=float(np.mean(x))) if x else None,
        "buckets": line.n,
        "since_version": since.version if since else None,
        "since_environment": since.environment if since else None,
        "since_at": since.at if since else None,
    }
    if line.method is None:
        msg = line.message
        if len(usable) < MIN_FIT_BUCKETS:
            msg = (
                f"{len(usable)} bucket(s) with at least {need} events; a trend needs "
                f"{MIN_FIT_BUCKETS}"
            )
        return TrendFit(**base, message=msg), points
    level = line.level
    pct = pct_lo = pct_hi = None
    if level is not None and level != 0 and line.slope is not None:
        pct = 100 * line.slope / abs(level)
        if line.ci_low is not None and line.ci_high is not None:
            pct_lo = 100 * line.ci_low / abs(level)
            pct_hi = 100 * line.ci_high / abs(level)
    significant = line.p_value is not None and line.p_value < alpha
    if not significant:
        verdict = "stable"
    else:
        up = (line.slope or 0) > 0
        verdict = "better" if up == (s.direction == "higher") else "worse"
    message = note or line.message
    return (
        TrendFit(
            **base,
            method=line.method,
            slope_per_day=line.slope,
            slope_ci_low=line.ci_low,
            slope_ci_high=line.ci_high,
            p_value=line.p_value,
            level=level,
            pct_per_day=pct,
            pct_ci_low=pct_lo,
            pct_ci_high=pct_hi,
            significant=significant,
            verdict=verdict,
            outliers=line.outliers,
            message=message,
        ),
        points,
    )


# ---- recommendations -------------------------------------------------------------------------


def _deployed_text(d: DeploymentMarker) -> str:
    label = d.version or d.commit[:10]
    if d.action == "rollback":
        return f"{d.environment} was rolled back to {label}"
    return f"{label} was deployed to {d.environment}"


def series_name(s: TrendSeries, by: str | None, environment: str | None) -> str:
    """``qa-basic``, ``qa-basic 1.2.0``, ``qa-basic variant concise``, ``qa-basic in staging``
    (plus `` in ENV`` when the analysis is limited to one environment)."""
    name = s.template
    if s.group is not None:
        if by == "version":
            name += f" {s.group}"
        elif by == "variant":
            name += f" variant {s.group}"
        elif by == "environment":
            return f"{name} in {s.group}"
    elif by is not None:
        name += f" (no {by})"
    if environment is not None:
        name += f" in {environment}"
    return name


def _live(report: TrendReport, template_id: str, env: str) -> DeploymentMarker | None:
    return next(
        (d for d in report.live if (d.template_id, d.environment) == (template_id, env)), None
    )


def _what_happened(d: DeploymentMarker) -> str:
    """``production was rolled back to 1.1.0 on 2026-12-01 by dara.kim``, or for a deploy
    ``1.2.0 replaced it in production on … by …``."""
    who = f" by {d.author}" if d.author else ""
    label = d.version or d.commit[:10]
    if d.action == "rollback":
        return f"{d.environment} was rolled back to {label} on {d.at:%Y-%m-%d}{who}"
    return f"{label} replaced it in {d.environment} on {d.at:%Y-%m-%d}{who}"


def _no_longer_live(
    report: TrendReport, template_id: str, version: str | None, envs: Iterable[str]
) -> tuple[list[DeploymentMarker], list[str]]:
    """Of ``envs`` where ``version`` of a template was deployed: the live deployments that
    replaced it since, and the environments where it is still live."""
    gone: list[DeploymentMarker] = []
    still: list[str] = []
    for env in envs:
        now = _live(report, template_id, env)
        if now is None:
            continue
        if now.version == version:
            still.append(env)
        else:
            gone.append(now)
    return gone, still


def _fate(
    s: TrendSeries, report: TrendReport
) -> tuple[str | None, list[DeploymentMarker], list[str]]:
    """The version a worsening series measures (by version, or the one deployed where its
    line starts), what replaced it since and where it is still live."""
    by, f = report.by, s.fit
    version = s.group if by == "version" else f.since_version
    if version is None or (by != "version" and f.since_at is None):
        return version, [], []
    if by == "environment":
        envs = [s.group] if s.group is not None else []
    elif f.since_environment is not None:
        envs = [f.since_environment]
    elif report.environment is not None:
        envs = [report.environment]
    else:  # every environment the version went to
        envs = sorted(
            {
                d.environment
                for d in report.deployments
                if d.template_id == s.template_id and d.version == version
            }
        )
    gone, still = _no_longer_live(report, s.template_id, version, envs)
    return version, gone, still


def _trend_sentence(s: TrendSeries, report: TrendReport) -> str:
    by, environment = report.by, report.environment
    f = s.fit
    up = (f.slope_per_day or 0) > 0
    if f.pct_per_day is not None:
        amount = f"{'up' if up else 'down'} {pct_text(f.pct_per_day)} %/day"
    else:
        amount = f"{'up' if up else 'down'} {value_text(s.metric, abs(f.slope_per_day or 0))}/day"
    if f.since_at is not None:
        label = f.since_version or "?"
        if by == "version" and s.group == label:
            since = f"since its deployment to {f.since_environment}"
        elif f.since_version is not None:
            since = f"since {label} was deployed to {f.since_environment}"
        else:
            since = f"since the deployment of {f.since_environment}"
    else:
        since = "over the period"
    text = f"{series_name(s, by, environment)}: {s.label} {amount} {since} ({p_text(f.p_value)})."
    if f.verdict != "worse":
        return text + " Improving."
    version, gone, still = _fate(s, report)
    if gone and not still:
        return (
            text
            + f" {version} is no longer live: "
            + "; ".join(_what_happened(d) for d in gone)
            + "."
        )
    if gone:
        text += (
            f" {version} is still live in {' and '.join(still)}, but "
            + "; ".join(_what_happened(d) for d in gone)
            + "."
        )
    return (
        text
        + " Investigate"
        + (", or roll back." if f.since_at is not None else " before it crosses an alert.")
    )


def _change_sentence(
    cp: ChangePoint, verdict: str, report: TrendReport | None = None
) -> str | None:
    d = cp.deployment
    hits = [m for m in cp.metrics if m.verdict == verdict]
    if verdict == "worse":
        # a percentile moving a lot with enough events is worth saying even though untested
        hits += [
            m
            for m in cp.metrics
            if large_untested(m)
            and m.relative_change is not None
            and ((m.relative_change > 0) == (m.direction == "lower"))
        ]
    if not hits:
        return None
    parts = []
    for m in hits[:3]:
        change = ""
        if m.diff is not None and metric_def(m.metric).unit == "rate":
            # a rate moving from 1 % to 3 % is "+2 points", not "+200 %"
            change = f" {'+' if m.diff > 0 else '−'}{abs(m.diff) * 100:.1f} points"
        elif m.relative_change is not None:
            sign = "+" if m.relative_change > 0 else "−"
            change = f" {sign}{pct_text(100 * m.relative_change)} %"
        test = p_text(m.p_value_adjusted) if m.p_value_adjusted is not None else "not tested"
        parts.append(
            f"{m.label} {value_text(m.metric, m.before)} → {value_text(m.metric, m.after)}"
            f"{change} ({test})"
        )
    when = f"{d.at:%Y-%m-%d %H:%M} UTC"
    head = f"{d.template}: after {_deployed_text(d)} ({when}), "
    tail = (
        " Observational: compare the versions in an experiment before concluding."
        if verdict == "worse"
        else " Observational."
    )
    now = _live(report, d.template_id, d.environment) if report is not None else None
    if now is not None and now.deployment_id != d.deployment_id and now.version != d.version:
        tail = f" Since then {_what_happened(now)}." + tail
    return head + "; ".join(parts) + "." + tail


def recommendations(report: TrendReport) -> list[str]:
    """Short plain-language findings, most urgent first: worsening trends (steepest first),
    changes for the worse after deployments, improvements, then what is stable or too thin."""
    by, env = report.by, report.environment
    # versions still live first: a trend of one already rolled back is history
    worse = sorted(
        (s for s in report.series if s.fit.verdict == "worse"),
        key=lambda s: (bool((f := _fate(s, report))[1]) and not f[2], -abs(s.fit.pct_per_day or 0)),
    )
    better = sorted(
        (s for s in report.series if s.fit.verdict == "better"),
        key=lambda s: -abs(s.fit.pct_per_day or 0),
    )
    out = [_trend_sentence(s, report) for s in worse]
    out += [t for cp in report.change_points if (t := _change_sentence(cp, "worse", report))]
    out += [_trend_sentence(s, report) for s in better]
    out += [t for cp in report.change_points if (t := _change_sentence(cp, "better", report))]
    stable: dict[str, list[str]] = {}
    thin: dict[str, list[str]] = {}
    for s in report.series:
        name = series_name(s, by, env)
        if s.fit.verdict == "stable":
            stable.setdefault(name, []).append(s.label)
        elif s.fit.verdict == "unknown" and s.points:
            thin.setdefault(name, []).append(s.label)
    for name, labels in stable.items():
        out.append(f"{name}: no significant trend in {', '.join(labels)} (p ≥ {report.alpha:g}).")
    for name, labels in thin.items():
        out.append(
            f"{name}: not enough data for a trend in {', '.join(labels)} "
            f"({MIN_FIT_BUCKETS} {report.bucket} buckets with at least "
            f"{report.min_bucket_events} events are needed, 20 for p95)."
        )
    if not report.series:
        out.append(
            "No events in this period: import a CSV on the Metrics screen or track calls "
            "with ws.track()."
        )
    return out

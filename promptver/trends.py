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

This module is the analysis (:class:`TrendService`: buckets, series, change points); the line
fit and the percentile bootstrap are :mod:`promptver.trend_fits`, the findings in words
:mod:`promptver.trend_advice` (both re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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
from promptver.models.trends import (
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
from promptver.trend_advice import LARGE_UNTESTED as LARGE_UNTESTED
from promptver.trend_advice import change_tally as change_tally
from promptver.trend_advice import deployed_text
from promptver.trend_advice import large_untested as large_untested
from promptver.trend_advice import recommendations as recommendations
from promptver.trend_advice import series_name as series_name
from promptver.trend_fits import (
    MIN_FIT_BUCKETS,
    MIN_P95_EVENTS,
    QuantileChange,
    _change_metric,
    fit_line,
    quantile_change,
)
from promptver.trend_fits import LineFit as LineFit
from promptver.trend_fits import resampled_quantiles as resampled_quantiles

Bucket = Literal["hour", "day", "week"]
By = Literal["version", "variant", "environment"]

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
                    f"{deployed_text(latest)} too recently for a line of its own "
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

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

import math
import re
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

from promptver import stats
from promptver.config import Settings
from promptver.errors import NotFound, Problem, ValidationError
from promptver.models import (
    ChangeMetric,
    ChangePoint,
    DeploymentMarker,
    TrendFit,
    TrendPoint,
    TrendReport,
    TrendSeries,
)
from promptver.store import templates as template_sql
from promptver.store import trends as sql
from promptver.store.db import Database
from promptver.versioning import utcnow

Bucket = Literal["hour", "day", "week"]
By = Literal["version", "variant", "environment"]

CUSTOM_PREFIX = "custom:"
CUSTOM_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class MetricDef:
    """A metric of trends and alerts: how it is computed from the events and how to show it."""

    key: str
    label: str
    unit: Literal["ms", "rate", "usd", "score", "tokens", "value"]
    direction: Literal["higher", "lower"]
    column: str | None
    custom: str | None = None
    p95: bool = False
    #: the range of possible values: CI bounds are clipped to it (a rate's normal-approximation
    #: interval can otherwise reach below 0 % when errors are rare)
    low: float | None = 0.0
    high: float | None = None

    @property
    def measure(self) -> sql.Measure:
        return sql.Measure(self.column, self.custom, self.p95)

    def clip(self, v: float | None) -> float | None:
        if v is None:
            return None
        if self.low is not None and v < self.low:
            return self.low
        if self.high is not None and v > self.high:
            return self.high
        return v


METRICS: dict[str, MetricDef] = {
    m.key: m
    for m in (
        MetricDef("latency_avg", "mean latency", "ms", "lower", "latency_ms"),
        MetricDef("latency_p95", "p95 latency", "ms", "lower", "latency_ms", p95=True),
        MetricDef("error_rate", "error rate", "rate", "lower", "error", high=1.0),
        MetricDef("success_rate", "success rate", "rate", "higher", "success", high=1.0),
        MetricDef("quality_score", "quality score", "score", "higher", "quality_score", high=1.0),
        MetricDef("cost_per_request", "cost per request", "usd", "lower", "cost_usd"),
        MetricDef("tokens_in", "input tokens per request", "tokens", "lower", "tokens_in"),
        MetricDef("tokens_out", "output tokens per request", "tokens", "lower", "tokens_out"),
    )
}
"""The built-in metrics, in display order."""

ALIASES = {
    "latency": "latency_avg",
    "latency_ms": "latency_avg",
    "latency_mean": "latency_avg",
    "p95": "latency_p95",
    "error": "error_rate",
    "errors": "error_rate",
    "success": "success_rate",
    "quality": "quality_score",
    "cost": "cost_per_request",
    "cost_usd": "cost_per_request",
}
"""Other names accepted for the built-in metrics (the event columns among them)."""

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

DURATION_RE = re.compile(r"^\s*(\d+)\s*(m|min|h|d|w)\s*$")
_UNIT_SECONDS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: the longest duration accepted (100 years): longer ones overflow the date arithmetic
MAX_DURATION_DAYS = 36_500


def parse_duration(text: str | timedelta, field: str = "period") -> timedelta:
    """``30m``, ``1h``, ``24h``, ``7d``, ``2w`` (a whole number and a unit) as a timedelta.

    Raises:
        ValidationError: naming ``field``.
    """
    if isinstance(text, timedelta):
        if text.total_seconds() <= 0:
            raise ValidationError("invalid input:", [Problem("must be positive", field=field)])
        return text
    m = DURATION_RE.match(str(text)) if isinstance(text, str) else None
    if not m or not m.group(1).strip("0"):  # no int(): 5,000 digits are a ValueError
        raise ValidationError(
            "invalid input:",
            [
                Problem(
                    f"'{text}' is not a duration: write a whole number and a unit, m (minutes), "
                    "h, d or w, such as 30m, 24h, 7d or 2w",
                    field=field,
                )
            ],
        )
    digits = m.group(1).lstrip("0")
    seconds = int(digits) * _UNIT_SECONDS[m.group(2)] if len(digits) <= 15 else None
    if seconds is None or seconds > MAX_DURATION_DAYS * 86400:
        raise ValidationError(
            "invalid input:",
            [
                Problem(
                    f"'{_clip(text.strip())}' is too long: at most {MAX_DURATION_DAYS:,} days "
                    "(100 years)",
                    field=field,
                    code="range",
                )
            ],
        )
    return timedelta(seconds=seconds)


def _clip(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else f"{text[: limit - 4]}…{text[-3:]}"


def duration_text(value: str | timedelta) -> str:
    """A duration as shown: what was written, tidied (``24h``, ``7d``, ``30m``), or for a
    timedelta the largest whole unit (``7d``, ``36h``, ``90m``)."""
    if isinstance(value, str):
        m = DURATION_RE.match(value)
        if m:
            unit = "m" if m.group(2) == "min" else m.group(2)
            return f"{int(m.group(1))}{unit}"
    s = int(parse_duration(value).total_seconds())
    if s % 86400 == 0:
        return f"{s // 86400}d"
    if s % 3600 == 0:
        return f"{s // 3600}h"
    return f"{s // 60}m"


def choose_bucket(span: timedelta) -> Bucket:
    """The bucket that fits a period: hours up to 3 days, days up to 90 days, weeks beyond."""
    if span <= timedelta(days=3):
        return "hour"
    if span <= timedelta(days=90):
        return "day"
    return "week"


_BUCKET_DELTA = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}


def metric_def(key: str) -> MetricDef:
    """The definition of a canonical metric key (a built-in or ``custom:NAME``)."""
    if key in METRICS:
        return METRICS[key]
    if key.startswith(CUSTOM_PREFIX):
        name = key[len(CUSTOM_PREFIX) :]
        return MetricDef(key, name, "value", "higher", None, custom=name, low=None)
    raise KeyError(key)


def metric_label(key: str) -> str:
    """``p95 latency``, ``error rate``, or a custom metric's name."""
    try:
        return metric_def(key).label
    except KeyError:
        return key


def canonical_metric(name: str, custom: Iterable[str] | None = None, field: str = "metric") -> str:
    """The canonical key of a metric name: a built-in key or alias, ``custom:NAME``, or the bare
    name of a custom metric found in ``custom`` (built-in names win over custom ones).

    Raises:
        ValidationError: an unknown metric (the message lists the valid ones).
    """
    text = str(name).strip()
    low = text.lower()
    if low in METRICS:
        return low
    if low in ALIASES:
        return ALIASES[low]
    if low.startswith(CUSTOM_PREFIX):
        bare = text[len(CUSTOM_PREFIX) :].strip()
        if CUSTOM_NAME_RE.match(bare):
            return CUSTOM_PREFIX + bare
        raise ValidationError(
            "invalid input:",
            [
                Problem(
                    f"'{bare}' is not a custom metric name (lower-case letters, digits and _)",
                    field=field,
                )
            ],
        )
    known = sorted(custom or [])
    if text in known:
        return CUSTOM_PREFIX + text
    custom_hint = (
        f"; custom metrics in the events: {', '.join(known)}" if known else ""
    ) + " (or custom:NAME for one not seen yet)"
    raise ValidationError(
        "invalid input:",
        [
            Problem(
                f"unknown metric '{text}': use {', '.join(METRICS)}{custom_hint}",
                field=field,
            )
        ],
    )


# ---- formatting (recommendations, the CLI and the screens share it) --------------------------


def p_text(p: float | None) -> str:
    """``p < 0.001``, ``p < 0.01`` or ``p = 0.034``."""
    if p is None:
        return "p undefined"
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return "p < 0.01"
    return f"p = {p:.2g}"


def pct_text(x: float) -> str:
    """A percentage without its sign: ``14``, ``3.2``, ``0.41``."""
    a = abs(x)
    if a >= 10:
        return f"{a:.0f}"
    if a >= 1:
        return f"{a:.1f}"
    return f"{a:.2g}"


def signed_pct_text(x: float | None) -> str:
    """``+14 %``, ``−3.2 %``, ``+0.41 %`` (``–`` when undefined)."""
    if x is None or not math.isfinite(x):
        return "–"
    return f"{'+' if x >= 0 else '−'}{pct_text(x)} %"


def value_text(metric: str, v: float | None) -> str:
    """A metric's value with its unit: ``1,240 ms``, ``5.2 %``, ``$0.0023``, ``0.712``."""
    if v is None or not math.isfinite(v):
        return "–"
    unit = metric_def(metric).unit if _known(metric) else "value"
    if unit == "ms":
        return f"{v:,.0f} ms"
    if unit == "rate":
        return f"{v * 100:.1f} %"
    if unit == "usd":
        return f"${v:.4g}"
    if unit == "tokens":
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _known(metric: str) -> bool:
    try:
        metric_def(metric)
    except KeyError:
        return False
    return True


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm step-down adjusted p-values; ``None`` stays ``None``.

    The same numbers as ``statsmodels``' ``multipletests(method="holm")`` (a test pins it),
    computed directly: that function runs a full ``gc.collect()`` per call, which costs tens of
    milliseconds in a process as large as the dashboard, once per deployment here.
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


# ---- the service ---------------------------------------------------------------------------


class TrendService:
    """Trend analysis over the metric events of one workspace (``Workspace.trends``)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._tcrit: dict[float, list[float]] = {}

    # -- inputs -------------------------------------------------------------------------------
    def custom_metrics(self) -> list[str]:
        with self.db.read() as con:
            return sql.custom_metric_names(con)

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
            history = sql.deployments(con, ids, end, environment)
            many = sql.count_events(con, ids, start, end, environment) > EXACT_USERS_LIMIT
        clusters = CLUSTERS if many else None
        markers = [d for d in history if d.at >= start]
        # The change points' SQL runs in a worker thread (its own connection; DuckDB releases
        # the GIL) while the buckets are reduced and the trend lines fitted here.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(
                self._change_points, markers, history, defs, window, end, alpha, clusters
            )
            with self.db.read() as con:
                rows = sql.bucket_series(
                    con,
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
            series = self._series(rows, dict(tpl), defs)
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
            computed_at=now,
        )
        report.recommendations = recommendations(report)
        return report

    def _series(
        self,
        rows: list[dict[str, Any]],
        names: dict[str, str],
        defs: list[MetricDef],
    ) -> list[TrendSeries]:
        groups: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault((r["template_id"], r["series"]), []).append(r)
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
        with self.db.read() as con:
            sums = sql.change_sums(
                con, [sp for _, sp in plans], [d.measure for d in defs], clusters
            )
        out = []
        for (m, span), (b, a) in zip(plans, sums, strict=True):
            metrics = [_change_metric(d, i, b, a, alpha) for i, d in enumerate(defs)]
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
    d: MetricDef, i: int, b: dict[str, Any], a: dict[str, Any], alpha: float
) -> ChangeMetric:
    if d.p95:
        before, after = stats.finite(b[f"p{i}"]), stats.finite(a[f"p{i}"])
        diff = None if before is None or after is None else after - before
        rel = None if diff is None or not before else diff / abs(before)
        return ChangeMetric(
            metric=d.key,
            label=d.label,
            direction=d.direction,
            before=before,
            after=after,
            events_before=int(b[f"k{i}"]),
            events_after=int(a[f"k{i}"]),
            users_before=int(b["users"] or 0),
            users_after=int(a["users"] or 0),
            diff=diff,
            relative_change=rel,
            message="percentiles are compared by value only",
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


def _trend_sentence(s: TrendSeries, by: str | None, environment: str | None) -> str:
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
    if f.verdict == "worse":
        text += " Investigate" + (
            ", or roll back." if f.since_at is not None else " before it crosses an alert."
        )
    else:
        text += " Improving."
    return text


def _change_sentence(cp: ChangePoint, verdict: str) -> str | None:
    d = cp.deployment
    hits = [m for m in cp.metrics if m.verdict == verdict]
    if verdict == "worse":
        # a percentile moving a lot with enough events is worth saying even though untested
        hits += [
            m
            for m in cp.metrics
            if m.verdict == "not tested"
            and m.relative_change is not None
            and min(m.events_before, m.events_after) >= MIN_P95_EVENTS
            and abs(m.relative_change) >= 0.2
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
    return head + "; ".join(parts) + "." + tail


def recommendations(report: TrendReport) -> list[str]:
    """Short plain-language findings, most urgent first: worsening trends (steepest first),
    changes for the worse after deployments, improvements, then what is stable or too thin."""
    by, env = report.by, report.environment
    worse = sorted(
        (s for s in report.series if s.fit.verdict == "worse"),
        key=lambda s: -abs(s.fit.pct_per_day or 0),
    )
    better = sorted(
        (s for s in report.series if s.fit.verdict == "better"),
        key=lambda s: -abs(s.fit.pct_per_day or 0),
    )
    out = [_trend_sentence(s, by, env) for s in worse]
    out += [t for cp in report.change_points if (t := _change_sentence(cp, "worse"))]
    out += [_trend_sentence(s, by, env) for s in better]
    out += [t for cp in report.change_points if (t := _change_sentence(cp, "better"))]
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

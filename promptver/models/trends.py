"""Trends over time, change points, alert rules and the alerts they fire."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from promptver.models.core import Model


class TrendPoint(Model):
    """One time bucket of one series and metric: the value, its CI, the events behind it."""

    bucket: datetime
    #: events with a value of the metric in the bucket
    events: int
    #: users with an event in the bucket (estimated by HyperLogLog when ``TrendReport.clusters``)
    users: int
    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    #: the bucket has too few events to enter the trend fit
    thin: bool = False


class TrendFit(Model):
    """The trend of one metric in one series: a robust straight line through its buckets."""

    #: "rlm-huber" (Huber M-estimator), "ols" (fallback), "exact", "constant", or None (no fit)
    method: str | None = None
    #: start of the buckets the line was fitted on (a deployment, or the period start)
    fit_start: datetime | None = None
    #: first and last bucket in the fit, and their mean time (where the line is at ``level``)
    first_bucket: datetime | None = None
    last_bucket: datetime | None = None
    center: datetime | None = None
    buckets: int = 0
    slope_per_day: float | None = None
    slope_ci_low: float | None = None
    slope_ci_high: float | None = None
    p_value: float | None = None
    #: the fitted value at the mean bucket time: the level the percentages refer to
    level: float | None = None
    pct_per_day: float | None = None
    pct_ci_low: float | None = None
    pct_ci_high: float | None = None
    significant: bool = False
    #: "worse", "better", "stable" (not significant) or "unknown" (no fit)
    verdict: Literal["worse", "better", "stable", "unknown"] = "unknown"
    #: buckets the robust fit down-weighted to less than half (outliers)
    outliers: int = 0
    #: the deployment the fit starts at, when it starts at one
    since_version: str | None = None
    since_environment: str | None = None
    since_at: datetime | None = None
    message: str | None = None


class TrendSeries(Model):
    """One template (and one version, variant or environment when grouped) and one metric."""

    template_id: str
    template: str
    #: the grouping value ("1.2.0", "concise", "production"); None without grouping
    group: str | None = None
    metric: str
    label: str
    unit: str
    direction: Literal["higher", "lower"]
    points: list[TrendPoint] = Field(default_factory=list)
    fit: TrendFit


class DeploymentMarker(Model):
    """A deployment or rollback inside the period (drawn as a vertical rule)."""

    deployment_id: int
    template_id: str
    template: str
    environment: str
    action: Literal["deploy", "rollback"]
    version: str | None
    commit: str
    at: datetime
    replaced_version: str | None = None
    author: str = ""
    note: str = ""


class ChangeMetric(Model):
    """One metric before and after a deployment (users as the unit, Welch / delta method)."""

    metric: str
    label: str
    direction: Literal["higher", "lower"]
    before: float | None
    after: float | None
    events_before: int
    events_after: int
    users_before: int = 0
    users_after: int = 0
    diff: float | None = None
    relative_change: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    significant: bool = False
    verdict: Literal["worse", "better", "inconclusive", "not tested"] = "not tested"
    message: str | None = None


class ChangePoint(Model):
    """Metrics in the windows before and after one deployment (observational, not randomised)."""

    deployment: DeploymentMarker
    before_start: datetime
    after_end: datetime
    metrics: list[ChangeMetric] = Field(default_factory=list)
    observational: bool = True


class TrendReport(Model):
    """Everything the Trends screen and ``promptver trends`` show for a selection."""

    templates: list[str]
    metrics: list[str]
    period: str
    start: datetime
    end: datetime
    bucket: Literal["hour", "day", "week"]
    by: Literal["version", "variant", "environment"] | None = None
    environment: str | None = None
    alpha: float
    min_bucket_events: int
    #: None: intervals treat each user as a unit; a number: users were pooled into that many
    #: hashed clusters per bucket (periods with many events; see docs/trends.md)
    clusters: int | None = None
    series: list[TrendSeries] = Field(default_factory=list)
    deployments: list[DeploymentMarker] = Field(default_factory=list)
    change_points: list[ChangePoint] = Field(default_factory=list)
    #: what is live now in each environment of each template (the latest deployment or
    #: rollback up to the time of the analysis, which may be after ``end``): recommendations
    #: never suggest rolling back a version that is no longer live
    live: list[DeploymentMarker] = Field(default_factory=list)
    recommendations: list[str] = Field(default_factory=list)
    computed_at: datetime


Comparator = Literal[">", ">=", "<", "<="]


class AlertRule(Model):
    """A condition on a metric over a window of events, checked after imports and flushes."""

    id: int
    name: str = ""
    #: latency_avg, latency_p95, error_rate, success_rate, quality_score, cost_per_request,
    #: tokens_in, tokens_out, or custom:NAME
    metric: str
    comparator: Comparator
    threshold: float
    #: the window as written (``1h``, ``24h``, ``7d``) and its length in seconds
    window: str
    window_seconds: int
    min_events: int
    #: None: every template ("*"), each evaluated on its own
    template_id: str | None = None
    template: str | None = None
    #: None: events of any environment
    environment: str | None = None
    enabled: bool = True
    created_at: datetime
    created_by: str = ""
    updated_at: datetime
    updated_by: str = ""

    def describe(self) -> str:
        """``p95 latency > 1500 over 24h (qa-basic, production, ≥ 20 events)``."""
        from promptver.metric_defs import metric_label  # local: models stay import-light

        where = [self.template or "every template", self.environment or "any environment"]
        return (
            f"{metric_label(self.metric)} {self.comparator} {self.threshold:g} over "
            f"{self.window} ({', '.join(where)}, ≥ {self.min_events} events)"
        )


class Alert(Model):
    """A rule that fired for one template in one window (stored once per rule and window)."""

    id: int
    rule_id: int
    #: the rule still exists (it may have been deleted since)
    rule_exists: bool = True
    template_id: str
    template: str
    window_start: datetime
    window_end: datetime
    value: float
    events: int
    fired_at: datetime
    source: Literal["check", "import", "track"]
    rule_name: str = ""
    metric: str
    comparator: Comparator
    threshold: float
    window: str
    min_events: int
    environment: str | None = None
    #: "open" until someone acknowledges it
    status: Literal["open", "acknowledged"] = "open"
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    #: the window had ended before the rule was created: found looking back (a check with
    #: ``since``, an import of old events), never watched live by the rule (False when the
    #: rule was deleted since)
    backfill: bool = False


class AlertCheck(Model):
    """What one evaluation did: rules and windows looked at, alerts fired now."""

    source: Literal["check", "import", "track"]
    evaluated_at: datetime
    rules: int
    windows: int
    fired: list[Alert] = Field(default_factory=list)
    #: windows that crossed the threshold again but had fired before (not stored twice)
    already_fired: int = 0


class AlertGroup(Model):
    """The alerts one rule fired for one template: how many, the latest window, and what was
    live in the rule's environment then and now (the deployment to look at or roll back)."""

    rule_id: int
    rule_exists: bool = True
    template_id: str
    template: str
    #: the alerts in the group (those matching the status asked for), newest window first
    alert_ids: list[int]
    #: the open ones among them
    open_ids: list[int] = Field(default_factory=list)
    #: how many of them were stored by a backfill
    backfill: int = 0
    first_window: datetime
    #: the alert of the latest window (its condition, value and window)
    latest: Alert
    #: the environment the deployments below are in: the rule's, or for a rule on any
    #: environment the last one of the promotion path
    environment: str | None = None
    #: what was live there when the latest window began, and what is live now
    deployed: DeploymentMarker | None = None
    live_now: DeploymentMarker | None = None

    @property
    def count(self) -> int:
        return len(self.alert_ids)

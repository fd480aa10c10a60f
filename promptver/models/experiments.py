"""Experiments as defined (metrics, variants) and what routing gives one user."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from promptver.models.core import Model

BUILTIN_METRICS: dict[str, str] = {
    "latency_ms": "lower",
    "success": "higher",
    "error": "lower",
    "quality_score": "higher",
    "cost_usd": "lower",
    "tokens_in": "lower",
    "tokens_out": "lower",
}
"""Built-in metric columns of ``metric_events`` and the direction in which they are better."""

BINARY_METRICS = frozenset({"success", "error"})


class MetricSpec(Model):
    """A metric an experiment watches. The first of an experiment's metrics is the primary one."""

    name: str
    direction: Literal["higher", "lower"]
    role: Literal["primary", "secondary", "guardrail"] = "secondary"
    #: guardrails only: the relative non-inferiority margin (0.05 = at most 5 % worse)
    margin: float | None = None


class VariantSpec(Model):
    """One arm: a name, the ref it was configured with, the commit that ref resolved to."""

    name: str
    ref: str
    weight: float
    commit: str | None = None


class Experiment(Model):
    """An A/B experiment on one template in one environment (variants[0] is the control)."""

    id: str
    name: str
    description: str = ""
    hypothesis: str = ""
    template_id: str
    template: str = ""
    environment: str = "production"
    status: Literal["draft", "running", "completed", "stopped"] = "draft"
    variants: list[VariantSpec]
    metrics: list[MetricSpec]
    alpha: float = 0.05
    minimum_sample_size: int = 100
    salt: str
    #: fraction of users that enter the experiment (the rest get the deployed version)
    coverage: float = 1.0
    start_at: datetime | None = None
    end_at: datetime | None = None
    created_at: datetime
    created_by: str = ""
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    stop_reason: str | None = None
    #: CUPED: days before the start whose events give each user's covariate (None: off)
    cuped_lookback_days: int | None = None
    #: which rule names the winner: the Holm-adjusted p-value, or the chance to win
    engine: Literal["frequentist", "bayesian"] = "frequentist"
    #: "fixed": the configured split; "bandit": Thompson sampling moves traffic (hourly)
    allocation: Literal["fixed", "bandit"] = "fixed"

    @property
    def control(self) -> VariantSpec:
        return self.variants[0]

    @property
    def primary_metric(self) -> MetricSpec:
        return self.metrics[0]

    def metric(self, name: str) -> MetricSpec | None:
        return next((m for m in self.metrics if m.name == name), None)

    def window(self) -> tuple[datetime | None, datetime | None]:
        """[start, end] of the events that count: configured, else started/stopped times."""
        return (self.start_at or self.started_at, self.end_at or self.stopped_at)

    def weights(self) -> list[float]:
        """Normalised weights in variant order (they sum to 1)."""
        total = sum(v.weight for v in self.variants)
        return [v.weight / total for v in self.variants]


class Assignment(Model):
    """The variant a running experiment gives one user (what ``get_prompt`` serves)."""

    experiment_id: str
    experiment: str
    variant: str
    #: the commit the variant serves (its ref, frozen when the experiment started)
    commit: str
    ref: str
    bucket: float


class ExperimentLogEntry(Model):
    """One lifecycle event of an experiment: created, edited, started, stopped, completed …"""

    experiment_id: str
    at: datetime
    action: str
    author: str = ""
    detail: str = ""

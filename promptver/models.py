"""The shapes promptver stores and returns (pydantic, ``extra="forbid"``).

Models are plain data: services build them, the store reads and writes them, the CLI and the HTTP
API serialise them with ``model_dump(mode="json")``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME_RE = re.compile(r"^[A-Za-z0-9_./-]{1,100}$")
"""Template and branch names: letters, digits, ``-``, ``_``, ``.`` and ``/`` (1–100 characters)."""

VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_name(value: str, what: str = "name") -> str:
    """Validate a template or branch name (raises ``ValueError`` with the rule)."""
    if not NAME_RE.match(value or ""):
        raise ValueError(
            f"{what} {value!r} is invalid: use 1–100 letters, digits, '-', '_', '.' or '/'"
        )
    if value.startswith("/") or value.endswith("/") or "//" in value or value in {".", ".."}:
        raise ValueError(f"{what} {value!r} is invalid: no leading, trailing or double '/'")
    return value


class Commit(Model):
    """An immutable snapshot of a template's text and metadata."""

    id: str
    template_id: str
    parents: list[str] = Field(default_factory=list)
    content: str
    variables: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    message: str = ""
    author: str = ""
    created_at: datetime
    #: the semantic version this commit carries on ``main`` (``None`` on other branches)
    version: str | None = None

    @property
    def short_id(self) -> str:
        return self.id[:10]


class Template(Model):
    """A template as seen at one commit (by default the head of ``main``)."""

    id: str
    name: str
    description: str = ""
    category: str = ""
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    created_by: str = ""
    is_active: bool = True
    version: str | None = None
    commit: str
    content: str
    variables: list[str] = Field(default_factory=list)
    #: branch whose head this view shows, when it was read from a branch
    branch: str | None = None
    updated_at: datetime | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "template name")

    def summary(self) -> dict[str, Any]:
        """The contract's ``template create/update --json`` shape."""
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "commit": self.commit,
            "variables": self.variables,
        }


class Branch(Model):
    template_id: str
    name: str
    head: str
    created_at: datetime
    created_by: str = ""
    #: commits on this branch that ``main`` lacks / on ``main`` that this branch lacks
    ahead: int | None = None
    behind: int | None = None


class VersionLabel(Model):
    template_id: str
    version: str
    commit_id: str
    created_at: datetime


class LogEntry(Model):
    """One row of ``promptver log`` (contract shape plus a few conveniences)."""

    commit: str
    parents: list[str]
    version: str | None
    message: str
    author: str
    created_at: datetime
    branches: list[str] = Field(default_factory=list)


class Prompt(Model):
    """What ``Workspace.get_prompt`` returns: one template version, ready to render.

    ``variant`` and ``experiment_id`` are set when an experiment routed this user; ``user_id``
    and ``environment`` are kept so that ``Workspace.track(prompt, …)`` can attribute the event.
    """

    template_id: str
    name: str
    version: str | None
    commit: str
    content: str
    variables: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    environment: str | None = None
    user_id: str | None = None
    variant: str | None = None
    experiment_id: str | None = None
    max_render_chars: int = 1_000_000

    def text(self, strict: bool = True, **values: Any) -> str:
        """Render with ``values`` (see :func:`promptver.templating.render`)."""
        from promptver.templates import render_template

        return render_template(self.content, self.metadata, values, strict=strict,
                               max_chars=self.max_render_chars)


# ---- experiments -----------------------------------------------------------------------------

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


# ---- experiment results (statistics engine) ---------------------------------------------------
# ``ExperimentResults.model_dump()`` is a superset of the contract's results object: the contract's
# keys come first, in its order; everything after them is an extra.


class VariantResult(Model):
    """One variant's figures for one metric (mean per event, its spread and CI)."""

    name: str
    #: users with at least one event in the window
    users: int
    #: events with a value of this metric
    events: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    # extras
    weight: float
    #: users with at least one value of this metric (the n of the inference)
    metric_users: int
    se: float | None = None
    bootstrap_ci_low: float | None = None
    bootstrap_ci_high: float | None = None
    message: str | None = None


class Inference(Model):
    """The p-value and intervals of one testing method (fixed-horizon or sequential)."""

    p_value: float | None
    ci_low: float | None
    ci_high: float | None
    relative_lift_ci_low: float | None
    relative_lift_ci_high: float | None


class ComparisonResult(Model):
    """Treatment vs control on one metric."""

    control: str
    treatment: str
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    relative_lift: float | None
    p_value: float | None
    p_value_adjusted: float | None
    significant: bool
    effect_size: float | None
    bootstrap_ci_low: float | None
    bootstrap_ci_high: float | None
    # extras
    #: "two-sided", or "greater"/"less" for a guardrail's one-sided test in its bad direction
    alternative: Literal["two-sided", "greater", "less"] = "two-sided"
    method: Literal["fixed-horizon", "sequential"] = "fixed-horizon"
    #: level of ci_low/ci_high and the bootstrap intervals (1 − 2·alpha for one-sided tests)
    confidence: float = 0.95
    se: float | None = None
    df: float | None = None
    t_stat: float | None = None
    relative_lift_ci_low: float | None = None
    relative_lift_ci_high: float | None = None
    bootstrap_bca_ci_low: float | None = None
    bootstrap_bca_ci_high: float | None = None
    bootstrap_relative_lift_ci_low: float | None = None
    bootstrap_relative_lift_ci_high: float | None = None
    #: "better"/"worse" when significant (in the metric's direction), else "inconclusive"
    verdict: Literal["better", "worse", "inconclusive", "not tested"] = "not tested"
    fixed_horizon: Inference | None = None
    sequential: Inference | None = None
    message: str | None = None


class QuantileVariant(Model):
    name: str
    events: int
    value: float | None
    bootstrap_ci_low: float | None = None
    bootstrap_ci_high: float | None = None


class QuantileComparison(Model):
    control: str
    treatment: str
    diff: float | None
    bootstrap_ci_low: float | None = None
    bootstrap_ci_high: float | None = None


class QuantileResult(Model):
    """A quantile of a metric per variant (p95 latency) with bootstrap CIs over users."""

    metric: str
    quantile: float
    #: "exact": resampled event values; "binned": fine histograms around the quantile (large data)
    method: Literal["exact", "binned"]
    variants: list[QuantileVariant]
    comparisons: list[QuantileComparison]
    message: str | None = None


class PowerResult(Model):
    """Power and sample size of one comparison."""

    treatment: str
    alpha: float
    power: float
    #: per-user standard deviation implied by the standard error
    sigma: float | None
    #: minimum detectable effect (absolute, and relative to the control mean) at the current sample
    mde: float | None
    mde_relative: float | None
    target_lift: float | None
    users_needed_control: int | None
    users_needed_treatment: int | None
    users_control: int
    users_treatment: int
    #: share of the experiment's minimum_sample_size reached by the smaller of the two arms
    progress: float
    #: days until users_needed at the rate seen so far (None when unknown or already reached)
    days_to_target: float | None = None
    message: str | None = None


class WinsorInfo(Model):
    percentile: float
    cap: float | None


class GuardrailCheck(Model):
    """A guardrail metric, one treatment: one-sided test in the metric's bad direction."""

    metric: str
    direction: Literal["higher", "lower"]
    treatment: str
    diff: float | None
    relative_lift: float | None
    p_value: float | None
    worse: bool
    message: str | None = None


class SRMResult(Model):
    p_value: float | None
    ok: bool
    # extras
    chi2: float | None = None
    df: int = 0
    observed: dict[str, int] = Field(default_factory=dict)
    expected: dict[str, float] = Field(default_factory=dict)
    threshold: float = 0.001


class BootstrapInfo(Model):
    resamples: int
    seed: int
    #: "user": users resampled exactly; "bucket": hashed buckets of users (large experiments)
    unit: Literal["user", "bucket"]
    units: dict[str, int] = Field(default_factory=dict)


class MetricResult(Model):
    """Everything about one metric of an experiment."""

    metric: str
    direction: Literal["higher", "lower"]
    role: Literal["primary", "secondary", "guardrail"]
    binary: bool
    variants: list[VariantResult]
    comparisons: list[ComparisonResult]
    power: list[PowerResult] = Field(default_factory=list)
    quantile: QuantileResult | None = None
    winsorized: WinsorInfo | None = None
    uncapped: MetricResult | None = None
    messages: list[str] = Field(default_factory=list)


class ExperimentResults(Model):
    """The contract's results object (first fields) plus the engine's extras."""

    experiment_id: str
    status: str
    metric: str
    alpha: float
    variants: list[VariantResult]
    comparisons: list[ComparisonResult]
    srm: SRMResult
    sample_size_ok: bool
    winner: str | None
    # extras
    direction: Literal["higher", "lower"]
    role: Literal["primary", "secondary", "guardrail"]
    binary: bool
    method: Literal["fixed-horizon", "sequential"]
    primary_metric: str
    minimum_sample_size: int
    window_start: datetime | None
    window_end: datetime | None
    computed_at: datetime
    bootstrap: BootstrapInfo
    power: list[PowerResult] = Field(default_factory=list)
    quantile: QuantileResult | None = None
    winsorized: WinsorInfo | None = None
    uncapped: MetricResult | None = None
    guardrails: list[GuardrailCheck] = Field(default_factory=list)
    winner_reason: str = ""
    #: what to know about these figures: the experiment's notes, then the selected metric's
    messages: list[str] = Field(default_factory=list)
    #: notes about the experiment as a whole (no users yet, SRM, ignored events …)
    experiment_messages: list[str] = Field(default_factory=list)
    #: every metric of the experiment (the selected one included)
    metrics: list[MetricResult] = Field(default_factory=list)

    def for_metric(self, name: str) -> MetricResult:
        """The result of one metric.

        Raises:
            KeyError: the experiment has no such metric.
        """
        for m in self.metrics:
            if m.metric == name:
                return m
        raise KeyError(name)

    def select(self, name: str) -> ExperimentResults:
        """The same results viewed on another metric (no recomputation)."""
        m = self.for_metric(name)
        return self.model_copy(
            update={
                "metric": m.metric,
                "direction": m.direction,
                "role": m.role,
                "binary": m.binary,
                "variants": m.variants,
                "comparisons": m.comparisons,
                "power": m.power,
                "quantile": m.quantile,
                "winsorized": m.winsorized,
                "uncapped": m.uncapped,
                "messages": [*self.experiment_messages, *m.messages],
            }
        )

"""Experiment results: per-variant figures, comparisons, power, SRM, Bayesian, CUPED, bandits, segments."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from promptver.models.core import Model

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


class BayesianResult(Model):
    """The Bayesian readout of one comparison: normal posterior of the relative lift under a
    flat prior (GrowthBook's effect-Bayesian test)."""

    #: posterior probability that the treatment is better in the metric's good direction
    chance_to_win: float | None
    #: posterior E[max(0, −lift)] with the lift signed so that positive is good (a fraction)
    expected_loss: float | None
    #: the 1 − alpha credible interval of the relative lift
    credible_low: float | None
    credible_high: float | None
    # extras: the posterior N(mean, sd²) of the relative lift
    posterior_mean: float | None = None
    posterior_sd: float | None = None


class CupedResult(Model):
    """The CUPED (regression-adjusted) comparison: treatment − control of Ȳ − θX̄."""

    theta: float | None
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    variance_reduction: float | None
    # extras
    se: float | None = None
    df: float | None = None
    p_value_adjusted: float | None = None
    significant: bool = False
    relative_lift: float | None = None
    #: users per arm with events in the lookback window (the others have X = 0)
    users_with_history: dict[str, int] = Field(default_factory=dict)
    message: str | None = None


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
    #: the Bayesian readout (every comparison; None when the lift is undefined)
    bayesian: BayesianResult | None = None
    #: the CUPED-adjusted comparison (experiments with ``cuped``)
    cuped: CupedResult | None = None
    #: guardrails with a margin: the one-sided 1 − alpha bound of the relative lift stays
    #: within the margin on the bad side (None: no margin, or not computable)
    non_inferior: bool | None = None
    margin: float | None = None
    non_inferiority_bound: float | None = None


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
    #: "worse" (significantly, one-sided), "ok" (tested, not worse), "not tested" (too few users
    #: or no events yet) or "cannot compute" (the sums overflowed: it may be worse, so the
    #: treatment cannot be the winner); with a margin: "within margin" or "worse than allowed"
    status: Literal[
        "ok", "worse", "not tested", "cannot compute", "within margin", "worse than allowed"
    ] = "not tested"
    #: non-inferiority (guardrails with a margin): the margin, the one-sided 1 − alpha bound of
    #: the relative lift on the bad side, and whether the bound stays within the margin
    margin: float | None = None
    bound: float | None = None
    non_inferior: bool | None = None


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
    #: the winner rule: "frequentist" (adjusted p-value) or "bayesian" (chance to win)
    engine: Literal["frequentist", "bayesian"] = "frequentist"
    #: CUPED's lookback in days (None: off); the winner rule then uses the adjusted results
    cuped_lookback_days: int | None = None
    #: allocation: bandit — the split's history and the period-weighted comparisons (None: fixed)
    bandit: BanditResult | None = None

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


class BanditWeights(Model):
    """One split of a bandit: from ``at`` on (period ``period``; 0 = the configured split)."""

    period: int
    at: datetime | None
    weights: dict[str, float]


class BanditComparison(Model):
    """A treatment against the control, period-weighted (unbiased under a moving split)."""

    treatment: str
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_value_adjusted: float | None = None
    significant: bool = False


class BanditResult(Model):
    """allocation: bandit — the split over time and the period-weighted comparisons."""

    weights: list[BanditWeights]
    comparisons: list[BanditComparison]
    periods_used: int
    caveat: str


class SegmentResult(ExperimentResults):
    """The results object computed on one segment's events (``value`` of the dimension; None:
    the events without it)."""

    value: str | None


class HeterogeneityResult(Model):
    """Does the effect differ across segments? Cochran's Q over the segments' differences."""

    metric: str
    treatment: str
    segments: int
    q: float | None
    df: int
    p_value: float | None
    #: Higgins' I²: the share of the spread of the effects beyond chance (0 to 1)
    i2: float | None
    message: str | None = None


class SegmentedResults(Model):
    """``experiment results --by dim_x``: the results per segment, Holm across all of them."""

    by: str
    segments: list[SegmentResult]
    # extras
    experiment_id: str
    metric: str
    alpha: float
    #: comparisons Holm adjusts over, per metric (segments × treatments)
    adjusted_over: int = 0
    heterogeneity: list[HeterogeneityResult] = Field(default_factory=list)
    messages: list[str] = Field(default_factory=list)

"""Power figures of an experiment's comparisons: the MDE now, users needed, days to go.

:func:`power_for` works from one comparison's results (no data access); :func:`plan_power`
recomputes them for another target lift or power from stored results (the dashboard's power
calculator). The formulas are :func:`promptver.stats.power_analysis`.
"""

from __future__ import annotations

from promptver import stats as st
from promptver.errors import Problem, ValidationError
from promptver.models.results import ComparisonResult, ExperimentResults, PowerResult, VariantResult


def power_for(
    control: VariantResult,
    treatment: VariantResult,
    comparison: ComparisonResult,
    *,
    role: str,
    n_comparisons: int,
    alpha: float,
    power: float,
    target_lift: float | None,
    minimum_sample_size: int,
    elapsed_days: float | None,
) -> PowerResult:
    """Power figures of one comparison from its results (no data access)."""
    # Holm's first step divides alpha by the number of comparisons: plan for that. Guardrails are
    # checked unadjusted and one-sided.
    used_alpha = alpha if role == "guardrail" else alpha / max(1, n_comparisons)
    n_c, n_t = control.metric_users, treatment.metric_users
    p = st.power_analysis(
        comparison.se,
        n_c,
        n_t,
        control.mean,
        alpha=used_alpha,
        power=power,
        target_lift=target_lift,
        weight_ratio=treatment.weight / control.weight,
        alternative=comparison.alternative,
    )
    progress = min(control.users, treatment.users) / max(1, minimum_sample_size)
    days = None
    if p.users_needed_control is not None and elapsed_days and elapsed_days > 0:
        have = n_c + n_t
        need = p.users_needed_control + p.users_needed_treatment
        if have > 0 and need > have:
            days = (need - have) / (have / elapsed_days)
    return PowerResult(
        treatment=treatment.name,
        alpha=used_alpha,
        power=p.power,
        sigma=p.sigma,
        mde=p.mde,
        mde_relative=p.mde_relative,
        target_lift=p.target_lift,
        users_needed_control=p.users_needed_control,
        users_needed_treatment=p.users_needed_treatment,
        users_control=n_c,
        users_treatment=n_t,
        progress=progress,
        days_to_target=days,
        message=p.message,
    )


def plan_power(
    results: ExperimentResults,
    *,
    target_lift: float | None,
    power: float = 0.8,
    metric: str | None = None,
) -> list[PowerResult]:
    """Power figures for another target lift or power, from computed results (the dashboard's
    power calculator): the minimum detectable effect now, users needed, days at the rate so far.

    Raises:
        ValidationError: ``power`` is not between 0 and 1, or ``target_lift`` is not positive.
    """
    if not 0 < power < 1:
        raise ValidationError(
            "power must be between 0 and 1 (e.g. 0.8)",
            [Problem("must be between 0 and 1", field="power")],
        )
    if target_lift is not None and not target_lift > 0:
        raise ValidationError(
            "the target lift must be positive (e.g. 0.05 for 5 %)",
            [Problem("must be positive", field="target_lift")],
        )
    m = results.for_metric(metric or results.metric)
    elapsed = None
    if results.window_start is not None:
        end = results.window_end or results.computed_at
        elapsed = (end - results.window_start).total_seconds() / 86400
    by_name = {v.name: v for v in m.variants}
    return [
        power_for(
            m.variants[0],
            by_name[c.treatment],
            c,
            role=m.role,
            n_comparisons=len(m.comparisons),
            alpha=results.alpha,
            power=power,
            target_lift=target_lift,
            minimum_sample_size=results.minimum_sample_size,
            elapsed_days=elapsed,
        )
        for c in m.comparisons
    ]

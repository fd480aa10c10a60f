"""The "More statistics" parts of an experiment's results, from what the analysis computed.

:mod:`promptver.analysis` calls these per comparison: the Bayesian readout (every comparison),
the CUPED-adjusted comparison (experiments with ``cuped``), and non-inferiority (guardrails with a
margin). They turn the element-wise functions of :mod:`promptver.stats_more` into the result
models, with ``None`` (and a message) where a figure is undefined.
"""

from __future__ import annotations

from promptver import stats as st
from promptver import stats_more as sm
from promptver.models.results import BayesianResult, CupedResult


def bayesian_result(c: st.Comparison, direction: str, alpha: float) -> BayesianResult | None:
    """The flat-prior Bayesian readout of a (fixed-horizon) comparison's relative lift."""
    if c.relative_lift is None or not c.relative_lift_se:
        return None
    b = sm.bayesian_readout(c.relative_lift, c.relative_lift_se, direction, alpha)
    return BayesianResult(
        chance_to_win=st.finite(b.chance_to_win),
        expected_loss=st.finite(b.expected_loss),
        credible_low=st.finite(b.credible_low),
        credible_high=st.finite(b.credible_high),
        posterior_mean=st.finite(b.mean),
        posterior_sd=st.finite(b.sd),
    )


def cuped_result(
    control: st.MetricStats,
    control_cov: sm.CovariateSums,
    treatment: st.MetricStats,
    treatment_cov: sm.CovariateSums,
    *,
    alpha: float,
    alternative: st.Alternative,
    names: tuple[str, str],
) -> CupedResult:
    """The CUPED comparison of two arms, or one that says why it is not computed."""
    history = {names[0]: int(control_cov.with_history), names[1]: int(treatment_cov.with_history)}
    empty = CupedResult(
        theta=None,
        diff=None,
        ci_low=None,
        ci_high=None,
        p_value=None,
        variance_reduction=None,
        users_with_history=history,
    )
    for s, name in ((control, names[0]), (treatment, names[1])):
        if int(s.n) < 2:
            return empty.model_copy(
                update={"message": f"{name} has fewer than 2 users with this metric"}
            )
        if not s.finite:
            return empty.model_copy(update={"message": f"the adjustment {st.NON_FINITE}"})
    r = sm.cuped_test(
        control, control_cov, treatment, treatment_cov, alpha=alpha, alternative=alternative
    )
    se = st.finite(r.se)
    if not se:
        return empty.model_copy(
            update={
                "theta": st.finite(r.theta),
                "diff": st.finite(r.diff),
                "message": "zero variance after adjustment: nothing to test",
            }
        )
    message = None
    if sum(history.values()) == 0:
        message = "no user has events in the lookback window: the adjustment changes nothing"
    return CupedResult(
        theta=st.finite(r.theta),
        diff=st.finite(r.diff),
        ci_low=st.finite(r.ci_low),
        ci_high=st.finite(r.ci_high),
        p_value=st.finite(r.p_value),
        variance_reduction=st.finite(r.variance_reduction),
        se=se,
        df=st.finite(r.df),
        relative_lift=st.finite(r.relative_lift),
        users_with_history=history,
        message=message,
    )


def non_inferiority(
    c: st.Comparison, direction: str, margin: float
) -> tuple[float | None, bool | None]:
    """(bound, non-inferior) of a guardrail comparison.

    A guardrail's test is one-sided in the bad direction, so the bad-side end of its relative
    lift interval is the one-sided ``1 − alpha`` bound (:func:`promptver.stats_more.
    non_inferiority_bound` for the fixed-horizon test; the confidence sequence's bound in
    sequential mode).
    """
    bound = c.relative_lift_ci_high if direction == "lower" else c.relative_lift_ci_low
    if bound is None:
        return None, None
    return bound, sm.is_non_inferior(bound, margin, direction)

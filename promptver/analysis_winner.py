"""The guardrail checks of an experiment's results and the winner rule, in words.

A treatment wins when it beats the control on the primary metric (after Holm; by the chance to
win with the Bayesian engine, CUPED-adjusted with CUPED, period-weighted for a bandit), the
split matches the configuration (no SRM), every arm has its minimum sample, and no guardrail is
significantly worse or beyond its margin; otherwise the reason says which rule failed.

:class:`WinnerRule` is a part of :class:`promptver.analysis._Analysis`, which provides ``exp``,
``names``, ``alpha``, ``sums`` and ``bandit``.
"""

from __future__ import annotations

from promptver import stats as st
from promptver import stats_more as sm
from promptver.models.results import GuardrailCheck, MetricResult, SRMResult


class WinnerRule:
    """The guardrail and winner part of an analysis."""

    def _guardrails(self, metrics: list[MetricResult]) -> list[GuardrailCheck]:
        out = []
        for m in metrics:
            if m.role != "guardrail":
                continue
            for c in m.comparisons:
                worse = c.p_value is not None and c.p_value < self.alpha
                if c.p_value is None:
                    status = (
                        "cannot compute" if st.NON_FINITE in (c.message or "") else "not tested"
                    )
                elif c.margin is not None and c.non_inferior is not None:
                    # non-inferiority: the bound decides, not the test against zero
                    status = "within margin" if c.non_inferior else "worse than allowed"
                else:
                    status = "worse" if worse else "ok"
                out.append(
                    GuardrailCheck(
                        metric=m.metric,
                        direction=m.direction,
                        treatment=c.treatment,
                        diff=c.diff,
                        relative_lift=c.relative_lift,
                        p_value=c.p_value,
                        worse=worse,
                        message=c.message,
                        status=status,
                        margin=c.margin,
                        bound=c.non_inferiority_bound,
                        non_inferior=c.non_inferior,
                    )
                )
        return out

    def _winner(
        self,
        metrics: list[MetricResult],
        srm: SRMResult,
        sample_ok: bool,
        guardrails: list[GuardrailCheck],
    ) -> tuple[str | None, str]:
        primary = metrics[0]
        good = 1 if primary.direction == "higher" else -1
        bayesian = self.exp.engine == "bayesian"
        cuped = self.sums.covariates is not None
        if self.bandit is not None:  # the period-weighted comparisons decide
            by_name = {b.treatment: b for b in self.bandit.comparisons}
            better = [
                c
                for c in primary.comparisons
                if by_name[c.treatment].significant and (by_name[c.treatment].diff or 0) * good > 0
            ]
        elif bayesian:
            better = [
                c
                for c in primary.comparisons
                if c.bayesian is not None
                and (c.bayesian.chance_to_win or 0) >= sm.CHANCE_TO_WIN_THRESHOLD
            ]
        elif cuped:
            better = [
                c
                for c in primary.comparisons
                if c.cuped is not None
                and c.cuped.significant
                and c.cuped.diff is not None
                and c.cuped.diff * good > 0
            ]
        else:
            better = [
                c
                for c in primary.comparisons
                if c.significant and c.diff is not None and c.diff * good > 0
            ]
        reasons = []
        if not srm.ok:
            reasons.append(f"sample ratio mismatch ({p_text(srm.p_value)})")
        if not sample_ok:
            short = [
                f"{n} has {self.sums.users[n]}"
                for n in self.names
                if self.sums.users[n] < self.exp.minimum_sample_size
            ]
            reasons.append(
                f"below the minimum sample of {self.exp.minimum_sample_size} users "
                f"per variant ({', '.join(short)})"
            )
        if not better and bayesian:
            reasons.append(
                f"no treatment has a chance to win of at least "
                f"{sm.CHANCE_TO_WIN_THRESHOLD:.0%} against {self.names[0]} on {primary.metric}"
            )
        elif not better:
            reasons.append(
                f"no treatment is significantly better than {self.names[0]} on "
                f"{primary.metric}{' (CUPED-adjusted)' if cuped else ''} after Holm adjustment "
                f"at alpha {self.alpha:g}"
            )
        blocked = {
            g.treatment: g
            for g in guardrails
            if g.status in ("worse", "cannot compute", "worse than allowed")
        }
        candidates = [c for c in better if c.treatment not in blocked]
        if better and not candidates:
            reasons.append(
                "; ".join(_blocked_text(c.treatment, blocked[c.treatment]) for c in better)
            )
        if reasons:
            return None, "No winner: " + "; ".join(reasons) + "."
        if self.bandit is not None:
            by_name = {b.treatment: b for b in self.bandit.comparisons}
            best = max(candidates, key=lambda c: (by_name[c.treatment].diff or 0) * good)
            how = f"period-weighted, adjusted {p_text(by_name[best.treatment].p_value_adjusted)}"
        elif bayesian:
            best = max(candidates, key=lambda c: c.bayesian.chance_to_win or 0)
            how = f"chance to win {best.bayesian.chance_to_win:.1%}"
        elif cuped:
            best = max(candidates, key=lambda c: (c.cuped.diff or 0) * good)
            how = f"CUPED-adjusted {p_text(best.cuped.p_value_adjusted)}"
        else:
            best = max(candidates, key=lambda c: (c.diff or 0) * good)
            how = f"adjusted {p_text(best.p_value_adjusted)}"
        lift = (
            f"{best.relative_lift:+.1%}" if best.relative_lift is not None else f"{best.diff:+.4g}"
        )
        return best.treatment, (
            f"{best.treatment} beats {self.names[0]} on {primary.metric} ({lift}, {how}); the "
            "sample minimum is met, the split matches the configuration and no guardrail is "
            "significantly worse or beyond its margin."
        )


def _blocked_text(treatment: str, g: GuardrailCheck) -> str:
    if g.status == "worse than allowed":
        return (
            f"{treatment} is worse than allowed on guardrail {g.metric} (bound "
            f"{g.bound:+.1%} beyond the margin of {g.margin:.1%})"
        )
    if g.worse:
        return f"{treatment} is significantly worse on guardrail {g.metric}"
    return f"guardrail {g.metric} of {treatment} {st.NON_FINITE}"


def p_text(p: float | None) -> str:
    """A p-value for sentences: ``p = 0.012``, or ``p < 0.0001`` for tiny ones."""
    if p is None:
        return "p undefined"
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.2g}"

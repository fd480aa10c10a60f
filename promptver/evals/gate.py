"""The ``eval`` deployment gate: a version reaches an environment only with offline evidence.

Settings ``deployment.gates.<env>.eval: {dataset, metric, margin}``. A deploy there is refused
unless the candidate's paired comparison against the version live there, on that dataset and
metric, shows non-inferiority: the bound of the 1 − alpha confidence interval of the difference
on the good side stays above ``-margin`` (for a higher-is-better score, ``ci_low > -margin``;
for a lower-is-better one, ``ci_high < margin``). ``force`` with a reason overrides it, and the
override is recorded in the deployment's gate report with what was found.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from promptver.config import EvalGate
from promptver.errors import PromptverError
from promptver.models.core import Commit
from promptver.models.deployments import Deployment, GateResult

if TYPE_CHECKING:
    from promptver.evals.service import EvalService

GATE = "eval"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def eval_gate(
    evals: EvalService,
    gate: EvalGate,
    *,
    template_id: str,
    template: str,
    environment: str,
    commit: Commit,
    live: Deployment | None,
    force: bool,
    reason: str | None,
) -> GateResult:
    """The gate's outcome for deploying ``commit`` over ``live`` (nothing is written)."""
    from promptver.evals.service import lower_is_better

    label = commit.version or f"commit {commit.id[:10]}"
    where = f"dataset '{gate.dataset}', metric {gate.metric}, margin {gate.margin:g}"
    override = "deploy anyway with --force --reason TEXT (recorded in the deployment)"
    if live is None:
        return GateResult(
            gate=GATE,
            status="passed",
            message=f"nothing is live in {environment} yet, so there is nothing to compare with",
        )
    live_label = live.version or f"commit {live.commit[:10]}"
    facts: dict[str, Any] = {
        "dataset": gate.dataset,
        "metric": gate.metric,
        "margin": gate.margin,
        "baseline": live_label,
        "candidate": label,
    }
    try:
        cmp = evals.compare(
            gate.dataset, live.commit, commit.id, template=template_id, metric=gate.metric
        )
    except PromptverError as exc:
        found = exc.message
        m = None
    else:
        m = cmp.metrics[0]
        facts.update(
            items=m.items,
            diff=m.diff,
            ci_low=m.ci_low,
            ci_high=m.ci_high,
            p_value=m.p_value,
            alpha=cmp.alpha,
        )
        found = ""
    lower = lower_is_better(gate.metric)
    if m is not None and m.ci_low is not None and m.ci_high is not None:
        bound = -m.ci_high if lower else m.ci_low
        facts["lower_bound"] = bound
        conf = f"{(1 - cmp.alpha) * 100:g} %"
        shown = (
            f"{m.items} paired items, difference {_fmt(m.diff)} ({conf} CI {_fmt(m.ci_low)} to "
            f"{_fmt(m.ci_high)}; {'lower' if lower else 'higher'} is better)"
        )
        if bound > -gate.margin:
            return GateResult(
                gate=GATE,
                status="passed",
                eval=facts,
                message=f"{label} is non-inferior to the live {live_label} on {where}: {shown}",
            )
        found = f"{shown}: the candidate may be worse by up to {_fmt(-bound)}, more than the margin"
    elif m is not None:
        found = m.message or "no confidence interval"
    if force:
        return GateResult(
            gate=GATE,
            status="overridden",
            eval=facts,
            message=f"{label} was not shown non-inferior to the live {live_label} on {where} "
            f"({found}); forced: {reason}",
        )
    return GateResult(
        gate=GATE,
        status="failed",
        eval=facts,
        message=f"{environment} requires {label} to be non-inferior to the live {live_label} "
        f"on {where}, and it was not shown: {found}; {override}",
    )

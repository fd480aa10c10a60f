"""The results of an ``allocation: bandit`` experiment: the split over time, the period-weighted
comparisons that decide the winner, and an SRM check against the split actually in force."""

from __future__ import annotations

from promptver import bandits as bd
from promptver import stats as st
from promptver.models.experiments import Experiment
from promptver.models.results import BanditComparison, BanditResult, BanditWeights, SRMResult
from promptver.store import bandits as bsql
from promptver.store import stats as sql

CAVEAT = (
    "bandit allocation: the split moved toward the better-looking variant over time, so the "
    "plain comparisons pool periods with different splits and can be biased (and a bandit's "
    "traffic is not a fixed-horizon experiment). The period-weighted comparisons weight each "
    "period alike in every arm, correct that bias, and decide the winner; read the plain "
    "figures as descriptive."
)


def bandit_result(
    con: sql.Con, exp: Experiment, flt: sql.EventFilter, alpha: float
) -> tuple[BanditResult, SRMResult]:
    """The bandit section of the results, and the SRM against the splits in force."""
    names = [v.name for v in exp.variants]
    history = bsql.weight_history(con, exp.id)
    configured = exp.weights()
    weights = [BanditWeights(period=0, at=exp.started_at, weights=dict(zip(names, configured)))]
    weights += [
        BanditWeights(period=seq, at=at, weights=dict(zip(names, w))) for seq, at, w in history
    ]
    per_period = sql.period_sums(con, flt, exp.primary_metric.name)
    periods = [[per_period[p].get(n, st.MetricStats()) for n in names] for p in sorted(per_period)]
    pw = bd.period_weighted(periods, alpha) if periods else None
    comparisons = []
    for i, name in enumerate(names[1:]):
        if pw is None or pw.periods_used == 0:
            comparisons.append(
                BanditComparison(treatment=name, diff=None, ci_low=None, ci_high=None, p_value=None)
            )
            continue
        comparisons.append(
            BanditComparison(
                treatment=name,
                diff=st.finite(pw.diffs[i]),
                ci_low=st.finite(pw.ci_low[i]),
                ci_high=st.finite(pw.ci_high[i]),
                p_value=st.finite(pw.p_values[i]),
            )
        )
    adjusted = st.holm([c.p_value for c in comparisons])
    for c, p in zip(comparisons, adjusted):
        c.p_value_adjusted = p
        c.significant = p is not None and p < alpha
    # SRM: assigned users per arm against what each period's split expected of its users
    counts = bsql.period_user_counts(con, exp.id)
    split = {0: configured, **{s: w for s, _, w in history}}
    observed = [sum(n for (p, v), n in counts.items() if v == name) for name in names]
    expected = [0.0] * len(names)
    for (p, _), n in counts.items():
        w = split.get(p, configured)
        for i in range(len(names)):
            expected[i] += n * w[i]
    srm_raw = st.srm_test(observed, expected if sum(expected) > 0 else configured)
    srm = SRMResult(
        p_value=srm_raw.p_value,
        ok=srm_raw.ok,
        chi2=srm_raw.chi2,
        df=srm_raw.df,
        observed=dict(zip(names, srm_raw.observed)),
        expected=dict(zip(names, srm_raw.expected)),
        threshold=st.SRM_THRESHOLD,
    )
    return (
        BanditResult(
            weights=weights,
            comparisons=comparisons,
            periods_used=pw.periods_used if pw else 0,
            caveat=CAVEAT,
        ),
        srm,
    )

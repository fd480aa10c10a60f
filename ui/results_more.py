"""The "More statistics" parts of the results view: the Bayesian readout (chance to win,
expected loss, the posterior of the lift), CUPED's adjusted results beside the unadjusted ones,
and non-inferiority guardrails. Numbers come from the results; this module lays them out."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from promptver.analysis import results_fingerprint
from promptver.charts_more import (
    bandit_weights_chart,
    bandit_weights_frame,
    posterior_chart,
    posterior_frame,
    segment_forest_chart,
    segment_forest_frame,
)
from promptver.models import Experiment, ExperimentResults, SegmentedResults
from promptver.reports.document import p_cell as fmt_p
from promptver.reports.document import pct
from promptver.segments import dimensions, forest_rows, segment_results
from promptver.workspace import Workspace
from ui.common import md
from ui.experiments import table


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def _interval(low: float | None, high: float | None, percent: bool = False) -> str:
    if low is None or high is None:
        return "—"
    return f"[{low:+.2%}, {high:+.2%}]" if percent else f"[{low:.4g}, {high:.4g}]"


def bayesian(r: ExperimentResults) -> None:
    """Chance to win, expected loss and the credible interval, with the posterior plotted."""
    comps = [c for c in r.comparisons if c.bayesian is not None]
    if not comps:
        return
    rule = "decides the winner (chance to win ≥ 95 %)" if r.engine == "bayesian" else "for reading"
    st.markdown(f"**Bayesian readout** · flat prior on the relative lift · {rule}")
    rows = [
        {
            "treatment": c.treatment,
            "chance to win": pct(c.bayesian.chance_to_win, signed=False),
            "expected loss": pct(c.bayesian.expected_loss, signed=False),
            f"{1 - r.alpha:.0%} credible interval": _interval(
                c.bayesian.credible_low, c.bayesian.credible_high, percent=True
            ),
        }
        for c in comps
    ]
    table(
        pd.DataFrame(rows),
        {
            "chance to win": st.column_config.Column(
                help="Posterior probability that the treatment is better than the control"
            ),
            "expected loss": st.column_config.Column(
                help="The relative loss to expect from shipping the treatment (posterior mean "
                "of how much worse it is, counting 0 where it is better)"
            ),
        },
    )
    frame = posterior_frame(r.for_metric(r.metric))
    if not frame.empty:
        st.altair_chart(posterior_chart(frame, r.metric), width="stretch")


def bandit(r: ExperimentResults) -> None:
    """allocation: bandit — the split over time and the period-weighted comparisons."""
    b = r.bandit
    if b is None:
        return
    st.markdown("**Bandit** · Thompson sampling on the primary metric, updated at most hourly")
    st.caption(md(b.caveat))
    frame = bandit_weights_frame(b.weights)
    if not frame.empty:
        st.altair_chart(bandit_weights_chart(frame), width="stretch")
    table(
        pd.DataFrame(
            [
                {
                    "treatment": c.treatment,
                    "difference (period-weighted)": _fmt(c.diff),
                    "CI": _interval(c.ci_low, c.ci_high),
                    "p": fmt_p(c.p_value),
                    "p (Holm)": fmt_p(c.p_value_adjusted),
                    "significant": c.significant,
                }
                for c in b.comparisons
            ]
        )
    )


def cuped(r: ExperimentResults) -> None:
    """CUPED-adjusted and unadjusted results side by side."""
    comps = [c for c in r.comparisons if c.cuped is not None]
    if not comps:
        return
    st.markdown(
        f"**CUPED** · adjusted with each user's mean over the {r.cuped_lookback_days} days "
        "before the start · the winner rule uses the adjusted result"
    )
    rows = [
        {
            "treatment": c.treatment,
            "difference": _fmt(c.diff),
            "CI": _interval(c.ci_low, c.ci_high),
            "p (Holm)": fmt_p(c.p_value_adjusted),
            "adjusted difference": _fmt(c.cuped.diff),
            "adjusted CI": _interval(c.cuped.ci_low, c.cuped.ci_high),
            "adjusted p (Holm)": fmt_p(c.cuped.p_value_adjusted),
            "θ": _fmt(c.cuped.theta, 3),
            "variance reduction": pct(c.cuped.variance_reduction, signed=False),
            "users with history": ", ".join(
                f"{n}: {k:,}" for n, k in c.cuped.users_with_history.items()
            ),
            "note": c.cuped.message,
        }
        for c in comps
    ]
    table(pd.DataFrame(rows))


def guardrails(r: ExperimentResults) -> None:
    """The guardrail table: a one-sided test, or non-inferiority against a margin."""
    st.markdown(
        "**Guardrails** · one-sided test in each metric's bad direction, unadjusted; with a "
        f"margin: the one-sided {1 - r.alpha:.0%} bound of the lift against the margin"
    )
    rows = []
    for g in r.guardrails:
        if g.margin is not None and g.bound is not None:
            status = f"{g.status} (bound {g.bound:+.2%}, margin {g.margin:.1%})"
        else:
            status = "significantly worse" if g.worse else g.status
        rows.append(
            {
                "metric": g.metric,
                "worse when": "higher" if g.direction == "lower" else "lower",
                "treatment": g.treatment,
                "difference": _fmt(g.diff),
                "lift": pct(g.relative_lift),
                "p (worse)": fmt_p(g.p_value),
                "status": status,
            }
        )
    table(pd.DataFrame(rows))
    if any(g.status == "worse than allowed" for g in r.guardrails):
        st.caption(md("A treatment worse than allowed on a guardrail cannot be the winner."))


@st.cache_data(show_spinner=False, max_entries=32)
def _segments(
    _ws: Workspace, db: str, experiment_json: str, by: str, metric: str, fingerprint: tuple
) -> SegmentedResults:
    """Results per segment; recomputed when the experiment's events change."""
    return segment_results(_ws, Experiment.model_validate_json(experiment_json), by, metric)


def segments(ws: Workspace, experiment: Experiment, r: ExperimentResults, key: str) -> None:
    """The segment picker: results per value of a dim_* dimension, a forest plot by segment,
    the heterogeneity test, and one segment's figures."""
    dims = dimensions(ws, experiment)
    if not dims:
        return
    st.markdown("**Segments**")
    c1, c2 = st.columns([2, 3], vertical_alignment="bottom")
    by = c1.selectbox(
        "Break down by",
        ["(none)", *dims],
        key=f"{key}_by",
        help="Results computed on each segment's events alone; Holm adjusts across all "
        "segments' comparisons.",
    )
    if by == "(none)":
        return
    seg = _segments(
        ws,
        str(ws.path),
        experiment.model_dump_json(),
        by,
        r.metric,
        results_fingerprint(ws, experiment),
    )
    frame = segment_forest_frame(forest_rows(seg))
    if not frame.empty:
        st.altair_chart(
            segment_forest_chart(
                frame, f"difference in mean {r.metric} per event, treatment − control, by {by}"
            ),
            width="stretch",
        )
    rows = [
        {
            "segment": "(none)" if s.value is None else s.value,
            "treatment": c.treatment,
            "users": " / ".join(f"{v.users:,}" for v in s.variants),
            "difference": _fmt(c.diff),
            "CI": _interval(c.ci_low, c.ci_high),
            "p": fmt_p(c.p_value),
            "p (Holm, all segments)": fmt_p(c.p_value_adjusted),
            "SRM": "ok" if s.srm.ok else "mismatch",
            "winner": s.winner or "—",
        }
        for s in seg.segments
        for c in s.comparisons
    ]
    table(pd.DataFrame(rows))
    for h in seg.heterogeneity:
        if h.metric != r.metric:
            continue
        if h.p_value is None:
            st.caption(md(f"Heterogeneity ({h.treatment}): {h.message}"))
        else:
            st.caption(
                md(
                    f"Heterogeneity ({h.treatment}): Cochran's Q {h.q:.3g} on {h.df} df, "
                    f"p = {h.p_value:.3g}, I² {h.i2:.0%} — "
                    + (
                        "the effect differs across segments"
                        if h.p_value < seg.alpha
                        else "no evidence that the effect differs across segments"
                    )
                )
            )
    values = ["(none)" if s.value is None else s.value for s in seg.segments]
    pick = c2.selectbox("Segment", values, key=f"{key}_seg")
    chosen = seg.segments[values.index(pick)]
    with st.expander(f"Segment {pick}: per-variant figures", expanded=False):
        table(
            pd.DataFrame(
                [
                    {
                        "variant": v.name,
                        "users": v.users,
                        "events": v.events,
                        "mean": _fmt(v.mean),
                        "CI": _interval(v.ci_low, v.ci_high),
                    }
                    for v in chosen.variants
                ]
            )
        )
        st.caption(md(chosen.winner_reason))

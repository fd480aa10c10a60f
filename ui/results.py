"""The results view of an experiment, shown on the Experiments screen.

``render_results(ws, experiment)`` draws everything a reader needs to decide: the SRM and sample-size
banners, the winner (or why there is none), the per-variant table, forest plots of the effects with
the analytic and the bootstrap intervals side by side, guardrails, p95 latency, the uncapped figures
beside winsorised ones, and a power calculator. All numbers come from
:func:`promptver.analysis.experiment_results`; this module only lays them out. Its session-state
keys start with ``res_``.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from promptver.analysis import (
    WINSORIZABLE,
    p_text,
    plan_power,
    results_fingerprint,
)
from promptver.charts import (  # noqa: F401 - re-exported: the view's chart builders live there
    KIND_ORDER,
    LANES_PX,
    VERDICT_COLORS,
    forest_chart,
    forest_frame,
    forest_height,
    means_chart,
    means_frame,
)
from promptver.models import Experiment, ExperimentResults
from promptver.reports.document import p_cell as fmt_p
from promptver.reports.document import pct
from promptver.workspace import Workspace
from ui import results_more
from ui.common import domain_errors, md
from ui.experiments import table

#: what a difference of each built-in metric's mean per event is measured in (axis labels)
UNITS = {
    "latency_ms": "ms",
    "cost_usd": "USD",
    "tokens_in": "tokens",
    "tokens_out": "tokens",
    "quality_score": "score 0–1",
    "success": "share of events, 0.01 = 1 point",
    "error": "share of events, 0.01 = 1 point",
}
#: the sample-size bar: reached, or still growing (not an alarm: a running test is on track)
SAMPLE_COLORS = {"reached": "#2e7d32", "not yet": "#1565c0"}


def unit(metric: str) -> str:
    """The unit of ``metric``'s values (custom metrics: their own)."""
    return UNITS.get(metric, "the metric's own units")


def fmt(value: float | None, digits: int = 4) -> str:
    """A number with ``digits`` significant digits, or an em dash when undefined."""
    if value is None:
        return "—"
    return f"{value:.{digits}g}"


def interval(low: float | None, high: float | None, scale: str = "abs") -> str:
    if low is None or high is None:
        return "—"
    if scale == "pct":
        return f"[{low:+.2%}, {high:+.2%}]"
    return f"[{low:.4g}, {high:.4g}]"


@st.cache_data(show_spinner=False, max_entries=64)
def _compute(
    _ws: Workspace,
    db: str,
    experiment_json: str,
    sequential: bool,
    winsorize: bool,
    fingerprint: tuple,
) -> ExperimentResults:
    """Results for one experiment and option set; recomputed when its events change."""
    experiment = Experiment.model_validate_json(experiment_json)
    cfg = _ws.settings.ab_testing.statistical_analysis
    # options left at the settings' defaults are not passed, so an ended experiment shows the
    # results frozen when it stopped
    return _ws.experiment_results(
        experiment,
        sequential=None if sequential == cfg.sequential else sequential,
        winsorize=None if winsorize == cfg.winsorize else winsorize,
    )


def render_results(ws: Workspace, experiment: Experiment) -> ExperimentResults | None:
    """Draw the results of ``experiment``; returns them (``None`` when a domain error was shown)."""
    key = f"res_{experiment.id}"
    cfg = ws.settings.ab_testing.statistical_analysis
    names = [m.name for m in experiment.metrics]
    roles = {m.name: ("primary" if i == 0 else m.role) for i, m in enumerate(experiment.metrics)}
    c1, c2, c3 = st.columns([3, 2, 2], vertical_alignment="bottom")
    metric = c1.selectbox(
        "Metric",
        names,
        key=f"{key}_metric",
        format_func=lambda n: f"{n} ({roles[n]})",
        help="The winner is always decided on the primary metric; guardrails use a one-sided "
        "test in their bad direction.",
    )
    sequential = c2.toggle(
        "Sequential (peeking-safe)",
        value=cfg.sequential,
        key=f"{key}_seq",
        help="Always-valid confidence sequences: the p-values and intervals stay valid however "
        "often you look at the results. Wider than fixed-horizon intervals.",
    )
    capped = [n for n in names if n in WINSORIZABLE]
    winsorize = c3.toggle(
        f"Winsorise at p{cfg.winsorize_percentile:g}",
        value=cfg.winsorize and bool(capped),
        key=f"{key}_wins",
        disabled=not capped,
        help="Cap latency and cost at this percentile of all arms' events, so that a handful of "
        "extreme calls cannot decide the test; the uncapped figures stay beside them.",
    )
    with domain_errors():
        with st.spinner("Computing results…"):
            results = _compute(
                ws,
                str(ws.path),
                experiment.model_dump_json(),
                sequential,
                winsorize,
                results_fingerprint(ws, experiment),
            ).select(metric)
        _banners(results)
        _summary(results)
        _variants(results)
        _config_differences(ws, experiment)
        _forest(results)
        _comparisons(results)
        results_more.bandit(results)
        results_more.cuped(results)
        results_more.bayesian(results)
        if results.quantile is not None:
            _quantile(results)
        if results.uncapped is not None:
            _uncapped(results)
        if results.guardrails:
            results_more.guardrails(results)
        _overview(results)
        results_more.segments(ws, experiment, results, key)
        _power_calculator(results, key)
        _method(results)
        return results
    return None


# ---- banners and the decision -----------------------------------------------------------------


def _banners(r: ExperimentResults) -> None:
    if not r.srm.ok:
        observed = ", ".join(f"{md(n)}: {u:,}" for n, u in r.srm.observed.items())
        expected = ", ".join(f"{md(n)}: {e:,.0f}" for n, e in r.srm.expected.items())
        st.error(
            f"**Sample ratio mismatch** (chi-square {p_text(r.srm.p_value)} < "
            f"{r.srm.threshold:g}). Users per variant: {observed}; expected from the configured "
            f"split: {expected}. Something in the assignment or the tracking is broken, so these "
            "figures may be biased and no winner is named.",
            icon=":material/warning:",
        )
    if not r.sample_size_ok:
        smallest = min((v.users for v in r.variants), default=0)
        st.warning(
            f"**Sample size**: the smallest variant has {smallest:,} of the "
            f"{r.minimum_sample_size:,} users needed before a winner may be named.",
            icon=":material/hourglass_top:",
        )
        _sample_chart(r)
    for m in r.messages:
        if m.startswith("sample ratio mismatch"):
            continue
        st.info(md(m), icon=":material/info:")


def _summary(r: ExperimentResults) -> None:
    if r.winner is not None:
        st.success(f"**Winner: {md(r.winner)}**. {md(r.winner_reason)}", icon=":material/trophy:")
    else:
        st.info(md(r.winner_reason), icon=":material/balance:")
    if not r.comparisons:
        return
    cols = st.columns(min(4, len(r.comparisons)))
    for i, c in enumerate(r.comparisons):
        label = f"{md(c.treatment)} vs {md(c.control)}"  # labels and help render Markdown
        delta = None
        if c.p_value_adjusted is not None:
            delta = f"adjusted {p_text(c.p_value_adjusted)} · {c.verdict}"
        good = r.direction == "higher"
        cols[i % len(cols)].metric(
            label,
            pct(c.relative_lift) if c.relative_lift is not None else fmt(c.diff),
            delta=delta,
            delta_color="off"
            if c.verdict not in ("better", "worse")
            else ("normal" if (c.verdict == "better") == good else "inverse"),
            help=f"{md(r.metric)}: difference {fmt(c.diff)} "
            f"({c.confidence:.0%} CI {interval(c.ci_low, c.ci_high)})",
        )


# ---- tables -------------------------------------------------------------------------------


def _config_differences(ws: Workspace, e: Experiment) -> None:
    """A caption per treatment whose model configuration differs from the control's
    ("model gpt-4o-mini → gpt-4.1-nano"), so that a same-prompt, other-model test says so."""
    from promptver.chat import describe_config_change
    from promptver.errors import PromptverError

    control = e.variants[0] if e.variants else None
    if control is None or not control.commit:
        return
    for v in e.variants[1:]:
        if not v.commit or v.commit == control.commit:
            continue
        try:
            d = ws.versions.diff(e.template_id, control.commit, v.commit)
        except PromptverError:  # a commit that cannot be read: the results stand without it
            continue
        if d.config_changes:
            st.caption(
                f"**{md(v.name)}** differs from the control in its model configuration: "
                f"{md(describe_config_change(d.config_changes, limit=6))}"
            )


def _variants(r: ExperimentResults) -> None:
    st.markdown(f"**Variants** · {md(r.metric)} (mean per event, {1 - r.alpha:.0%} intervals)")
    with_metric = f"users with {r.metric}"
    rows = [
        {
            "variant": v.name,
            "weight": pct(v.weight, signed=False),
            "users": v.users,
            with_metric: v.metric_users,
            "events": v.events,
            "mean": fmt(v.mean),
            "std": fmt(v.std),
            "CI (analytic)": interval(v.ci_low, v.ci_high),
            "CI (bootstrap)": interval(v.bootstrap_ci_low, v.bootstrap_ci_high),
            "note": v.message or None,
        }
        for v in r.variants
    ]
    table(
        pd.DataFrame(rows),
        {
            "weight": st.column_config.TextColumn("share", help="The configured split"),
            "users": st.column_config.NumberColumn(
                "users", format="localized", help="Users with any event in the window"
            ),
            with_metric: st.column_config.NumberColumn(
                with_metric,
                format="localized",
                help=f"Users with at least one {r.metric} value: the n of the test",
            ),
            "events": st.column_config.NumberColumn("events", format="localized"),
        },
    )
    st.caption(
        f"**users**: users with any event in the window; the split check (SRM) and the "
        f"minimum sample count these. **{md(with_metric)}**: users with a {md(r.metric)} "
        "value, the n of the test, its intervals and the power calculator; fewer when some "
        "users' events do not carry this metric."
    )
    means = means_frame(r.for_metric(r.metric))
    if means.empty:
        return
    rows_px = 60 * max(1, means["variant"].nunique())
    st.altair_chart(
        means_chart(means, f"{r.metric}: mean per event ({unit(r.metric)})").properties(
            height=rows_px + 130  # Streamlit fits the legend and the axis into the height
        ),
        width="stretch",
    )


def _comparisons(r: ExperimentResults) -> None:
    if not r.comparisons:
        return
    rows = [
        {
            "treatment": c.treatment,
            "difference": fmt(c.diff),
            f"CI ({'sequential' if c.method == 'sequential' else 'Welch'})": interval(
                c.ci_low, c.ci_high
            ),
            "CI (bootstrap)": interval(c.bootstrap_ci_low, c.bootstrap_ci_high),
            "CI (BCa)": interval(c.bootstrap_bca_ci_low, c.bootstrap_bca_ci_high),
            "lift": pct(c.relative_lift),
            "lift CI": interval(c.relative_lift_ci_low, c.relative_lift_ci_high, "pct"),
            "p": fmt_p(c.p_value),
            "p (Holm)": fmt_p(c.p_value_adjusted),
            "significant": c.significant,
            "Hedges' g": fmt(c.effect_size, 3),
            "df": fmt(c.df, 4),
            "verdict": c.verdict,
            "note": c.message or None,
        }
        for c in r.comparisons
    ]
    test = "one-sided (worse)" if r.comparisons[0].alternative != "two-sided" else "two-sided"
    st.markdown(
        f"**Comparisons against {md(r.comparisons[0].control)}** · {test}, "
        f"{r.comparisons[0].confidence:.0%} intervals"
    )
    # the figures a reader decides on fit the page; the test details follow in a second,
    # narrow table instead of running off the right edge of one wide one
    main = [
        "treatment",
        "difference",
        *(c for c in rows[0] if c.startswith("CI (")),
        "lift",
        "lift CI",
        "p",
        "p (Holm)",
        "verdict",
    ]
    widths = {"treatment": 110, "difference": 75, "lift": 60, "lift CI": 115, "verdict": 85}
    config: dict = {c: st.column_config.Column(width=widths.get(c, 125)) for c in main}
    config["p"] = config["p (Holm)"] = st.column_config.Column(width=68)
    frame = pd.DataFrame(rows)
    table(frame[main], config)
    table(
        frame[["treatment", "significant", "Hedges' g", "df", "note"]],
        {
            "significant": st.column_config.CheckboxColumn(
                "significant", help="Holm-adjusted p below alpha"
            ),
            "Hedges' g": st.column_config.Column(help="Effect size: the difference in pooled SDs"),
            "df": st.column_config.Column(help="Welch–Satterthwaite degrees of freedom"),
        },
    )


def _quantile(r: ExperimentResults) -> None:
    q = r.quantile
    st.markdown(
        f"**p{q.quantile * 100:g} latency** · bootstrap over users "
        f"({'exact values' if q.method == 'exact' else 'fine histograms'})"
    )
    rows = [
        {
            "variant": v.name,
            "events": f"{v.events:,}",
            f"p{q.quantile * 100:g}": fmt(v.value),
            "CI (bootstrap)": interval(v.bootstrap_ci_low, v.bootstrap_ci_high),
        }
        for v in q.variants
    ]
    for c in q.comparisons:
        rows.append(
            {
                "variant": f"{c.treatment} − {c.control}",
                "events": "",
                f"p{q.quantile * 100:g}": fmt(c.diff),
                "CI (bootstrap)": interval(c.bootstrap_ci_low, c.bootstrap_ci_high),
            }
        )
    table(pd.DataFrame(rows))
    if q.message:
        st.caption(md(q.message))


def _uncapped(r: ExperimentResults) -> None:
    u = r.uncapped
    cap = r.winsorized.cap if r.winsorized else None
    st.markdown(
        f"**Winsorised vs uncapped** · values above {fmt(cap)} "
        f"(p{r.winsorized.percentile:g} of all arms) count as {fmt(cap)}"
    )
    rows = []
    for capped_c, raw_c in zip(r.comparisons, u.comparisons):
        rows.append(
            {
                "treatment": capped_c.treatment,
                "difference (winsorised)": fmt(capped_c.diff),
                "p (winsorised)": fmt_p(capped_c.p_value_adjusted),
                "difference (uncapped)": fmt(raw_c.diff),
                "p (uncapped)": fmt_p(raw_c.p_value_adjusted),
                "CI (uncapped)": interval(raw_c.ci_low, raw_c.ci_high),
            }
        )
    table(pd.DataFrame(rows))


# ---- forest plots (the builders live in promptver.charts, shared with the reports) --------


def _forest(r: ExperimentResults) -> None:
    frame = forest_frame(r.for_metric(r.metric), "abs")
    if frame.empty:
        return
    analytic = "always-valid confidence sequence" if r.method == "sequential" else "Welch"
    st.markdown(
        f"**Difference** · {md(r.metric)}, each treatment − the control "
        f"({1 - r.alpha:.0%} intervals; left of the dashed zero line: lower than the control)"
    )
    st.altair_chart(
        forest_chart(
            frame,
            f"difference in mean {r.metric} per event, treatment − control "
            f"({unit(r.metric)}; analytic = {analytic})",
        ),
        width="stretch",
    )


def _overview(r: ExperimentResults) -> None:
    frames = [forest_frame(m, "rel") for m in r.metrics]
    frame = (
        pd.concat([f for f in frames if not f.empty], ignore_index=True)
        if any(not f.empty for f in frames)
        else pd.DataFrame()
    )
    if frame.empty:
        return
    with st.expander(
        "All metrics: relative lift with analytic and bootstrap intervals",
        expanded=len(r.metrics) > 1,
    ):
        st.altair_chart(
            forest_chart(frame, "relative lift", ".1%"),
            width="stretch",
        )


# ---- power ----------------------------------------------------------------------------------


def _power_calculator(r: ExperimentResults, key: str) -> None:
    with st.expander("Power calculator", expanded=not r.sample_size_ok):
        a, b = st.columns(2)
        lift = a.number_input(
            "Target lift (%)",
            min_value=0.1,
            max_value=1000.0,
            value=5.0,
            step=0.5,
            key=f"{key}_lift",
            help="The relative change you want to be able to detect",
        )
        power = b.select_slider(
            "Power",
            options=[0.7, 0.8, 0.85, 0.9, 0.95],
            value=0.8,
            key=f"{key}_power",
            help="The probability of detecting the target lift if it is real",
        )
        plans = plan_power(r, target_lift=lift / 100, power=power)
        rows = []
        for p in plans:
            rows.append(
                {
                    "treatment": p.treatment,
                    "users now (control / treatment)": f"{p.users_control:,} / {p.users_treatment:,}",
                    "MDE now": f"{fmt(p.mde)} ({pct(p.mde_relative, signed=False)})",
                    f"users needed for {lift:g} %": (
                        f"{p.users_needed_control:,} / {p.users_needed_treatment:,}"
                        if p.users_needed_control is not None
                        else "—"
                    ),
                    "days to go (at the rate so far)": (
                        f"{p.days_to_target:,.1f}" if p.days_to_target is not None else "—"
                    ),
                    "alpha used": f"{p.alpha:.3g}",
                    "note": p.message or None,
                }
            )
        if rows:
            table(pd.DataFrame(rows))
        st.markdown(_sample_sentence(r))
        if r.sample_size_ok:
            _sample_chart(r)
        st.caption(
            f"Users now: users with a {md(r.metric)} value (the n of the test), so they can be "
            "fewer than the users in the Variants table, which counts any event. "
            "MDE: the smallest true difference this sample detects with the chosen power "
            "(two-sided at alpha divided by the number of comparisons; guardrails "
            "one-sided). Users needed follow the configured split."
        )


def _sample_sentence(r: ExperimentResults) -> str:
    smallest = min((v.users for v in r.variants), default=0)
    if r.sample_size_ok:
        return (
            f":green[:material/check_circle:] **Minimum sample reached**: {smallest:,} users "
            f"in the smallest variant ({r.minimum_sample_size:,} needed)"
        )
    share = smallest / max(1, r.minimum_sample_size)
    return (
        f"**Minimum sample**: {smallest:,} of the {r.minimum_sample_size:,} users needed in the "
        f"smallest variant ({share:.0%})"
    )


def _sample_chart(r: ExperimentResults) -> None:
    """Users per variant against the minimum sample (a dashed line): green once reached, blue
    while still growing; never red, since a running experiment short of its sample is on
    track rather than in trouble."""
    import altair as alt

    need = r.minimum_sample_size
    frame = pd.DataFrame(
        [
            {
                "variant": v.name,
                "users": v.users,
                "state": "reached" if v.users >= need else "not yet",
                "minimum": need,
            }
            for v in r.variants
        ]
    )
    if frame.empty:
        return
    y = alt.Y("variant:N", sort=None, title=None, axis=alt.Axis(labelLimit=200))
    bars = (
        alt.Chart(frame)
        .mark_bar(height=14, cornerRadius=2)
        .encode(
            x=alt.X(
                "users:Q",
                title=f"users per variant (minimum {need:,})",
                scale=alt.Scale(domainMax=max(need, int(frame["users"].max())) * 1.05),
            ),
            y=y,
            color=alt.Color(
                "state:N",
                title="minimum sample",
                scale=alt.Scale(domain=list(SAMPLE_COLORS), range=list(SAMPLE_COLORS.values())),
                legend=alt.Legend(orient="top"),
            ),
            tooltip=["variant", alt.Tooltip("users:Q", format=","), "state"],
        )
    )
    line = (
        alt.Chart(pd.DataFrame({"minimum": [need]}))
        .mark_rule(strokeDash=[4, 4], color="#424242")
        .encode(x="minimum:Q")
    )
    st.altair_chart(alt.layer(bars, line).properties(height=30 * len(frame) + 70), width="stretch")


def _method(r: ExperimentResults) -> None:
    with st.expander("How these figures are computed"):
        if r.method == "sequential":
            method = (
                "**Sequential**: always-valid normal-mixture confidence sequences (Howard "
                "et al.); p-values and intervals hold at every look."
            )
        else:
            method = (
                "**Fixed horizon**: Welch's t-test with the delta method; read the "
                "p-values once, at the planned end (use the sequential toggle when you "
                "look every day)."
            )
        unit = "users" if r.bootstrap.unit == "user" else "hashed buckets of users (large sample)"
        st.markdown(
            f"- The estimand is the mean per event, Σ metric / Σ events; the **user** is the unit "
            f"of inference (a user's events are not independent).\n"
            f"- {method}\n"
            f"- Bootstrap: {r.bootstrap.resamples:,} resamples of {unit}, seed "
            f"{r.bootstrap.seed}; percentile and BCa intervals.\n"
            f"- Holm adjustment across the {len(r.comparisons)} comparison(s); alpha "
            f"{r.alpha:g}.\n"
            f"- SRM: chi-square of users per variant against the configured split; flagged below "
            f"p = {r.srm.threshold:g}.\n"
            "- Details and formulas: `docs/statistics.md`."
        )

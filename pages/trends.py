"""Trends: metrics over time per template, version, variant or environment, trend lines,
deployments as markers, changes around deployments, and recommendations.

Deep links: ``/trends?template=qa-basic&metric=latency_p95&period=7d&by=version&env=production``
(``template`` and ``metric`` may repeat; ``bucket`` is hour, day or week)."""

from __future__ import annotations

import streamlit as st

from promptver import PromptverError
from promptver.trends import METRICS, change_tally, duration_text, metric_label
from ui.common import cached, domain_errors, md, no_templates, workspace
from ui.trends import (
    CHANGE_COLUMNS,
    FIT_COLUMNS,
    VERDICT_ICONS,
    analyse,
    change_frame,
    chart,
    fit_notes,
    fits_frame,
)

ws = workspace()

st.title("Trends")
st.caption(
    "How each metric moves over time, bucket by bucket with 95 % confidence bands, with a "
    "robust trend line per series and the deployments marked. Changes around a deployment "
    "compare the windows before and after it: observational evidence, not an experiment."
)

names = [t.name for t in ws.templates.list(include_archived=True)]
if not names:
    no_templates(ws, "then its metrics over time appear here")
    st.stop()

custom = cached(ws.trends.custom_metrics)
METRIC_KEYS = [*METRICS, *(f"custom:{c}" for c in custom)]
PERIODS = ["24h", "3d", "7d", "14d", "30d", "90d"]
GROUPS = ["none", "version", "variant", "environment"]
ENVS = ["any", *ws.settings.deployment.environments]
BUCKETS = ["auto", "hour", "day", "week"]
DEFAULT_METRICS = ["latency_p95", "error_rate", "quality_score"]
QP = ("template", "metric", "period", "by", "env", "bucket")


def _period_ok(text: str) -> str | None:
    """A period from the address, or None when it is not one (then the default is used)."""
    try:
        return duration_text(text)
    except PromptverError:
        return None


# ---- deep links: the address sets the widgets when it changed from outside -----------------

url = {k: st.query_params.get_all(k) for k in QP}
if url != st.session_state.get("trd_url"):
    s = st.session_state
    if url["template"] or "trd_templates" not in s:
        s["trd_templates"] = [t for t in url["template"] if t in names] or names[:1]
    if url["metric"] or "trd_metrics" not in s:
        wanted = [m if m in METRIC_KEYS else f"custom:{m}" for m in url["metric"]]
        s["trd_metrics"] = [m for m in wanted if m in METRIC_KEYS] or DEFAULT_METRICS
    period = _period_ok(url["period"][0]) if url["period"] else None
    if period and period not in PERIODS:
        PERIODS.append(period)
    if period or "trd_period" not in s:
        s["trd_period"] = period or "30d"
    if url["by"] or "trd_by" not in s:
        s["trd_by"] = url["by"][0] if url["by"] and url["by"][0] in GROUPS else "version"
    if url["env"] or "trd_env" not in s:
        s["trd_env"] = url["env"][0] if url["env"] and url["env"][0] in ENVS else ENVS[-1]
    if url["bucket"] or "trd_bucket" not in s:
        s["trd_bucket"] = (
            url["bucket"][0] if url["bucket"] and url["bucket"][0] in BUCKETS else "auto"
        )
elif st.session_state.get("trd_period") not in PERIODS:
    PERIODS.append(st.session_state["trd_period"])

c1, c2 = st.columns([2, 3], vertical_alignment="bottom")
templates = c1.multiselect(
    "Templates", names, key="trd_templates", help="One chart line per template (and group)"
)
metrics = c2.multiselect(
    "Metrics",
    METRIC_KEYS,
    key="trd_metrics",
    format_func=lambda m: metric_label(m) + ("" if m in METRICS else " (custom)"),
    help="One chart per metric. Rates are shown in percent.",
)
c3, c4, c5, c6 = st.columns(4, vertical_alignment="bottom")
period = c3.selectbox("Period", PERIODS, key="trd_period", help="Ending now")
by = c4.selectbox(
    "Series per", GROUPS, key="trd_by", help="One line per version, variant or environment"
)
env = c5.selectbox(
    "Environment",
    ENVS,
    key="trd_env",
    help="Only events of this environment; with one environment, trend lines start at its "
    "latest deployment",
)
bucket = c6.selectbox(
    "Bucket",
    BUCKETS,
    key="trd_bucket",
    help="auto: hours up to 3 days, days up to 90 days, weeks beyond",
)

wanted_url = {
    "template": list(templates),
    "metric": list(metrics),
    "period": [period],
    "by": [by],
    "env": [env],
    "bucket": [bucket],
}
if wanted_url != url:
    st.query_params.from_dict(
        {k: v if k in ("template", "metric") else v[0] for k, v in wanted_url.items()}
    )
st.session_state["trd_url"] = wanted_url

if not templates or not metrics:
    st.info("Pick at least one template and one metric.")
    st.stop()

with domain_errors():
    report = analyse(
        ws,
        str(ws.path),
        ws.db.data_version(),
        tuple(templates),
        tuple(metrics),
        period,
        None if by == "none" else by,
        None if env == "any" else env,
        None if bucket == "auto" else bucket,
    )
    scope = "" if env == "any" else f" in **{md(env)}**"
    st.caption(
        f"{md(report.period)} to {report.end:%Y-%m-%d %H:%M} UTC{scope}, one point per "
        f"{report.bucket}; buckets with fewer than {report.min_bucket_events} events (20 for "
        "p95) are drawn but left out of the trend lines."
        + (
            f" Many events: the intervals pool users into {report.clusters:,} hashed clusters "
            "per bucket, and users are estimated."
            if report.clusters
            else ""
        )
    )

    st.subheader("Recommendations")
    for text in report.recommendations:
        st.markdown(f"- {md(text)}")

    for m in metrics:
        label = metric_label(m)
        st.subheader(label[:1].upper() + label[1:])
        drawn = chart(report, m, label)
        if drawn is None:
            st.info(f"No events with {md(label)} in this period.")
        else:
            st.altair_chart(drawn, width="stretch")
        verdicts = [
            f"{md(s.template + ('' if s.group is None else ' ' + s.group))}: "
            f"{VERDICT_ICONS[s.fit.verdict]}"
            for s in report.series
            if s.metric == m
        ]
        if verdicts:
            st.caption(" · ".join(verdicts))

    st.subheader("Trend lines")
    st.dataframe(
        fits_frame(report),
        hide_index=True,
        width="content",
        key="trd_fits",
        column_config=FIT_COLUMNS,
    )
    for note in fit_notes(report):
        st.caption(md(note))

    st.subheader("Around deployments")
    st.caption(
        "Each metric in the window before a deployment against the window after it (up to 7 "
        "days each, cut at the neighbouring deployments in that environment), users as the "
        "unit, Welch's test (a bootstrap over users for p95 latency) with Holm's adjustment "
        "across the metrics. Observational: other "
        "changes at the same time can explain a difference; an experiment settles it."
    )
    if not report.change_points:
        st.caption("No deployment in this period.")
    for cp in reversed(report.change_points):
        d = cp.deployment
        title = (
            f"{d.template} · {d.action} {d.version or d.commit[:10]} to {d.environment} · "
            f"{d.at:%Y-%m-%d %H:%M} UTC · {change_tally(cp)}"
        )
        with st.expander(md(title), icon=":material/rocket_launch:"):
            st.caption(
                f"before: {cp.before_start:%Y-%m-%d %H:%M} – {d.at:%Y-%m-%d %H:%M}; "
                f"after: {d.at:%Y-%m-%d %H:%M} – {cp.after_end:%Y-%m-%d %H:%M} (UTC)"
            )
            st.dataframe(
                change_frame(cp), hide_index=True, width="content", column_config=CHANGE_COLUMNS
            )

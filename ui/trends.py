"""Charts and tables of the Trends and Alerts screens (layout only: numbers come from
``promptver.trends``). Session-state keys of the Trends screen start with ``trd_``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from promptver.models import ChangePoint, DeploymentMarker, TrendReport, TrendSeries
from promptver.trends import metric_def, p_text, series_name, signed_pct_text, value_text
from promptver.workspace import Workspace

VERDICT_ICONS = {
    "worse": ":red[:material/trending_up: worse]",
    "better": ":green[:material/trending_down: better]",
    "stable": ":gray[stable]",
    "unknown": ":gray[not enough data]",
}


@st.cache_data(show_spinner=False, ttl=60, max_entries=32)
def analyse(
    _ws: Workspace,
    db: str,
    version: tuple,
    templates: tuple[str, ...],
    metrics: tuple[str, ...],
    period: str,
    by: str | None,
    environment: str | None,
    bucket: str | None,
) -> TrendReport:
    """The trend report, cached per selection until the data change (or for a minute, as the
    period's end moves with the clock)."""
    return _ws.trends.analyse(
        list(templates),
        list(metrics),
        period=period,
        by=by,  # type: ignore[arg-type]
        environment=environment,
        bucket=bucket,  # type: ignore[arg-type]
    )


def scale(metric: str) -> float:
    """Rates are drawn in percent."""
    return 100.0 if _unit(metric) == "rate" else 1.0


def _unit(metric: str) -> str:
    try:
        return metric_def(metric).unit
    except KeyError:
        return "value"


def axis_title(metric: str, label: str) -> str:
    unit = {"ms": " (ms)", "rate": " (%)", "usd": " ($)", "tokens": ""}.get(_unit(metric), "")
    return label[:1].upper() + label[1:] + unit


#: the length of a bucket (gaps between points longer than this have no data)
STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}


def series_frame(report: TrendReport, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(points, trend-line ends) of every series of ``metric`` for Altair.

    A bucket without events between two points gets a row without a value, so the line and
    its band break there instead of drawing a straight line across days without traffic.
    """
    k = scale(metric)
    step = STEP[report.bucket]
    rows: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    for s in report.series:
        if s.metric != metric:
            continue
        name = series_name(s, report.by, None)
        previous = None
        for p in s.points:
            if previous is not None and p.bucket - previous > step:
                rows.append(
                    {"series": name, "bucket": previous + step, "value": None, "ci_low": None}
                    | {"ci_high": None, "events": 0, "users": 0, "in fit": "no data"}
                )
            previous = p.bucket
            rows.append(
                {
                    "series": name,
                    "bucket": p.bucket,
                    "value": None if p.value is None else p.value * k,
                    "ci_low": None if p.ci_low is None else p.ci_low * k,
                    "ci_high": None if p.ci_high is None else p.ci_high * k,
                    "events": p.events,
                    "users": p.users,
                    "in fit": "no (too few events)" if p.thin else "yes",
                }
            )
        lines += _line(s, name, k)
    columns = ["series", "bucket", "value", "ci_low", "ci_high", "events", "users", "in fit"]
    return pd.DataFrame(rows, columns=columns), pd.DataFrame(lines)


def _line(s: TrendSeries, name: str, k: float) -> list[dict[str, Any]]:
    f = s.fit
    if f.slope_per_day is None or f.level is None or f.center is None:
        return []
    out = []
    for t in (f.first_bucket, f.last_bucket):
        if t is None:
            continue
        days = (t - f.center) / timedelta(days=1)
        out.append(
            {
                "series": name,
                "bucket": t,
                "trend": (f.level + f.slope_per_day * days) * k,
                "per day": signed_pct_text(f.pct_per_day),
                "p": p_text(f.p_value),
            }
        )
    return out


def marker_label(d: DeploymentMarker, environment: str | None, many: bool) -> str:
    """The label drawn on a deployment's rule: ``1.1.1``, ``↩ 1.1.0`` for a rollback, with the
    environment when the chart covers several, and the template when it shows several."""
    label = d.version or d.commit[:10]
    text = f"rollback to {label}" if d.action == "rollback" else f"deploy {label}"
    if environment is None:
        text += f" ({d.environment})"
    if many:
        text = f"{d.template} {text}"
    return text


def deployment_frame(
    markers: list[DeploymentMarker], environment: str | None = None, many: bool = False
) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "at": d.at,
                "template": d.template,
                "version": d.version or d.commit[:10],
                "environment": d.environment,
                "action": d.action,
                "replaced": d.replaced_version or "–",
                "author": d.author or "–",
                "note": d.note or "–",
                "id": d.deployment_id,
                "label": marker_label(d, environment, many),
            }
            for d in markers
        ],
        columns=[
            "at",
            "template",
            "version",
            "environment",
            "action",
            "replaced",
            "author",
            "note",
            "id",
            "label",
        ],
    )


#: units whose axis starts where the data is (a score between 0.70 and 0.76 drawn from zero
#: is a flat line); latency, rates, cost and tokens keep zero in view
NO_ZERO = {"score", "value"}


def chart(report: TrendReport, metric: str, label: str) -> alt.LayerChart | None:
    """Line per series with its CI band, the dashed trend lines, and a vertical rule at each
    deployment (hover: template, version, environment, time)."""
    points, lines = series_frame(report, metric)
    if points.empty:
        return None
    title = axis_title(metric, label)
    y_scale = alt.Scale(zero=_unit(metric) not in NO_ZERO)
    x = alt.X("bucket:T", title=f"{report.bucket} (UTC)")
    color = alt.Color(
        "series:N",
        title=report.by or "template",
        scale=alt.Scale(scheme="tableau10"),
        legend=alt.Legend(labelLimit=320),
    )
    base = alt.Chart(points)
    # rows without a value (buckets without events) break the line and the band
    band = base.mark_area(opacity=0.18, invalid="break-paths-show-domains").encode(
        x=x, y=alt.Y("ci_low:Q", title=title, scale=y_scale), y2="ci_high:Q", color=color
    )
    line = base.mark_line(point=True, invalid="break-paths-show-domains").encode(
        x=x,
        y=alt.Y("value:Q", title=title, scale=y_scale),
        color=color,
        tooltip=[
            alt.Tooltip("series:N"),
            alt.Tooltip("bucket:T", title="bucket (UTC)", format="%Y-%m-%d %H:%M"),
            alt.Tooltip("value:Q", format=",.4~g"),
            alt.Tooltip("ci_low:Q", title="CI low", format=",.4~g"),
            alt.Tooltip("ci_high:Q", title="CI high", format=",.4~g"),
            alt.Tooltip("events:Q"),
            alt.Tooltip("users:Q"),
            alt.Tooltip("in fit:N"),
        ],
    )
    layers: list[alt.Chart] = [band, line]
    if not lines.empty:
        layers.append(
            alt.Chart(lines)
            .mark_line(strokeDash=[6, 4], strokeWidth=2)
            .encode(
                x=x,
                y="trend:Q",
                color=color,
                detail="series:N",
                tooltip=["series:N", "per day:N", "p:N"],
            )
        )
    deps = deployment_frame(
        [d for d in report.deployments if d.template in set(report.templates)],
        report.environment,
        len(report.templates) > 1,
    )
    if not deps.empty:
        tooltip = [
            alt.Tooltip("template:N"),
            alt.Tooltip("action:N"),
            alt.Tooltip("version:N"),
            alt.Tooltip("environment:N"),
            alt.Tooltip("replaced:N", title="replaced"),
            alt.Tooltip("author:N", title="by"),
            alt.Tooltip("note:N"),
            alt.Tooltip("at:T", title="at (UTC)", format="%Y-%m-%d %H:%M"),
        ]
        rules = alt.Chart(deps)
        # a fixed colour, not a scale: the series own the chart's colour scale
        marker_color = alt.condition(
            "datum.action == 'rollback'", alt.value("#c62828"), alt.value("#555555")
        )
        layers.append(
            rules.mark_rule(strokeWidth=2, strokeDash=[2, 2]).encode(
                x="at:T",
                color=marker_color,
                tooltip=tooltip,
            )
        )
        # the label along the rule, reading upwards, ending at the top of the plot
        layers.append(
            rules.mark_text(
                angle=270, align="right", baseline="bottom", dx=-4, dy=-3, fontSize=11
            ).encode(
                x="at:T",
                y=alt.value(0),
                text="label:N",
                color=marker_color,
                tooltip=tooltip,
            )
        )
    return alt.layer(*layers).properties(height=280).interactive(bind_y=False)


def _p_cell(p: float) -> str:
    """``0.016``, ``< 0.001`` (a table's p column)."""
    return p_text(p).removeprefix("p = ").removeprefix("p ")


def fits_frame(report: TrendReport) -> pd.DataFrame:
    rows = []
    for s in report.series:
        f = s.fit
        rows.append(
            {
                "series": series_name(s, report.by, None),
                "metric": s.label,
                "buckets": f.buckets,
                "level": value_text(s.metric, f.level),
                "per day": signed_pct_text(f.pct_per_day),
                "95% CI per day": "–"
                if f.pct_ci_low is None or f.pct_ci_high is None
                else f"[{signed_pct_text(f.pct_ci_low)}, {signed_pct_text(f.pct_ci_high)}]",
                "p": "–" if f.p_value is None else _p_cell(f.p_value),
                "trend": f.verdict if f.verdict != "unknown" else "not enough data",
                "since": "period start"
                if f.since_at is None
                else f"{f.since_version} → {f.since_environment}, {f.since_at:%Y-%m-%d %H:%M}",
            }
        )
    return pd.DataFrame(rows)


def fit_notes(report: TrendReport) -> list[str]:
    """The notes of the trend lines (too few buckets, a deployment too recent …), one per
    distinct note and series, for the lines under the table (too long for a cell)."""
    notes: dict[str, list[str]] = {}
    for s in report.series:
        if s.fit.message:
            notes.setdefault(f"{series_name(s, report.by, None)}: {s.fit.message}", []).append(
                s.label
            )
    return [f"{text} ({', '.join(labels)})" for text, labels in notes.items()]


FIT_COLUMNS = {
    "series": st.column_config.TextColumn("Series", pinned=True),
    "metric": st.column_config.TextColumn("Metric"),
    "buckets": st.column_config.NumberColumn(
        "Buckets", help="Buckets in the line (enough events each)"
    ),
    "level": st.column_config.TextColumn("Level", help="The line at the middle of its buckets"),
    "per day": st.column_config.TextColumn("Per day", help="Slope in % of the level per day"),
    "95% CI per day": st.column_config.TextColumn("95 % CI per day"),
    "p": st.column_config.TextColumn("p"),
    "trend": st.column_config.TextColumn("Trend"),
    "since": st.column_config.TextColumn(
        "Line since", help="The deployment the line starts at, or the period's start"
    ),
}

CHANGE_COLUMNS = {
    "metric": st.column_config.TextColumn("Metric", pinned=True),
    "before": st.column_config.TextColumn("Before"),
    "after": st.column_config.TextColumn("After"),
    "change": st.column_config.TextColumn("Change"),
    "95% CI of the change": st.column_config.TextColumn(
        "95 % CI of the change", help="Welch (delta method) for means, bootstrap over users for p95"
    ),
    "users before/after": st.column_config.TextColumn("Users before / after"),
    "p (Holm)": st.column_config.TextColumn("p (Holm)"),
    "verdict": st.column_config.TextColumn("Verdict"),
    "note": st.column_config.TextColumn("Note", width="large"),
}


def _ci_cell(m: Any) -> str:
    if m.ci_low is None or m.ci_high is None:
        return "–"
    k = scale(m.metric)
    unit = {"ms": " ms", "rate": " points"}.get(_unit(m.metric), "")
    return f"[{m.ci_low * k:+,.3g}, {m.ci_high * k:+,.3g}]{unit}"


def change_frame(cp: ChangePoint) -> pd.DataFrame:
    rows = []
    for m in cp.metrics:
        rows.append(
            {
                "metric": m.label,
                "before": value_text(m.metric, m.before),
                "after": value_text(m.metric, m.after),
                "change": signed_pct_text(
                    None if m.relative_change is None else 100 * m.relative_change
                ),
                "95% CI of the change": _ci_cell(m),
                "users before/after": f"{m.users_before:,} / {m.users_after:,}",
                "p (Holm)": "–" if m.p_value_adjusted is None else _p_cell(m.p_value_adjusted),
                "verdict": m.verdict,
                "note": m.message or "–",
            }
        )
    return pd.DataFrame(rows)

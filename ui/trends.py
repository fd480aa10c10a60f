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


def series_frame(report: TrendReport, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(points, trend-line ends) of every series of ``metric`` for Altair."""
    k = scale(metric)
    rows: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    for s in report.series:
        if s.metric != metric:
            continue
        name = series_name(s, report.by, None)
        for p in s.points:
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
    return pd.DataFrame(rows), pd.DataFrame(lines)


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


def deployment_frame(markers: list[DeploymentMarker]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "at": d.at,
                "template": d.template,
                "version": d.version or d.commit[:10],
                "environment": d.environment,
                "action": d.action,
                "replaced": d.replaced_version or "–",
                "id": d.deployment_id,
            }
            for d in markers
        ],
        columns=["at", "template", "version", "environment", "action", "replaced", "id"],
    )


def chart(report: TrendReport, metric: str, label: str) -> alt.LayerChart | None:
    """Line per series with its CI band, the dashed trend lines, and a vertical rule at each
    deployment (hover: template, version, environment, time)."""
    points, lines = series_frame(report, metric)
    if points.empty:
        return None
    title = axis_title(metric, label)
    x = alt.X("bucket:T", title=f"{report.bucket} (UTC)")
    color = alt.Color(
        "series:N", title=report.by or "template", scale=alt.Scale(scheme="tableau10")
    )
    base = alt.Chart(points)
    band = (
        base.transform_filter("isValid(datum.ci_low) && isValid(datum.ci_high)")
        .mark_area(opacity=0.18)
        .encode(x=x, y=alt.Y("ci_low:Q", title=title), y2="ci_high:Q", color=color)
    )
    line = base.mark_line(point=True).encode(
        x=x,
        y=alt.Y("value:Q", title=title),
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
    deps = deployment_frame([d for d in report.deployments if d.template in set(report.templates)])
    if not deps.empty:
        layers.append(
            alt.Chart(deps)
            .mark_rule(strokeWidth=2, color="#555", strokeDash=[2, 2])
            .encode(
                x="at:T",
                tooltip=[
                    alt.Tooltip("template:N"),
                    alt.Tooltip("action:N"),
                    alt.Tooltip("version:N"),
                    alt.Tooltip("environment:N"),
                    alt.Tooltip("replaced:N", title="replaced"),
                    alt.Tooltip("at:T", title="at (UTC)", format="%Y-%m-%d %H:%M"),
                ],
            )
        )
    return alt.layer(*layers).properties(height=280).interactive(bind_y=False)


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
                "p": "–" if f.p_value is None else p_text(f.p_value).removeprefix("p "),
                "trend": f.verdict if f.verdict != "unknown" else "not enough data",
                "since": "period start"
                if f.since_at is None
                else f"{f.since_version} → {f.since_environment}, {f.since_at:%Y-%m-%d %H:%M}",
                "note": f.message or "",
            }
        )
    return pd.DataFrame(rows)


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
                "users before/after": f"{m.users_before:,} / {m.users_after:,}",
                "p (Holm)": "–"
                if m.p_value_adjusted is None
                else p_text(m.p_value_adjusted).removeprefix("p "),
                "verdict": m.verdict,
                "note": m.message or "",
            }
        )
    return pd.DataFrame(rows)

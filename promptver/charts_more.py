"""Altair charts of the "More statistics" results: the posterior of the lift and the forest
plot by segment (pure builders, shared by the dashboard and the reports like
:mod:`promptver.charts`)."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from promptver.models.results import MetricResult


def posterior_frame(m: MetricResult, points: int = 121) -> pd.DataFrame:
    """The normal posterior density of each treatment's relative lift, ±4 sd around its mean.

    Columns: treatment, lift, density, good (the lift is on the metric's good side).
    """
    from scipy import stats as sps

    rows = []
    sign = 1 if m.direction == "higher" else -1
    for c in m.comparisons:
        b = c.bayesian
        if b is None or b.posterior_mean is None or not b.posterior_sd:
            continue
        xs = np.linspace(
            b.posterior_mean - 4 * b.posterior_sd, b.posterior_mean + 4 * b.posterior_sd, points
        )
        dens = sps.norm.pdf(xs, b.posterior_mean, b.posterior_sd)
        for x, d in zip(xs, dens):
            rows.append(
                {
                    "treatment": c.treatment,
                    "lift": float(x),
                    "density": float(d),
                    "good": x * sign > 0,
                }
            )
    return pd.DataFrame(rows, columns=["treatment", "lift", "density", "good"])


def posterior_chart(frame: pd.DataFrame, metric: str) -> alt.LayerChart:
    """One density curve per treatment; the area on the good side of zero is the chance to win."""
    base = alt.Chart(frame)
    area = base.mark_area(opacity=0.35).encode(
        x=alt.X(
            "lift:Q", title=f"relative lift of {metric} (posterior)", axis=alt.Axis(format="+.1%")
        ),
        y=alt.Y("density:Q", title="density", axis=alt.Axis(labels=False, ticks=False)),
        color=alt.Color("treatment:N", legend=alt.Legend(orient="top")),
        opacity=alt.condition("datum.good", alt.value(0.45), alt.value(0.12)),
        tooltip=["treatment", alt.Tooltip("lift:Q", format="+.2%")],
    )
    line = base.mark_line().encode(x="lift:Q", y="density:Q", color="treatment:N")
    zero = (
        alt.Chart(pd.DataFrame({"x": [0.0]}))
        .mark_rule(strokeDash=[4, 4], color="#424242")
        .encode(x="x:Q")
    )
    return alt.layer(area, line, zero).properties(height=180)


def segment_forest_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows of ``{"segment","treatment","diff","low","high","significant"}`` as a frame."""
    return pd.DataFrame(
        rows, columns=["segment", "treatment", "diff", "low", "high", "significant"]
    )


def segment_forest_chart(frame: pd.DataFrame, title: str) -> alt.LayerChart:
    """The effect of each treatment in each segment with its interval (one row per segment)."""
    y = alt.Y("segment:N", title=None, sort=None, axis=alt.Axis(labelLimit=220))
    base = alt.Chart(frame)
    rules = base.mark_rule(strokeWidth=3).encode(
        x=alt.X("low:Q", title=title),
        x2="high:Q",
        y=y,
        color=alt.Color("treatment:N", legend=alt.Legend(orient="top")),
        yOffset="treatment:N",
        tooltip=["segment", "treatment", "diff", "low", "high", "significant"],
    )
    points = base.mark_point(filled=True, size=60).encode(
        x="diff:Q", y=y, yOffset="treatment:N", color="treatment:N"
    )
    zero = (
        alt.Chart(pd.DataFrame({"x": [0.0]}))
        .mark_rule(strokeDash=[4, 4], color="#424242")
        .encode(x="x:Q")
    )
    return alt.layer(zero, rules, points).properties(height=alt.Step(28))


def bandit_weights_frame(weights: list) -> pd.DataFrame:
    """The split over time, one row per change and variant (``BanditWeights`` in)."""
    rows = [
        {"at": w.at, "period": w.period, "variant": name, "weight": share}
        for w in weights
        if w.at is not None
        for name, share in w.weights.items()
    ]
    return pd.DataFrame(rows, columns=["at", "period", "variant", "weight"])


def bandit_weights_chart(frame: pd.DataFrame) -> alt.Chart:
    """Each variant's share of new users over time (a step line per variant)."""
    return (
        alt.Chart(frame)
        .mark_line(interpolate="step-after", point=True)
        .encode(
            x=alt.X("at:T", title="time (UTC)"),
            y=alt.Y("weight:Q", title="share of new users", axis=alt.Axis(format=".0%")),
            color=alt.Color("variant:N", legend=alt.Legend(orient="top")),
            tooltip=["variant", "period", alt.Tooltip("weight:Q", format=".1%"), "at:T"],
        )
        .properties(height=180)
    )

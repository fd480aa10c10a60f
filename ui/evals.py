"""Pieces of the Evaluations screen: tables, Altair charts, output diffs, report downloads.

Numbers come from :mod:`promptver.evals` (the comparison and the paired items); this module only
lays them out. User text (item ids, outputs) reaches HTML only through ``html.escape`` (the
History screen's side-by-side diff) and Markdown only through ``md``/``code``.
"""

from __future__ import annotations

from functools import partial

import altair as alt
import pandas as pd
import streamlit as st

from promptver.diffing import diff_texts
from promptver.evals.models import EvalComparison, EvalRun, PairedItem
from promptver.evals.report import comparison_filename, render_comparison
from promptver.report_formats import FORMATS
from ui.history import side_by_side_html

COMPARISON_COLUMNS = {
    "metric": st.column_config.TextColumn("Metric", width=120),
    "better": st.column_config.TextColumn("Better", width=60, help="which way is better"),
    "items": st.column_config.NumberColumn("Items", format="localized", width=60),
    "baseline": st.column_config.NumberColumn("Baseline", format="%.4f", width=80),
    "candidate": st.column_config.NumberColumn("Candidate", format="%.4f", width=80),
    "diff": st.column_config.NumberColumn(
        "Diff", format="%+.4f", width=80, help="mean over items of candidate − baseline"
    ),
    "ci": st.column_config.TextColumn("CI", width=150, help="paired t-test interval"),
    "p_adjusted": st.column_config.NumberColumn(
        "p (Holm)", format="%.4f", width=80, help="paired t-test, Holm-adjusted across metrics"
    ),
    "wilcoxon": st.column_config.NumberColumn(
        "p (Wilcoxon)", format="%.4f", width=90, help="signed-rank test, zeros dropped"
    ),
    "wtl": st.column_config.TextColumn("W / T / L", width=90, help="items won, tied, lost"),
    "significant": st.column_config.CheckboxColumn("Significant", width=80),
    "note": st.column_config.TextColumn("Note", width="medium"),
}


def _ci(low: float | None, high: float | None) -> str:
    return "–" if low is None or high is None else f"{low:+.4f} to {high:+.4f}"


def comparison_frame(cmp: EvalComparison) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "metric": m.name,
                "better": m.direction,
                "items": m.items,
                "baseline": m.baseline_mean,
                "candidate": m.candidate_mean,
                "diff": m.diff,
                "ci": _ci(m.ci_low, m.ci_high),
                "p_adjusted": m.p_value_adjusted,
                "wilcoxon": m.wilcoxon_p_value,
                "wtl": f"{m.wins} / {m.ties} / {m.losses}",
                "significant": m.significant,
                "note": m.message or "",
            }
            for m in cmp.metrics
        ],
        columns=list(COMPARISON_COLUMNS),
    )


def calibrated_frame(cmp: EvalComparison) -> pd.DataFrame:
    rows = []
    for m in cmp.metrics:
        c = m.calibrated
        if c is None:
            continue
        rows.append(
            {
                "metric": m.name,
                "judge (baseline)": m.baseline_mean,
                "calibrated (baseline)": c.baseline_mean,
                "CI (baseline)": _ci(c.baseline_ci_low, c.baseline_ci_high),
                "judge (candidate)": m.candidate_mean,
                "calibrated (candidate)": c.candidate_mean,
                "CI (candidate)": _ci(c.candidate_ci_low, c.candidate_ci_high),
                "labelled": f"{c.baseline_labelled_items} / {c.candidate_labelled_items}",
                "judge − human": c.agreement.mean_bias,
                "correlation": c.agreement.correlation,
            }
        )
    return pd.DataFrame(rows)


def runs_frame(runs: list[EvalRun]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "version": r.label,
                "commit": r.commit[:10],
                "items": r.items,
                "rows": r.rows,
                "scores": ", ".join(r.metrics),
                "file": r.file_name,
                "imported": r.created_at,
                "by": r.created_by,
            }
            for r in runs
        ]
    )


def items_frame(items: list[PairedItem]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "item": i.item_id,
                "baseline": i.baseline,
                "candidate": i.candidate,
                "diff": i.diff,
                "baseline output": i.baseline_output,
                "candidate output": i.candidate_output,
            }
            for i in items
        ],
        columns=["item", "baseline", "candidate", "diff", "baseline output", "candidate output"],
    )


def scatter_chart(items: list[PairedItem], metric: str, base: str, cand: str) -> alt.Chart:
    """Baseline against candidate per item; points above the diagonal are better (higher)."""
    frame = items_frame(items)[["item", "baseline", "candidate", "diff"]]
    lo = float(min(frame["baseline"].min(), frame["candidate"].min()))
    hi = float(max(frame["baseline"].max(), frame["candidate"].max()))
    diagonal = (
        alt.Chart(pd.DataFrame({"x": [lo, hi], "y": [lo, hi]}))
        .mark_line(color="#999", strokeDash=[4, 4])
        .encode(x="x:Q", y="y:Q")
    )
    points = (
        alt.Chart(frame)
        .mark_circle(size=36, opacity=0.6)
        .encode(
            x=alt.X("baseline:Q", title=f"{metric} · baseline {base}", scale=alt.Scale(zero=False)),
            y=alt.Y(
                "candidate:Q", title=f"{metric} · candidate {cand}", scale=alt.Scale(zero=False)
            ),
            tooltip=[
                "item:N",
                alt.Tooltip("baseline:Q", format=".4f"),
                alt.Tooltip("candidate:Q", format=".4f"),
                alt.Tooltip("diff:Q", format="+.4f"),
            ],
        )
    )
    return (diagonal + points).properties(height=320)


def diff_histogram(items: list[PairedItem], metric: str) -> alt.Chart:
    """Histogram of the item differences (candidate − baseline), with 0 marked."""
    frame = pd.DataFrame({"diff": [i.diff for i in items]})
    bars = (
        alt.Chart(frame)
        .mark_bar(opacity=0.8)
        .encode(
            x=alt.X("diff:Q", bin=alt.Bin(maxbins=40), title=f"{metric}: candidate − baseline"),
            y=alt.Y("count():Q", title="items"),
        )
    )
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(color="#c00").encode(x="x:Q")
    return (bars + zero).properties(height=320)


def output_diff(baseline: str | None, candidate: str | None, base: str, cand: str) -> None:
    """Both outputs side by side with the changed words highlighted (escaped HTML)."""
    diff = diff_texts(baseline or "", candidate or "")
    st.html(side_by_side_html(diff, f"baseline {base}", f"candidate {cand}"))


BUTTONS = [
    ("html", "HTML", "A self-contained page: the comparison, calibrated scores, regressions"),
    ("md", "Markdown", "The same content as text and tables"),
    ("csv", "CSV", "One row per metric with every figure"),
    ("json", "JSON", "The eval compare object, for programs"),
]


def report_downloads(cmp: EvalComparison) -> None:
    """Four download buttons (built only when clicked)."""
    st.markdown("**Export the comparison**")
    cols = st.columns(len(BUTTONS))
    for col, (fmt, label, help_text) in zip(cols, BUTTONS, strict=True):
        col.download_button(
            label,
            data=partial(render_comparison, cmp, fmt),
            file_name=comparison_filename(cmp, fmt),
            mime=FORMATS[fmt][0],
            key=f"ev_rep_{fmt}",
            help=help_text,
            icon=":material/download:",
            on_click="ignore",
            width="stretch",
        )

"""Rendering helpers of the Experiments screen: safe text, status badges, the split chart."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import altair as alt
import pandas as pd
import streamlit as st

from promptver import PromptverError
from ui.common import md as common_md
from ui.common import problems_frame

STATUS = {
    "draft": ("Draft", "gray", ":material/edit_note:"),
    "running": ("Running", "green", ":material/play_circle:"),
    "completed": ("Completed", "blue", ":material/check_circle:"),
    "stopped": ("Stopped early", "orange", ":material/stop_circle:"),
}


def md(text: str) -> str:
    """User text (experiment and variant names, reasons …) made inert inside Markdown."""
    return common_md(text, keep_lines=True)


def when(value: datetime | None, empty: str = "—") -> str:
    """A time as ``YYYY-MM-DD HH:MM UTC``."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else empty


def percent(x: float) -> str:
    return f"{100 * x:.1f} %"


def split_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The synthetic split as a display table (observed against target, in percent)."""
    rows = []
    for r in frame.itertuples(index=False):
        label = r.variant if r.variant is not None else "(outside coverage)"
        rows.append(
            {
                "variant": label,
                "target %": round(100 * r.target, 2),
                "users": int(r.users),
                "observed %": round(100 * r.share, 2),
                "difference (points)": round(100 * (r.share - r.target), 2),
            }
        )
    return pd.DataFrame(
        rows, columns=["variant", "target %", "users", "observed %", "difference (points)"]
    )


def split_chart(table: pd.DataFrame) -> alt.LayerChart:
    """Observed share per variant (bars) against the configured target (black ticks)."""
    order = list(table["variant"])
    base = alt.Chart(table).encode(
        x=alt.X("variant:N", sort=order, title=None, axis=alt.Axis(labelAngle=0)),
    )
    bars = base.mark_bar(opacity=0.8).encode(
        y=alt.Y("observed %:Q", title="share of synthetic users (%)"),
        tooltip=["variant", "users", "observed %", "target %", "difference (points)"],
    )
    ticks = base.mark_tick(color="black", thickness=3, size=40).encode(
        y="target %:Q",
        tooltip=["variant", "target %"],
    )
    return (bars + ticks).properties(height=260)


def show_error(exc: PromptverError) -> None:
    """A domain error, its text escaped: experiment names, variant names and reasons are free
    text and must not turn into Markdown. Several problems are listed as a table."""
    problems = getattr(exc, "problems", None) or []
    if len(problems) > 1:
        st.error(md(exc.message.split(":")[0]) + f": {len(problems)} problems")
        st.dataframe(problems_frame(problems), hide_index=True, width="stretch")
    else:
        st.error(md(exc.message))


@contextmanager
def domain_errors() -> Iterator[None]:
    """Show promptver's own errors (escaped); anything else propagates (it is a bug)."""
    try:
        yield
    except PromptverError as exc:
        show_error(exc)

"""Rendering helpers of the Experiments screen: safe text, status badges, the split chart."""

from __future__ import annotations

import re
from datetime import datetime

import altair as alt
import pandas as pd

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:])")

STATUS = {
    "draft": ("Draft", "gray", ":material/edit_note:"),
    "running": ("Running", "green", ":material/play_circle:"),
    "completed": ("Completed", "blue", ":material/check_circle:"),
    "stopped": ("Stopped early", "orange", ":material/stop_circle:"),
}


def md(text: str) -> str:
    """User text (experiment and variant names, reasons …) made inert inside Markdown."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", "  \n")


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

"""Rendering helpers of the Experiments screen: safe text, status badges, the split chart."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from promptver import PromptverError
from promptver.errors import Problem
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


def table(frame: pd.DataFrame, column_config: dict | None = None, *, where: Any = st) -> None:
    """A table sized to its rows (no inner scroll bar, no empty space below), missing values as
    a dash, and a ``note`` column only when some row has a note."""
    if "note" in frame and not frame["note"].fillna("").astype(str).str.strip().any():
        frame = frame.drop(columns="note")
    where.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        height="content",
        placeholder="—",
        column_config=column_config,
    )


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


# ---- the form's problems, in the form's own words ----------------------------------------------

#: experiment-file fields → (the form's slot, the label of its widget)
FORM_LABELS = {
    "name": "Name",
    "template": "Template",
    "environment": "Environment",
    "hypothesis": "Hypothesis",
    "description": "Description",
    "variants": "Variants",
    "metrics": "Primary metric",
    "guardrails": "Guardrails",
    "alpha": "Significance level α",
    "minimum_sample_size": "Minimum sample (users per variant)",
    "coverage": "Coverage",
    "salt": "Salt",
    "start": "Start (UTC)",
    "end": "End (UTC)",
    "allow_same_commit": "Same commit on purpose",
    "engine": "Decision engine",
    "allocation": "Allocation",
    "cuped": "CUPED lookback (days, 0 = off)",
    "cuped.lookback_days": "CUPED lookback (days, 0 = off)",
}
_VARIANT = re.compile(r"variants\[(\d+)\](?:\.(\w+))?")
_METRIC = re.compile(r"(metrics|guardrails)\[(\d+)\](?:\.\w+)?")
_VARIANT_PART = {"name": "name", "ref": "ref", "weight": "share of traffic"}


def form_slot(field: str | None) -> tuple[str, str]:
    """Where the form shows a problem of ``field`` and the label it names it by.

    ``variants[1].name`` → (``variants[1].name``, "Variant 2 name"); ``metrics[0]`` → the
    primary metric picker, ``metrics[2]`` the secondary ones, ``guardrails[0]`` the guardrails.
    Unknown fields go to the ``""`` slot (shown by the save button) under their own name.
    """
    field = field or ""
    m = _VARIANT.fullmatch(field)
    if m:
        i, part = int(m.group(1)), m.group(2) or "name"
        part = part if part in _VARIANT_PART else "name"
        return f"variants[{i}].{part}", f"Variant {i + 1} {_VARIANT_PART[part]}"
    m = _METRIC.fullmatch(field)
    if m:
        if m.group(1) == "guardrails":
            return "guardrails", "Guardrails"
        if m.group(2) == "0":
            return "metrics", "Primary metric"
        return "secondary", "Secondary metrics"
    if field in FORM_LABELS:
        return field, FORM_LABELS[field]
    return "", field or "Experiment"


def form_message(problem: Problem) -> str:
    """A problem as the form says it: the widget's label, then the message, where any
    ``variants[i]`` it mentions reads "Variant i+1" (plain text: escape it before Markdown)."""
    _, label = form_slot(problem.field)
    text = _VARIANT.sub(lambda m: f"Variant {int(m.group(1)) + 1}", problem.message)
    return f"{label}: {text}"


def group_problems(problems: Sequence[Problem]) -> dict[str, list[str]]:
    """The form's problems by slot (see :func:`form_slot`), each in the form's words."""
    out: dict[str, list[str]] = {}
    for p in problems:
        out.setdefault(form_slot(p.field)[0], []).append(form_message(p))
    return out


def show_problems(slot: Any, messages: list[str], *, warning: bool = False) -> None:
    """Messages under a field (``slot`` is the placeholder or column under it), escaped."""
    if not messages:
        return
    text = "  \n".join(md(m) for m in messages)
    if warning:
        slot.warning(text, icon=":material/warning:")
    else:
        slot.error(text, icon=":material/error:")

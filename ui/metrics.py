"""Tables of the Metrics screen: the CSV preview with its bad cells marked, the problem list,
the import history (imports and refused attempts), recent events.

Session-state keys of the screen start with ``met_``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

from promptver.models import CsvPreview, ImportAttempt, ImportProblem, ImportRecord, MetricEvent

#: how a cell named by a problem looks (a light red fill with dark red text, readable in both
#: themes' tables)
BAD_CELL = "background-color: #fde0dc; color: #8c1d18; font-weight: 600"
LINE = "line"


def bad_cells(problems: Sequence[ImportProblem]) -> dict[int, set[str]]:
    """Line → the columns a problem names there (``line`` for a problem of the whole row)."""
    out: dict[int, set[str]] = {}
    for p in problems:
        if p.line is not None:
            out.setdefault(p.line, set()).add(p.column or LINE)
    return out


def records_frame(
    names: list[str], lines: Sequence[int], rows: Sequence[list[str]]
) -> pd.DataFrame:
    """Records as text under the header's names, with their line first; cells beyond the
    header (a ragged row) get ``(extra N)`` columns."""
    width = max([len(names), *(len(r) for r in rows)])
    headers = names + [f"(extra {i})" for i in range(1, width - len(names) + 1)]
    body = [[*r, *([""] * (width - len(r)))] for r in rows]
    frame = pd.DataFrame(body, columns=headers, dtype="string")
    frame.insert(0, LINE, list(lines))
    return frame


def highlight(frame: pd.DataFrame, cells: dict[int, set[str]]) -> Any:
    """A Styler that marks the cells problems name (``frame`` has a ``line`` column)."""

    def css(f: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame("", index=f.index, columns=f.columns)
        for i, line in enumerate(f[LINE]):
            for col in cells.get(int(line), ()):
                if col in out.columns:
                    out.iloc[i, out.columns.get_loc(col)] = BAD_CELL
                else:  # a row-level problem, or a column this row lacks: mark the line
                    out.iloc[i, 0] = BAD_CELL
        return out

    return frame.style.apply(css, axis=None)


#: the line column of the record tables (the header's names follow, sized to their content)
RECORD_COLUMNS = {LINE: st.column_config.NumberColumn("Line", format="%d", width=50)}


def preview_frame(preview: CsvPreview) -> pd.DataFrame:
    names = [c.name for c in preview.columns]
    lines = preview.lines or list(range(2, 2 + len(preview.rows)))
    return records_frame(names, lines, preview.rows)


def problems_frame(problems: Sequence[ImportProblem]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"line": p.line, "column": p.column, "problem": p.message} for p in problems],
        columns=["line", "column", "problem"],
    ).astype({"line": "Int64"})


PROBLEM_COLUMNS = {
    "line": st.column_config.NumberColumn("Line", format="%d", width=60),
    "column": st.column_config.TextColumn("Column", width=130),
    "problem": st.column_config.TextColumn("Problem", width="large"),
}


def history_frame(records: Sequence[ImportRecord]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "when (UTC)": r.created_at,
                "file": r.file_name,
                "who": r.created_by,
                "imported": r.rows_imported,
                "skipped": r.rows_skipped_duplicate,
                "still stored": r.events_present,
                "event ids": r.has_event_ids,
                "sha256": r.sha256[:12] + "…",
                "import id": r.id,
            }
            for r in records
        ]
    )


HISTORY_COLUMNS = {
    "when (UTC)": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm"),
    "file": st.column_config.TextColumn("File", width="medium"),
    "who": st.column_config.TextColumn("Who", width=120),
    "imported": st.column_config.NumberColumn("Imported", format="localized", width=85),
    "skipped": st.column_config.NumberColumn(
        "Skipped", format="localized", width=75, help="Rows whose event_id was already stored"
    ),
    "still stored": st.column_config.NumberColumn(
        "Still stored", format="localized", width=90, help="What retention has left of it"
    ),
    "event ids": st.column_config.CheckboxColumn(
        "Event ids", width=80, help="Every row had an event_id (re-imports skip them)"
    ),
    "sha256": st.column_config.TextColumn("SHA-256", width=120),
    "import id": st.column_config.TextColumn("Import id", width=140),
}


def attempts_frame(attempts: Sequence[ImportAttempt]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "when (UTC)": a.attempted_at,
                "file": a.file_name,
                "who": a.attempted_by,
                "problems": a.total_problems,
                "reason": a.reason,
                "sha256": (a.sha256[:12] + "…") if a.sha256 else None,
            }
            for a in attempts
        ]
    )


ATTEMPT_COLUMNS = {
    "when (UTC)": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm"),
    "file": st.column_config.TextColumn("File", width="medium"),
    "who": st.column_config.TextColumn("Who", width=120),
    "problems": st.column_config.NumberColumn("Problems", format="localized", width=80),
    "reason": st.column_config.TextColumn("Why it was refused", width="large"),
    "sha256": st.column_config.TextColumn("SHA-256", width=120),
}


def events_frame(events: Sequence[MetricEvent]) -> pd.DataFrame:
    frame = pd.DataFrame([e.model_dump() for e in events])
    frame["custom"] = frame["custom"].map(
        lambda d: ", ".join(f"{k}={v:g}" for k, v in d.items()) if d else None
    )
    return frame


#: columns of the recent-events table always shown, then the optional groups
EVENT_BASE = [
    "timestamp",
    "template",
    "version",
    "environment",
    "user_id",
    "latency_ms",
    "success",
    "error",
    "quality_score",
    "cost_usd",
]
EVENT_GROUPS = {
    "Experiment": ["experiment_id", "variant"],
    "Tokens": ["tokens_in", "tokens_out"],
    "Custom metrics": ["custom"],
    "Ids": ["event_id", "import_id"],
}
EVENT_COLUMNS = {
    "timestamp": st.column_config.DatetimeColumn("Time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "template": st.column_config.TextColumn("Template", width=140),
    "version": st.column_config.TextColumn("Version", width=70),
    "environment": st.column_config.TextColumn("Environment", width=105),
    "user_id": st.column_config.TextColumn("User", width=100),
    "experiment_id": st.column_config.TextColumn("Experiment", width=120),
    "variant": st.column_config.TextColumn("Variant", width=90),
    "latency_ms": st.column_config.NumberColumn("Latency (ms)", format="%.0f", width=95),
    "success": st.column_config.CheckboxColumn("Success", width=70),
    "error": st.column_config.CheckboxColumn("Error", width=60),
    "quality_score": st.column_config.NumberColumn("Quality", format="%.3f", width=70),
    "cost_usd": st.column_config.NumberColumn("Cost ($)", format="%.4f", width=80),
    "tokens_in": st.column_config.NumberColumn("Tokens in", format="%d", width=80),
    "tokens_out": st.column_config.NumberColumn("Tokens out", format="%d", width=85),
    "custom": st.column_config.TextColumn("Custom metrics", width="medium"),
    "event_id": st.column_config.TextColumn("Event id", width=130),
    "import_id": st.column_config.TextColumn("Import id", width=140),
}


def event_columns(groups: Sequence[str]) -> list[str]:
    """The columns to show: the base ones, then the chosen groups' in a fixed order."""
    return EVENT_BASE + [c for g in EVENT_GROUPS if g in groups for c in EVENT_GROUPS[g]]

"""Download buttons for an experiment's reports (HTML, Markdown, CSV, JSON).

The reports are made by :mod:`promptver.reports`; this module only offers them. Each button gets
a callable rather than bytes, so Streamlit builds the file only when it is clicked (on a worker
thread), and drawing the Results tab costs nothing. The report uses the results the tab shows
(same metric options), so the file matches the screen. Widget keys start with ``rep_``.
"""

from __future__ import annotations

from functools import partial

import streamlit as st

from promptver.models import Experiment, ExperimentResults
from promptver.reports import FORMATS, render_report, report_filename
from promptver.workspace import Workspace

BUTTONS = [
    ("html", "HTML", "A self-contained page with charts; opens offline and prints on A4"),
    ("md", "Markdown", "The same content as text and tables, for a wiki or a pull request"),
    ("csv", "CSV", "One row per variant and metric with every figure, for a spreadsheet"),
    ("json", "JSON", "The results object with the configuration, for programs"),
]


def report_downloads(ws: Workspace, experiment: Experiment, results: ExperimentResults) -> None:
    """Four download buttons, one per report format, under an "Export report" heading."""
    st.markdown("**Export report** · decision, configuration, prompts and diffs, every metric")
    cols = st.columns(len(BUTTONS))
    for col, (fmt, label, help_text) in zip(cols, BUTTONS):
        col.download_button(
            label,
            data=partial(render_report, ws, experiment, fmt, results=results),
            file_name=report_filename(experiment, fmt),
            mime=FORMATS[fmt][0],
            key=f"rep_{fmt}",
            help=help_text,
            icon=":material/download:",
            on_click="ignore",
            width="stretch",
        )

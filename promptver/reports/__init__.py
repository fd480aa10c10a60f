"""Exported experiment reports: HTML, Markdown, CSV and JSON, each returned as bytes.

One function per format, used by the CLI (``promptver report``) and the Experiments screen
(download buttons)::

    from promptver.reports import report_html, render_report
    data = report_html(ws, "concise-vs-control")          # bytes, UTF-8
    data = render_report(ws, exp_id, "csv", sequential=True)

Each call collects the experiment, its variants' commits and their diffs against the control,
the results of every metric (``ws.experiment_results``), the template's deployment timeline and
the experiment's history (:mod:`promptver.reports.gather`), then renders one format. Formats and
their safety rules: docs/reports.md.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from promptver.models.experiments import Experiment
from promptver.models.results import ExperimentResults
from promptver.report_formats import FORMATS, check_format, format_from_path, report_filename
from promptver.reports.gather import SCHEMA_VERSION, Report, gather
from promptver.reports.to_csv import report_csv as _csv
from promptver.reports.to_html import report_html as _html
from promptver.reports.to_json import report_json as _json
from promptver.reports.to_markdown import report_markdown as _markdown

if TYPE_CHECKING:
    from promptver.workspace import Workspace

__all__ = [
    "FORMATS",
    "SCHEMA_VERSION",
    "Report",
    "format_from_path",
    "gather",
    "render_report",
    "report_csv",
    "report_filename",
    "report_html",
    "report_json",
    "report_markdown",
]

_RENDERERS: dict[str, Callable[[Report], bytes]] = {
    "html": _html,
    "md": _markdown,
    "csv": _csv,
    "json": _json,
}


def _report(
    ws: Workspace,
    ref: str | Experiment,
    fmt: str,
    results: ExperimentResults | None,
    now: datetime | None,
    options: dict[str, Any],
) -> bytes:
    return _RENDERERS[fmt](gather(ws, ref, results=results, now=now, **options))


def report_html(
    ws: Workspace,
    experiment_ref: str | Experiment,
    *,
    results: ExperimentResults | None = None,
    now: datetime | None = None,
    **options: Any,
) -> bytes:
    """A self-contained, printable HTML report (inline CSS and SVG charts, no scripts, no
    network requests), UTF-8.

    Args:
        ws: the workspace.
        experiment_ref: the experiment's id or name, or the model.
        results: results already computed (default: ``ws.experiment_results(ref, **options)``;
            an ended experiment answers with its frozen final results).
        now: the time stamp printed in the report (default: now).
        options: analysis options of :func:`promptver.analysis.experiment_results`
            (``sequential``, ``winsorize``, ``resamples``, ``seed``, ``target_lift`` …).

    Raises:
        NotFound: unknown experiment.
        ValidationError: an invalid analysis option.
    """
    return _report(ws, experiment_ref, "html", results, now, options)


def report_markdown(
    ws: Workspace,
    experiment_ref: str | Experiment,
    *,
    results: ExperimentResults | None = None,
    now: datetime | None = None,
    **options: Any,
) -> bytes:
    """The report as GitHub-flavoured Markdown (user text escaped, prompts fenced), UTF-8.
    Arguments as :func:`report_html`."""
    return _report(ws, experiment_ref, "md", results, now, options)


def report_csv(
    ws: Workspace,
    experiment_ref: str | Experiment,
    *,
    results: ExperimentResults | None = None,
    now: datetime | None = None,
    **options: Any,
) -> bytes:
    """One CSV row per variant × metric with every figure (RFC 4180, UTF-8 with a byte order
    mark, formula-like text cells neutralised). Arguments as :func:`report_html`."""
    return _report(ws, experiment_ref, "csv", results, now, options)


def report_json(
    ws: Workspace,
    experiment_ref: str | Experiment,
    *,
    results: ExperimentResults | None = None,
    now: datetime | None = None,
    **options: Any,
) -> bytes:
    """The contract's results object plus configuration and metadata, with ``schema_version``
    (UTF-8 JSON). Arguments as :func:`report_html`."""
    return _report(ws, experiment_ref, "json", results, now, options)


def render_report(
    ws: Workspace,
    experiment_ref: str | Experiment,
    fmt: str,
    *,
    results: ExperimentResults | None = None,
    now: datetime | None = None,
    **options: Any,
) -> bytes:
    """The report in ``fmt`` (``html``, ``md``, ``csv`` or ``json``).

    Raises:
        ValidationError: an unknown format (the message lists the formats).
        NotFound: unknown experiment.
    """
    fmt = check_format(fmt)
    return _report(ws, experiment_ref, fmt, results, now, options)

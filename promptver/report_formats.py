"""The report formats and their file names, without the renderers.

The CLI builds its ``--format`` help from :data:`FORMATS` and checks a format before anything
is computed; importing :mod:`promptver.reports` would load the renderers (Altair, vl-convert,
the analysis). :mod:`promptver.reports` re-exports every name here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from promptver.errors import Problem, ValidationError

if TYPE_CHECKING:
    from promptver.models.experiments import Experiment

#: format → (MIME type, file extension)
FORMATS: dict[str, tuple[str, str]] = {
    "html": ("text/html", "html"),
    "md": ("text/markdown", "md"),
    "csv": ("text/csv", "csv"),
    "json": ("application/json", "json"),
}
_SUFFIXES = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md", ".csv": "csv"}
_SUFFIXES[".json"] = "json"


def check_format(fmt: str) -> str:
    """``fmt`` normalised (``markdown`` → ``md``, ``htm`` → ``html``), or a clear error."""
    key = str(fmt).strip().lower()
    key = {"markdown": "md", "htm": "html"}.get(key, key)
    if key not in FORMATS:
        raise ValidationError(
            f"unknown report format {fmt!r}: use one of {', '.join(FORMATS)}",
            [Problem(f"must be one of {', '.join(FORMATS)}", field="format")],
        )
    return key


def format_from_path(path: str | Path) -> str | None:
    """The format a file name implies (``report.html`` → ``html``), or None."""
    return _SUFFIXES.get(Path(path).suffix.lower())


def report_filename(experiment: Experiment, fmt: str) -> str:
    """A safe file name for a download: ``report-<name>.<ext>`` (name reduced to
    letters, digits, ``-``, ``_`` and ``.``; the id when nothing is left)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", experiment.name).strip("-._")[:60] or experiment.id
    return f"report-{slug}.{FORMATS[check_format(fmt)][1]}"

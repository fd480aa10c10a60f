"""What the metric-events import tells its user besides a refusal.

The warnings on an accepted file (a custom column named like a built-in, events outside the
screens' window or the retention, events before their version's deployment), the problem list
of a refusal as records and as a CSV file, and the preview of a file and of the records a
refusal names.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from promptver.config import Settings
from promptver.errors import ImportError_
from promptver.metrics.csv_columns import BUILTIN, KEYS, REQUIRED, Header, read_header
from promptver.models.metrics import CsvPreview, CsvWarning, ImportProblem
from promptver.store import metric_imports as sql

# ---- warnings, hints and the problem list ---------------------------------------------------

#: the window the Metrics screen and :meth:`MetricsService.figures` show unless told otherwise
DEFAULT_WINDOW = timedelta(days=7)
#: before-deployment warnings listed at most (one per template, version and environment)
MAX_WARNINGS = 20


def did_you_mean(value: str | None, names: list[str]) -> str:
    """`` (did you mean 'NAME'?)`` for the known name closest to ``value``, or ``""``.

    Case is ignored (``QA-Basic`` finds ``qa-basic``); difflib's default similarity cutoff
    (0.6) keeps unrelated names out.
    """
    if not value or not names:
        return ""
    lowered = {n.lower(): n for n in names}
    close = difflib.get_close_matches(value.strip().lower(), list(lowered), n=1)
    return f" (did you mean '{lowered[close[0]]}'?)" if close else ""


def _events(n: int) -> str:
    return f"{n:,} event{'' if n == 1 else 's'}"


def _warnings(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    header: Header,
    relation: str,
    params: list,
    now: datetime,
) -> list[CsvWarning]:
    """What an accepted file should be told about; ``relation`` holds the rows that land."""
    out: list[CsvWarning] = []
    for col in header.custom:
        hint = did_you_mean(col, [*BUILTIN, *REQUIRED, *KEYS])
        if hint:
            out.append(
                CsvWarning(
                    code="custom_near_builtin",
                    column=col,
                    message=f"column '{col}' is imported as a custom metric{hint}",
                )
            )
    tracking = settings.performance_tracking
    days = DEFAULT_WINDOW.days
    retention = tracking.metrics_retention_days
    total, oldest, (old, expiring) = sql.older_than(
        con, relation, params, [now - DEFAULT_WINDOW, now - timedelta(days=retention)]
    )
    if old:
        lookback = tracking.alert_lookback_days
        out.append(
            CsvWarning(
                code="outside_window",
                rows=old,
                message=(
                    f"{old:,} of the {_events(total)} {'is' if old == 1 else 'are'} older than "
                    f"{days} days (the oldest "
                    f"from {oldest:%Y-%m-%d %H:%M} UTC): the Metrics screen shows the last "
                    f"{days} days unless another window is chosen, and alert rules look back "
                    f"{lookback} days after an import, so these events will not show there "
                    "or fire alerts"
                ),
            )
        )
    if expiring:
        out.append(
            CsvWarning(
                code="retention",
                rows=expiring,
                message=(
                    f"{_events(expiring)} {'is' if expiring == 1 else 'are'} older than the "
                    f"{retention}-day retention "
                    "(performance_tracking.metrics_retention_days): 'promptver metrics purge' "
                    "will delete them"
                ),
            )
        )
    for name, version, env, first_at, n, first in sql.before_deployment(
        con, relation, params, MAX_WARNINGS
    ):
        there = f" to {env}" if env else ""
        events, s_ = _events(n), "s" if n == 1 else ""
        if first_at is None:
            message = (
                f"{name} {version} was never deployed{there}, yet {events} name{s_} it "
                f"(the first at {first:%Y-%m-%d %H:%M} UTC)"
            )
        else:
            message = (
                f"{events} of {name} {version}{' in ' + env if env else ''} predate{s_} its first "
                f"deployment{there} ({first_at:%Y-%m-%d %H:%M} UTC; the first event at "
                f"{first:%Y-%m-%d %H:%M} UTC)"
            )
        out.append(CsvWarning(code="before_deployment", rows=n, message=message))
    return out


def problem_records(exc: ImportError_) -> list[ImportProblem]:
    """The problems of a refused import as plain records (column = the column's name)."""
    return [
        ImportProblem(line=p.line, column=p.field or None, message=p.message, code=p.code)
        for p in exc.problems
    ] or [ImportProblem(message=exc.message)]


def problems_csv(problems: list[ImportProblem]) -> bytes:
    """The problem list as a CSV file (``line,column,problem,code``) for a spreadsheet.

    UTF-8 with a byte order mark, like the reports; text that a spreadsheet would run as a
    formula is neutralised (OWASP), since messages quote the file's own cells.
    """
    from promptver.csv_cells import neutralise

    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["line", "column", "problem", "code"])
    for p in problems:
        w.writerow(
            [
                "" if p.line is None else p.line,
                neutralise(p.column or ""),
                neutralise(p.message),
                p.code or "",
            ]
        )
    return out.getvalue().encode("utf-8")


def file_sha256(path: Path) -> str | None:
    """The SHA-256 of a file, or None when it cannot be read."""
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


# ---- preview -------------------------------------------------------------------------------


def preview_csv(path: str | Path, *, file_name: str | None = None, rows: int = 10) -> CsvPreview:
    """The header with each column's role, and the first ``rows`` records as text.

    Header problems are returned in ``problems`` rather than raised, so a screen can show them
    next to the preview.
    """
    path = Path(path)
    name = file_name or path.name
    try:
        header = read_header(path)
    except ImportError_ as exc:
        return CsvPreview(
            file_name=name,
            size_bytes=path.stat().st_size,
            columns=[],
            rows=[],
            problems=[str(p) for p in exc.problems] or [exc.message],
        )
    out: list[list[str]] = []
    lines: list[int] = []
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        next(reader, None)
        while True:
            start = reader.line_num + 1
            rec = next(reader, None)
            if rec is None:
                break
            if not rec:
                continue
            out.append([v[:200] for v in rec])
            lines.append(start)
            if len(out) >= rows:
                break
    return CsvPreview(
        file_name=name,
        size_bytes=path.stat().st_size,
        columns=header.columns(),
        rows=out,
        lines=lines,
    )


def records_at(path: str | Path, lines: list[int]) -> dict[int, list[str]]:
    """The records (cells as text, up to 200 characters each) that start on these lines.

    For showing the rows a refusal names; a line inside a quoted multi-line cell, or past the
    end, has no record. Reads the file only up to the last line asked for.
    """
    want = set(lines)
    out: dict[int, list[str]] = {}
    if not want:
        return out
    last = max(want)
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    with Path(path).open(newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        next(reader, None)
        while reader.line_num < last:
            start = reader.line_num + 1
            try:
                rec = next(reader, None)
            except csv.Error:  # a broken quote: the import names it; nothing more to show
                break
            if rec is None:
                break
            if start in want and rec:
                out[start] = [v[:200] for v in rec]
    return out

"""The metric-events CSV format: its columns and their limits, and reading the header.

What a column is follows from its name alone: the required and key columns, the built-in
metrics (with their kinds and upper bounds), ``dim_*`` segment dimensions, and any other
lower-case name as a custom numeric metric. :func:`read_header` reads the first record (BOM,
quotes, line ending) and checks every rule on names before DuckDB sees the file.
:class:`CsvProblem` and :func:`_refuse` are how every part of the import reports a refusal.
The import itself is :mod:`promptver.metrics.csv_import`.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from promptver.errors import ImportError_, Problem
from promptver.models.metrics import CsvColumn

MAX_PROBLEMS = 20
HEADER_LIMIT = 1 << 16

REQUIRED = ("timestamp", "template", "user_id")
KEYS = ("event_id", "experiment", "variant", "version", "environment")
TEXT_COLUMNS = (*REQUIRED, *KEYS, "success", "error")

#: built-in metric columns: (kind, description)
BUILTIN: dict[str, tuple[str, str]] = {
    "latency_ms": ("number", "milliseconds, ≥ 0"),
    "success": ("boolean", "true/false/1/0"),
    "error": ("boolean", "true/false/1/0"),
    "quality_score": ("number", "between 0 and 1"),
    "cost_usd": ("number", "US dollars, ≥ 0"),
    "tokens_in": ("integer", "whole number ≥ 0"),
    "tokens_out": ("integer", "whole number ≥ 0"),
}
KEY_DESCRIPTIONS = {
    "timestamp": "ISO 8601; no offset means UTC",
    "template": "template name or id",
    "user_id": "who made the call",
    "event_id": "unique id; re-importing it is skipped",
    "experiment": "experiment id or name (needs variant)",
    "variant": "variant name (needs experiment)",
    "version": "template version, e.g. 1.2.0",
    "environment": "one of the configured environments",
}
CUSTOM_NAME_RE = re.compile(r"\A[a-z][a-z0-9_]{0,63}\Z")
#: segment dimensions: text columns named ``dim_…`` (``dim_country``, ``dim_model``)
DIMENSION_RE = re.compile(r"\Adim_[a-z0-9_]{1,60}\Z")
#: the longest value of a segment dimension
MAX_DIMENSION_CHARS = 200


def is_dimension(name: str) -> bool:
    """``dim_*`` columns are segment dimensions (text), not custom metrics."""
    return bool(DIMENSION_RE.match(name))


ISO_EXAMPLE = "2026-01-31T14:05:00Z"
#: the largest value of each built-in metric, far above any real call: with values bounded, sums
#: and sums of squares over billions of events stay finite, so no statistic overflows
METRIC_MAX: dict[str, tuple[float, str]] = {
    "latency_ms": (86_400_000, "86,400,000 (one day in milliseconds)"),
    "cost_usd": (1e6, "1,000,000 US dollars"),
    "tokens_in": (1e9, "1,000,000,000"),
    "tokens_out": (1e9, "1,000,000,000"),
}
#: custom metrics lie in [−MAX_CUSTOM, MAX_CUSTOM] (their squares stay below 1e30)
MAX_CUSTOM = 1e15
MAX_CUSTOM_TEXT = "between -1e15 and 1e15"

Progress = Callable[[float, str], None]


class CsvProblem(Problem):
    """A problem in a CSV file: ``line N, column NAME: reason``."""

    def location(self) -> str:
        parts = []
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.field is not None:
            parts.append(f"column {self.field}")
        return ", ".join(parts)


def _problem(
    message: str,
    line: int | None = None,
    column: str | None = None,
    position: int | None = None,
    code: str | None = None,
) -> CsvProblem:
    return CsvProblem(message, field=column, line=line, column=position, code=code)


def _refuse(file_name: str, problems: list[CsvProblem], total: int | None = None) -> ImportError_:
    problems = sorted(problems, key=lambda p: (p.line or 0, p.column or 0))
    total = max(total or 0, len(problems))
    shown = problems[:MAX_PROBLEMS]
    what = (
        "1 problem"
        if total == 1
        else f"{total} problems"
        if total <= MAX_PROBLEMS
        else (f"more than {MAX_PROBLEMS} problems, the first {MAX_PROBLEMS} are")
    )
    err = ImportError_(f"import of {file_name} refused, nothing was imported; {what}:", shown)
    err.total_problems = total  # type: ignore[attr-defined]
    return err


# ---- the header ----------------------------------------------------------------------------


@dataclass
class Header:
    """The header as the import reads it."""

    names: list[str]
    terminator: str  # "\r\n", "\n", "\r" or "" (no line break after the header)
    bom: bool
    problems: list[CsvProblem] = field(default_factory=list)

    @property
    def custom(self) -> list[str]:
        return [
            n
            for n in self.names
            if n not in BUILTIN and n not in REQUIRED + KEYS and not is_dimension(n)
        ]

    @property
    def dims(self) -> list[str]:
        return [n for n in self.names if is_dimension(n)]

    @property
    def metrics(self) -> list[str]:
        return [n for n in self.names if n in BUILTIN] + self.custom

    def has(self, name: str) -> bool:
        return name in self.names

    def types(self) -> dict[str, str]:
        return {
            n: "VARCHAR" if n in TEXT_COLUMNS or is_dimension(n) else "DOUBLE" for n in self.names
        }

    def columns(self) -> list[CsvColumn]:
        out = []
        for i, n in enumerate(self.names, start=1):
            if n in REQUIRED:
                out.append(
                    CsvColumn(
                        position=i,
                        name=n,
                        role="required",
                        type="text",
                        description=KEY_DESCRIPTIONS[n],
                    )
                )
            elif n in KEYS:
                out.append(
                    CsvColumn(
                        position=i, name=n, role="key", type="text", description=KEY_DESCRIPTIONS[n]
                    )
                )
            elif n in BUILTIN:
                kind, desc = BUILTIN[n]
                out.append(
                    CsvColumn(position=i, name=n, role="metric", type=kind, description=desc)
                )
            elif is_dimension(n):
                out.append(
                    CsvColumn(
                        position=i,
                        name=n,
                        role="dimension",
                        type="text",
                        description=f"segment value (at most {MAX_DIMENSION_CHARS} characters)",
                    )
                )
            elif CUSTOM_NAME_RE.match(n):
                out.append(
                    CsvColumn(
                        position=i,
                        name=n,
                        role="custom metric",
                        type="number",
                        description="any other column must be all numeric",
                    )
                )
            else:
                out.append(
                    CsvColumn(
                        position=i,
                        name=n,
                        role="refused",
                        type="",
                        description="not a valid column name",
                    )
                )
        return out


def read_header(path: Path) -> Header:
    """Read and check the first record of the file.

    Raises:
        ImportError_: the file is empty, not UTF-8, or its header breaks a rule.
    """
    header = read_header_record(path)
    header.problems = _header_problems(header.names)
    if header.problems:
        raise _refuse(path.name, header.problems)
    return header


def read_header_record(
    path: Path, example: str = "timestamp,template,user_id,latency_ms"
) -> Header:
    """The first record of the file as names (BOM, quotes and line ending handled), without
    the metric rules: the evaluation import applies its own (``promptver.evals.csv_import``).

    Raises:
        ImportError_: the file is empty, UTF-16, not UTF-8, or the header line is broken.
    """
    name = path.name
    size = path.stat().st_size
    if size == 0:
        raise _refuse(
            name,
            [
                _problem(
                    f"the file is empty: expected a header row such as {example}",
                    line=1,
                    code="empty",
                )
            ],
        )
    with path.open("rb") as f:
        head = f.read(HEADER_LIMIT)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _refuse(
            name,
            [
                _problem(
                    'the file is UTF-16 encoded: save it as UTF-8 ("CSV UTF-8")',
                    line=1,
                    code="encoding",
                )
            ],
        )
    bom = head.startswith(b"\xef\xbb\xbf")
    start = 3 if bom else 0
    in_quotes = False
    end = None
    for i in range(start, len(head)):
        b = head[i]
        if b == 0x22:
            in_quotes = not in_quotes
        elif not in_quotes and b in (0x0A, 0x0D):
            end = i
            break
    if end is None:
        if len(head) == HEADER_LIMIT:
            raise _refuse(
                name,
                [
                    _problem(
                        f"the header line is longer than {HEADER_LIMIT // 1024} KiB or has an "
                        "unterminated quote",
                        line=1,
                        code="header",
                    )
                ],
            )
        end = len(head)
    if in_quotes:
        raise _refuse(
            name, [_problem("the header has an unterminated quote", line=1, code="quote")]
        )
    raw = head[start:end]
    terminator = "\r\n" if head[end : end + 2] == b"\r\n" else head[end : end + 1].decode("ascii")
    if b"\x00" in raw:
        raise _refuse(
            name,
            [
                _problem(
                    "the header contains NUL bytes: the file looks UTF-16 encoded; save it as UTF-8",
                    line=1,
                    code="encoding",
                )
            ],
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse(
            name,
            [
                _problem(
                    f"the header is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at position "
                    f"{exc.start + 1}): save the file as UTF-8",
                    line=1,
                    code="encoding",
                )
            ],
        ) from None
    try:
        names = next(csv.reader([text]), [])
    except csv.Error:  # a quote inside an unquoted name, then a line break the scan took as quoted
        raise _refuse(
            name,
            [
                _problem(
                    "the header line is broken: a quote inside a column name that does not start "
                    "with one (quote the whole name, and double the quotes inside it)",
                    line=1,
                    code="header",
                )
            ],
        ) from None
    return Header([n.strip() for n in names], terminator, bom)


def _header_problems(names: list[str]) -> list[CsvProblem]:
    problems: list[CsvProblem] = []
    if len(names) == 1:
        for sep, label in ((";", "semicolon"), ("\t", "tab"), ("|", "'|'")):
            if sep in names[0]:
                return [
                    _problem(
                        f"the header has a single column '{names[0][:80]}': the file looks "
                        f"{label}-separated, but it must be comma-separated",
                        line=1,
                        code="delimiter",
                    )
                ]
    seen: dict[str, int] = {}
    for i, n in enumerate(names, start=1):
        if not n:
            problems.append(_problem(f"column {i} has no name", line=1, position=i, code="header"))
            continue
        if n != n.lower():
            problems.append(
                _problem(
                    f"column names are lower-case: rename '{n}' to '{n.lower()}'",
                    line=1,
                    column=n,
                    position=i,
                    code="header",
                )
            )
            continue
        if n in seen:
            problems.append(
                _problem(
                    f"duplicate column name '{n}' (columns {seen[n]} and {i})",
                    line=1,
                    column=n,
                    position=i,
                    code="duplicate_column",
                )
            )
            continue
        seen[n] = i
        if n not in BUILTIN and n not in REQUIRED + KEYS and not CUSTOM_NAME_RE.match(n):
            problems.append(
                _problem(
                    f"'{n[:80]}' is not a known column, and not a valid custom metric name (use "
                    "lower-case letters, digits and '_', starting with a letter)",
                    line=1,
                    column=n,
                    position=i,
                    code="header",
                )
            )
    for req in REQUIRED:
        if req not in seen and not any(p.field == req for p in problems):
            problems.append(
                _problem(f"required column '{req}' is missing", line=1, code="missing_column")
            )
    if "experiment" in seen and "variant" not in seen:
        problems.append(
            _problem(
                "column 'variant' is required with column 'experiment'",
                line=1,
                code="missing_column",
            )
        )
    has_metric = any(
        n in BUILTIN
        or (n not in REQUIRED + KEYS and CUSTOM_NAME_RE.match(n) and not is_dimension(n))
        for n in seen
    )
    if names and not has_metric and not problems:
        problems.append(
            _problem(
                "no metric column: add at least one of "
                + ", ".join(BUILTIN)
                + " or a custom numeric column",
                line=1,
                code="missing_column",
            )
        )
    return problems

"""CSV import of metric events: strict, streaming, atomic, idempotent.

Designed so that a 2-million-row file never passes through Python row by row:

1. **Header, by us.** The first record is read here (BOM, quotes, line ending), and every rule on
   column names is checked before DuckDB sees the file: lower-case names, no duplicates, the
   required columns, at least one metric, custom metric names, a hint when another delimiter
   was used. This fixes each column's type *by name*.
2. **One pass for valid files.** ``read_csv`` with an explicit dialect (comma, ``"`` quotes,
   header) and explicit types, no sniffing, feeds one ``INSERT … SELECT`` that resolves
   references by joining small lookup tables and evaluates every row rule (ranges, booleans,
   ISO timestamps, future times, missing values, environments, references) in a ``WHERE``
   that raises on the first failing row. Event ids and the file hash are then checked on what
   landed, stored ids are dropped again (re-imports skip them), and the ``imports`` record is
   written, all in one transaction. Meanwhile a thread computes the file's SHA-256.
3. **The detailed path**, taken when the one pass raised or met anything unusual (after a full
   rollback): the file is parsed into a temporary table in file order; cells that do not parse
   (``12ms`` as a number, ragged rows, broken quotes, invalid UTF-8) are collected by DuckDB's
   reject store with their byte position, which we turn into a physical line number. The same
   row rules run as one SQL scan; only when it finds something do we fetch the first
   offenders. References are resolved once per distinct combination; duplicate event ids are
   found with a window. Padded cells are trimmed here (the one pass leaves them to this path).
4. **Line numbers.** A staged row knows its index among the data rows (``rowid``). Because
   quoted cells may hold line breaks and blank lines are skipped, the physical line of a record
   is found, only when reporting, by re-reading the file with Python's ``csv`` module up to the
   last record needed.
5. **Write.** A valid file is written by the one pass, or by the detailed path's
   ``INSERT … SELECT`` over the staged rows. Anything failing (or the process dying) before
   the commit leaves nothing behind.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from promptver.config import Settings
from promptver.errors import Conflict, ImportError_, Problem
from promptver.models import (
    CsvColumn,
    CsvPreview,
    CsvWarning,
    ImportProblem,
    ImportRecord,
    ImportResult,
)
from promptver.store import metrics as sql
from promptver.store.db import Database
from promptver.versioning import utcnow

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


# ---- line numbers --------------------------------------------------------------------------


def _lines_at_offsets(path: Path, offsets: list[int]) -> dict[int, int]:
    """Physical line (1-based) of each byte offset: 1 + line breaks before it."""
    out: dict[int, int] = {}
    todo = sorted(set(offsets))
    if not todo:
        return out
    breaks = 0
    pos = 0
    carry = b""
    with path.open("rb") as f:
        while todo:
            chunk = f.read(1 << 22)
            if not chunk:
                break
            data = carry + chunk
            base = pos - len(carry)
            # a "\r" at the end may pair with a "\n" in the next chunk
            carry = b"\r" if data.endswith(b"\r") else b""
            body = data[:-1] if carry else data
            while todo and todo[0] < base + len(body):
                cut = todo[0] - base
                part = body[:cut]
                out[todo.pop(0)] = 1 + breaks + _breaks(part)
            breaks += _breaks(body)
            pos += len(chunk)
    for off in todo:
        out[off] = 1 + breaks
    return out


def _breaks(data: bytes) -> int:
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _record_lines(path: Path, indices: list[int]) -> dict[int, int]:
    """Physical line where each data record (0-based index, blank lines skipped) starts."""
    want = sorted(set(indices))
    out: dict[int, int] = {}
    if not want:
        return out
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        next(reader, None)
        idx = 0
        k = 0
        while k < len(want):
            start = reader.line_num + 1
            rec = next(reader, None)
            if rec is None:
                break
            if not rec:
                continue
            while k < len(want) and want[k] == idx:
                out[idx] = start
                k += 1
            idx += 1
    return out


def _mixed_line_break(path: Path, expected: str) -> tuple[int, str] | None:
    """The first line whose break (outside quotes) differs from the header's, if any."""
    pattern = re.compile(rb"\r\n|\r|\n")
    with path.open("rb") as f:
        data = f.read()
    parity = 0
    last = 0
    line = 1
    want = expected.encode("ascii")
    for m in pattern.finditer(data):
        parity ^= data.count(b'"', last, m.start()) & 1
        last = m.start()
        if parity == 0 and want and m.group() != want:
            return line, m.group().decode("ascii")
        line += 1
    return None


_BREAK_NAMES = {"\r\n": "CRLF", "\n": "LF", "\r": "CR"}


# ---- the rules -----------------------------------------------------------------------------


def _checks(header: Header) -> list[sql.RowCheck]:
    """Every per-row rule, as SQL over the staged table (text cells are trimmed).

    ``__ts`` is the timestamp cell parsed once per row (see :func:`sql.stage_csv`).
    """
    c: list[sql.RowCheck] = []
    rc = sql.RowCheck

    def shown(col: str) -> str:
        # line breaks inside a value are shown as \\n so that a message stays on one line
        cell = f"left({sql.q(col)}::VARCHAR, 60)"
        return f"'''' || replace(replace({cell}, chr(13), '\\r'), chr(10), '\\n') || ''''"

    for req in REQUIRED:
        c.append(rc(req, f"{req} IS NULL", "'required value is missing'"))
    # DuckDB evaluates every operand of AND/OR inside an aggregate's FILTER, but only the
    # rows that reach a CASE branch: the common shape is recognised with a cheap LIKE, and
    # only other values pay for the regular expression (a LIKE match holding non-digits
    # fails the date parse and is reported by the next rule)
    not_iso = (
        "CASE WHEN timestamp IS NULL OR timestamp LIKE '____-__-__T__:__:__Z' THEN false"
        f" ELSE NOT regexp_full_match(timestamp, '{sql.ISO_TIMESTAMP_RE}') END"
    )
    c.append(
        rc(
            "timestamp",
            not_iso,
            f"{shown('timestamp')} || ' is not an ISO 8601 timestamp (like {ISO_EXAMPLE})'",
        )
    )
    c.append(
        rc(
            "timestamp",
            f"CASE WHEN __ts IS NOT NULL OR timestamp IS NULL THEN false ELSE NOT ({not_iso}) END",
            f"{shown('timestamp')} || ' is not a valid date and time'",
        )
    )
    c.append(
        rc(
            "timestamp",
            "__ts > getvariable('pv_now')",
            f"{shown('timestamp')} || ' is in the future (the import started at '"
            " || strftime(getvariable('pv_started'), '%Y-%m-%dT%H:%M:%SZ') || ')'",
        )
    )
    for name in header.dims:
        c.append(
            rc(
                name,
                f"length({sql.q(name)}) > {MAX_DIMENSION_CHARS}",
                f"'a segment value has at most {MAX_DIMENSION_CHARS} characters (got ' ||"
                f" length({sql.q(name)}) || ')'",
            )
        )
    for name in header.names:
        kind = BUILTIN.get(name, ("number", ""))[0] if name not in REQUIRED + KEYS else None
        if kind is None or is_dimension(name):
            continue
        col = sql.q(name)
        if kind == "boolean":
            c.append(
                rc(
                    name,
                    f"CASE WHEN {col} IN ('true', 'false', '1', '0') THEN false"
                    f" ELSE lower({col}) NOT IN ('true', 'false', '1', '0') END",
                    f"{shown(name)} || ' is not a boolean: use true, false, 1 or 0'",
                )
            )
            continue
        c.append(rc(name, f"isnan({col})", "'NaN is not a valid value'"))
        c.append(rc(name, f"isinf({col})", "'infinity is not a valid value'"))
        finite = f"NOT isnan({col}) AND NOT isinf({col})"
        if name in ("latency_ms", "cost_usd", "tokens_in", "tokens_out"):
            c.append(
                rc(
                    name,
                    f"{finite} AND {col} < 0",
                    f"'must be ≥ 0 (got ' || printf('%g', {col}) || ')'",
                )
            )
            limit, text = METRIC_MAX[name]
            c.append(
                rc(
                    name,
                    f"{finite} AND {col} > {limit!r}",
                    f"'must be at most {text} (got ' || printf('%.15g', {col}) || ')'",
                )
            )
        elif name not in BUILTIN:
            c.append(
                rc(
                    name,
                    f"{finite} AND abs({col}) > {MAX_CUSTOM!r}",
                    f"'must be {MAX_CUSTOM_TEXT} (got ' || printf('%.15g', {col}) || ')'",
                )
            )
        if name == "quality_score":
            c.append(
                rc(
                    name,
                    f"{finite} AND ({col} < 0 OR {col} > 1)",
                    f"'must be between 0 and 1 (got ' || printf('%g', {col}) || ')'",
                )
            )
        if kind == "integer":
            c.append(
                rc(
                    name,
                    f"{finite} AND {col} >= 0 AND {col} <> floor({col})",
                    f"'must be a whole number (got ' || printf('%g', {col}) || ')'",
                )
            )
    if header.has("variant"):
        exp_missing = "experiment IS NULL" if header.has("experiment") else "true"
        c.append(
            rc(
                "variant",
                f"variant IS NOT NULL AND {exp_missing}",
                "'a variant needs an experiment: the experiment cell is empty'",
            )
        )
    if header.has("experiment"):
        c.append(
            rc(
                "variant",
                "experiment IS NOT NULL AND variant IS NULL",
                "'required with an experiment (' || experiment || ')'",
            )
        )
    if header.has("environment"):
        c.append(
            rc(
                "environment",
                "NOT list_contains(getvariable('pv_envs'), environment)",
                f"'unknown environment ' || {shown('environment')} || ' (known: '"
                " || array_to_string(getvariable('pv_envs'), ', ') || ')'",
            )
        )
    metric_cols = [sql.q(m) for m in header.metrics]
    c.append(
        rc(
            "",
            " AND ".join(f"{m} IS NULL" for m in metric_cols),
            f"'the row has no metric value (fill at least one of "
            f"{', '.join(header.metrics)[:200]})'",
        )
    )
    return c


def _reject_problems(path: Path, header: Header, rejects: list[sql.Reject]) -> list[CsvProblem]:
    lines = _lines_at_offsets(path, [r.line_byte_position for r in rejects])
    problems: list[CsvProblem] = []
    ncols = len(header.names)
    seen_lines: set[int] = set()
    refused_custom: set[str] = set()
    for r in rejects:
        line = lines[r.line_byte_position]
        etype = r.error_type.upper()
        col = r.column_name if isinstance(r.column_name, str) else None
        if etype == "CAST":
            m = re.search(r'Could not convert string "(.*)" to', r.error_message, re.S)
            value = (m.group(1) if m else "")[:60]
            if col in header.custom:
                if col in refused_custom:
                    continue
                refused_custom.add(col)
                problems.append(
                    _problem(
                        f"'{col}' is not a known column and holds a non-numeric value ('{value}'): "
                        "only numeric columns can be custom metrics; remove this column",
                        line=line,
                        column=col,
                        position=r.column_idx,
                        code="non_numeric_column",
                    )
                )
            else:
                problems.append(
                    _problem(
                        f"'{value}' is not a number",
                        line=line,
                        column=col,
                        position=r.column_idx,
                        code="number",
                    )
                )
            continue
        if line in seen_lines:
            continue
        seen_lines.add(line)
        if etype in ("TOO MANY COLUMNS", "MISSING COLUMNS"):
            m = re.search(r"Found: (\d+)", r.error_message)
            found = m.group(1) if m else "a different number of"
            problems.append(
                _problem(
                    f"the row has {found} values but the header has {ncols} columns",
                    line=line,
                    code="ragged",
                )
            )
        elif etype == "UNQUOTED VALUE":
            problems.append(
                _problem(
                    "a quoted value is not closed or a quote is misplaced (quote a whole value "
                    'with "…" and double any quote inside it)',
                    line=line,
                    column=col,
                    code="quote",
                )
            )
        elif "ENCODING" in etype or "UNICODE" in etype:
            problems.append(
                _problem(
                    "the line is not valid UTF-8: save the file as UTF-8",
                    line=line,
                    column=col,
                    code="encoding",
                )
            )
        elif "LINE SIZE" in etype:
            problems.append(_problem("the line is too long", line=line, code="line_size"))
        else:
            problems.append(
                _problem(
                    r.error_message.splitlines()[0],
                    line=line,
                    column=col,
                    code=etype.lower().replace(" ", "_"),
                )
            )
    return problems


# ---- the import ----------------------------------------------------------------------------


class _Hasher(threading.Thread):
    """SHA-256 of the file, computed while DuckDB parses it (hashlib releases the GIL)."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True, name="promptver-sha256")
        self.path = path
        self.digest = ""
        self.error: OSError | None = None

    def run(self) -> None:
        h = hashlib.sha256()
        try:
            with self.path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        except OSError as exc:
            self.error = exc
        self.digest = h.hexdigest()

    def result(self) -> str:
        self.join()
        if self.error is not None:
            raise ImportError_(f"cannot read {self.path.name}: {self.error}")
        return self.digest


def _names() -> dict[str, str]:
    tag = uuid.uuid4().hex[:12]
    return {k: f"pv_{k}_{tag}" for k in ("stage", "keys", "rejects", "scans")}


def import_csv(
    db: Database,
    settings: Settings,
    path: str | Path,
    *,
    author: str,
    file_name: str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Validate a metric-events CSV and store it whole, or refuse it whole.

    Args:
        path: the CSV file (read twice at most: by DuckDB and by the hasher).
        author: recorded as who imported it.
        file_name: the name to record (an upload's original name); default the file's name.
        dry_run: validate and count only; nothing is written.
        progress: called with (fraction done, what is happening).

    Raises:
        ImportError_: the file breaks a rule; ``problems`` name line, column and reason.
        DatabaseBusy: another process held the database file too long.
    """
    started = time.monotonic()
    path = Path(path)
    shown_name = file_name or path.name
    report = progress or (lambda fraction, message: None)
    if not path.is_file():
        raise ImportError_(f"file not found: {path}")
    report(0.0, "reading the header")
    header = read_header(path)
    hasher = _Hasher(path)
    hasher.start()
    now = utcnow()
    tolerance = timedelta(seconds=settings.performance_tracking.future_tolerance_seconds)
    if not db.in_transaction():  # the fast path needs a transaction of its own to roll back
        fast = _import_in_one_pass(
            db,
            settings,
            path,
            header,
            hasher,
            shown_name,
            author,
            now,
            tolerance,
            dry_run,
            report,
            started,
        )
        if fast is not None:
            return fast
        report(0.05, "checking every row in detail")
    t = _names()
    with db.connect() as con:
        try:
            with db.transaction():
                report(0.05, "parsing with DuckDB")
                try:
                    rows, base = sql.stage_csv(
                        con, str(path), t["stage"], header.types(), t["rejects"], t["scans"]
                    )
                except duckdb.InvalidInputException as exc:
                    raise _unreadable(path, shown_name, header, exc) from None
                except duckdb.IOException as exc:
                    raise ImportError_(
                        f"cannot read {shown_name}: {str(exc).splitlines()[0]}"
                    ) from None
                rejected = sql.rejects(con, t["rejects"])
                if rejected:
                    problems = _reject_problems(path, header, rejected)
                    raise _refuse(shown_name, problems, len(problems))
                if rows == 0:
                    raise _refuse(
                        shown_name,
                        [
                            _problem(
                                "the file has a header but no data rows", line=2, code="no_rows"
                            )
                        ],
                    )
                report(0.45, f"checking {rows:,} rows")
                problems, total, scanned = _row_problems(
                    con, path, header, t, settings, now, tolerance, base
                )
                if problems:
                    raise _refuse(shown_name, problems, total)
                digest = hasher.result()
                with_ids = header.has("event_id")
                missing_ids = scanned.rows_without_event_id
                first, last = scanned.first, scanned.last
                if missing_ids:
                    before = sql.import_by_hash(con, digest)
                    if before is not None:
                        raise _refuse(
                            shown_name,
                            [
                                _problem(
                                    f"this file was already imported on "
                                    f"{before.created_at:%Y-%m-%d %H:%M} UTC by {before.created_by} "
                                    f"(import {before.id}, SHA-256 {digest[:12]}…); a file whose rows "
                                    "lack event_id cannot be imported twice: add an event_id column "
                                    "to make re-imports skip what is stored",
                                    code="duplicate_file",
                                )
                            ],
                        )
                skipped = sql.count_existing_event_ids(con, t["stage"]) if with_ids else 0
                landing = sql.staged_events(t["stage"], t["keys"], set(header.names), skipped > 0)
                warnings = _warnings(con, settings, header, landing, [], now)
                template_ids = sql.staged_template_ids(con, t["keys"])
                template_names = sql.template_names(con, template_ids)
                import_id = "" if dry_run else uuid.uuid4().hex[:16]
                imported = rows - skipped
                if not dry_run:
                    report(0.7, f"writing {imported:,} events")
                    imported = sql.insert_staged(
                        con,
                        t["stage"],
                        t["keys"],
                        import_id,
                        set(header.names),
                        header.custom,
                        skip_existing=skipped > 0,
                        dims=header.dims,
                    )
                    _check_dimension_cap(con, header, shown_name)
                    sql.insert_import(
                        con,
                        ImportRecord(
                            id=import_id,
                            file_name=shown_name[:255],
                            sha256=digest,
                            rows_imported=imported,
                            rows_skipped_duplicate=rows - imported,
                            has_event_ids=missing_ids == 0,
                            created_at=now,
                            created_by=author,
                        ),
                    )
                    report(0.95, "committing")
        finally:
            sql.drop_tables(
                con, [t["stage"], t["keys"], t["keys"] + "_raw", t["rejects"], t["scans"]]
            )
    report(1.0, "done")
    return ImportResult(
        import_id=import_id,
        file_name=shown_name,
        sha256=digest,
        rows_imported=imported,
        rows_skipped_duplicate=rows - imported,
        rows_in_file=rows,
        columns=header.names,
        custom_metrics=header.custom,
        first=first,
        last=last,
        templates=template_names,
        template_ids=template_ids,
        seconds=round(time.monotonic() - started, 3),
        warnings=warnings,
    )


def _check_dimension_cap(con: duckdb.DuckDBPyConnection, header: Header, file_name: str) -> None:
    """Refuse the file (the transaction rolls back) when a segment dimension would hold more
    than :data:`sql.MAX_DIMENSION_VALUES` distinct values."""
    over = sql.dimension_overflow(con, header.dims)
    if over:
        raise _refuse(
            file_name,
            [
                _problem(
                    column=d,
                    message=f"a segment dimension holds at most {sql.MAX_DIMENSION_VALUES:,} "
                    f"distinct values; with this file '{d}' would hold {n:,} (use a coarser "
                    "grouping, e.g. a country rather than a city)",
                    code="too_many_values",
                )
                for d, n in over.items()
            ],
        )


class _FallbackError(Exception):
    """The one-pass import met something that needs the detailed path (rolled back)."""


class _DryRunDoneError(Exception):
    """Carries a dry run's result out of the transaction, which is then rolled back."""

    def __init__(self, result: ImportResult) -> None:
        super().__init__("dry run")
        self.result = result


def _import_in_one_pass(
    db: Database,
    settings: Settings,
    path: Path,
    header: Header,
    hasher: _Hasher,
    name: str,
    author: str,
    now: datetime,
    tolerance: timedelta,
    dry_run: bool,
    report: Progress,
    started: float,
) -> ImportResult | None:
    """The fast path for valid files: parse, check, resolve and append in one statement.

    The same rules as the detailed path run inside the ``INSERT`` (a failing row raises), then
    event ids and the file hash are checked on what landed. Anything unusual (a problem,
    padded cells, duplicate ids, a parse error) rolls everything back and returns ``None``:
    the detailed path then finds and reports the problems with their line numbers. Nothing
    the detailed path would refuse can pass here: the row rules are literally the same SQL.
    """
    prefix = "pv_lookup_" + uuid.uuid4().hex[:12]
    import_id = uuid.uuid4().hex[:16]
    text = [n for n in header.names if n in TEXT_COLUMNS or is_dimension(n)]
    with db.connect() as con:
        try:
            with db.transaction():
                sql.set_variable(con, "pv_now", now + tolerance)
                sql.set_variable(con, "pv_started", now)
                sql.set_variable(con, "pv_envs", list(settings.deployment.environments))
                sql.create_lookups(con, prefix)
                report(0.05, "importing")
                try:
                    written = sql.insert_direct(
                        con,
                        str(path),
                        header.types(),
                        import_id,
                        _checks(header),
                        text,
                        header.custom,
                        prefix,
                        dims=header.dims,
                    )
                except duckdb.Error:
                    raise _FallbackError() from None
                _check_dimension_cap(con, header, name)
                report(0.8, "checking event ids")
                got = sql.landed(con, import_id, header.has("event_id"))
                if got.rows == 0 or got.duplicate_event_ids:
                    raise _FallbackError()
                digest = hasher.result()
                if got.without_event_id and sql.import_by_hash(con, digest) is not None:
                    raise _FallbackError()
                skipped = sql.drop_already_stored(con, import_id) if got.already_stored else 0
                imported = written - skipped
                warnings = _warnings(con, settings, header, *sql.landed_events(import_id), now)
                names = sql.template_names(con, got.template_ids)
                result = ImportResult(
                    import_id="" if dry_run else import_id,
                    file_name=name,
                    sha256=digest,
                    rows_imported=imported,
                    rows_skipped_duplicate=skipped,
                    rows_in_file=written,
                    columns=header.names,
                    custom_metrics=header.custom,
                    first=got.first,
                    last=got.last,
                    templates=names,
                    template_ids=got.template_ids,
                    seconds=round(time.monotonic() - started, 3),
                    warnings=warnings,
                )
                if dry_run:
                    raise _DryRunDoneError(result)
                sql.insert_import(
                    con,
                    ImportRecord(
                        id=import_id,
                        file_name=name[:255],
                        sha256=digest,
                        rows_imported=imported,
                        rows_skipped_duplicate=skipped,
                        has_event_ids=got.without_event_id == 0,
                        created_at=now,
                        created_by=author,
                    ),
                )
                report(0.95, "committing")
        except (_FallbackError, Conflict):
            return None
        except _DryRunDoneError as done:
            report(1.0, "done")
            return done.result
        finally:
            sql.drop_tables(con, [f"{prefix}_{k}" for k in "tvea"])
    report(1.0, "done")
    return result.model_copy(update={"seconds": round(time.monotonic() - started, 3)})


def _row_problems(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    header: Header,
    t: dict[str, str],
    settings: Settings,
    now: datetime,
    tolerance: timedelta,
    base: int,
) -> tuple[list[CsvProblem], int, sql.Scan]:
    """Every rule that needs the parsed rows: (problems, how many, what the scan found).

    Row numbers from SQL are ``rowid``; ``rowid - base`` is the index among the data records.
    """
    sql.set_variable(con, "pv_now", now + tolerance)
    sql.set_variable(con, "pv_started", now)
    sql.set_variable(con, "pv_envs", list(settings.deployment.environments))
    checks = _checks(header)
    found: list[tuple[int, str, str, str]] = []  # (row, column, message, code)
    text = [n for n in header.names if n in TEXT_COLUMNS or is_dimension(n)]
    # padded cells of the reference columns are found on their distinct values (the keys
    # table), which is much cheaper than testing every row
    per_row = [n for n in text if n not in sql.KEY_COLUMNS]
    with_ids = header.has("event_id")
    has = {n: header.has(n) for n in ("experiment", "variant", "version")}
    scanned = sql.scan(con, t["stage"], checks, per_row, with_ids)
    sql.resolve_keys(con, t["stage"], t["keys"], has)
    if scanned.padded_rows or sql.keys_padded(con, t["keys"]):
        # rare: trim the padded cells, then look again
        sql.trim_text(con, t["stage"], text)
        scanned = sql.scan(con, t["stage"], checks, per_row, with_ids)
        sql.drop_tables(con, [t["keys"], t["keys"] + "_raw"])
        sql.resolve_keys(con, t["stage"], t["keys"], has)
    total = scanned.bad_rows
    if total:
        found += [
            (r - base, col, msg, "row")
            for r, col, msg in sql.bad_rows(con, t["stage"], checks, MAX_PROBLEMS)
        ]
    keys = sql.key_problems(con, t["keys"], MAX_PROBLEMS)
    names = sql.all_template_names(con) if any(k[1] == "template" for k in keys) else []
    for row, col, msg, n, template in keys:
        more = f" ({n:,} rows)" if n > 1 else ""
        if col == "template":
            msg += did_you_mean(template, names)
        found.append((row - base, col, msg + more, "reference"))
        total += 1
    if scanned.duplicate_event_ids:
        dups = sql.duplicate_event_ids(con, t["stage"], MAX_PROBLEMS)
        first_rows = [d[1] - base for d in dups]
        lines = _record_lines(path, first_rows)
        for eid, first, row in dups:
            found.append(
                (
                    row - base,
                    "event_id",
                    f"event_id '{eid[:60]}' already appears on line {lines.get(first - base)}",
                    "duplicate_event_id",
                )
            )
            total += 1
    if not found:
        return [], 0, scanned
    found.sort(key=lambda f: f[0])
    found = found[:MAX_PROBLEMS]
    lines = _record_lines(path, [f[0] for f in found])
    position = {n: i for i, n in enumerate(header.names, start=1)}
    return (
        [
            _problem(
                msg, line=lines.get(row), column=col or None, position=position.get(col), code=code
            )
            for row, col, msg, code in found
        ],
        total,
        scanned,
    )


def _unreadable(
    path: Path, name: str, header: Header, exc: duckdb.InvalidInputException
) -> ImportError_:
    text = str(exc)
    if "invalid state" in text and header.terminator:
        found = _mixed_line_break(path, header.terminator)
        if found is not None:
            line, got = found
            return _refuse(
                name,
                [
                    _problem(
                        f"this line ends with {_BREAK_NAMES[got]} but the header ends with "
                        f"{_BREAK_NAMES[header.terminator]}: use one kind of line break in the file",
                        line=line,
                        code="line_break",
                    )
                ],
            )
    first = text.splitlines()[0] if text else type(exc).__name__
    return ImportError_(
        f"import of {name} refused, nothing was imported: the file cannot be "
        f"read as comma-separated UTF-8 CSV ({first})"
    )


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

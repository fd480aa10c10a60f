"""The row rules of the metric-events import, and where each problem is in the file.

:func:`_checks` writes every per-row rule (required cells, ISO timestamps, ranges, booleans,
environments, references) as SQL over the staged rows; the one pass runs the same SQL inside
its ``INSERT``. :func:`_row_problems` runs them on the detailed path, and
:func:`_reject_problems` / :func:`_unreadable` turn what DuckDB could not parse into problems.
Every problem names its physical line, found by re-reading the file only when reporting
(quoted cells may hold line breaks; blank lines are skipped).
"""

from __future__ import annotations

import csv
import re
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from promptver.config import Settings
from promptver.errors import ImportError_
from promptver.metrics.csv_columns import (
    BUILTIN,
    ISO_EXAMPLE,
    KEYS,
    MAX_CUSTOM,
    MAX_CUSTOM_TEXT,
    MAX_DIMENSION_CHARS,
    MAX_PROBLEMS,
    METRIC_MAX,
    REQUIRED,
    TEXT_COLUMNS,
    CsvProblem,
    Header,
    _problem,
    _refuse,
    is_dimension,
)
from promptver.metrics.csv_feedback import did_you_mean
from promptver.store import metric_csv as sql
from promptver.store.metrics import ISO_TIMESTAMP_RE, q

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
        cell = f"left({q(col)}::VARCHAR, 60)"
        return f"'''' || replace(replace({cell}, chr(13), '\\r'), chr(10), '\\n') || ''''"

    for req in REQUIRED:
        c.append(rc(req, f"{req} IS NULL", "'required value is missing'"))
    # DuckDB evaluates every operand of AND/OR inside an aggregate's FILTER, but only the
    # rows that reach a CASE branch: the common shape is recognised with a cheap LIKE, and
    # only other values pay for the regular expression (a LIKE match holding non-digits
    # fails the date parse and is reported by the next rule)
    not_iso = (
        "CASE WHEN timestamp IS NULL OR timestamp LIKE '____-__-__T__:__:__Z' THEN false"
        f" ELSE NOT regexp_full_match(timestamp, '{ISO_TIMESTAMP_RE}') END"
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
                f"length({q(name)}) > {MAX_DIMENSION_CHARS}",
                f"'a segment value has at most {MAX_DIMENSION_CHARS} characters (got ' ||"
                f" length({q(name)}) || ')'",
            )
        )
    for name in header.names:
        kind = BUILTIN.get(name, ("number", ""))[0] if name not in REQUIRED + KEYS else None
        if kind is None or is_dimension(name):
            continue
        col = q(name)
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
    metric_cols = [q(m) for m in header.metrics]
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

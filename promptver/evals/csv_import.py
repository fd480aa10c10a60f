"""CSV import of evaluation results: strict, atomic, idempotent (contract: "Offline evaluations").

The same design as the metric-events import (:mod:`promptver.metrics.csv_import`, whose header
reader, line numbering and refusal format it shares), smaller because an eval file has fewer
rules:

1. **Header, by us**: lower-case unique names, the required columns, at least one score,
   every ``NAME_human`` beside its ``NAME``. Column roles are fixed by name, never position.
2. **Stage**: DuckDB parses the file (explicit dialect, every column as text) into a temporary
   table in file order; rows it cannot parse are collected with their byte position.
3. **Check** every row rule in one SQL scan over a view that trims the keys and turns score
   cells into numbers (``true``/``false`` → 1/0); only when it finds something are the first
   offenders fetched. References (template, version) are resolved once per distinct key in
   Python with the version-control rules, so a branch or commit prefix means what it means
   on the command line, and each run records the **commit** it named.
4. **Write**: one ``INSERT … SELECT`` of the rows, one row per run and one per import, in the
   caller's transaction. A file whose SHA-256 was imported before is refused as a duplicate.

Up to :data:`MAX_PROBLEMS` problems are reported, each naming line, column and reason.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from promptver.errors import ImportError_, NotFound, PromptverError
from promptver.metrics.csv_columns import (
    MAX_CUSTOM,
    MAX_CUSTOM_TEXT,
    CsvProblem,
    Header,
    _problem,
    _refuse,
    read_header_record,
)
from promptver.metrics.csv_import import _Hasher
from promptver.metrics.csv_rules import _record_lines, _reject_problems, _unreadable
from promptver.store import evals as sql
from promptver.store.db import Database

MAX_PROBLEMS = 20
REQUIRED = ("dataset", "item_id", "template", "version")
TEXT = (*REQUIRED, "output")
HUMAN_SUFFIX = "_human"
NAME_RE = re.compile(r"\A[a-z][a-z0-9_]{0,63}\Z")
#: scores that cannot be negative
NON_NEGATIVE = ("latency_ms", "cost_usd")
MAX_DATASET = 100
MAX_ITEM_ID = 200
MAX_OUTPUT = 100_000
#: distinct (dataset, template, version) combinations in one file
MAX_KEYS = 1000
EXAMPLE = "dataset,item_id,template,version,quality"

Progress = Callable[[float, str], None]


@dataclass
class EvalHeader:
    """The checked header: which column plays which role."""

    names: list[str]
    raw: Header
    scores: list[str] = field(default_factory=list)
    #: score name → its human-label column
    human: dict[str, str] = field(default_factory=dict)

    @property
    def has_output(self) -> bool:
        return "output" in self.names


def read_header(path: Path) -> EvalHeader:
    """Read the header and check the eval file's column rules.

    Raises:
        ImportError_: empty or non-UTF-8 file, or a header that breaks a rule.
    """
    raw = read_header_record(path, EXAMPLE)
    names = raw.names
    problems: list[CsvProblem] = []
    if len(names) == 1:
        for sep, label in ((";", "semicolon"), ("\t", "tab"), ("|", "'|'")):
            if sep in names[0]:
                raise _refuse(
                    path.name,
                    [
                        _problem(
                            f"the header has a single column '{names[0][:80]}': the file looks "
                            f"{label}-separated, but it must be comma-separated",
                            line=1,
                            code="delimiter",
                        )
                    ],
                )
    seen: dict[str, int] = {}
    for i, n in enumerate(names, start=1):
        if not n:
            problems.append(_problem(f"column {i} has no name", line=1, position=i, code="header"))
        elif n != n.lower():
            problems.append(
                _problem(
                    f"column names are lower-case: rename '{n[:80]}' to '{n.lower()[:80]}'",
                    line=1,
                    column=n,
                    position=i,
                    code="header",
                )
            )
        elif n in seen:
            problems.append(
                _problem(
                    f"duplicate column name '{n[:80]}' (columns {seen[n]} and {i})",
                    line=1,
                    column=n,
                    position=i,
                    code="duplicate_column",
                )
            )
        elif n not in TEXT and not NAME_RE.match(n):
            problems.append(
                _problem(
                    f"'{n[:80]}' is not a valid score name (use lower-case letters, digits and "
                    "'_', starting with a letter, at most 64 characters)",
                    line=1,
                    column=n,
                    position=i,
                    code="header",
                )
            )
        if n and n not in seen:
            seen[n] = i
    for req in REQUIRED:
        if req not in seen:
            problems.append(
                _problem(f"required column '{req}' is missing", line=1, code="missing_column")
            )
    header = EvalHeader(names=names, raw=raw)
    for n, i in seen.items():
        if n in TEXT or n != n.lower() or not NAME_RE.match(n):
            continue
        if n.endswith(HUMAN_SUFFIX):
            base = n[: -len(HUMAN_SUFFIX)]
            if base not in seen or base.endswith(HUMAN_SUFFIX) or base in TEXT:
                problems.append(
                    _problem(
                        f"'{n}' is the human label of score '{base}', but the file has no "
                        f"column '{base}': add the judge's score beside it",
                        line=1,
                        column=n,
                        position=i,
                        code="header",
                    )
                )
            else:
                header.human[base] = n
        else:
            header.scores.append(n)
    if not header.scores and not problems:
        problems.append(
            _problem(
                "no score column: add at least one numeric column (e.g. quality, correct, "
                "latency_ms)",
                line=1,
                code="missing_column",
            )
        )
    if problems:
        raise _refuse(path.name, problems)
    return header


def _checks(h: EvalHeader) -> list[sql.RowCheck]:
    """Every per-row rule, as SQL over the clean view (see :func:`sql.create_clean_view`)."""
    rc = sql.RowCheck
    q = sql.q

    def shown(expr: str) -> str:
        cell = f"left({expr}, 60)"
        return f"'''' || replace(replace({cell}, chr(13), '\\r'), chr(10), '\\n') || ''''"

    c: list[sql.RowCheck] = [
        rc(req, f"{q(req)} IS NULL", "'required value is missing'") for req in REQUIRED
    ]
    for col, limit in (("dataset", MAX_DATASET), ("item_id", MAX_ITEM_ID)):
        c.append(
            rc(
                col,
                f"length({q(col)}) > {limit}",
                f"'must be at most {limit} characters (it has ' || length({q(col)}) || ')'",
            )
        )
        c.append(
            rc(
                col,
                f"regexp_matches({q(col)}, '[\\r\\n]')",
                "'must be one line (no line breaks)'",
            )
        )
    if h.has_output:
        c.append(
            rc(
                "output",
                f"length(output) > {MAX_OUTPUT}",
                f"'must be at most {MAX_OUTPUT:,} characters (it has ' || length(output) || ')'",
            )
        )
    for name in h.scores:
        pairs = [(name, "s_", "raw_")]
        if name in h.human:
            pairs.append((h.human[name], "h_", "rawh_"))
        for col, vp, rp in pairs:
            v, raw = q(vp + name), q(rp + name)
            c.append(
                rc(
                    col,
                    f"{raw} IS NOT NULL AND {v} IS NULL",
                    f"{shown(raw)} || ' is not a number (scores are numbers or true/false)'",
                )
            )
            c.append(rc(col, f"isnan({v})", "'NaN is not a valid value'"))
            c.append(rc(col, f"isinf({v})", "'infinity is not a valid value'"))
            finite = f"NOT isnan({v}) AND NOT isinf({v})"
            c.append(
                rc(
                    col,
                    f"{finite} AND abs({v}) > {MAX_CUSTOM!r}",
                    f"'must be {MAX_CUSTOM_TEXT} (got ' || printf('%.15g', {v}) || ')'",
                )
            )
            if name in NON_NEGATIVE:
                c.append(
                    rc(
                        col,
                        f"{finite} AND {v} < 0",
                        f"'must be ≥ 0 (got ' || printf('%g', {v}) || ')'",
                    )
                )
        if name in h.human:
            c.append(
                rc(
                    h.human[name],
                    f"{q('h_' + name)} IS NOT NULL AND {q('raw_' + name)} IS NULL",
                    f"'a human label needs the judge score {name} on the same row'",
                )
            )
    c.append(
        rc(
            "",
            " AND ".join(f"{q('raw_' + n)} IS NULL" for n in h.scores),
            f"'the row has no score (fill at least one of {', '.join(h.scores)[:200]})'",
        )
    )
    return c


@dataclass
class Staged:
    """A checked file, ready to be written (inside the caller's transaction)."""

    header: EvalHeader
    rows: int
    sha256: str
    #: (dataset, template cell, version cell, template_id, template name, commit, version)
    keys: list[tuple[str, str, str, str, str, str, str | None]]
    tables: dict[str, str]


Resolver = Callable[[str, str], tuple[str, str, str, str | None]]
"""(template cell, version cell) → (template id, template name, commit id, version or None);
raises ``PromptverError`` with a message for an unknown template or ref."""


def check_and_write(
    db: Database,
    path: Path,
    *,
    file_name: str,
    author: str,
    resolve: Resolver,
    now: Any,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Check the whole file and write it in the current transaction (the caller's).

    Returns a plain summary (import id, rows, runs with their datasets, commits and counts).

    Raises:
        ImportError_: any rule broken; nothing is written.
    """
    report = progress or (lambda fraction, message: None)
    if not path.is_file():
        raise ImportError_(f"file not found: {path}")
    report(0.0, "reading the header")
    header = read_header(path)
    hasher = _Hasher(path)
    hasher.start()
    tag = uuid.uuid4().hex[:12]
    t = {k: f"pv_eval_{k}_{tag}" for k in ("clean", "stage", "view", "keys", "rejects")}
    checks = _checks(header)
    with db.connect() as con:
        try:
            report(0.05, "parsing and checking with DuckDB")
            try:
                base = sql.stage_clean(
                    con,
                    str(path),
                    t["clean"],
                    header.names,
                    t["rejects"],
                    REQUIRED,
                    header.scores,
                    header.human,
                    header.has_output,
                    checks,
                )
            except duckdb.InvalidInputException as exc:
                raise _unreadable(path, file_name, header.raw, exc) from None
            except duckdb.IOException as exc:
                raise ImportError_(f"cannot read {file_name}: {str(exc).splitlines()[0]}") from None
            rejected = _rejects(con, t["rejects"])
            if rejected:
                raise _refuse(file_name, _reject_problems(path, header.raw, rejected))
            rows, bad, distinct = sql.key_summary(con, t["clean"], MAX_KEYS + 1)
            if rows == 0:
                raise _refuse(
                    file_name,
                    [_problem("the file has a header but no data rows", line=2, code="no_rows")],
                )
            found: list[tuple[int, str, str, str]] = []  # (record index, column, message, code)
            if bad:  # a refusal: look again, with the cells, to say what is wrong where
                report(0.4, "finding the problems")
                sbase = sql.stage_csv(con, str(path), t["stage"], header.names, t["rejects"] + "2")
                sql.create_clean_view(
                    con,
                    t["stage"],
                    t["view"],
                    REQUIRED,
                    header.scores,
                    header.human,
                    header.has_output,
                )
                found += [
                    (r - sbase, col, msg, "row")
                    for r, col, msg in sql.bad_rows(con, t["view"], checks, MAX_PROBLEMS)
                ]
            total = bad
            keys: list[tuple[str, str, str, str, str, str, str | None]] = []
            if len(distinct) > MAX_KEYS:
                found.append(
                    (
                        distinct[MAX_KEYS][3] - base,
                        "",
                        f"more than {MAX_KEYS:,} different (dataset, template, version) "
                        "combinations in one file: split it",
                        "too_many_runs",
                    )
                )
                total += 1
            else:
                for dataset, template, version, first, n in distinct:
                    if dataset is None or template is None or version is None:
                        continue  # reported by the row checks
                    try:
                        tid, tname, commit, label = resolve(template, version)
                    except PromptverError as exc:
                        col = (
                            "template"
                            if isinstance(exc, NotFound) and ("unknown template" in exc.message)
                            else "version"
                        )
                        more = f" ({n:,} rows)" if n > 1 else ""
                        found.append((first - base, col, exc.message + more, "reference"))
                        total += 1
                        continue
                    keys.append((dataset, template, version, tid, tname, commit, label))
            if found:
                raise _refuse(file_name, _located(path, header, found), total)
            digest = hasher.result()
            before = sql.import_by_hash(con, digest)
            if before is not None:
                raise _refuse(
                    file_name,
                    [
                        _problem(
                            f"this file was already imported on {before[1]:%Y-%m-%d %H:%M} UTC "
                            f"by {before[2]} (eval import {before[0]}, SHA-256 {digest[:12]}…); "
                            "importing it again would count its samples twice",
                            code="duplicate_file",
                        )
                    ],
                )
            import_id = uuid.uuid4().hex[:16]
            runs: dict[tuple[str, str, str], dict[str, Any]] = {}
            key_rows = []
            for dataset, template, version, tid, tname, commit, label in keys:
                run = runs.get((dataset, tid, commit))
                if run is None:
                    run = {
                        "id": uuid.uuid4().hex[:16],
                        "import_id": import_id,
                        "dataset": dataset,
                        "template_id": tid,
                        "template": tname,
                        "commit_id": commit,
                        "ref": version,
                        "version": label,
                        "metrics": list(header.scores),
                        "created_at": now,
                    }
                    runs[(dataset, tid, commit)] = run
                key_rows.append((dataset, template, version, run["id"]))
            result = {
                "import_id": "" if dry_run else import_id,
                "file_name": file_name,
                "sha256": digest,
                "rows_imported": rows,
                "scores": list(header.scores),
                "human": sorted(header.human),
                "runs": list(runs.values()),
            }
            if dry_run:
                return result
            report(0.6, f"writing {rows:,} rows")
            sql.create_keys(con, t["keys"], key_rows)
            written = sql.insert_rows(con, t["clean"], t["keys"], header.scores)
            counts = sql.run_counts(con, [r["id"] for r in runs.values()])
            for run in runs.values():
                run["rows"], run["items"] = counts.get(run["id"], (0, 0))
                sql.insert_run(con, run)
            sql.insert_import(con, import_id, file_name, digest, written, now, author)
            result["rows_imported"] = written
            report(0.95, "committing")
            return result
        finally:
            sql.drop(
                con,
                views=[t["view"]],
                tables=[
                    t["clean"],
                    t["stage"],
                    t["keys"],
                    *(t["rejects"] + x for x in ("", "_scan", "2", "2_scan")),
                ],
            )


def _rejects(con: duckdb.DuckDBPyConnection, table: str) -> list[Any]:
    from promptver.store import metric_csv as metric_sql

    return metric_sql.rejects(con, table)


def _located(
    path: Path, header: EvalHeader, found: list[tuple[int, str, str, str]]
) -> list[CsvProblem]:
    """Problems with the physical line of each record and the column's position."""
    found.sort(key=lambda f: f[0])
    found = found[:MAX_PROBLEMS]
    lines = _record_lines(path, [f[0] for f in found])
    position = {n: i for i, n in enumerate(header.names, start=1)}
    return [
        _problem(
            msg, line=lines.get(row), column=col or None, position=position.get(col), code=code
        )
        for row, col, msg, code in found
    ]

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

This module is the write (both paths, in one transaction each). The columns and the header are
:mod:`~promptver.metrics.csv_columns`, the row rules and line numbers
:mod:`~promptver.metrics.csv_rules`, the warnings, problem lists and previews
:mod:`~promptver.metrics.csv_feedback`; their public names are re-exported here.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from promptver.clock import utcnow
from promptver.config import Settings
from promptver.errors import Conflict, ImportError_
from promptver.metrics.csv_columns import (
    BUILTIN,
    CUSTOM_NAME_RE,
    DIMENSION_RE,
    HEADER_LIMIT,
    ISO_EXAMPLE,
    KEY_DESCRIPTIONS,
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
    Progress,
    _problem,
    _refuse,
    is_dimension,
    read_header,
    read_header_record,
)
from promptver.metrics.csv_feedback import (
    DEFAULT_WINDOW,
    MAX_WARNINGS,
    _warnings,
    did_you_mean,
    file_sha256,
    preview_csv,
    problem_records,
    problems_csv,
    records_at,
)
from promptver.metrics.csv_rules import _checks, _reject_problems, _row_problems, _unreadable
from promptver.models.metrics import ImportRecord, ImportResult
from promptver.store import metric_csv as sql
from promptver.store import metric_imports as imports_sql
from promptver.store.db import Database

__all__ = [
    # the write (this module)
    "import_csv",
    # re-exported: the format and the header (csv_columns), the feedback (csv_feedback)
    "BUILTIN",
    "CUSTOM_NAME_RE",
    "DEFAULT_WINDOW",
    "DIMENSION_RE",
    "HEADER_LIMIT",
    "ISO_EXAMPLE",
    "KEY_DESCRIPTIONS",
    "KEYS",
    "MAX_CUSTOM",
    "MAX_CUSTOM_TEXT",
    "MAX_DIMENSION_CHARS",
    "MAX_PROBLEMS",
    "MAX_WARNINGS",
    "METRIC_MAX",
    "REQUIRED",
    "TEXT_COLUMNS",
    "CsvProblem",
    "Header",
    "Progress",
    "did_you_mean",
    "file_sha256",
    "is_dimension",
    "preview_csv",
    "problem_records",
    "problems_csv",
    "read_header",
    "read_header_record",
    "records_at",
]


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
                    before = imports_sql.import_by_hash(con, digest)
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
                landing = imports_sql.staged_events(
                    t["stage"], t["keys"], set(header.names), skipped > 0
                )
                warnings = _warnings(con, settings, header, landing, [], now)
                template_ids = sql.staged_template_ids(con, t["keys"])
                template_names = imports_sql.template_names(con, template_ids)
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
                    imports_sql.insert_import(
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
                if got.without_event_id and imports_sql.import_by_hash(con, digest) is not None:
                    raise _FallbackError()
                skipped = sql.drop_already_stored(con, import_id) if got.already_stored else 0
                imported = written - skipped
                warnings = _warnings(
                    con, settings, header, *imports_sql.landed_events(import_id), now
                )
                names = imports_sql.template_names(con, got.template_ids)
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
                imports_sql.insert_import(
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

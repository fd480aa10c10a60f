"""MetricsService: imports, tracking, figures, summary, recent events, retention, listeners."""

from __future__ import annotations

import csv
import io
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from promptver.clock import utcnow
from promptver.config import Settings
from promptver.errors import ImportError_, NotFound, PromptverError, ValidationError
from promptver.limits import check_author, check_text

# the window rules live with the metric definitions: parsing a window needs no database
from promptver.metric_defs import (  # noqa: F401 (re-exported)
    FIGURE_DIMENSIONS,
    MAX_WINDOW_DAYS,
    WINDOW_RE,
    WINDOWS,
)
from promptver.metric_defs import parse_window as _parse_window
from promptver.metrics import csv_import
from promptver.metrics.tracking import TrackingBuffer
from promptver.models.core import Prompt
from promptver.models.experiments import BUILTIN_METRICS
from promptver.models.metrics import (
    CsvPreview,
    ImportAttempt,
    ImportProblem,
    ImportRecord,
    ImportResult,
    MetricEvent,
    MetricsSummary,
    MetricStat,
    MetricsWritten,
    PerformanceFigures,
    PurgeResult,
)
from promptver.sources import EventSource
from promptver.sources.file import FileSource
from promptver.store import metric_figures as figures_sql
from promptver.store import metric_imports as imports_sql
from promptver.store import metrics as sql
from promptver.store import templates as template_sql
from promptver.store.db import Database

log = logging.getLogger("promptver.metrics")

Listener = Callable[[MetricsWritten], None]
DIMENSIONS = FIGURE_DIMENSIONS


def parse_window(window: str | timedelta | None, *, now: datetime | None = None) -> datetime | None:
    """Start of a window ending ``now`` (default: :func:`~promptver.versioning.utcnow`, the
    demo's clock while it builds): see :func:`promptver.metric_defs.parse_window`."""
    return _parse_window(window, now=now or utcnow())


class MetricsService:
    """Metric events of one workspace.

    Listeners (``add_listener``) are called after every committed import and tracking flush
    with a :class:`~promptver.models.MetricsWritten`; a flush calls them from the background
    thread. A listener that raises is logged and does not undo the write.
    """

    def __init__(self, db: Database, settings: Settings, source: EventSource | None = None) -> None:
        self.db = db
        self.settings = settings
        #: where figures, the summary and the pickers read events (imports always write the file)
        self.source: EventSource = source if source is not None else FileSource(db)
        self._listeners: list[Listener] = []
        self._listeners_lock = threading.Lock()
        self._buffer: TrackingBuffer | None = None
        self._buffer_lock = threading.Lock()
        # two threads of one process (two dashboard users) importing at once would each check
        # event ids and file hashes against a snapshot without the other's rows: one at a time
        self._import_lock = threading.Lock()

    # -- listeners ----------------------------------------------------------------------
    def add_listener(self, fn: Listener) -> Callable[[], None]:
        """Call ``fn(MetricsWritten)`` after each successful import or flush.

        Returns:
            A function that removes the listener.
        """
        with self._listeners_lock:
            self._listeners.append(fn)

        def remove() -> None:
            with self._listeners_lock:
                if fn in self._listeners:
                    self._listeners.remove(fn)

        return remove

    def _notify(self, written: MetricsWritten) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for fn in listeners:
            try:
                fn(written)
            except PromptverError as exc:  # busy, say: one line, the data is committed
                log.warning("promptver: after writing metrics, %r failed: %s", fn, exc)
            except Exception:  # the data is committed; a listener's bug must not hide that
                log.exception("promptver: metrics listener %r failed", fn)

    # -- CSV ----------------------------------------------------------------------------
    def import_csv(
        self,
        path: str | Path,
        *,
        author: str = "unknown",
        file_name: str | None = None,
        dry_run: bool = False,
        progress: csv_import.Progress | None = None,
        log_refusal: bool | None = None,
    ) -> ImportResult:
        """Import a metric-events CSV whole, or refuse it whole (see the contract).

        The result's ``warnings`` say what an accepted file should know (events outside the
        default window or before their version's first deployment, a custom column named like
        a built-in one); they never stop the import.

        Args:
            path: the CSV file.
            author: who imports it (recorded).
            file_name: the name to record, e.g. an upload's original name.
            dry_run: check everything and count what would land; write nothing.
            progress: ``fn(fraction, message)`` for progress displays.
            log_refusal: record a refusal in the attempts log (:meth:`attempts`); default: for
                real imports, not for dry runs. The dashboard's check of an upload is a dry run
                that logs, since the upload is the reader's attempt.

        Raises:
            ImportError_: the file breaks a rule (``problems`` name line, column and reason).
            DatabaseBusy: another process held the file past the configured wait.
        """
        if self.source.external:
            raise ImportError_(
                f"events live in the {self.source.describe()} (events.source: "
                f"{self.source.kind}), not in the promptver file: load them there; "
                "promptver reads them from the source"
            )
        author = check_author(author)
        if file_name is not None:
            file_name = check_text(file_name, "file_name", 255, single_line=True)
        try:
            with self._import_lock:
                result = csv_import.import_csv(
                    self.db,
                    self.settings,
                    path,
                    author=author,
                    file_name=file_name,
                    dry_run=dry_run,
                    progress=progress,
                )
        except ImportError_ as exc:
            if log_refusal if log_refusal is not None else not dry_run:
                self._log_refusal(Path(path), file_name, author, exc)
            raise
        if not dry_run:
            self._notify(
                MetricsWritten(
                    source="import",
                    rows=result.rows_imported,
                    import_id=result.import_id,
                    template_ids=result.template_ids,
                    first=result.first,
                    last=result.last,
                    written_at=utcnow(),
                )
            )
        return result

    def _log_refusal(
        self, path: Path, file_name: str | None, author: str, exc: ImportError_
    ) -> None:
        """Record a refused import in its own transaction, after the import rolled back.

        Inside a caller's transaction the record would share that transaction's fate, so it is
        not written there. A log that cannot be written (a busy file) is reported in the log
        and never replaces the refusal itself.
        """
        if self.db.in_transaction() or not path.is_file():
            return
        problems = csv_import.problem_records(exc)
        total = getattr(exc, "total_problems", len(exc.problems))
        # the summary a history row shows; every listed problem is stored beside it
        if not exc.problems:
            reason = exc.message
        elif total == 1:
            reason = str(exc.problems[0])
        else:
            reason = f"{total:,} problems, the first: {exc.problems[0]}"
        attempt = ImportAttempt(
            id=0,
            file_name=(file_name or path.name)[:255],
            sha256=csv_import.file_sha256(path),
            size_bytes=path.stat().st_size,
            attempted_at=utcnow(),
            attempted_by=author,
            reason=reason[:1000],
            total_problems=total,
            problems=problems,
        )
        try:
            with self.db.transaction() as con:
                imports_sql.insert_attempt(con, attempt)
        except PromptverError as log_exc:
            log.warning("promptver: the refused import could not be logged: %s", log_exc)

    def attempts(self, limit: int = 100) -> list[ImportAttempt]:
        """Refused imports (who, when, which file, why), newest first."""
        with self.db.read() as con:
            return imports_sql.list_attempts(con, limit)

    @staticmethod
    def problem_records(exc: ImportError_) -> list[ImportProblem]:
        """A refusal's problems as records (for tables and :meth:`problems_csv`)."""
        return csv_import.problem_records(exc)

    @staticmethod
    def problems_csv(problems: Sequence[ImportProblem]) -> bytes:
        """A refusal's problem list as a CSV download (``line,column,problem,code``)."""
        return csv_import.problems_csv(list(problems))

    @staticmethod
    def records_at(path: str | Path, lines: Sequence[int]) -> dict[int, list[str]]:
        """The CSV records starting on these physical lines (to show the rows a refusal names)."""
        return csv_import.records_at(path, list(lines))

    def preview_csv(
        self, path: str | Path, *, file_name: str | None = None, rows: int = 10
    ) -> CsvPreview:
        """The columns of a CSV with their roles, and its first rows (nothing is imported)."""
        return csv_import.preview_csv(path, file_name=file_name, rows=rows)

    def imports(self, limit: int = 100) -> list[ImportRecord]:
        """Import history, newest first."""
        with self.db.read() as con:
            return imports_sql.list_imports(con, limit)

    def get_import(self, import_id: str) -> ImportRecord:
        with self.db.read() as con:
            rec = imports_sql.get_import(con, import_id)
        if rec is None:
            raise NotFound(f"unknown import '{import_id}'")
        return rec

    # -- tracking -----------------------------------------------------------------------
    @property
    def buffer(self) -> TrackingBuffer:
        with self._buffer_lock:
            if self._buffer is None:
                self._buffer = TrackingBuffer(self.db, self.settings, self._notify)
            return self._buffer

    def track(
        self,
        prompt: Prompt,
        *,
        user_id: str | None = None,
        event_id: str | None = None,
        timestamp: datetime | None = None,
        **metrics: Any,
    ) -> None:
        """Buffer one event for ``prompt`` (see :meth:`promptver.Workspace.track`)."""
        self.buffer.record(prompt, metrics, user_id=user_id, event_id=event_id, timestamp=timestamp)

    def flush(self) -> int:
        """Write buffered events now, and any saved by a process that could not write them
        at exit; returns how many were written."""
        return self.buffer.flush()

    @property
    def pending(self) -> int:
        return 0 if self._buffer is None else self._buffer.pending

    def close(self) -> None:
        """Flush and stop the background writer."""
        if self._buffer is not None:
            self._buffer.close()

    # -- reading ------------------------------------------------------------------------
    def _template_id(self, ref: str | None) -> str | None:
        if ref is None:
            return None
        with self.db.read() as con:
            row = template_sql.template_row(con, ref)
        if row is None:
            raise NotFound(f"unknown template '{ref}'")
        return row["id"]

    def summary(self, template: str | None = None) -> MetricsSummary:
        """Events, users, first/last timestamps and count/mean of each metric.

        Built-in metrics are always listed (count 0, mean null when absent); ``success`` and
        ``error`` means are rates. Custom metrics found in the events follow.
        """
        tid = self._template_id(template)
        with self.source.reader() as rd:
            head, custom = rd.summary(tid)
        metrics: dict[str, MetricStat] = {}
        for i, name in enumerate(BUILTIN_METRICS):
            count, mean = head[4 + 2 * i], head[5 + 2 * i]
            metrics[name] = MetricStat(count=int(count), mean=None if not count else float(mean))
        for name, count, mean in custom:
            metrics[name] = MetricStat(count=int(count), mean=None if not count else float(mean))
        return MetricsSummary(
            events=int(head[0]), users=int(head[1]), first=head[2], last=head[3], metrics=metrics
        )

    def _filters(
        self,
        *,
        window: str | timedelta | None,
        start: datetime | None,
        end: datetime | None,
        template: str | None,
        **rest: Any,
    ) -> dict[str, Any]:
        if start is not None and end is not None and start > end:
            raise ValidationError("the window's start is after its end")
        if start is None:
            start = parse_window(window)
        return {
            "template_id": self._template_id(template),
            "start": start,
            "end": end,
            **{k: v for k, v in rest.items() if v is not None},
        }

    def figures(
        self,
        window: str | timedelta | None = "7d",
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        template: str | None = None,
        environment: str | None = None,
        version: str | None = None,
        variant: str | None = None,
        experiment_id: str | None = None,
        by: Sequence[str] = DIMENSIONS,
    ) -> list[PerformanceFigures]:
        """Performance figures per group over a window, all computed in SQL.

        Args:
            window: ``24h``, ``7d``, ``30d``, ``all``, ``N h``/``N d`` or a timedelta ending now;
                ignored when ``start`` is given (a custom window ``[start, end]``).
            by: the grouping, any of ``template``, ``version``, ``variant``, ``environment``.
        """
        unknown = [b for b in by if b not in DIMENSIONS]
        if unknown:
            raise ValidationError(
                f"cannot group by {', '.join(unknown)}: use {', '.join(DIMENSIONS)}"
            )
        filters = self._filters(
            window=window,
            start=start,
            end=end,
            template=template,
            environment=environment,
            version=version,
            variant=variant,
            experiment_id=experiment_id,
        )
        with self.source.reader() as rd:
            rows = rd.figures(by, **filters)
        return [PerformanceFigures(**r) for r in rows]

    def timeseries(
        self,
        window: str | timedelta | None = "7d",
        *,
        bucket: str = "day",
        split: str | None = "version",
        start: datetime | None = None,
        end: datetime | None = None,
        template: str | None = None,
        environment: str | None = None,
    ) -> list[dict[str, Any]]:
        """Figures per ``hour`` or ``day``, one series per value of ``split``."""
        if bucket not in ("hour", "day"):
            raise ValidationError("bucket must be 'hour' or 'day'")
        if split not in (None, *DIMENSIONS):
            raise ValidationError(f"cannot split by {split}")
        filters = self._filters(
            window=window, start=start, end=end, template=template, environment=environment
        )
        with self.source.reader() as rd:
            return rd.timeseries(bucket, split, **filters)

    def events(
        self,
        limit: int = 200,
        *,
        window: str | timedelta | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        template: str | None = None,
        environment: str | None = None,
        version: str | None = None,
        variant: str | None = None,
        experiment_id: str | None = None,
        user_id: str | None = None,
        import_id: str | None = None,
    ) -> list[MetricEvent]:
        """The most recent events matching the filters, newest first."""
        if limit < 1:
            raise ValidationError("limit must be at least 1")
        filters = self._filters(
            window=window,
            start=start,
            end=end,
            template=template,
            environment=environment,
            version=version,
            variant=variant,
            experiment_id=experiment_id,
            user_id=user_id,
            import_id=import_id,
        )
        with self.db.read() as con:
            return figures_sql.recent_events(con, min(limit, 10_000), **filters)

    def count(self, **filters: Any) -> int:
        """Stored events (optionally of one ``template``)."""
        template = filters.pop("template", None)
        if template is not None:
            filters["template_id"] = self._template_id(template)
        with self.db.read() as con:
            return figures_sql.count_events(con, **filters)

    def distinct(self, column: str, template: str | None = None) -> list[str]:
        """Values of ``environment``, ``version``, ``variant`` or ``experiment_id`` in events."""
        tid = self._template_id(template)
        with self.source.reader() as rd:
            return rd.distinct_values(column, tid)

    def custom_metrics(self) -> list[str]:
        """Names of the custom metrics present in stored events."""
        with self.source.reader() as rd:
            return rd.custom_metric_names()

    # -- retention ----------------------------------------------------------------------
    def purge(self, older_than_days: int | None = None, *, dry_run: bool = True) -> PurgeResult:
        """Delete events older than ``older_than_days`` (default: the retention setting).

        A dry run (the default) only counts them. Import records always stay.
        """
        days = (
            self.settings.performance_tracking.metrics_retention_days
            if older_than_days is None
            else older_than_days
        )
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise ValidationError(f"older_than_days must be a whole number ≥ 1, got {days!r}")
        cutoff = utcnow() - timedelta(days=days)
        with self.db.transaction() as con:
            events = sql.count_older(con, cutoff)
            deleted = 0 if dry_run or not events else sql.delete_older(con, cutoff)
        return PurgeResult(
            dry_run=dry_run, older_than_days=days, cutoff=cutoff, events=events, deleted=deleted
        )

    # -- example ------------------------------------------------------------------------
    @staticmethod
    def example_csv() -> bytes:
        """A small valid CSV for the demo templates (the file ``data/example_events.csv``)."""
        return example_csv()


def example_csv() -> bytes:
    """Deterministic example events for the demo templates ``qa-basic`` and
    ``summarize-article``: every built-in metric, a custom one and event ids."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(
        [
            "event_id",
            "timestamp",
            "template",
            "version",
            "environment",
            "user_id",
            "latency_ms",
            "success",
            "quality_score",
            "cost_usd",
            "tokens_in",
            "tokens_out",
            "thumbs_up",
        ]
    )
    base = datetime(2026, 6, 1, 9, 0, 0)
    for i in range(24):
        template = "qa-basic" if i % 3 else "summarize-article"
        version = "1.0.0" if i % 2 else "1.1.0"
        env = "production" if i % 4 else "staging"
        ok = i % 7 != 3
        ts = base + timedelta(minutes=17 * i)
        w.writerow(
            [
                f"example-{i + 1:04d}",
                ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
                template,
                version,
                env,
                f"user-{(i * 7) % 10 + 1:02d}",
                420 + (i * 53) % 900,
                "true" if ok else "false",
                f"{0.55 + ((i * 13) % 40) / 100:.2f}",
                f"{0.0008 + ((i * 29) % 30) / 10000:.4f}",
                300 + (i * 41) % 700,
                60 + (i * 23) % 240,
                "" if i % 5 == 4 else (1 if ok and i % 3 else 0),
            ]
        )
    return out.getvalue().encode("utf-8")

"""Metric events, CSV imports (attempts, problems, previews) and the figures over them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from promptver.models.core import Model


class MetricEvent(Model):
    """One stored event (one LLM call), as the Metrics screen lists them."""

    event_id: str | None = None
    import_id: str | None = None
    timestamp: datetime
    template_id: str
    template: str
    user_id: str
    experiment_id: str | None = None
    variant: str | None = None
    version: str | None = None
    commit: str | None = None
    environment: str | None = None
    latency_ms: float | None = None
    success: bool | None = None
    error: bool | None = None
    quality_score: float | None = None
    cost_usd: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    custom: dict[str, float] = Field(default_factory=dict)


class ImportRecord(Model):
    """One CSV import: which file (name and SHA-256), what landed, who and when."""

    id: str
    file_name: str
    sha256: str
    rows_imported: int
    rows_skipped_duplicate: int
    has_event_ids: bool
    created_at: datetime
    created_by: str
    #: events of this import still stored (retention may have purged some)
    events_present: int | None = None


class CsvWarning(Model):
    """Something about an accepted file the importer should know (the file is still imported).

    ``code``: ``outside_window`` (older than the screens' default window), ``retention`` (older
    than the retention setting), ``before_deployment`` (a version's events from before it was
    first deployed there, or never deployed), ``custom_near_builtin`` (a custom metric column
    named like a built-in one). ``rows`` counts the events concerned (0 for a column).
    """

    code: str
    message: str
    rows: int = 0
    column: str | None = None


class ImportProblem(Model):
    """One problem of a refused file, as stored and downloaded: ``line N, column NAME: …``."""

    line: int | None = None
    column: str | None = None
    message: str
    code: str | None = None


class ImportAttempt(Model):
    """A refused import, kept in its own log (the refused file wrote nothing else)."""

    id: int
    file_name: str
    sha256: str | None
    size_bytes: int | None
    attempted_at: datetime
    attempted_by: str
    reason: str
    total_problems: int
    problems: list[ImportProblem] = Field(default_factory=list)


class ImportResult(Model):
    """What ``metrics import`` reports (``contract()`` is the contract's JSON shape)."""

    import_id: str
    file_name: str
    sha256: str
    rows_imported: int
    rows_skipped_duplicate: int
    rows_in_file: int
    columns: list[str]
    custom_metrics: list[str] = Field(default_factory=list)
    first: datetime | None = None
    last: datetime | None = None
    templates: list[str] = Field(default_factory=list)
    template_ids: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    warnings: list[CsvWarning] = Field(default_factory=list)

    def contract(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "rows_imported": self.rows_imported,
            "rows_skipped_duplicate": self.rows_skipped_duplicate,
        }


class CsvColumn(Model):
    """A column of an uploaded CSV and the role it plays (or why it is refused)."""

    position: int
    name: str
    role: Literal["required", "key", "metric", "custom metric", "dimension", "refused"]
    type: str
    description: str = ""


class CsvPreview(Model):
    """The header of a CSV read the way the import reads it, and its first rows as text."""

    file_name: str
    size_bytes: int
    columns: list[CsvColumn]
    rows: list[list[str]]
    problems: list[str] = Field(default_factory=list)
    #: the physical line each of ``rows`` starts on (the header is line 1)
    lines: list[int] = Field(default_factory=list)


class MetricStat(Model):
    count: int
    mean: float | None


class MetricsSummary(Model):
    """``metrics summary``: events, users, first and last timestamps, count and mean per metric."""

    events: int
    users: int
    first: datetime | None
    last: datetime | None
    metrics: dict[str, MetricStat]

    def contract(self) -> dict[str, Any]:
        from datetime import UTC  # local: keeps the shared import block of this file untouched

        def iso(d: datetime | None) -> str | None:
            return None if d is None else d.astimezone(UTC).isoformat()

        return {
            "events": self.events,
            "users": self.users,
            "first": iso(self.first),
            "last": iso(self.last),
            "metrics": {k: {"count": v.count, "mean": v.mean} for k, v in self.metrics.items()},
        }


class PerformanceFigures(Model):
    """Figures of one group of events (a template, version, variant, environment) in a window.

    Rates and means are over the events that carry the metric; percentiles interpolate linearly
    between order statistics (``quantile_cont``).
    """

    template: str | None = None
    template_id: str | None = None
    version: str | None = None
    experiment_id: str | None = None
    variant: str | None = None
    environment: str | None = None
    requests: int
    users: int
    latency_avg: float | None = None
    latency_p50: float | None = None
    latency_p95: float | None = None
    success_rate: float | None = None
    error_rate: float | None = None
    quality_mean: float | None = None
    cost_per_request: float | None = None
    cost_total: float | None = None
    tokens_in_avg: float | None = None
    tokens_out_avg: float | None = None
    tokens_in_total: int | None = None
    tokens_out_total: int | None = None
    first: datetime | None = None
    last: datetime | None = None


class PurgeResult(Model):
    """``metrics purge``: events older than the cutoff (counted on a dry run, else deleted)."""

    dry_run: bool
    older_than_days: int
    cutoff: datetime
    events: int
    deleted: int = 0


class MetricsWritten(Model):
    """Told to metrics listeners after an import or a tracking flush was committed."""

    source: Literal["import", "track"]
    rows: int
    import_id: str | None = None
    template_ids: list[str] = Field(default_factory=list)
    first: datetime | None = None
    last: datetime | None = None
    written_at: datetime

"""Where the analysis reads metric events: the promptver file, or an engine that holds them.

Experiment results, the performance figures, the trends and the pickers read events through
one interface, :class:`EventSource`. A source hands out an :class:`EventReader` for a block of
reads (one snapshot where the engine has them); the reader answers the few questions the
analysis asks, always as aggregates:

- per-variant sufficient statistics of an experiment (per-user reduction first, then per
  variant or per hashed bucket of users; with CUPED's pre-period covariate; per segment value)
  and the quantiles the p95 and winsorisation need;
- performance figures per template / version / variant / environment over a window, and per
  time bucket;
- the sums behind the trend lines and the before/after comparisons of deployments;
- distinct values for the dashboard's pickers, and the custom metrics present.

The default source is the promptver file (:class:`~promptver.sources.file.FileSource`: the
store's queries, unchanged). The ``events:`` settings can point at Parquet files, PostgreSQL
or Spark instead (:mod:`promptver.sources.external`); their engines are imported only when
such a source is configured and first read.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from promptver.config import Settings
    from promptver.metric_defs import Measure
    from promptver.store.db import Database
    from promptver.store.stats import (
        CovariateWindow,
        EventFilter,
        ExperimentSums,
        MetricColumn,
        UnitKind,
    )
    from promptver.store.trends import Span


class EventReader(Protocol):
    """The questions the analysis asks of the events, inside one read block."""

    # -- experiment results (promptver.analysis) ----------------------------------------------
    def experiment_sums(
        self,
        flt: EventFilter,
        columns: list[MetricColumn],
        *,
        buckets: int,
        user_limit: int,
        covariate: CovariateWindow | None = None,
    ) -> ExperimentSums: ...

    def segment_sums(
        self,
        flt: EventFilter,
        columns: list[MetricColumn],
        by: str,
        *,
        buckets: int,
        user_limit: int,
        covariate: CovariateWindow | None = None,
        max_values: int | None = None,
    ) -> tuple[int, dict[str | None, ExperimentSums]]: ...

    def dimension_names(self, experiment_id: str) -> list[str]: ...

    def pooled_quantiles(
        self, flt: EventFilter, metrics: list[str], q: float
    ) -> dict[str, float | None]: ...

    def prefetch_quantiles(
        self,
        flt: EventFilter,
        metric: str,
        levels: list[float],
        *,
        bins: int,
        buckets: int,
        min_users: int,
    ) -> bool:
        """Start the p95's statements ahead of :meth:`experiment_sums` where they can run
        beside it (see ``ExternalReader.prefetch_quantiles``); whether they were started."""
        ...

    def variant_quantiles(
        self, flt: EventFilter, metric: str, levels: list[float]
    ) -> dict[str, tuple[int, list[float]]]: ...

    def metric_event_values(
        self, flt: EventFilter, metric: str, kind: UnitKind, buckets: int
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]: ...

    def metric_histograms(
        self,
        flt: EventFilter,
        metric: str,
        windows: dict[str, tuple[float, float]],
        bins: int,
        kind: UnitKind,
        buckets: int,
    ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]: ...

    def events_fingerprint(self, experiment_id: str) -> tuple[Any, ...]: ...

    # -- figures (promptver.metrics) ----------------------------------------------------------
    def figures(self, by: Sequence[str], **filters: Any) -> list[dict[str, Any]]: ...

    def timeseries(self, bucket: str, by: str | None, **filters: Any) -> list[dict[str, Any]]: ...

    def summary(self, template_id: str | None) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]: ...

    def distinct_values(self, column: str, template_id: str | None = None) -> list[str]: ...

    def custom_metric_names(self) -> list[str]: ...

    # -- trends (promptver.trends) ------------------------------------------------------------
    def count_events(
        self,
        template_ids: Sequence[str],
        start: datetime,
        end: datetime,
        environment: str | None,
    ) -> int: ...

    def bucket_series(self, **kwargs: Any) -> list[dict[str, Any]]: ...

    def change_sums(
        self, spans: Sequence[Span], measures: Sequence[Measure], clusters: int | None = None
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]: ...

    def change_values(
        self, spans: Sequence[Span], measure: Measure, clusters: int | None = None
    ) -> list[tuple[tuple[Any, Any], tuple[Any, Any]]]: ...


class EventSource(Protocol):
    """Where events live. ``kind`` is the ``events.source`` setting; ``external`` is true when
    the events are not in the promptver file (imports are then refused)."""

    kind: str
    external: bool

    def describe(self) -> str:
        """One line for people: ``the promptver file``, ``parquet files lake/**/*.parquet`` …"""
        ...

    def reader(self) -> AbstractContextManager[EventReader]:
        """A block of reads (one snapshot where the engine has them).

        Raises:
            SourceError: the engine cannot be reached, or its table or columns are not usable.
        """
        ...

    def close(self) -> None: ...


def open_source(settings: Settings, db: Database) -> EventSource:
    """The source the settings name (``events.source``); nothing connects until first read."""
    cfg = settings.events
    if cfg.source == "duckdb":
        from promptver.sources.file import FileSource

        return FileSource(db)
    from promptver.sources.external import ExternalSource

    return ExternalSource(cfg, db)


def file_reader(db: Database) -> AbstractContextManager[EventReader]:
    """A reader over the promptver file itself (for callers without a configured source)."""
    from promptver.sources.file import FileSource

    return FileSource(db).reader()


__all__ = ["EventReader", "EventSource", "file_reader", "open_source"]

"""The default source: events in the promptver file, read with the store's DuckDB queries.

Each method hands its arguments to the query module that always answered it
(``promptver.store.stats``, ``promptver.store.metrics``, ``promptver.store.trends``) with the
connection of the read block: the results are the ones the analysis had before sources existed.
The experiment and trend queries need numpy: their modules are imported on first use, so that
opening a workspace stays light.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from promptver.store import metrics as metrics_sql

if TYPE_CHECKING:
    import numpy as np

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


class FileReader:
    """Reads through one connection of the promptver file (inside the caller's transaction)."""

    def __init__(self, con: Any) -> None:
        self.con = con

    # -- experiment results -------------------------------------------------------------------
    def experiment_sums(
        self,
        flt: EventFilter,
        columns: list[MetricColumn],
        *,
        buckets: int,
        user_limit: int,
        covariate: CovariateWindow | None = None,
    ) -> ExperimentSums:
        from promptver.store import stats as stats_sql

        return stats_sql.experiment_sums(
            self.con, flt, columns, buckets=buckets, user_limit=user_limit, covariate=covariate
        )

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
    ) -> tuple[int, dict[str | None, ExperimentSums]]:
        from promptver.store import stats as stats_sql

        return stats_sql.segment_sums(
            self.con,
            flt,
            columns,
            by,
            buckets=buckets,
            user_limit=user_limit,
            covariate=covariate,
            max_values=max_values,
        )

    def dimension_names(self, experiment_id: str) -> list[str]:
        from promptver.store import stats as stats_sql

        return stats_sql.dimension_names(self.con, experiment_id)

    def pooled_quantiles(
        self, flt: EventFilter, metrics: list[str], q: float
    ) -> dict[str, float | None]:
        from promptver.store import stats as stats_sql

        return stats_sql.pooled_quantiles(self.con, flt, metrics, q)

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
        """Nothing to start: the file's statements run on the caller's connection, in turn."""
        return False

    def variant_quantiles(
        self, flt: EventFilter, metric: str, levels: list[float]
    ) -> dict[str, tuple[int, list[float]]]:
        from promptver.store import stats as stats_sql

        return stats_sql.variant_quantiles(self.con, flt, metric, levels)

    def metric_event_values(
        self, flt: EventFilter, metric: str, kind: UnitKind, buckets: int
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        from promptver.store import stats as stats_sql

        return stats_sql.metric_event_values(self.con, flt, metric, kind, buckets)

    def metric_histograms(
        self,
        flt: EventFilter,
        metric: str,
        windows: dict[str, tuple[float, float]],
        bins: int,
        kind: UnitKind,
        buckets: int,
    ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        from promptver.store import stats as stats_sql

        return stats_sql.metric_histograms(self.con, flt, metric, windows, bins, kind, buckets)

    def events_fingerprint(self, experiment_id: str) -> tuple[Any, ...]:
        from promptver.store import stats as stats_sql

        return stats_sql.events_fingerprint(self.con, experiment_id)

    # -- figures ------------------------------------------------------------------------------
    def figures(self, by: Sequence[str], **filters: Any) -> list[dict[str, Any]]:
        return metrics_sql.figures(self.con, by, **filters)

    def timeseries(self, bucket: str, by: str | None, **filters: Any) -> list[dict[str, Any]]:
        return metrics_sql.timeseries(self.con, bucket, by, **filters)

    def summary(self, template_id: str | None) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
        return metrics_sql.summary(self.con, template_id)

    def distinct_values(self, column: str, template_id: str | None = None) -> list[str]:
        return metrics_sql.distinct_values(self.con, column, template_id)

    def custom_metric_names(self) -> list[str]:
        return metrics_sql.custom_metric_names(self.con)

    # -- trends -------------------------------------------------------------------------------
    def count_events(
        self,
        template_ids: Sequence[str],
        start: datetime,
        end: datetime,
        environment: str | None,
    ) -> int:
        from promptver.store import trends as trends_sql

        return trends_sql.count_events(self.con, template_ids, start, end, environment)

    def bucket_series(self, **kwargs: Any) -> list[dict[str, Any]]:
        from promptver.store import trends as trends_sql

        return trends_sql.bucket_series(self.con, **kwargs)

    def change_sums(
        self, spans: Sequence[Span], measures: Sequence[Measure], clusters: int | None = None
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        from promptver.store import trends as trends_sql

        return trends_sql.change_sums(self.con, spans, measures, clusters)

    def change_values(
        self, spans: Sequence[Span], measure: Measure, clusters: int | None = None
    ) -> list[tuple[tuple[Any, Any], tuple[Any, Any]]]:
        from promptver.store import trends as trends_sql

        return trends_sql.change_values(self.con, spans, measure, clusters)


class FileSource:
    """Events in the promptver file (the default, ``events.source: duckdb``)."""

    kind = "duckdb"
    external = False

    def __init__(self, db: Database) -> None:
        self.db = db

    def describe(self) -> str:
        return "the promptver file"

    @contextmanager
    def reader(self) -> Iterator[FileReader]:
        with self.db.read() as con:
            yield FileReader(con)

    def close(self) -> None:
        pass

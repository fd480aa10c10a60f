"""Events in an engine: Parquet files (DuckDB), PostgreSQL or Spark (``events.source``).

:class:`ExternalSource` connects on first read (the driver is imported then), checks the
source's columns once (renames from the settings, required columns and types) and answers the
reader's questions with the queries of ``promptver.store.warehouse_stats`` and
``promptver.store.warehouse_figures``, which run in the engine and return aggregates.

The source names templates and experiments as the contract's CSV does (``template``: the name;
``experiment``: the id or the name); the promptver file, which keeps templates and experiments,
maps them: a filter on a template or an experiment matches either of its names, and rows come
back with the file's ids.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from promptver.errors import SourceError
from promptver.store import engines
from promptver.store import warehouse_figures as figs
from promptver.store import warehouse_stats as wstats
from promptver.store import warehouse_trends as wtrends
from promptver.store.warehouse import Relation, window_where

if TYPE_CHECKING:
    import numpy as np

    from promptver.config import EventsSettings
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


def _utc(v: Any) -> Any:
    if isinstance(v, datetime) and v.tzinfo is None:
        return v.replace(tzinfo=UTC)
    return v


def _sort_key(row: dict[str, Any], keys: Sequence[str]) -> tuple:
    return tuple((row.get(k) is None, "" if row.get(k) is None else row.get(k)) for k in keys)


class ExternalReader:
    """One block of reads: the file's names of templates and experiments, read once."""

    def __init__(self, rel: Relation, db: Database) -> None:
        self.rel = rel
        with db.read() as con:
            self.templates, self.experiments = figs.file_names(con)
        self.template_ids = {name: tid for tid, name in self.templates.items()}
        self.experiment_ids = {name: eid for eid, name in self.experiments.items()}
        #: (filter, unit kind, buckets) of the last experiment sums: the p95 quantiles then
        #: bin the histogram in the same query (see :meth:`variant_quantiles`)
        self._units: tuple[EventFilter, UnitKind, int] | None = None
        #: the histograms fetched with the last quantiles, keyed by what they answer
        self._hists: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        #: the p95 statements started by :meth:`prefetch_quantiles`: what they answer, the
        #: thread and its outcome
        self._prefetch: tuple[tuple[Any, ...], threading.Thread, dict[str, Any]] | None = None

    # -- names --------------------------------------------------------------------------------
    def _exp_aliases(self, experiment_id: str) -> list[str]:
        name = self.experiments.get(experiment_id)
        return [experiment_id] + ([name] if name and name != experiment_id else [])

    def _tpl_aliases(self, template_id: str | None) -> list[str] | None:
        if template_id is None:
            return None
        name = self.templates.get(template_id)
        return [template_id] + ([name] if name and name != template_id else [])

    def _template_id(self, value: Any) -> str | None:
        if value is None:
            return None
        return value if value in self.templates else self.template_ids.get(value)

    def _experiment_id(self, value: Any) -> str | None:
        if value is None:
            return None
        return value if value in self.experiments else self.experiment_ids.get(value, value)

    def _filters(self, filters: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in filters.items() if k not in ("template_id", "experiment_id")}
        out["templates"] = self._tpl_aliases(filters.get("template_id"))
        if filters.get("experiment_id") is not None:
            out["experiments"] = self._exp_aliases(filters["experiment_id"])
        if filters.get("import_id") is not None:
            raise SourceError(f"{self.rel.label}: events in an external source have no import id")
        return out

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
        sums = wstats.experiment_sums(
            self.rel,
            flt,
            self._exp_aliases(flt.experiment_id),
            columns,
            buckets=buckets,
            user_limit=user_limit,
            covariate=covariate,
            cov_templates=self._cov_templates(covariate),
        )
        self._units = (flt, sums.unit_kind, buckets)
        return sums

    def _cov_templates(self, covariate: CovariateWindow | None) -> list[str] | None:
        return None if covariate is None else self._tpl_aliases(covariate.template_id)

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
        return wstats.segment_sums(
            self.rel,
            flt,
            self._exp_aliases(flt.experiment_id),
            columns,
            by,
            buckets=buckets,
            user_limit=user_limit,
            covariate=covariate,
            cov_templates=self._cov_templates(covariate),
            max_values=max_values,
        )

    def dimension_names(self, experiment_id: str) -> list[str]:
        return wstats.dimension_names(self.rel, self._exp_aliases(experiment_id))

    def pooled_quantiles(
        self, flt: EventFilter, metrics: list[str], q: float
    ) -> dict[str, float | None]:
        return wstats.pooled_quantiles(
            self.rel, flt, self._exp_aliases(flt.experiment_id), metrics, q
        )

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
        """Start the p95's statements — ``metric``'s quantiles at ``levels``, then its
        histograms (``bins`` over each variant's window between the outer levels, users in
        ``buckets`` bootstrap buckets) — on the engine's sidecar (an engine in this process,
        whose per-user reduction holds one core), when the experiment has about ``min_users``
        users or more (the analysis' guess at when it will ask for ``levels``): they run on the
        other core while the reduction holds this one. :meth:`variant_quantiles` and
        :meth:`metric_histograms` answer from them when asked exactly that; anything else is
        computed as usual. Returns whether they were started."""
        if self._prefetch is not None or flt.segment is not None:
            return False
        if not self.rel.engine.user_pass_bytes:  # a server or a cluster: nothing to share
            return False
        aliases = self._exp_aliases(flt.experiment_id)
        params: dict[str, Any] = {}
        where = window_where(params, start=flt.start, end=flt.end, experiment=aliases)
        if self.rel.users_estimate(where, params) < min_users:
            return False
        side = self.rel.sidecar()
        if side is None:
            return False
        out: dict[str, Any] = {}

        def work() -> None:
            try:
                qs = wstats.variant_quantiles(side, flt, aliases, metric, levels)
                windows = wstats.quantile_windows(qs, levels)
                hists = (
                    wstats.metric_histograms(
                        side, flt, aliases, metric, windows, bins, "bucket", buckets
                    )
                    if windows
                    else {}
                )
                out["value"] = (qs, windows, hists)
            except Exception as exc:  # answered again on this thread, where it is reported
                out["error"] = exc

        thread = threading.Thread(target=work, name="promptver-p95", daemon=True)
        key = (flt, metric, tuple(levels), bins, buckets)
        self._prefetch = (key, thread, out)
        thread.start()
        return True

    def _prefetched(self, flt: EventFilter, metric: str, levels: list[float]) -> Any:
        """The prefetched (quantiles, windows, histograms) when they answer this question."""
        pre = self._prefetch
        if pre is None or pre[0][:3] != (flt, metric, tuple(levels)):
            return None
        pre[1].join()
        if "value" not in pre[2]:
            return None  # it failed: the caller asks again (and reports what fails)
        _, _, _, bins, buckets = pre[0]
        qs, windows, hists = pre[2]["value"]
        self._keep_hists((flt, metric, bins, "bucket", buckets), windows, hists)
        return qs

    def _keep_hists(self, key: tuple[Any, ...], windows: dict, hists: dict) -> None:
        """Histograms fetched with quantiles, for :meth:`metric_histograms` to answer ``key``."""
        self._hists = (key, {"windows": windows, "hists": hists})

    def finish(self) -> None:
        """Wait for prefetched statements still running (the read block is over)."""
        if self._prefetch is not None:
            self._prefetch[1].join()

    def variant_quantiles(
        self, flt: EventFilter, metric: str, levels: list[float]
    ) -> dict[str, tuple[int, list[float]]]:
        got = self._prefetched(flt, metric, levels)
        if got is not None:
            return got
        aliases = self._exp_aliases(flt.experiment_id)
        units = self._units
        if (
            self.rel.engine.dialect == "duckdb"
            or len(levels) != 3
            or units is None
            or units[0] != flt
        ):
            return wstats.variant_quantiles(self.rel, flt, aliases, metric, levels)
        # the p95 bootstrap asks for the histogram between the outer levels next: on a server
        # or a cluster, one statement answers both (a round trip and a Spark job fewer)
        _, kind, buckets = units
        bins = wstats.HISTOGRAM_BINS
        qs, windows, hists = wstats.quantiles_with_histograms(
            self.rel, flt, aliases, metric, levels, bins, kind, buckets
        )
        self._keep_hists((flt, metric, bins, kind, buckets), windows, hists)
        return qs

    def metric_event_values(
        self, flt: EventFilter, metric: str, kind: UnitKind, buckets: int
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return wstats.metric_event_values(
            self.rel, flt, self._exp_aliases(flt.experiment_id), metric, kind, buckets
        )

    def metric_histograms(
        self,
        flt: EventFilter,
        metric: str,
        windows: dict[str, tuple[float, float]],
        bins: int,
        kind: UnitKind,
        buckets: int,
    ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        if self._hists is not None and self._hists[0] == (flt, metric, bins, kind, buckets):
            got = self._hists[1]
            if all(got["windows"].get(v) == w for v, w in windows.items()):
                return {v: got["hists"][v] for v in windows}
        return wstats.metric_histograms(
            self.rel,
            flt,
            self._exp_aliases(flt.experiment_id),
            metric,
            windows,
            bins,
            kind,
            buckets,
        )

    def events_fingerprint(self, experiment_id: str) -> tuple[Any, ...]:
        return wstats.events_fingerprint(self.rel, self._exp_aliases(experiment_id))

    # -- figures ------------------------------------------------------------------------------
    def figures(self, by: Sequence[str], **filters: Any) -> list[dict[str, Any]]:
        dims = [d for d in figs.DIMS if d in by]
        rows = figs.figures(self.rel, dims, self._filters(filters))
        order: list[str] = []
        for r in rows:
            r["first"], r["last"] = _utc(r["first"]), _utc(r["last"])
            if "template" in dims:
                r["template_id"] = self._template_id(r["template"])
            if "variant" in dims:
                r["experiment_id"] = self._experiment_id(r.pop("experiment"))
        for d in dims:
            order += {
                "template": ["template"],
                "version": ["version"],
                "variant": ["experiment_id", "variant"],
                "environment": ["environment"],
            }[d]
        return sorted(rows, key=lambda r: _sort_key(r, order))

    def timeseries(self, bucket: str, by: str | None, **filters: Any) -> list[dict[str, Any]]:
        rows = figs.timeseries(self.rel, bucket, by, self._filters(filters))
        for r in rows:
            r["bucket"], r["first"], r["last"] = (
                _utc(r["bucket"]),
                _utc(r["first"]),
                _utc(r["last"]),
            )
        return sorted(rows, key=lambda r: (r["bucket"], *_sort_key(r, ["series"])))

    def summary(self, template_id: str | None) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
        head, custom = figs.summary(self.rel, self._tpl_aliases(template_id))
        head = (head[0], head[1], _utc(head[2]), _utc(head[3]), *head[4:])
        return head, custom

    def distinct_values(self, column: str, template_id: str | None = None) -> list[str]:
        if column == "experiment_id":
            values = figs.distinct_values(self.rel, "experiment", self._tpl_aliases(template_id))
            return sorted({str(self._experiment_id(v)) for v in values})
        return figs.distinct_values(self.rel, column, self._tpl_aliases(template_id))

    def custom_metric_names(self) -> list[str]:
        return sorted(self.rel.custom)

    # -- trends -------------------------------------------------------------------------------
    def count_events(
        self,
        template_ids: Sequence[str],
        start: datetime,
        end: datetime,
        environment: str | None,
    ) -> int:
        names = [a for t in template_ids for a in (self._tpl_aliases(t) or [])]
        return figs.count_events(self.rel, names, start, end, environment)

    def bucket_series(self, **kwargs: Any) -> list[dict[str, Any]]:
        ids = kwargs.pop("template_ids")
        templates = [a for t in ids for a in (self._tpl_aliases(t) or [])]
        rows = wtrends.bucket_series(
            self.rel, templates=templates, template_id=self._template_id, **kwargs
        )
        for r in rows:
            r["bucket"] = _utc(r["bucket"])
        return sorted(
            rows,
            key=lambda r: (
                r["template_id"] or "",
                r["series"] is not None,
                r["series"] or "",
                r["bucket"],
            ),
        )

    def _aliases(self, template_id: str) -> list[str]:
        return self._tpl_aliases(template_id) or []

    def change_sums(
        self, spans: Sequence[Span], measures: Sequence[Measure], clusters: int | None = None
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return wtrends.change_sums(self.rel, spans, self._aliases, measures, clusters)

    def change_values(
        self, spans: Sequence[Span], measure: Measure, clusters: int | None = None
    ) -> list[tuple[tuple[Any, Any], tuple[Any, Any]]]:
        return wtrends.change_values(self.rel, spans, self._aliases, measure, clusters)


class ExternalSource:
    """Events in Parquet files, PostgreSQL or Spark (see the module's docstring)."""

    external = True

    def __init__(self, cfg: EventsSettings, db: Database) -> None:
        self.kind = cfg.source
        self.cfg = cfg
        self.db = db
        self.engine = engines.make_engine(
            cfg.source, path=cfg.path, dsn=cfg.dsn, table=cfg.table, remote=cfg.remote
        )
        self._rel: Relation | None = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        return self.engine.label.replace(" source", "", 1)

    def relation(self) -> Relation:
        """The checked relation (connects and reads the source's columns on first use)."""
        with self._lock:
            if self._rel is None:
                self._rel = Relation(self.engine, dict(self.cfg.columns))
            return self._rel

    @contextmanager
    def reader(self) -> Iterator[ExternalReader]:
        rd = ExternalReader(self.relation(), self.db)
        try:
            yield rd
        finally:
            rd.finish()

    def close(self) -> None:
        self.engine.close()

"""SQL that reads metric events: figures, time series, the summary, recent events, filters.

Every query takes the same filters (template, version, environment, experiment, variant,
window). ``promptver.store.metrics`` re-exports these functions, which the external event
sources (:mod:`promptver.sources`) and the warehouse's twins mirror.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb

from promptver.metric_defs import FIGURE_DIMENSIONS
from promptver.models.metrics import MetricEvent

Con = duckdb.DuckDBPyConnection


# ---- reading -------------------------------------------------------------------------------


def _filters(
    template_id: str | None = None,
    environment: str | None = None,
    version: str | None = None,
    variant: str | None = None,
    experiment_id: str | None = None,
    user_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    import_id: str | None = None,
    alias: str = "e",
) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("template_id", template_id),
        ("environment", environment),
        ("version", version),
        ("variant", variant),
        ("experiment_id", experiment_id),
        ("user_id", user_id),
        ("import_id", import_id),
    ):
        if value is not None:
            where.append(f"{alias}.{column} = ?")
            params.append(value)
    if start is not None:
        where.append(f"{alias}.ts >= ?")
        params.append(start)
    if end is not None:
        where.append(f"{alias}.ts <= ?")
        params.append(end)
    return (" WHERE " + " AND ".join(where)) if where else "", params


def count_events(con: Con, **filters: Any) -> int:
    where, params = _filters(**filters)
    return con.execute(f"SELECT count(*) FROM metric_events e{where}", params).fetchone()[0]


def summary(con: Con, template_id: str | None) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """(events, users, first, last) and (metric, count, mean) per metric, built-ins first."""
    where, params = _filters(template_id=template_id)
    head = con.execute(
        "SELECT count(*), count(DISTINCT user_id), min(ts), max(ts),"
        " count(latency_ms), avg(latency_ms), count(success), avg(success::INT),"
        " count(error), avg(error::INT), count(quality_score), avg(quality_score),"
        " count(cost_usd), avg(cost_usd), count(tokens_in), avg(tokens_in),"
        f" count(tokens_out), avg(tokens_out) FROM metric_events e{where}",
        params,
    ).fetchone()
    custom = con.execute(
        "SELECT k, count(v), avg(v) FROM (SELECT unnest(map_keys(custom)) AS k,"
        f" unnest(map_values(custom)) AS v FROM metric_events e{where}"
        f"{' AND' if where else ' WHERE'} custom IS NOT NULL) GROUP BY k ORDER BY k",
        params,
    ).fetchall()
    return head, custom


def custom_metric_names(con: Con) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT unnest(map_keys(custom)) AS k FROM metric_events"
            " WHERE custom IS NOT NULL ORDER BY k"
        ).fetchall()
    ]


_FIGURES_SELECT = """
    count(*) AS requests,
    count(DISTINCT e.user_id) AS users,
    avg(e.latency_ms) AS latency_avg,
    quantile_cont(e.latency_ms, 0.5) AS latency_p50,
    quantile_cont(e.latency_ms, 0.95) AS latency_p95,
    avg(e.success::INT) AS success_rate,
    avg(e.error::INT) AS error_rate,
    avg(e.quality_score) AS quality_mean,
    avg(e.cost_usd) AS cost_per_request,
    sum(e.cost_usd) AS cost_total,
    avg(e.tokens_in) AS tokens_in_avg,
    avg(e.tokens_out) AS tokens_out_avg,
    sum(e.tokens_in) AS tokens_in_total,
    sum(e.tokens_out) AS tokens_out_total,
    min(e.ts) AS first,
    max(e.ts) AS last
"""


def figures(con: Con, by: Sequence[str], **filters: Any) -> list[dict[str, Any]]:
    """Performance figures grouped by ``by`` (a subset of :data:`FIGURE_DIMENSIONS`)."""
    dims = [d for d in FIGURE_DIMENSIONS if d in by]
    exprs = {
        "template": "t.name AS template, e.template_id",
        "version": "e.version",
        "variant": "e.experiment_id, e.variant",
        "environment": "e.environment",
    }
    groups = {
        "template": "t.name, e.template_id",
        "version": "e.version",
        "variant": "e.experiment_id, e.variant",
        "environment": "e.environment",
    }
    where, params = _filters(**filters)
    select = ", ".join([exprs[d] for d in dims] + [_FIGURES_SELECT])
    group = (" GROUP BY " + ", ".join(groups[d] for d in dims)) if dims else ""
    order = (
        (
            " ORDER BY "
            + ", ".join(groups[d].replace(", ", " NULLS LAST, ") + " NULLS LAST" for d in dims)
        )
        if dims
        else ""
    )
    cur = con.execute(
        f"SELECT {select} FROM metric_events e JOIN templates t ON t.id = e.template_id"
        f"{where}{group}{order}",
        params,
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def timeseries(con: Con, bucket: str, by: str | None, **filters: Any) -> list[dict[str, Any]]:
    """Figures per time bucket (``hour`` or ``day``), optionally split by one dimension."""
    split = {
        "version": "e.version",
        "variant": "e.variant",
        "environment": "e.environment",
        "template": "t.name",
        None: "NULL::VARCHAR",
    }[by]
    where, params = _filters(**filters)
    cur = con.execute(
        f"SELECT date_trunc(?, e.ts) AS bucket, {split} AS series,"
        f" {_FIGURES_SELECT} FROM metric_events e JOIN templates t ON t.id = e.template_id"
        f"{where} GROUP BY ALL ORDER BY bucket, series NULLS LAST",
        [bucket, *params],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def recent_events(con: Con, limit: int, **filters: Any) -> list[MetricEvent]:
    where, params = _filters(**filters)
    rows = con.execute(
        "SELECT e.event_id, e.import_id, e.ts, e.template_id, t.name, e.user_id,"
        " e.experiment_id, e.variant, e.version, e.commit_id, e.environment, e.latency_ms,"
        " e.success, e.error, e.quality_score, e.cost_usd, e.tokens_in, e.tokens_out, e.custom"
        f" FROM metric_events e LEFT JOIN templates t ON t.id = e.template_id{where}"
        " ORDER BY e.ts DESC LIMIT ?",
        [*params, limit],
    ).fetchall()
    return [
        MetricEvent(
            event_id=r[0],
            import_id=r[1],
            timestamp=r[2],
            template_id=r[3],
            template=r[4] or r[3],
            user_id=r[5],
            experiment_id=r[6],
            variant=r[7],
            version=r[8],
            commit=r[9],
            environment=r[10],
            latency_ms=r[11],
            success=r[12],
            error=r[13],
            quality_score=r[14],
            cost_usd=r[15],
            tokens_in=r[16],
            tokens_out=r[17],
            custom=dict(r[18] or {}),
        )
        for r in rows
    ]


def distinct_values(con: Con, column: str, template_id: str | None = None) -> list[str]:
    if column not in ("environment", "version", "variant", "experiment_id"):
        raise ValueError(column)
    where, params = _filters(template_id=template_id)
    joiner = " AND" if where else " WHERE"
    return [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT {column} FROM metric_events e{where}{joiner}"
            f" {column} IS NOT NULL ORDER BY 1",
            params,
        ).fetchall()
    ]

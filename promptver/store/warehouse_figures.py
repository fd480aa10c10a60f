"""Performance figures, the summary and the pickers from events in an engine.

``promptver.store.metrics``' figures for a :class:`~promptver.store.warehouse.Relation`: one
GROUP BY per question, percentiles with the engine's exact function. Templates and experiments
are named in the source (``template`` holds the name, ``experiment`` the id or the name): the
caller maps them to the promptver file's ids. Filters on a template or an experiment take every
name the source may use for it (a list).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from promptver.store.warehouse import Relation, window_where

_FIGURES = """
    count(*) AS requests,
    count(DISTINCT user_id) AS users,
    avg(latency_ms) AS latency_avg,
    quantile_cont(latency_ms, 0.5) AS latency_p50,
    quantile_cont(latency_ms, 0.95) AS latency_p95,
    avg(success) AS success_rate,
    avg(error) AS error_rate,
    avg(quality_score) AS quality_mean,
    avg(cost_usd) AS cost_per_request,
    sum(cost_usd) AS cost_total,
    avg(tokens_in) AS tokens_in_avg,
    avg(tokens_out) AS tokens_out_avg,
    sum(tokens_in) AS tokens_in_total,
    sum(tokens_out) AS tokens_out_total,
    min(ts) AS first,
    max(ts) AS last
"""
_INTS = ("requests", "users", "tokens_in_total", "tokens_out_total")
_FLOATS = (
    "latency_avg",
    "latency_p50",
    "latency_p95",
    "success_rate",
    "error_rate",
    "quality_mean",
    "cost_per_request",
    "cost_total",
    "tokens_in_avg",
    "tokens_out_avg",
)
#: a figure dimension → the source columns it groups by
DIMS = {
    "template": ("template",),
    "version": ("version",),
    "variant": ("experiment", "variant"),
    "environment": ("environment",),
}


def _where(params: dict[str, Any], filters: dict[str, Any]) -> str:
    return window_where(
        params,
        start=filters.get("start"),
        end=filters.get("end"),
        template=filters.get("templates"),
        experiment=filters.get("experiments"),
        environment=filters.get("environment"),
        version=filters.get("version"),
        variant=filters.get("variant"),
        user_id=filters.get("user_id"),
    )


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    for k in _INTS:
        if k in row and row[k] is not None:
            row[k] = int(row[k])
    for k in _FLOATS:
        if k in row and row[k] is not None:
            row[k] = float(row[k])
    return row


def figures(rel: Relation, dims: Sequence[str], filters: dict[str, Any]) -> list[dict[str, Any]]:
    """Figures per group of ``dims`` (source names: ``template`` is the name)."""
    params: dict[str, Any] = {}
    cols = [c for d in dims for c in DIMS[d]]
    select = ", ".join([*cols, _FIGURES])
    group = (" GROUP BY " + ", ".join(cols)) if cols else ""
    rows = rel.rows(
        f"SELECT {select} FROM {{EV}} AS ev WHERE {_where(params, filters)}{group}", params
    )
    return [_clean(r) for r in rows]


def timeseries(
    rel: Relation, bucket: str, by: str | None, filters: dict[str, Any]
) -> list[dict[str, Any]]:
    """Figures per ``hour`` or ``day`` (UTC), split by one source column (or none)."""
    if bucket not in ("hour", "day"):
        raise ValueError(bucket)
    split = {
        None: "CAST(NULL AS VARCHAR)",
        "version": "version",
        "variant": "variant",
        "environment": "environment",
        "template": "template",
    }[by]
    params: dict[str, Any] = {}
    rows = rel.rows(
        f"SELECT date_trunc('{bucket}', ts) AS bucket, {split} AS series, {_FIGURES}"
        f" FROM {{EV}} AS ev WHERE {_where(params, filters)} GROUP BY 1, 2",
        params,
    )
    return [_clean(r) for r in rows]


def summary(
    rel: Relation, templates: list[str] | None
) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """(events, users, first, last, then count and mean of each built-in metric) and
    (metric, count, mean) of each custom metric with a value."""
    params: dict[str, Any] = {}
    where = window_where(params, template=templates)
    parts = ["count(*)", "count(DISTINCT user_id)", "min(ts)", "max(ts)"]
    for m in (
        "latency_ms",
        "success",
        "error",
        "quality_score",
        "cost_usd",
        "tokens_in",
        "tokens_out",
    ):
        parts += [f"count({m})", f"avg({m})"]
    custom = list(rel.custom.items())
    for _, alias in custom:
        parts += [f"count({alias})", f"avg({alias})"]
    select = ", ".join(f"{p} AS s{i}" for i, p in enumerate(parts))
    _, rows = rel.run(f"SELECT {select} FROM {{EV}} AS ev WHERE {where}", params)
    row = rows[0]
    head = tuple(row[:18])
    out = []
    for k, (name, _) in enumerate(custom):
        count, mean = row[18 + 2 * k], row[19 + 2 * k]
        if count:
            out.append((name, int(count), None if mean is None else float(mean)))
    return head, sorted(out)


def distinct_values(rel: Relation, column: str, templates: list[str] | None) -> list[str]:
    """Distinct non-null values of a source column (``environment``, ``version``, ``variant``,
    ``experiment``)."""
    if column not in ("environment", "version", "variant", "experiment"):
        raise ValueError(column)
    params: dict[str, Any] = {}
    where = window_where(params, template=templates)
    _, rows = rel.run(
        f"SELECT DISTINCT {column} AS v FROM {{EV}} AS ev WHERE {where} AND {column} IS NOT NULL",
        params,
    )
    return sorted(str(r[0]) for r in rows)


def count_events(
    rel: Relation,
    templates: list[str],
    start: datetime,
    end: datetime,
    environment: str | None,
) -> int:
    params: dict[str, Any] = {}
    where = window_where(params, start=start, end=end, template=templates, environment=environment)
    _, rows = rel.run(f"SELECT count(*) AS n FROM {{EV}} AS ev WHERE {where}", params)
    return int(rows[0][0])


def file_names(con: Any) -> tuple[dict[str, str], dict[str, str]]:
    """The promptver file's templates and experiments, id → name (to name the source's rows)."""
    templates = {r[0]: r[1] for r in con.execute("SELECT id, name FROM templates").fetchall()}
    experiments = {r[0]: r[1] for r in con.execute("SELECT id, name FROM experiments").fetchall()}
    return templates, experiments

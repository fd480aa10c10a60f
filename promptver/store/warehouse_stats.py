"""Experiment results from events in an engine: ``promptver.store.stats`` for a :class:`Relation`.

The same estimands as the file's queries, in the same shape: per user (Σ value, events with a
value, Σ value²), then per variant and hashed bucket of users (n, Σx, Σx², Σy, Σy², Σxy, Σv²).
What leaves the engine is one row per (variant, bucket) — at most ``buckets`` per variant,
whatever the number of users or events — plus, for small experiments (every arm at most
``user_limit`` users), one row per user so that the bootstrap resamples users exactly, as the
file does. The p95 bootstrap reads per-(unit, bin) counts of a histogram, or the event values
of small arms (at most ``EXACT_QUANTILE_EVENTS``).

An experiment's events are those whose ``experiment`` column holds its id or its name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from promptver.stats import ArmUnits
from promptver.store.stats import (
    EventFilter,
    ExperimentSums,
    MetricColumn,
    UnitKind,
    _names,
    _units_from,
    arm_sums,
)
from promptver.store.warehouse import Relation, in_list, window_where


def _where(flt: EventFilter, aliases: list[str], params: dict[str, Any], *, variants: bool) -> str:
    sql = window_where(params, start=flt.start, end=flt.end, experiment=aliases)
    if variants:
        sql += f" AND variant IN {in_list('fv', list(flt.variants), params)}"
    return sql


def _select_metrics(rel: Relation, columns: list[MetricColumn], params: dict[str, Any]):
    inner, agg = [], []
    for i, col in enumerate(columns):
        expr = rel.metric(col.metric)
        if col.cap is not None:
            # least() ignores a NULL argument: an event without the metric would count
            # as one at the cap
            expr = f"CASE WHEN {expr} IS NULL THEN NULL ELSE least({expr}, $m{i}_cap) END"
            params[f"m{i}_cap"] = float(col.cap)
        inner.append(f"{expr} AS m{i}")
        agg.append(
            f"sum(m{i}) AS x{i}, CAST(count(m{i}) AS DOUBLE) AS y{i}, sum(m{i} * m{i}) AS q{i}"
        )
    return ", ".join(inner), ", ".join(agg)


def _arrays(names: list[str], rows: list[tuple[Any, ...]], text: set[str]) -> dict[str, Any]:
    """Columns as numpy arrays: ``text`` ones as objects, the others as floats (NULL → 0, as
    the file's reader fills masked values)."""
    out: dict[str, Any] = {}
    for j, name in enumerate(names):
        col = [r[j] for r in rows]
        if name in text:
            out[name] = np.asarray(col, dtype=object)
        else:
            out[name] = np.asarray([0.0 if v is None else float(v) for v in col], dtype=float)
    return out


def experiment_sums(
    rel: Relation,
    flt: EventFilter,
    aliases: list[str],
    columns: list[MetricColumn],
    *,
    buckets: int = 2000,
    user_limit: int = 2000,
) -> ExperimentSums:
    """Per-variant sufficient statistics and bootstrap units (see the module's docstring)."""
    params: dict[str, Any] = {"buckets": int(buckets)}
    where = _where(flt, aliases, params, variants=False)
    inner, agg = _select_metrics(rel, columns, params)
    outer = ", ".join(
        f"count(*) FILTER (WHERE y{i} > 0) AS n{i}, sum(x{i}) AS sx{i}, sum(x{i} * x{i}) AS sxx{i},"
        f" sum(y{i}) AS sy{i}, sum(y{i} * y{i}) AS syy{i}, sum(x{i} * y{i}) AS sxy{i},"
        f" sum(q{i}) AS sq{i}"
        for i in range(len(columns))
    )
    comma = ", " if columns else ""
    sql = f"""
        WITH u AS (
            SELECT variant, user_id, count(*) AS ev_n{comma}{agg}
            FROM (SELECT variant, user_id{comma}{inner} FROM {{EV}} AS ev WHERE {where}) AS s
            GROUP BY variant, user_id
        )
        SELECT variant, PV_BUCKET(user_id, $buckets) AS unit, count(*) AS users,
               sum(ev_n) AS events{comma}{outer}
        FROM u
        GROUP BY 1, 2
    """
    names, rows = rel.run_by_users(sql, params, where, metrics=len(columns))
    rows.sort(key=lambda r: ("" if r[0] is None else str(r[0]), int(r[1])))
    res = _arrays(names, rows, {"variant", "unit"})
    res["unit"] = np.asarray([int(r[1]) for r in rows], dtype=np.uint64)
    variants = list(flt.variants)
    everything = np.ones(len(rows), dtype=bool)
    users, events, stats, sel_of, unknown_events, unknown = arm_sums(
        res, variants, columns, everything
    )
    if max(users.values(), default=0) <= user_limit:
        unit_keys, units = _user_units(rel, flt, aliases, columns, variants)
        kind: UnitKind = "user"
    else:
        kind = "bucket"
        unit_keys, units = {}, {}
        for v, sel in sel_of.items():
            unit_keys[v] = res["unit"][sel]
            units[v] = _units_from(res, sel, len(columns))
    return ExperimentSums(
        users, events, stats, units, unit_keys, kind, list(columns), unknown_events, unknown
    )


def _user_units(
    rel: Relation,
    flt: EventFilter,
    aliases: list[str],
    columns: list[MetricColumn],
    variants: list[str],
) -> tuple[dict[str, np.ndarray], dict[str, ArmUnits]]:
    """One row per user (small experiments), in the file's order (variant, user)."""
    params: dict[str, Any] = {}
    where = _where(flt, aliases, params, variants=False)
    inner, agg = _select_metrics(rel, columns, params)
    comma = ", " if columns else ""
    sql = f"""
        SELECT variant, user_id{comma}{agg}
        FROM (SELECT variant, user_id{comma}{inner} FROM {{EV}} AS ev WHERE {where}) AS s
        GROUP BY variant, user_id
    """
    names, rows = rel.run(sql, params)
    rows.sort(key=lambda r: ("" if r[0] is None else str(r[0]), str(r[1])))
    res = _arrays(names, rows, {"variant", "user_id"})
    vnames = _names(res["variant"])
    keys, units = {}, {}
    for v in variants:
        sel = np.flatnonzero(vnames == v)
        keys[v] = res["user_id"][sel]
        units[v] = _units_from(res, sel, len(columns), ("x", "y"))
    return keys, units


def pooled_quantiles(
    rel: Relation, flt: EventFilter, aliases: list[str], metrics: list[str], q: float
) -> dict[str, float | None]:
    """The ``q`` quantile of each metric over all arms' events (winsorisation caps)."""
    if not metrics:
        return {}
    params: dict[str, Any] = {"q": float(q)}
    where = _where(flt, aliases, params, variants=True)
    exprs = [f"quantile_cont({rel.metric(m)}, $q) AS p{i}" for i, m in enumerate(metrics)]
    _, rows = rel.run(f"SELECT {', '.join(exprs)} FROM {{EV}} AS ev WHERE {where}", params)
    row = rows[0] if rows else (None,) * len(metrics)
    return {m: (None if v is None else float(v)) for m, v in zip(metrics, row)}


def variant_quantiles(
    rel: Relation, flt: EventFilter, aliases: list[str], metric: str, levels: list[float]
) -> dict[str, tuple[int, list[float]]]:
    """Per variant: events with a value and the exact quantiles at ``levels``."""
    params: dict[str, Any] = {}
    where = _where(flt, aliases, params, variants=False)
    expr = rel.metric(metric)
    if rel.engine.dialect == "duckdb":
        rows = rel.quantile_rows(expr, where, params, levels)  # memory flat in the events
    else:
        qs = []
        for i, level in enumerate(levels):
            params[f"l{i}"] = float(level)
            qs.append(f"quantile_cont({expr}, $l{i}) AS q{i}")
        _, rows = rel.run(
            f"SELECT variant, count({expr}) AS n, {', '.join(qs)} FROM {{EV}} AS ev"
            f" WHERE {where} GROUP BY variant",
            params,
        )
    return {
        str(r[0]): (int(r[1]), [float(x) for x in r[2:] if x is not None])
        for r in rows
        if r[0] in flt.variants
    }


def _unit(kind: UnitKind) -> str:
    return "user_id" if kind == "user" else "PV_BUCKET(user_id, $buckets)"


def metric_event_values(
    rel: Relation, flt: EventFilter, aliases: list[str], metric: str, kind: UnitKind, buckets: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per variant: (unit key, value) of every event with a value (small arms only)."""
    params: dict[str, Any] = {}
    if kind == "bucket":
        params["buckets"] = int(buckets)
    where = _where(flt, aliases, params, variants=True)
    expr = rel.metric(metric)
    names, rows = rel.run(
        f"SELECT variant, {_unit(kind)} AS unit, {expr} AS v FROM {{EV}} AS ev"
        f" WHERE {where} AND {expr} IS NOT NULL",
        params,
    )
    var = np.asarray([r[0] for r in rows], dtype=object)
    units = [r[1] for r in rows]
    unit_arr = (
        np.asarray(units, dtype=np.uint64) if kind == "bucket" else np.asarray(units, dtype=object)
    )
    vals = np.asarray([float(r[2]) for r in rows], dtype=float)
    return {v: (unit_arr[var == v], vals[var == v]) for v in flt.variants}


def metric_histograms(
    rel: Relation,
    flt: EventFilter,
    aliases: list[str],
    metric: str,
    windows: dict[str, tuple[float, float]],
    bins: int,
    kind: UnitKind,
    buckets: int,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per variant: (unit key, bin, count) of events at or above the window's low edge, with
    the file's binning (``bins`` even bins over ``[lo, hi)``, bin ``bins`` for ``≥ hi``)."""
    names_w = list(windows)
    params: dict[str, Any] = {"bins": int(bins)}
    if kind == "bucket":
        params["buckets"] = int(buckets)
    where = window_where(params, start=flt.start, end=flt.end, experiment=aliases)
    where += f" AND variant IN {in_list('hv', names_w, params)}"
    lo_case, hi_case = [], []
    for i, v in enumerate(names_w):
        params[f"hv{i}"] = v
        params[f"hlo{i}"] = float(windows[v][0])
        params[f"hhi{i}"] = float(windows[v][1])
        lo_case.append(f"WHEN $hv{i} THEN $hlo{i}")
        hi_case.append(f"WHEN $hv{i} THEN $hhi{i}")
    expr = rel.metric(metric)
    sql = f"""
        SELECT variant, unit, bin, CAST(count(*) AS DOUBLE) AS n FROM (
            SELECT variant, unit,
                   CASE WHEN v >= hi THEN $bins
                        ELSE least($bins - 1, CAST(floor((v - lo) / (hi - lo) * $bins) AS INTEGER))
                   END AS bin
            FROM (
                SELECT variant, {_unit(kind)} AS unit, {expr} AS v,
                       CASE variant {" ".join(lo_case)} END AS lo,
                       CASE variant {" ".join(hi_case)} END AS hi
                FROM {{EV}} AS ev WHERE {where} AND {expr} IS NOT NULL
            ) AS w
            WHERE v >= lo
        ) AS b
        GROUP BY 1, 2, 3
    """
    _, rows = rel.run(sql, params)
    var = np.asarray([r[0] for r in rows], dtype=object)
    units = [r[1] for r in rows]
    unit_arr = (
        np.asarray(units, dtype=np.uint64) if kind == "bucket" else np.asarray(units, dtype=object)
    )
    bins_arr = np.asarray([int(r[2]) for r in rows], dtype=np.int64)
    counts = np.asarray([float(r[3]) for r in rows], dtype=float)
    return {v: (unit_arr[var == v], bins_arr[var == v], counts[var == v]) for v in names_w}


def events_fingerprint(rel: Relation, aliases: list[str]) -> tuple[Any, ...]:
    """A cheap value that changes whenever the experiment's events change (for caches)."""
    params: dict[str, Any] = {}
    where = window_where(params, experiment=aliases)
    _, rows = rel.run(
        f"SELECT count(*) AS n, min(ts) AS lo, max(ts) AS hi FROM {{EV}} AS ev WHERE {where}",
        params,
    )
    return tuple(rows[0])

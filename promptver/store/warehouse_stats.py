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

from dataclasses import replace
from typing import Any

import numpy as np

from promptver.stats import ArmUnits
from promptver.stats_more import CovariateSums
from promptver.store.stats import (
    CovariateWindow,
    EventFilter,
    ExperimentSums,
    MetricColumn,
    UnitKind,
    _col,
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


def _segment_where(rel: Relation, flt: EventFilter, params: dict[str, Any]) -> str:
    """The condition of ``flt.segment`` (``dim`` = value, or NULL: the events without it)."""
    if flt.segment is None:
        return ""
    dim, value = flt.segment
    col = rel.dims.get(dim)
    if col is None:  # the source has no such column: every event lacks the dimension
        return "" if value is None else " AND FALSE"
    if value is None:
        return f" AND {col} IS NULL"
    params["seg_value"] = value
    return f" AND {col} = $seg_value"


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
    covariate: CovariateWindow | None = None,
    cov_templates: list[str] | None = None,
) -> ExperimentSums:
    """Per-variant sufficient statistics and bootstrap units (see the module's docstring);
    with ``covariate``, CUPED's sums too (``cov_templates``: the names the source may give the
    covariate window's template)."""
    res = _sums_query(rel, flt, aliases, columns, buckets, covariate, cov_templates, None)
    return _assemble(rel, flt, aliases, columns, res, None, user_limit, covariate is not None)


def segment_sums(
    rel: Relation,
    flt: EventFilter,
    aliases: list[str],
    columns: list[MetricColumn],
    by: str,
    *,
    buckets: int = 2000,
    user_limit: int = 2000,
    covariate: CovariateWindow | None = None,
    cov_templates: list[str] | None = None,
    max_values: int | None = None,
) -> tuple[int, dict[str | None, ExperimentSums]]:
    """:func:`experiment_sums` for each value of the dimension ``by`` in one query, as the
    file's ``segment_sums`` (the number of non-null values, and the sums per value — empty when
    there are more than ``max_values``; ``None`` holds the events without the dimension)."""
    res = _sums_query(rel, flt, aliases, columns, buckets, covariate, cov_templates, by)
    segs = _names(res["seg"])
    values = sorted({v for v in segs if v is not None})
    if max_values is not None and len(values) > max_values:
        return len(values), {}
    out: dict[str | None, ExperimentSums] = {}
    for value in values + ([None] if any(v is None for v in segs) else []):
        mask = np.asarray([v == value for v in segs], dtype=bool)
        sub = replace(flt, segment=(by, value))
        out[value] = _assemble(
            rel, sub, aliases, columns, res, mask, user_limit, covariate is not None
        )
    return len(values), out


def dimension_names(rel: Relation, aliases: list[str]) -> list[str]:
    """The segment dimensions (``dim_*`` columns) that the experiment's events carry, sorted."""
    if not rel.dims:
        return []
    params: dict[str, Any] = {}
    where = window_where(params, experiment=aliases)
    dims = sorted(rel.dims)
    counts = ", ".join(f"count({rel.dims[d]}) AS n{i}" for i, d in enumerate(dims))
    _, rows = rel.run(f"SELECT {counts} FROM {{EV}} AS ev WHERE {where}", params)
    return [d for d, n in zip(dims, rows[0] if rows else ()) if n]


def _sums_query(
    rel: Relation,
    flt: EventFilter,
    aliases: list[str],
    columns: list[MetricColumn],
    buckets: int,
    covariate: CovariateWindow | None,
    cov_templates: list[str] | None,
    by: str | None,
) -> dict[str, Any]:
    """The rows of the results query as arrays: per (segment,) variant and hashed bucket."""
    params: dict[str, Any] = {"buckets": int(buckets)}
    where = _where(flt, aliases, params, variants=False) + _segment_where(rel, flt, params)
    inner, agg = _select_metrics(rel, columns, params)
    outer = ", ".join(
        f"count(*) FILTER (WHERE y{i} > 0) AS n{i}, sum(x{i}) AS sx{i}, sum(x{i} * x{i}) AS sxx{i},"
        f" sum(y{i}) AS sy{i}, sum(y{i} * y{i}) AS syy{i}, sum(x{i} * y{i}) AS sxy{i},"
        f" sum(q{i}) AS sq{i}"
        for i in range(len(columns))
    )
    comma = ", " if columns else ""
    # segments: the dimension's value joins the groupings (a user with events in two segments
    # counts in both, with the events of each), as in the file's query
    seg_in, seg = "", ""
    if by is not None:
        col = rel.dims.get(by, "CAST(NULL AS VARCHAR)")
        seg_in, seg = f"{col} AS seg, ", "seg, "
    source, with_pre, cov_outer = "u", "", ""
    if covariate is not None and columns:
        with_pre, cov_outer = _covariate_sql(rel, columns, inner, covariate, cov_templates, params)
        source = "uc"
    sql = f"""
        WITH u AS (
            SELECT {seg}variant, user_id, count(*) AS ev_n{comma}{agg}
            FROM (SELECT {seg_in}variant, user_id{comma}{inner}
                  FROM {{EV}} AS ev WHERE {where}) AS s
            GROUP BY {seg}variant, user_id
        ){with_pre}
        SELECT {seg}variant, PV_BUCKET(user_id, $buckets) AS unit, count(*) AS users,
               sum(ev_n) AS events{comma}{outer}{cov_outer}
        FROM {source}
        GROUP BY {"1, 2, 3" if by is not None else "1, 2"}
    """
    k = 1 if by is not None else 0
    # the rows' key: (segment,) variant, unit; the other columns are counts and sums
    names, rows = rel.run_by_users(sql, params, where, metrics=len(columns), keys=k + 2)
    rows.sort(
        key=lambda r: (
            tuple("" if r[j] is None else str(r[j]) for j in range(k + 1)),
            int(r[k + 1]),
        )
    )
    text = {"variant", "unit"} | ({"seg"} if by is not None else set())
    res = _arrays(names, rows, text)
    res["unit"] = np.asarray([int(r[k + 1]) for r in rows], dtype=np.uint64)
    return res


def _covariate_sql(
    rel: Relation,
    columns: list[MetricColumn],
    inner: str,
    cov: CovariateWindow,
    cov_templates: list[str] | None,
    params: dict[str, Any],
) -> tuple[str, str]:
    """CUPED's CTEs and sums, as the file's ``store.stats._covariate_sql``: each user's mean of
    each (capped) metric over the template's events in ``[start, end)`` (0 without any), joined
    to the users; the covariate sums over the users that count for each metric."""
    n = len(columns)
    pre_agg = ", ".join(f"avg(m{i}) AS c{i}, count(m{i}) AS h{i}" for i in range(n))
    joined = ", ".join(
        f"coalesce(pre.c{i}, 0.0) AS c{i}, coalesce(pre.h{i}, 0) AS h{i}" for i in range(n)
    )
    tpl = in_list("cov_tpl", cov_templates or [cov.template_id], params)
    params["cov_start"], params["cov_end"] = cov.start, cov.end
    with_pre = f""",
        pre AS (
            SELECT user_id, {pre_agg}
            FROM (SELECT user_id, {inner} FROM {{EV}} AS ev
                  WHERE template IN {tpl} AND ts >= $cov_start AND ts < $cov_end) AS p
            GROUP BY user_id
        ),
        uc AS (SELECT u.*, {joined} FROM u LEFT JOIN pre ON pre.user_id = u.user_id)"""
    outer = "".join(
        f", sum(c{i}) FILTER (WHERE y{i} > 0) AS sc{i},"
        f" sum(c{i} * c{i}) FILTER (WHERE y{i} > 0) AS scc{i},"
        f" sum(x{i} * c{i}) AS sxc{i}, sum(y{i} * c{i}) AS syc{i},"
        f" count(*) FILTER (WHERE y{i} > 0 AND h{i} > 0) AS sh{i}"
        for i in range(n)
    )
    return with_pre, outer


def _assemble(
    rel: Relation,
    flt: EventFilter,
    aliases: list[str],
    columns: list[MetricColumn],
    res: dict[str, Any],
    mask: np.ndarray | None,
    user_limit: int,
    with_covariate: bool,
) -> ExperimentSums:
    """The sums of the rows of ``res`` selected by ``mask`` (all rows when None)."""
    variants = list(flt.variants)
    if mask is None:
        mask = np.ones(len(res["unit"]), dtype=bool)
    users, events, stats, sel_of, unknown_events, unknown = arm_sums(res, variants, columns, mask)
    covariates = None
    if with_covariate and columns:
        covariates = {
            col.key: {
                v: CovariateSums(
                    sum_c=float(_col(res, f"sc{i}", sel).sum()),
                    sum_c2=float(_col(res, f"scc{i}", sel).sum()),
                    sum_xc=float(_col(res, f"sxc{i}", sel).sum()),
                    sum_yc=float(_col(res, f"syc{i}", sel).sum()),
                    with_history=int(_col(res, f"sh{i}", sel).sum()),
                )
                for v, sel in sel_of.items()
            }
            for i, col in enumerate(columns)
        }
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
        users,
        events,
        stats,
        units,
        unit_keys,
        kind,
        list(columns),
        unknown_events,
        unknown,
        covariates,
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
    where = _where(flt, aliases, params, variants=False) + _segment_where(rel, flt, params)
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
    # units are the bootstrap's buckets or the users of a small experiment: bounded state
    _, rows = rel.run(sql, params, parallel=True)
    var = np.asarray([r[0] for r in rows], dtype=object)
    units = [r[1] for r in rows]
    unit_arr = (
        np.asarray(units, dtype=np.uint64) if kind == "bucket" else np.asarray(units, dtype=object)
    )
    bins_arr = np.asarray([int(r[2]) for r in rows], dtype=np.int64)
    counts = np.asarray([float(r[3]) for r in rows], dtype=float)
    return {v: (unit_arr[var == v], bins_arr[var == v], counts[var == v]) for v in names_w}


#: the bins of the p95 histogram the analysis asks for (``promptver.analysis.QUANTILE_BINS``):
#: :func:`quantiles_with_histograms` bins with it ahead of the question (a test keeps both equal;
#: a different value only costs the histogram its own query)
HISTOGRAM_BINS = 128


def quantiles_with_histograms(
    rel: Relation,
    flt: EventFilter,
    aliases: list[str],
    metric: str,
    levels: list[float],
    bins: int,
    kind: UnitKind,
    buckets: int,
) -> tuple[
    dict[str, tuple[int, list[float]]],
    dict[str, tuple[float, float]],
    dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
]:
    """:func:`variant_quantiles` at ``levels`` (for the configured variants with values) and, in
    the same statement (one round trip, one Spark action instead of two),
    :func:`metric_histograms` over each variant's window between its first and last quantile
    (variants whose window is one value have none).

    Returns:
        The quantiles, the windows the histograms used, and the histograms.
    """
    params: dict[str, Any] = {"bins": int(bins)}
    if kind == "bucket":
        params["buckets"] = int(buckets)
    where = _where(flt, aliases, params, variants=False)
    variants = list(flt.variants)
    in_list("cv", variants, params)
    for j, level in enumerate(levels):
        params[f"l{j}"] = float(level)
    expr = rel.metric(metric)
    # the events are read twice in the one statement (once for the quantiles, once binned
    # against them): each engine plans that as it likes, rather than materialising them
    events = f"(SELECT variant, user_id, {expr} AS v FROM {{EV}} AS ev WHERE {where})"
    unit = _unit(kind).replace("user_id", "e.user_id")
    last = len(levels) - 1
    # per configured variant i and level j: n{i} values, quantile q{i}_{j}
    qcols = [
        f"n{i}" if j < 0 else f"q{i}_{j}" for i in range(len(variants)) for j in range(-1, last + 1)
    ]
    levels_list = "[" + ", ".join(f"$l{j}" for j in range(last + 1)) + "]"
    if rel.engine.dialect == "postgres":
        # one aggregate per variant (PostgreSQL runs them in parallel; a GROUP BY would sort
        # every event by variant before each percentile_cont sorts its values again), then one
        # row of them all; the CTE is computed once. One percentile_cont of all the levels
        # (an array) per variant: 2M events, 0.34 s against 0.41 s for one per level
        per_variant = " UNION ALL ".join(
            f"SELECT {i} AS k, n, "
            + ", ".join(f"a[{j + 1}] AS q{j}" for j in range(last + 1))
            + f" FROM (SELECT count(v) AS n, quantile_cont(v, {levels_list}) AS a"
            + f" FROM {events} AS e WHERE e.variant = $cv{i}) AS qa"
            for i in range(len(variants))
        )
        one_row = ", ".join(
            f"max(n) FILTER (WHERE k = {i}) AS n{i}, "
            + ", ".join(f"max(q{j}) FILTER (WHERE k = {i}) AS q{i}_{j}" for j in range(last + 1))
            for i in range(len(variants))
        )
        qs = f"SELECT {one_row} FROM ({per_variant}) AS pv"
    else:
        # one row: a single reference to it, so that Spark computes the percentiles once and
        # broadcasts the row to the events (a join on variant would shuffle every event). One
        # percentile of all the levels per variant: Spark's exact percentile counts the values
        # in a map per aggregate, so one per level built the same map three times (5M events:
        # the whole statement took 2.9 s against 2.2 s)
        arrays = ", ".join(
            f"count(v) FILTER (WHERE variant = $cv{i}) AS n{i},"
            f" quantile_cont(v, {levels_list}) FILTER (WHERE variant = $cv{i}) AS a{i}"
            for i in range(len(variants))
        )
        qs = (
            "SELECT "
            + ", ".join(
                f"n{i}, " + ", ".join(f"a{i}[{j + 1}] AS q{i}_{j}" for j in range(last + 1))
                for i in range(len(variants))
            )
            + f" FROM (SELECT {arrays} FROM {events} AS e) AS qa"
        )
    lo = " ".join(f"WHEN $cv{i} THEN qs.q{i}_0" for i in range(len(variants)))
    hi = " ".join(f"WHEN $cv{i} THEN qs.q{i}_{last}" for i in range(len(variants)))
    # every variant with values has events at or above its lowest quantile: the rows carry the
    # quantiles of all variants (a flat window's rows are binned into 0 and dropped below)
    sql = f"""
        WITH qs AS ({qs})
        SELECT variant, CAST(unit AS VARCHAR) AS unit, bin, CAST(count(*) AS DOUBLE) AS cnt,
               {", ".join(qcols)}
        FROM (
            SELECT w.*,
                   CASE WHEN w.hi <= w.lo THEN 0
                        WHEN w.v >= w.hi THEN $bins
                        ELSE least($bins - 1,
                                   CAST(floor((w.v - w.lo) / (w.hi - w.lo) * $bins) AS INTEGER))
                   END AS bin
            FROM (
                SELECT e.variant, {unit} AS unit, e.v, qs.*,
                       CASE e.variant {lo} END AS lo, CASE e.variant {hi} END AS hi
                FROM {events} AS e CROSS JOIN qs
            ) AS w
            WHERE w.v >= w.lo
        ) AS b
        GROUP BY variant, unit, bin, {", ".join(qcols)}
    """
    _, rows = rel.run(sql, params)
    quantiles: dict[str, tuple[int, list[float]]] = {}
    if rows:
        head = rows[0][4:]
        width = last + 2
        for i, v in enumerate(variants):
            n, *qv = head[i * width : (i + 1) * width]
            if n:
                quantiles[v] = (int(n), [float(x) for x in qv if x is not None])
    windows = quantile_windows(quantiles, levels)
    hist = [r for r in rows if r[0] in windows]
    var = np.asarray([r[0] for r in hist], dtype=object)
    units = [r[1] for r in hist]
    unit_arr = (
        np.asarray([int(u) for u in units], dtype=np.uint64)
        if kind == "bucket"
        else np.asarray(units, dtype=object)
    )
    bins_arr = np.asarray([int(r[2]) for r in hist], dtype=np.int64)
    counts = np.asarray([float(r[3]) for r in hist], dtype=float)
    hists = {v: (unit_arr[var == v], bins_arr[var == v], counts[var == v]) for v in windows}
    return quantiles, windows, hists


def quantile_windows(
    quantiles: dict[str, tuple[int, list[float]]], levels: list[float]
) -> dict[str, tuple[float, float]]:
    """Each variant's p95 window (its first and last quantile) when it has all ``levels`` and is
    wider than one value: the variants that get a histogram."""
    return {
        v: (qv[0], qv[-1])
        for v, (_, qv) in quantiles.items()
        if len(qv) == len(levels) and qv[-1] > qv[0]
    }


def events_fingerprint(rel: Relation, aliases: list[str]) -> tuple[Any, ...]:
    """A cheap value that changes whenever the experiment's events change (for caches)."""
    params: dict[str, Any] = {}
    where = window_where(params, experiment=aliases)
    _, rows = rel.run(
        f"SELECT count(*) AS n, min(ts) AS lo, max(ts) AS hi FROM {{EV}} AS ev WHERE {where}",
        params,
    )
    return tuple(rows[0])

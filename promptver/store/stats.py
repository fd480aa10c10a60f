"""SQL that reduces an experiment's ``metric_events`` to sufficient statistics.

Everything heavy happens in DuckDB in one pass over the events: a per-user aggregation (each
user's sum of the metric, number of events with a value, Σ value²) feeding ``GROUPING SETS`` that
return, in the same query, the per-variant sums (:class:`~promptver.stats.MetricStats`) and the
per-bucket sums the bootstrap resamples (users hashed into buckets). Python never sees raw events on
the analytic path; it receives a few rows per variant plus one row per bucket. Small experiments
(every arm at most ``user_limit`` users) fetch one row per user instead, so that their bootstrap
resamples users exactly.

Every value reaches SQL as a named parameter; metric names become SQL only through the fixed
whitelist of built-in columns (custom metrics are read with ``custom[$param]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import duckdb
import numpy as np

from promptver.stats import ArmUnits, MetricStats
from promptver.stats_more import CovariateSums

Con = duckdb.DuckDBPyConnection

#: built-in metric columns of metric_events; True where the column must be cast to DOUBLE
BUILTIN_COLUMNS: dict[str, bool] = {
    "latency_ms": False,
    "quality_score": False,
    "cost_usd": False,
    "success": True,
    "error": True,
    "tokens_in": True,
    "tokens_out": True,
}

UnitKind = Literal["user", "bucket"]


def bucket_sql(column: str = "user_id") -> str:
    """The hashed user bucket of the bootstrap, ``0 … $buckets − 1``.

    Salted, so that buckets are independent of any assignment that hashes the bare user id; the
    modulus is cast to UBIGINT (an untyped parameter makes DuckDB take a much slower path).
    """
    return f"hash({column}, 'promptver:bootstrap') % $buckets::UBIGINT"


@dataclass(frozen=True)
class MetricColumn:
    """One column to reduce: a metric, optionally capped (winsorised) at ``cap``."""

    key: str
    metric: str
    cap: float | None = None


@dataclass(frozen=True)
class EventFilter:
    """Which events belong to the analysis: one experiment, its variants, a time window."""

    experiment_id: str
    variants: tuple[str, ...]
    start: datetime | None = None
    end: datetime | None = None
    #: one segment: (dimension, value); value None = the events without that dimension
    segment: tuple[str, str | None] | None = None

    def where(self, alias: str = "", *, variants: bool = True) -> tuple[str, dict[str, Any]]:
        """The WHERE condition and its parameters (``variants=False``: any variant, for queries
        that group by variant and drop unknown ones themselves, which is cheaper than filtering)."""
        p = f"{alias}." if alias else ""
        sql = f"{p}experiment_id = $exp"
        params: dict[str, Any] = {"exp": self.experiment_id}
        if variants:
            sql += f" AND list_contains($variants, {p}variant)"
            params["variants"] = list(self.variants)
        if self.start is not None:
            sql += f" AND {p}ts >= $start"
            params["start"] = self.start
        if self.end is not None:
            sql += f" AND {p}ts <= $end"
            params["end"] = self.end
        if self.segment is not None:
            dim, value = self.segment
            params["seg_dim"] = dim
            if value is None:
                sql += f" AND {p}dims[$seg_dim] IS NULL"
            else:
                sql += f" AND {p}dims[$seg_dim] = $seg_value"
                params["seg_value"] = value
        return sql, params


def metric_expr(metric: str, param: str, alias: str = "") -> tuple[str, dict[str, Any]]:
    """The SQL expression of a metric as DOUBLE, and its parameters.

    Built-in metrics are whitelisted column names; a custom metric is read from the ``custom`` map
    with its name as the parameter ``$param``.
    """
    p = f"{alias}." if alias else ""
    if metric in BUILTIN_COLUMNS:
        col = f"{p}{metric}"
        return (f"CAST({col} AS DOUBLE)" if BUILTIN_COLUMNS[metric] else col), {}
    return f"{p}custom[${param}]", {param: metric}


@dataclass(frozen=True)
class CovariateWindow:
    """CUPED's pre-period: each user's events on ``template_id`` in ``[start, end)``."""

    template_id: str
    start: datetime
    end: datetime


@dataclass
class ExperimentSums:
    """What one pass over an experiment's events returns (per configured variant)."""

    users: dict[str, int]
    events: dict[str, int]
    stats: dict[str, dict[str, MetricStats]]
    units: dict[str, ArmUnits]
    unit_keys: dict[str, np.ndarray]
    unit_kind: UnitKind
    columns: list[MetricColumn] = field(default_factory=list)
    #: events in the window whose variant is not configured (ignored), and those variants
    unknown_events: int = 0
    unknown_variants: list[str] = field(default_factory=list)
    #: CUPED: per metric key and variant, the sums of the users' pre-period covariate
    covariates: dict[str, dict[str, CovariateSums]] | None = None


def _select_metrics(columns: list[MetricColumn]) -> tuple[str, str, dict[str, Any]]:
    """(inner projection, per-user aggregates, params) for the metric columns."""
    inner, agg, params = [], [], {}
    for i, col in enumerate(columns):
        expr, p = metric_expr(col.metric, f"m{i}_name")
        params.update(p)
        if col.cap is not None:
            # least() ignores a NULL argument: an event without the metric would count
            # as one at the cap
            expr = f"CASE WHEN {expr} IS NULL THEN NULL ELSE least({expr}, $m{i}_cap) END"
            params[f"m{i}_cap"] = float(col.cap)
        inner.append(f"{expr} AS m{i}")
        agg.append(f"sum(m{i}) AS x{i}, count(m{i})::DOUBLE AS y{i}, sum(m{i} * m{i}) AS q{i}")
    return ", ".join(inner), ", ".join(agg), params


def experiment_sums(
    con: Con,
    flt: EventFilter,
    columns: list[MetricColumn],
    *,
    buckets: int = 2000,
    user_limit: int = 2000,
    covariate: CovariateWindow | None = None,
) -> ExperimentSums:
    """Per-variant sufficient statistics of ``columns`` and the bootstrap units, in one pass.

    Args:
        con: an open connection.
        flt: the experiment, its configured variants and the time window.
        columns: the metric columns to reduce.
        buckets: number of hashed user buckets for large arms.
        user_limit: when every arm has at most this many users, units are single users.
        covariate: CUPED's pre-period; each user's mean of each metric there (0 without
            events) is joined in the same query and its sums come back in ``covariates``.
    """
    res = _sums_query(con, flt, columns, buckets, covariate, None)
    return _assemble(con, flt, columns, res, None, user_limit, covariate is not None)


def segment_sums(
    con: Con,
    flt: EventFilter,
    columns: list[MetricColumn],
    by: str,
    *,
    buckets: int = 2000,
    user_limit: int = 2000,
    covariate: CovariateWindow | None = None,
    max_values: int | None = None,
) -> tuple[int, dict[str | None, ExperimentSums]]:
    """:func:`experiment_sums` for each value of the dimension ``by``, in one pass (the
    grouping gains the segment value); ``None`` holds the events without that dimension.

    Returns:
        The number of (non-null) values, and the sums per value — empty when there are more
        than ``max_values`` values.
    """
    res = _sums_query(con, flt, columns, buckets, covariate, by)
    segs = _names(res["seg"])
    values = sorted({v for v in segs if v is not None})
    if max_values is not None and len(values) > max_values:
        return len(values), {}
    out: dict[str | None, ExperimentSums] = {}
    for value in values + ([None] if any(v is None for v in segs) else []):
        mask = np.asarray([v == value for v in segs], dtype=bool)
        sub = replace(flt, segment=(by, value))
        out[value] = _assemble(con, sub, columns, res, mask, user_limit, covariate is not None)
    return len(values), out


def _sums_query(
    con: Con,
    flt: EventFilter,
    columns: list[MetricColumn],
    buckets: int,
    covariate: CovariateWindow | None,
    by: str | None,
) -> dict[str, Any]:
    # No variant filter here: grouping by variant anyway, unknown variants are dropped below
    # (and reported), which is cheaper than a filter on every event.
    where, params = flt.where(variants=False)
    inner, agg, mparams = _select_metrics(columns)
    params = {**params, **mparams, "buckets": buckets}
    # segments: the value of the dimension joins the groupings (a user with events in two
    # segments counts in both, with the events of each)
    seg_in, seg = ("dims[$by] AS seg, ", "seg, ") if by else ("", "")
    if by:
        params["by"] = by
    # One grouping only: the per-bucket sums of the user-level products. Sufficient statistics
    # add up, so each variant's are the sums over its buckets (done below, in Python).
    outer = ", ".join(
        f"count(*) FILTER (WHERE y{i} > 0) AS n{i}, sum(x{i}) AS sx{i}, sum(x{i} * x{i}) AS sxx{i},"
        f" sum(y{i}) AS sy{i}, sum(y{i} * y{i}) AS syy{i}, sum(x{i} * y{i}) AS sxy{i},"
        f" sum(q{i}) AS sq{i}"
        for i in range(len(columns))
    )
    comma = ", " if columns else ""
    source, cov_outer = "u", ""
    with_pre = ""
    if covariate is not None and columns:
        with_pre, cov_outer, cov_params = _covariate_sql(columns, inner, covariate)
        params.update(cov_params)
        source = "uc"
    sql = f"""
        WITH u AS (
            SELECT {seg}variant, user_id, count(*) AS ev_n{comma}{agg}
            FROM (SELECT {seg_in}variant, user_id{comma}{inner} FROM metric_events WHERE {where})
            GROUP BY {seg}variant, user_id
        ){with_pre}
        SELECT {seg}variant, {bucket_sql()} AS unit, count(*) AS users, sum(ev_n) AS events
               {comma}{outer}{cov_outer}
        FROM {source}
        GROUP BY {seg}variant, unit
    """
    return con.execute(sql, params).fetchnumpy()


def arm_sums(
    res: dict[str, Any], variants: list[str], columns: list[MetricColumn], mask: np.ndarray
) -> tuple[
    dict[str, int],
    dict[str, int],
    dict[str, dict[str, MetricStats]],
    dict[str, np.ndarray],
    int,
    list[str],
]:
    """Per variant, the users, events and :class:`MetricStats` of the (variant, unit) rows of
    ``res`` selected by ``mask``; also each variant's row indices, and the events and names of
    variants that are not configured. Shared by the file's query and the external sources'."""
    names = _names(res["variant"])
    users = {v: 0 for v in variants}
    events = {v: 0 for v in variants}
    stats: dict[str, dict[str, MetricStats]] = {
        c.key: {v: MetricStats() for v in variants} for c in columns
    }
    rows = {v: np.flatnonzero((names == v) & mask) for v in variants}
    for v, sel in rows.items():
        if not len(sel):
            continue
        users[v] = int(_col(res, "users", sel).sum())
        events[v] = int(_col(res, "events", sel).sum())
        # values stored before metrics were bounded can overflow a sum: it becomes inf, which
        # the statistics report as "cannot be computed" (no warning here)
        with np.errstate(over="ignore", invalid="ignore"):
            for i, col in enumerate(columns):
                stats[col.key][v] = MetricStats(
                    n=int(_col(res, f"n{i}", sel).sum()),
                    sum_x=float(_col(res, f"sx{i}", sel).sum()),
                    sum_x2=float(_col(res, f"sxx{i}", sel).sum()),
                    sum_y=float(_col(res, f"sy{i}", sel).sum()),
                    sum_y2=float(_col(res, f"syy{i}", sel).sum()),
                    sum_xy=float(_col(res, f"sxy{i}", sel).sum()),
                    event_sum_x2=float(_col(res, f"sq{i}", sel).sum()),
                )
    known = np.isin(names, np.asarray(variants, dtype=object))
    unknown_events = int(_col(res, "events", np.flatnonzero(~known & mask)).sum())
    unknown = sorted({"(none)" if n is None else str(n) for n in names[~known & mask]})
    return users, events, stats, rows, unknown_events, unknown


def _assemble(
    con: Con,
    flt: EventFilter,
    columns: list[MetricColumn],
    res: dict[str, Any],
    mask: np.ndarray | None,
    user_limit: int,
    with_covariate: bool,
) -> ExperimentSums:
    """The sums of the rows of ``res`` selected by ``mask`` (all rows when None)."""
    variants = list(flt.variants)
    if mask is None:
        mask = np.ones(len(_names(res["variant"])), dtype=bool)
    users, events, stats, rows, unknown_events, unknown = arm_sums(res, variants, columns, mask)
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
                for v, sel in rows.items()
            }
            for i, col in enumerate(columns)
        }
    if max(users.values(), default=0) <= user_limit:
        unit_keys, units = _user_units(con, flt, columns, variants)
        kind: UnitKind = "user"
    else:
        kind = "bucket"
        unit_keys, units = {}, {}
        for v, sel in rows.items():
            unit_keys[v] = np.asarray(res["unit"])[sel].astype(np.uint64)
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


def _covariate_sql(
    columns: list[MetricColumn], inner: str, cov: CovariateWindow
) -> tuple[str, str, dict[str, Any]]:
    """CUPED's extra CTEs (each user's pre-period mean per metric, joined to the users) and the
    covariate sums of the outer aggregation, over the users that count for each metric."""
    n = len(columns)
    pre_agg = ", ".join(f"avg(m{i}) AS c{i}, count(m{i}) AS h{i}" for i in range(n))
    joined = ", ".join(
        f"coalesce(pre.c{i}, 0.0) AS c{i}, coalesce(pre.h{i}, 0) AS h{i}" for i in range(n)
    )
    with_pre = f""",
        pre AS (
            SELECT user_id, {pre_agg}
            FROM (SELECT user_id, {inner} FROM metric_events
                  WHERE template_id = $cov_tpl AND ts >= $cov_start AND ts < $cov_end)
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
    params = {"cov_tpl": cov.template_id, "cov_start": cov.start, "cov_end": cov.end}
    return with_pre, outer, params


def _names(arr: Any) -> np.ndarray:
    """A fetched VARCHAR column as an object array with ``None`` for NULL."""
    if isinstance(arr, np.ma.MaskedArray):
        out = np.asarray(arr.data, dtype=object)
        out[np.ma.getmaskarray(arr)] = None
        return out
    return np.asarray(arr, dtype=object)


def _col(res: dict[str, Any], name: str, sel: np.ndarray) -> np.ndarray:
    arr = res[name]
    if isinstance(arr, np.ma.MaskedArray):
        arr = arr.filled(0.0)
    return np.asarray(arr, dtype=float)[sel]


def _units_from(
    res: dict[str, Any], sel: np.ndarray, n_cols: int, prefix: tuple[str, str] = ("sx", "sy")
) -> ArmUnits:
    x = (
        np.column_stack([_col(res, f"{prefix[0]}{i}", sel) for i in range(n_cols)])
        if n_cols
        else np.zeros((len(sel), 0))
    )
    y = (
        np.column_stack([_col(res, f"{prefix[1]}{i}", sel) for i in range(n_cols)])
        if n_cols
        else np.zeros((len(sel), 0))
    )
    return ArmUnits(x.reshape(len(sel), n_cols), y.reshape(len(sel), n_cols))


def _user_units(
    con: Con, flt: EventFilter, columns: list[MetricColumn], variants: list[str]
) -> tuple[dict[str, np.ndarray], dict[str, ArmUnits]]:
    """One row per user (small experiments): the bootstrap resamples users exactly."""
    where, params = flt.where(variants=False)
    inner, agg, mparams = _select_metrics(columns)
    comma = ", " if columns else ""
    sql = f"""
        SELECT variant, user_id{comma}{agg}
        FROM (SELECT variant, user_id{comma}{inner} FROM metric_events WHERE {where})
        GROUP BY variant, user_id
        ORDER BY variant, user_id
    """
    res = con.execute(sql, {**params, **mparams}).fetchnumpy()
    names = _names(res["variant"])
    keys, units = {}, {}
    for v in variants:
        sel = np.flatnonzero(names == v)
        keys[v] = np.asarray(res["user_id"], dtype=object)[sel]
        units[v] = _units_from(res, sel, len(columns), ("x", "y"))
    return keys, units


def pooled_quantiles(
    con: Con, flt: EventFilter, metrics: list[str], q: float
) -> dict[str, float | None]:
    """The ``q`` quantile of each metric over all arms' events (winsorisation caps)."""
    if not metrics:
        return {}
    where, params = flt.where()
    exprs = []
    for i, m in enumerate(metrics):
        expr, p = metric_expr(m, f"c{i}_name")
        params.update(p)
        exprs.append(f"quantile_cont({expr}, $q)")
    params["q"] = q
    row = con.execute(
        f"SELECT {', '.join(exprs)} FROM metric_events WHERE {where}",
        params,
    ).fetchone()
    return {m: (None if v is None else float(v)) for m, v in zip(metrics, row)}


def variant_quantiles(
    con: Con, flt: EventFilter, metric: str, levels: list[float]
) -> dict[str, tuple[int, list[float]]]:
    """Per variant: events with a value and the exact quantiles at ``levels``."""
    where, params = flt.where(variants=False)
    expr, p = metric_expr(metric, "q_name")
    params.update(p)
    params["levels"] = [float(x) for x in levels]
    rows = con.execute(
        f"SELECT variant, count({expr}), quantile_cont({expr}, $levels) FROM metric_events"
        f" WHERE {where} GROUP BY variant",
        params,
    ).fetchall()
    return {
        str(v): (int(n), [float(x) for x in (qs or [])]) for v, n, qs in rows if v in flt.variants
    }


def _unit_sql(kind: UnitKind) -> str:
    return "user_id" if kind == "user" else bucket_sql()


def metric_event_values(
    con: Con, flt: EventFilter, metric: str, kind: UnitKind, buckets: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per variant: (unit key, value) of every event with a value (small arms only)."""
    where, params = flt.where()
    expr, p = metric_expr(metric, "v_name")
    params.update(p)
    if kind == "bucket":
        params["buckets"] = buckets
    res = con.execute(
        f"SELECT variant, {_unit_sql(kind)} AS unit, {expr} AS v FROM metric_events"
        f" WHERE {where} AND {expr} IS NOT NULL",
        params,
    ).fetchnumpy()
    names = np.asarray(res["variant"], dtype=object)
    out = {}
    for v in flt.variants:
        sel = names == v
        out[v] = (np.asarray(res["unit"])[sel], np.asarray(res["v"], dtype=float)[sel])
    return out


def metric_histograms(
    con: Con,
    flt: EventFilter,
    metric: str,
    windows: dict[str, tuple[float, float]],
    bins: int,
    kind: UnitKind,
    buckets: int,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per variant: (unit key, bin, count) of events at or above the window's low edge.

    Bins ``0 … bins−1`` split ``[lo, hi)`` evenly; bin ``bins`` holds the events ``≥ hi``.
    """
    names_w = [v for v in windows]
    where, params = flt.where("e", variants=False)  # the join picks the variants
    expr, p = metric_expr(metric, "h_name", alias="e")
    params.update(p)
    params.update(
        {
            "wv": names_w,
            "wlo": [float(windows[v][0]) for v in names_w],
            "whi": [float(windows[v][1]) for v in names_w],
            "bins": bins,
            # the lowest edge filters events before the join (most events lie below every window)
            "floor": min(float(w[0]) for w in windows.values()),
        }
    )
    if kind == "bucket":
        params["buckets"] = buckets
    unit = "e.user_id" if kind == "user" else bucket_sql("e.user_id")
    sql = f"""
        SELECT e.variant, {unit} AS unit,
               CASE WHEN {expr} >= w.hi THEN $bins
                    ELSE least($bins - 1, floor(({expr} - w.lo) / (w.hi - w.lo) * $bins))::INTEGER
               END AS bin,
               count(*)::DOUBLE AS n
        FROM metric_events e
        JOIN (SELECT unnest($wv) AS variant, unnest($wlo) AS lo, unnest($whi) AS hi) w
          ON e.variant = w.variant
        WHERE {where} AND {expr} >= $floor AND {expr} >= w.lo
        GROUP BY ALL
    """
    res = con.execute(sql, params).fetchnumpy()
    names = np.asarray(res["variant"], dtype=object)
    out = {}
    for v in names_w:
        sel = names == v
        out[v] = (
            np.asarray(res["unit"])[sel],
            np.asarray(res["bin"], dtype=np.int64)[sel],
            np.asarray(res["n"], dtype=float)[sel],
        )
    return out


def events_fingerprint(con: Con, experiment_id: str) -> tuple[Any, ...]:
    """A cheap value that changes whenever the experiment's events change (for caches)."""
    row = con.execute(
        "SELECT count(*), min(ts), max(ts) FROM metric_events WHERE experiment_id = $exp",
        {"exp": experiment_id},
    ).fetchone()
    return tuple(row)


def dimension_names(con: Con, experiment_id: str) -> list[str]:
    """The segment dimensions (``dim_*``) that the experiment's events carry, sorted."""
    rows = con.execute(
        "SELECT DISTINCT unnest(map_keys(dims)) AS d FROM metric_events"
        " WHERE experiment_id = $exp AND dims IS NOT NULL ORDER BY d",
        {"exp": experiment_id},
    ).fetchall()
    return [r[0] for r in rows]


def period_sums(con: Con, flt: EventFilter, metric: str) -> dict[int, dict[str, MetricStats]]:
    """Bandits: the metric's sufficient statistics per (period, variant), a user's period being
    the one in which they were first assigned (``bandit_assignments``)."""
    where, params = flt.where("", variants=False)
    expr, p = metric_expr(metric, "b_name")
    params.update(p)
    rows = con.execute(
        f"""
        SELECT a.period, u.variant, count(*) FILTER (WHERE u.y > 0), sum(u.x), sum(u.x * u.x),
               sum(u.y), sum(u.y * u.y), sum(u.x * u.y), sum(u.q)
        FROM (SELECT variant, user_id, sum(m) AS x, count(m)::DOUBLE AS y, sum(m * m) AS q
              FROM (SELECT variant, user_id, {expr} AS m FROM metric_events WHERE {where})
              GROUP BY variant, user_id) u
        JOIN bandit_assignments a ON a.experiment_id = $exp AND a.user_id = u.user_id
        GROUP BY a.period, u.variant
        """,
        params,
    ).fetchall()
    out: dict[int, dict[str, MetricStats]] = {}
    for period, variant, n, sx, sxx, sy, syy, sxy, sq in rows:
        if variant not in flt.variants:
            continue
        out.setdefault(int(period), {})[variant] = MetricStats(
            n=int(n),
            sum_x=float(sx or 0),
            sum_x2=float(sxx or 0),
            sum_y=float(sy or 0),
            sum_y2=float(syy or 0),
            sum_xy=float(sxy or 0),
            event_sum_x2=float(sq or 0),
        )
    return out

"""SQL for trends: metrics per time bucket with their CIs, deployments, before/after sums.

Everything heavy runs here, in one pass per question:

- :func:`bucket_series` reduces the events of a period to one row per (template, series, time
  bucket). Means are ratios of user-level sums (each user's sum of the metric over the number of
  their events), with the delta-method CI over users that the experiment statistics use
  (``promptver.stats.MetricStats``), computed in SQL from the sums; the t critical values come in
  as a list parameter indexed by the degrees of freedom. The p95 of latency is
  ``quantile_cont`` (the figures' definition) with the distribution-free order-statistic CI.
- :func:`change_sums` reduces the windows before and after deployments to the sufficient
  statistics that :func:`promptver.stats.compare` tests (users ``n``, Σx, Σx², Σy, Σy², Σxy and
  the event-level Σv²).

Metric expressions come from a fixed whitelist (:data:`COLUMNS`); a custom metric is read from the
``custom`` map with its name as a bound parameter. Every value is a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from promptver.metric_defs import Measure
from promptver.models.trends import DeploymentMarker

Con = duckdb.DuckDBPyConnection

#: event columns a trend metric can read, and whether they need a cast to DOUBLE
COLUMNS: dict[str, bool] = {
    "latency_ms": False,
    "error": True,
    "success": True,
    "quality_score": False,
    "cost_usd": False,
    "tokens_in": True,
    "tokens_out": True,
}

#: the SQL of each grouping (``None``: one series per template)
SERIES = {
    None: "NULL::VARCHAR",
    # events of a commit off main (a branch in an experiment) have no version: their commit
    # keeps them apart (the service names the branch)
    "version": "coalesce(e.version, '" + "commit:' || e.commit_id)",
    "variant": "e.variant",
    "environment": "e.environment",
}

#: the quantile of the p95 metric
P95 = 0.95

#: buckets are counted from Monday 2000-01-03 00:00 UTC (epoch microseconds), so weeks start on
#: Mondays; integer arithmetic on ``epoch_us`` costs a tenth of ``date_trunc`` on TIMESTAMPTZ
ANCHOR_US = 946_857_600_000_000
UNIT_US = {"hour": 3_600_000_000, "day": 86_400_000_000, "week": 604_800_000_000}
#: the start of the bucket of event ``e``, in microseconds after the anchor (an exact floor)
_BUCKET = "((epoch_us(e.ts) - $anchor) - (((epoch_us(e.ts) - $anchor) % $len) + $len) % $len)"


def metric_expr(m: Measure, i: int, params: dict[str, Any]) -> str:
    """The SQL of measure ``m`` for one event ``e``; a custom name is bound as ``$c{i}``."""
    if m.custom is not None:
        params[f"c{i}"] = m.custom
        return f"e.custom[$c{i}]"
    if m.column not in COLUMNS:
        raise ValueError(f"not a metric column: {m.column}")
    return f"CAST(e.{m.column} AS DOUBLE)" if COLUMNS[m.column] else f"e.{m.column}"


def _where(
    params: dict[str, Any],
    template_ids: Sequence[str],
    start: datetime,
    end: datetime,
    environment: str | None,
) -> str:
    params.update(templates=list(template_ids), start=start, end=end)
    sql = "list_contains($templates, e.template_id) AND e.ts >= $start AND e.ts <= $end"
    if environment is not None:
        params["env"] = environment
        sql += " AND e.environment = $env"
    return sql


def _ci_sql(i: int) -> str:
    """Mean and delta-method CI of measure ``i`` from the per-bucket sums ``n, sx, sy …``.

    ``Var(Σx/Σy) = n / (n − 1) · Σ(xᵢ − R yᵢ)² / (Σy)²`` with the sum of squared residuals
    expanded into the sums (clamped at zero against rounding), as in ``MetricStats.var_mean``.
    """
    r = f"(sx{i} / sy{i})"
    ss = f"(sxx{i} - 2 * {r} * sxy{i} + {r} * {r} * syy{i})"
    scale = f"(abs(sxx{i}) + {r} * {r} * abs(syy{i}))"
    resid = f"CASE WHEN {ss} <= 1e-12 * {scale} THEN 0.0 ELSE {ss} END"
    se = f"sqrt(n{i} / (n{i} - 1) * {resid} / (sy{i} * sy{i}))"
    crit = f"(CASE WHEN n{i} - 1 <= $tmax THEN $tcrit[(n{i} - 1)::BIGINT] ELSE $z END)"
    return (
        f"sy{i}::BIGINT AS events{i},"
        f" CASE WHEN sy{i} > 0 THEN {r} END AS value{i},"
        f" CASE WHEN n{i} >= 2 THEN {r} - {crit} * {se} END AS lo{i},"
        f" CASE WHEN n{i} >= 2 THEN {r} + {crit} * {se} END AS hi{i}"
    )


def _p95_sql(i: int) -> str:
    """The p95 and its order-statistic CI from the sorted values ``s{i}`` of a bucket.

    The p95 interpolates linearly between order statistics at rank ``h = 1 + (k − 1)·q``
    (``quantile_cont``'s and numpy's default definition), read from the sorted list. The CI is
    ``[x₍l₎, x₍u₎]`` with 1-based ranks ``l = ⌊kq − z√(kq(1−q))⌋`` and ``u = ⌈kq + z√(kq(1−q))⌉``
    (the normal approximation to the binomial count below the quantile); a bound whose rank
    falls outside 1…k is NULL: the data cannot bound the quantile on that side.
    """
    h = f"(1 + (k{i} - 1) * {P95})"
    f = f"floor({h})::BIGINT"
    value = f"s{i}[{f}] + ({h} - {f}) * (s{i}[least({f} + 1, k{i})] - s{i}[{f}])"
    half = f"$z * sqrt(k{i} * {P95} * (1 - {P95}))"
    lo = f"floor(k{i} * {P95} - {half})::BIGINT"
    hi = f"ceil(k{i} * {P95} + {half})::BIGINT"
    return (
        f"coalesce(k{i}, 0) AS events{i},"
        f" CASE WHEN k{i} > 0 THEN {value} END AS value{i},"
        f" CASE WHEN {lo} >= 1 THEN s{i}[{lo}] END AS lo{i},"
        f" CASE WHEN {hi} <= k{i} THEN s{i}[{hi}] END AS hi{i}"
    )


def unit_sql(clusters: int | None) -> str:
    """The unit of the intervals: the user, or (``clusters``) a hashed cluster of users.

    Independent users pooled in one cluster leave the delta-method variance unbiased, so with
    thousands of clusters the interval is the per-user one to a fraction of a percent, while
    the reduction groups a few thousand clusters per bucket instead of every user (salted, so
    clusters are independent of any experiment assignment that hashes the bare user id).
    """
    if clusters is None:
        return "e.user_id"
    return "hash(e.user_id, 'promptver:trends') % $clusters::UBIGINT"


def count_events(
    con: Con,
    template_ids: Sequence[str],
    start: datetime,
    end: datetime,
    environment: str | None,
) -> int:
    params: dict[str, Any] = {}
    where = _where(params, template_ids, start, end, environment)
    return int(
        con.execute(f"SELECT count(*) FROM metric_events e WHERE {where}", params).fetchone()[0]
    )


def bucket_series(
    con: Con,
    *,
    template_ids: Sequence[str],
    start: datetime,
    end: datetime,
    unit: str,
    by: str | None,
    environment: str | None,
    measures: Sequence[Measure],
    tcrit: Sequence[float],
    z: float,
    clusters: int | None = None,
) -> list[dict[str, Any]]:
    """One row per (template, series, bucket): ``users`` and, for each measure ``i``,
    ``events{i}``, ``value{i}``, ``lo{i}`` and ``hi{i}``.

    One scan of the period's events feeds two aggregations: per unit (user, or hashed cluster
    of users) and bucket, the sums behind the means and their CIs; and per bucket the sorted
    values of each p95 measure. ``users`` counts the users with an event in the bucket: exactly
    when the unit is the user, by HyperLogLog (``approx_count_distinct``) with clusters.

    Args:
        unit: ``hour``, ``day`` or ``week`` (UTC; weeks start on Monday, like ``date_trunc``).
        by: the grouping (a key of :data:`SERIES`).
        tcrit: ``tcrit[k − 1]`` is the two-sided t critical value with ``k`` degrees of freedom;
            beyond the list, ``z`` is used.
        clusters: pool users into this many hashed clusters (large periods); None: per user.
    """
    if unit not in ("hour", "day", "week"):
        raise ValueError(unit)
    if not measures:
        return []
    params: dict[str, Any] = {"anchor": ANCHOR_US, "len": UNIT_US[unit], "z": float(z)}
    if clusters is not None:
        params["clusters"] = int(clusters)
    where = _where(params, template_ids, start, end, environment)
    means = [i for i, m in enumerate(measures) if not m.p95]
    p95s = [i for i, m in enumerate(measures) if m.p95]
    if means:
        params.update(tcrit=[float(t) for t in tcrit], tmax=len(tcrit))
    cols = ", ".join(f"{metric_expr(m, i, params)} AS m{i}" for i, m in enumerate(measures))
    keys = "template_id, series, bk"
    per_unit = ["count(*) AS c"]
    per_unit += [f"sum(m{i}) AS x{i}, count(m{i})::DOUBLE AS y{i}" for i in means]
    per_bucket = ["count(*) AS units"]
    per_bucket += [
        f"count(*) FILTER (WHERE y{i} > 0) AS n{i}, sum(x{i}) AS sx{i}, sum(y{i}) AS sy{i},"
        f" sum(x{i} * x{i}) AS sxx{i}, sum(y{i} * y{i}) AS syy{i}, sum(x{i} * y{i}) AS sxy{i}"
        for i in means
    ]
    ctes = [
        f"ev AS (SELECT e.template_id, {SERIES[by]} AS series, {_BUCKET} AS bk,"
        f" {unit_sql(clusters)} AS unit, e.user_id, {cols} FROM metric_events e WHERE {where})",
        f"u AS (SELECT {keys}, unit, {', '.join(per_unit)} FROM ev GROUP BY ALL)",
        f"s AS (SELECT {keys}, {', '.join(per_bucket)} FROM u GROUP BY ALL)",
    ]

    # per bucket, in one aggregation: the sorted values of each p95 measure, and with clusters
    # the users by HyperLogLog (the per-cluster rows cannot count them)
    per_event = [
        f"count(m{i}) AS k{i}, list_sort(list(m{i}) FILTER (WHERE m{i} IS NOT NULL)) AS s{i}"
        for i in p95s
    ]
    users = "s.units AS users"
    if clusters is not None:
        per_event.append("approx_count_distinct(user_id) AS hll")
        users = "q.hll AS users"
    joins = []
    if per_event:
        ctes.append(f"q AS (SELECT {keys}, {', '.join(per_event)} FROM ev GROUP BY ALL)")
        # series is NULL without a grouping (and for events without a version …): match NULLs
        # too, which USING would not
        joins.append(
            "LEFT JOIN q ON q.template_id = s.template_id AND q.bk = s.bk"
            " AND q.series IS NOT DISTINCT FROM s.series"
        )
    select = ["s.template_id", "s.series", "make_timestamptz(s.bk + $anchor) AS bucket", users]
    select += [_ci_sql(i) for i in means] + [_p95_sql(i) for i in p95s]
    cur = con.execute(
        f"WITH {', '.join(ctes)} SELECT {', '.join(select)} FROM s {' '.join(joins)}"
        " ORDER BY s.template_id, s.series NULLS FIRST, s.bk",
        params,
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def branch_heads(con: Con, template_ids: Sequence[str]) -> dict[tuple[str, str], str]:
    """``(template_id, head commit) → branch name`` of the templates' branches."""
    rows = con.execute(
        "SELECT template_id, head, name FROM branches WHERE list_contains(?, template_id)"
        " ORDER BY name = 'main', name",
        [list(template_ids)],
    ).fetchall()
    out: dict[tuple[str, str], str] = {}
    for tid, head, name in rows:
        out.setdefault((tid, head), name)
    return out


def template_names(con: Con, template_ids: Sequence[str]) -> dict[str, str]:
    rows = con.execute(
        "SELECT id, name FROM templates WHERE list_contains(?, id)", [list(template_ids)]
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def deployments(
    con: Con, template_ids: Sequence[str], end: datetime, environment: str | None
) -> list[DeploymentMarker]:
    """Every deployment and rollback of the templates up to ``end``, oldest first."""
    params: list[Any] = [list(template_ids), end]
    env = ""
    if environment is not None:
        env = " AND d.environment = ?"
        params.append(environment)
    rows = con.execute(
        "SELECT d.id, d.template_id, t.name, d.environment, d.action, d.version, d.commit_id,"
        " d.created_at, d.replaced_version, d.author, d.note FROM deployments d"
        " JOIN templates t ON t.id = d.template_id"
        f" WHERE list_contains(?, d.template_id) AND d.created_at <= ?{env}"
        " ORDER BY d.created_at, d.id",
        params,
    ).fetchall()
    return [
        DeploymentMarker(
            deployment_id=r[0],
            template_id=r[1],
            template=r[2],
            environment=r[3],
            action=r[4],
            version=r[5],
            commit=r[6],
            at=r[7],
            replaced_version=r[8],
            author=r[9] or "",
            note=r[10] or "",
        )
        for r in rows
    ]


@dataclass(frozen=True)
class Span:
    """Events of one template in one environment around a deployment at ``at``: the window
    before is ``start ≤ ts < at``, the window after ``at ≤ ts < end``."""

    template_id: str
    environment: str
    start: datetime
    at: datetime
    end: datetime


def change_sums(
    con: Con, spans: Sequence[Span], measures: Sequence[Measure], clusters: int | None = None
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """For each span, the (before, after) sums: for each mean measure ``i`` the sufficient
    statistics ``n{i}, sx{i}, sxx{i}, sy{i}, syy{i}, sxy{i}, sq{i}`` (users as the unit, ``sq``
    = Σ value² over events), for each p95 measure its value ``p{i}`` and ``k{i}`` events, and
    ``users`` with an event (exact per user; by HyperLogLog with ``clusters``, which pools the
    users into hashed clusters as :func:`unit_sql` says). Spans may overlap: each reads its own
    range of events (one range scan per span, which the time order of the table keeps cheap)."""
    if not spans or not measures:
        return []
    params: dict[str, Any] = {}
    if clusters is not None:
        params["clusters"] = int(clusters)
    cols = ", ".join(f"{metric_expr(m, i, params)} AS m{i}" for i, m in enumerate(measures))
    scans = []
    for k, sp in enumerate(spans):
        params.update(
            {f"t{k}": sp.template_id, f"e{k}": sp.environment, f"s{k}": sp.start}
            | {f"a{k}": sp.at, f"f{k}": sp.end}
        )
        scans.append(
            f"SELECT {k} AS k, e.ts >= $a{k} AS after, {unit_sql(clusters)} AS unit,"
            f" e.user_id, {cols} FROM metric_events e"
            f" WHERE e.template_id = $t{k} AND e.environment = $e{k}"
            f" AND e.ts >= $s{k} AND e.ts < $f{k}"
        )
    means = [i for i, m in enumerate(measures) if not m.p95]
    p95s = [i for i, m in enumerate(measures) if m.p95]
    per_user = ["count(*) AS c"]
    per_user += [
        f"sum(m{i}) AS x{i}, count(m{i})::DOUBLE AS y{i}, sum(m{i} * m{i}) AS q{i}" for i in means
    ]
    per_side = [
        f"count(*) FILTER (WHERE y{i} > 0) AS n{i}, coalesce(sum(x{i}), 0) AS sx{i},"
        f" coalesce(sum(x{i} * x{i}), 0) AS sxx{i}, coalesce(sum(y{i}), 0) AS sy{i},"
        f" coalesce(sum(y{i} * y{i}), 0) AS syy{i}, coalesce(sum(x{i} * y{i}), 0) AS sxy{i},"
        f" coalesce(sum(q{i}), 0) AS sq{i}"
        for i in means
    ]
    per_side.append("count(*) AS users")
    ctes = [
        f"ev AS ({' UNION ALL '.join(scans)})",
        f"u AS (SELECT k, after, unit, {', '.join(per_user)} FROM ev GROUP BY ALL)",
        f"s AS (SELECT k, after, {', '.join(per_side)} FROM u GROUP BY ALL)",
    ]
    joins = []
    select = ["s.* EXCLUDE (users)"]
    if clusters is None:
        select.append("s.users")
    else:
        ctes.append(
            "h AS (SELECT k, after, approx_count_distinct(user_id) AS hll FROM ev GROUP BY ALL)"
        )
        joins.append("LEFT JOIN h USING (k, after)")
        select.append("h.hll AS users")
    for i in p95s:
        ctes.append(
            f"q{i} AS (SELECT k, after, count(m{i}) AS k{i}, quantile_cont(m{i}, {P95}) AS p{i}"
            " FROM ev GROUP BY ALL)"
        )
        joins.append(f"LEFT JOIN q{i} USING (k, after)")
        select += [f"q{i}.k{i}", f"q{i}.p{i}"]
    cur = con.execute(
        f"WITH {', '.join(ctes)} SELECT {', '.join(select)} FROM s {' '.join(joins)}", params
    )
    names = [d[0] for d in cur.description]
    got = {
        (r["k"], r["after"]): r for r in (dict(zip(names, x, strict=True)) for x in cur.fetchall())
    }
    empty: dict[str, Any] = {"users": 0}
    for i in means:
        empty |= {f"{c}{i}": 0 for c in ("n", "sx", "sxx", "sy", "syy", "sxy", "sq")}
    for i in p95s:
        empty |= {f"k{i}": 0, f"p{i}": None}
    return [(got.get((k, False), empty), got.get((k, True), empty)) for k in range(len(spans))]


def change_values(
    con: Con, spans: Sequence[Span], measure: Measure, clusters: int | None = None
) -> list[tuple[tuple[Any, Any], tuple[Any, Any]]]:
    """For each span, the (before, after) events of one measure as numpy arrays ``(units,
    values)``: each event's unit (the user, or its hashed cluster as :func:`unit_sql` says)
    and value, events without a value left out. For the bootstrap of a percentile; callers
    keep the spans small (a few tens of thousands of events)."""
    import numpy as np

    if not spans:
        return []
    params: dict[str, Any] = {}
    if clusters is not None:
        params["clusters"] = int(clusters)
    expr = metric_expr(measure, 0, params)
    scans = []
    for k, sp in enumerate(spans):
        params.update(
            {f"t{k}": sp.template_id, f"e{k}": sp.environment, f"s{k}": sp.start}
            | {f"a{k}": sp.at, f"f{k}": sp.end}
        )
        scans.append(
            f"SELECT {k} AS k, e.ts >= $a{k} AS after, ({unit_sql(clusters)})::VARCHAR AS unit,"
            f" {expr} AS v FROM metric_events e"
            f" WHERE e.template_id = $t{k} AND e.environment = $e{k}"
            f" AND e.ts >= $s{k} AND e.ts < $f{k} AND {expr} IS NOT NULL"
        )
    res = con.execute(
        f"SELECT k, after, unit, v FROM ({' UNION ALL '.join(scans)}) ORDER BY k, after, unit",
        params,
    ).fetchnumpy()
    ks = np.asarray(res["k"], dtype=np.int64)
    after = np.asarray(res["after"], dtype=bool)
    units = np.asarray(res["unit"], dtype=object)
    values = np.asarray(res["v"], dtype=float)
    out = []
    for k in range(len(spans)):
        sides = []
        for side in (False, True):
            sel = (ks == k) & (after == side)
            sides.append((units[sel], values[sel]))
        out.append((sides[0], sides[1]))
    return out


def custom_metric_names(con: Con) -> list[str]:
    """Names of the custom metrics present in stored events."""
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT unnest(map_keys(custom)) AS k FROM metric_events"
            " WHERE custom IS NOT NULL ORDER BY k"
        ).fetchall()
    ]

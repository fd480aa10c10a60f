"""Trend buckets and before/after sums from events in an engine (``promptver.store.trends``'s
questions for a :class:`~promptver.store.warehouse.Relation`).

The same reductions: per unit (user, or a hashed cluster of users) and time bucket the sums of
each mean measure, then per bucket the sufficient statistics; the mean and its delta-method CI
are computed here from those sums with the file's formula (``trends._ci_sql``). The p95 is the
engine's exact percentile, its CI the order statistics at the file's ranks
``⌊kq − z√(kq(1−q))⌋`` and ``⌈kq + z√(kq(1−q))⌉``, picked with ``ROW_NUMBER`` in the engine.
Buckets are ``date_trunc`` in UTC (weeks start on Monday, as the file's anchor). Users per bucket
are counted exactly (the file counts them by HyperLogLog when it pools users into clusters).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from promptver.metric_defs import Measure
from promptver.store.trends import P95, Span
from promptver.store.warehouse import Relation, in_list, window_where

SERIES = {None: "CAST(NULL AS VARCHAR)", "version": "version", "variant": "variant"}
SERIES["environment"] = "environment"


def _expr(rel: Relation, m: Measure) -> str:
    return rel.metric(m.custom if m.custom is not None else str(m.column))


def _unit(clusters: int | None, params: dict[str, Any]) -> str:
    if clusters is None:
        return "user_id"
    params["clusters"] = int(clusters)
    return "PV_BUCKET(user_id, $clusters, 'promptver:trends')"


def _ci(row: dict[str, Any], i: int, tcrit: Sequence[float], z: float) -> tuple:
    """(events, value, lo, hi) of mean measure ``i`` from its sums (``trends._ci_sql``)."""
    n, sx, sy = int(row[f"n{i}"] or 0), row[f"sx{i}"], row[f"sy{i}"] or 0.0
    if not sy:
        return 0, None, None, None
    sxx, syy, sxy = row[f"sxx{i}"], row[f"syy{i}"], row[f"sxy{i}"]
    r = sx / sy
    if n < 2:
        return int(sy), r, None, None
    ss = sxx - 2 * r * sxy + r * r * syy
    scale = abs(sxx) + r * r * abs(syy)
    resid = 0.0 if ss <= 1e-12 * scale else ss
    se = math.sqrt(n / (n - 1) * resid / (sy * sy))
    crit = tcrit[n - 2] if n - 1 <= len(tcrit) else z
    return int(sy), r, r - crit * se, r + crit * se


def bucket_series(
    rel: Relation,
    *,
    templates: list[str],
    template_id: Callable[[Any], str | None],
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
    """One row per (template, series, bucket), as ``trends.bucket_series`` returns them."""
    if unit not in ("hour", "day", "week"):
        raise ValueError(unit)
    if not measures:
        return []
    base: dict[str, Any] = {}
    where = window_where(base, start=start, end=end, template=templates, environment=environment)
    head = f"template, {SERIES[by]} AS series, date_trunc('{unit}', ts) AS bk"
    means = [i for i, m in enumerate(measures) if not m.p95]
    p95s = [i for i, m in enumerate(measures) if m.p95]
    out: dict[tuple, dict[str, Any]] = {}

    def row(key: tuple) -> dict[str, Any]:
        if key not in out:
            out[key] = {"template_id": template_id(key[0]), "series": key[1], "bucket": key[2]}
        return out[key]

    params = dict(base)
    cols = ", ".join(f"{_expr(rel, measures[i])} AS m{i}" for i in means) or "1 AS m_none"
    per_unit = ["count(*) AS c"] + [
        f"sum(m{i}) AS x{i}, CAST(count(m{i}) AS DOUBLE) AS y{i}" for i in means
    ]
    per_bucket = ["count(*) AS units"] + [
        f"count(*) FILTER (WHERE y{i} > 0) AS n{i}, sum(x{i}) AS sx{i}, sum(y{i}) AS sy{i},"
        f" sum(x{i} * x{i}) AS sxx{i}, sum(y{i} * y{i}) AS syy{i}, sum(x{i} * y{i}) AS sxy{i}"
        for i in means
    ]
    unit_sql = _unit(clusters, params)
    sums = rel.rows(
        f"WITH ev AS (SELECT {head}, {unit_sql} AS unit, {cols} FROM {{EV}} AS e WHERE {where}),"
        f" u AS (SELECT template, series, bk, unit, {', '.join(per_unit)} FROM ev"
        f" GROUP BY 1, 2, 3, 4)"
        f" SELECT template, series, bk, {', '.join(per_bucket)} FROM u GROUP BY 1, 2, 3",
        params,
    )
    for s in sums:
        r = row((s["template"], s["series"], s["bk"]))
        r["users"] = int(s["units"])
        for i in means:
            r[f"events{i}"], r[f"value{i}"], r[f"lo{i}"], r[f"hi{i}"] = _ci(s, i, tcrit, z)
    if clusters is not None:  # clusters pool users: count them per bucket
        params = dict(base)
        for u in rel.rows(
            f"SELECT template, series, bk, count(DISTINCT user_id) AS users FROM"
            f" (SELECT {head}, user_id FROM {{EV}} AS e WHERE {where}) AS ev GROUP BY 1, 2, 3",
            params,
        ):
            row((u["template"], u["series"], u["bk"]))["users"] = int(u["users"])
    for i in p95s:
        params = dict(base, z=float(z))
        half = f"$z * sqrt(k * {P95} * (1 - {P95}))"
        for q in rel.rows(
            f"WITH ev AS (SELECT {head}, {_expr(rel, measures[i])} AS v FROM {{EV}} AS e"
            f" WHERE {where}),"
            " r AS (SELECT template, series, bk, v, ROW_NUMBER() OVER (PARTITION BY template,"
            " series, bk ORDER BY v) AS rn, count(*) OVER (PARTITION BY template, series, bk)"
            " AS k FROM ev WHERE v IS NOT NULL)"
            f" SELECT template, series, bk, max(k) AS k, quantile_cont(v, {P95}) AS p,"
            f" max(CASE WHEN rn = floor(k * {P95} - {half}) THEN v END) AS lo,"
            f" max(CASE WHEN rn = ceil(k * {P95} + {half}) THEN v END) AS hi"
            " FROM r GROUP BY 1, 2, 3",
            params,
        ):
            r = row((q["template"], q["series"], q["bk"]))
            r[f"events{i}"], r[f"value{i}"] = int(q["k"]), float(q["p"])
            r[f"lo{i}"] = None if q["lo"] is None else float(q["lo"])
            r[f"hi{i}"] = None if q["hi"] is None else float(q["hi"])
    rows = list(out.values())
    for r in rows:
        r.setdefault("users", 0)
        for i in range(len(measures)):
            for k in ("value", "lo", "hi"):
                r.setdefault(f"{k}{i}", None)
            r.setdefault(f"events{i}", 0)
    return rows


def _span_scans(
    rel: Relation,
    spans: Sequence[Span],
    aliases: Callable[[str], list[str]],
    params: dict[str, Any],
    select: str,
) -> str:
    scans = []
    for k, sp in enumerate(spans):
        params.update({f"s{k}": sp.start, f"a{k}": sp.at, f"f{k}": sp.end, f"e{k}": sp.environment})
        tpl = in_list(f"t{k}_", aliases(sp.template_id), params)
        scans.append(
            f"SELECT {k} AS k, CASE WHEN ts >= $a{k} THEN 1 ELSE 0 END AS after, {select}"
            f" FROM {{EV}} AS e WHERE template IN {tpl} AND environment = $e{k}"
            f" AND ts >= $s{k} AND ts < $f{k}"
        )
    return " UNION ALL ".join(scans)


def change_sums(
    rel: Relation,
    spans: Sequence[Span],
    aliases: Callable[[str], list[str]],
    measures: Sequence[Measure],
    clusters: int | None = None,
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Per span, the (before, after) sums of ``trends.change_sums``."""
    if not spans or not measures:
        return []
    params: dict[str, Any] = {}
    means = [i for i, m in enumerate(measures) if not m.p95]
    p95s = [i for i, m in enumerate(measures) if m.p95]
    cols = ", ".join(f"{_expr(rel, m)} AS m{i}" for i, m in enumerate(measures))
    unit_sql = _unit(clusters, params)
    ev = _span_scans(rel, spans, aliases, params, f"{unit_sql} AS unit, user_id, {cols}")
    per_user = ["count(*) AS c"] + [
        f"sum(m{i}) AS x{i}, CAST(count(m{i}) AS DOUBLE) AS y{i}, sum(m{i} * m{i}) AS q{i}"
        for i in means
    ]
    per_side = ["count(*) AS users"] + [
        f"count(*) FILTER (WHERE y{i} > 0) AS n{i}, coalesce(sum(x{i}), 0) AS sx{i},"
        f" coalesce(sum(x{i} * x{i}), 0) AS sxx{i}, coalesce(sum(y{i}), 0) AS sy{i},"
        f" coalesce(sum(y{i} * y{i}), 0) AS syy{i}, coalesce(sum(x{i} * y{i}), 0) AS sxy{i},"
        f" coalesce(sum(q{i}), 0) AS sq{i}"
        for i in means
    ]
    got: dict[tuple[int, bool], dict[str, Any]] = {}
    for r in rel.rows(
        f"WITH ev AS ({ev}), u AS (SELECT k, after, unit, {', '.join(per_user)} FROM ev"
        f" GROUP BY 1, 2, 3) SELECT k, after, {', '.join(per_side)} FROM u GROUP BY 1, 2",
        params,
    ):
        got[(int(r["k"]), bool(r["after"]))] = {
            key: (float(v) if key[:1] == "s" and v is not None else v) for key, v in r.items()
        }
    if clusters is not None:
        for r in rel.rows(
            f"WITH ev AS ({ev}) SELECT k, after, count(DISTINCT user_id) AS users FROM ev"
            " GROUP BY 1, 2",
            params,
        ):
            got[(int(r["k"]), bool(r["after"]))]["users"] = int(r["users"])
    for i in p95s:
        for r in rel.rows(
            f"WITH ev AS ({ev}) SELECT k, after, count(m{i}) AS k{i},"
            f" quantile_cont(m{i}, {P95}) AS p{i} FROM ev GROUP BY 1, 2",
            params,
        ):
            side = got.setdefault((int(r["k"]), bool(r["after"])), {})
            side[f"k{i}"] = int(r[f"k{i}"])
            side[f"p{i}"] = None if r[f"p{i}"] is None else float(r[f"p{i}"])
    empty: dict[str, Any] = {"users": 0}
    for i in means:
        empty |= {f"{c}{i}": 0 for c in ("n", "sx", "sxx", "sy", "syy", "sxy", "sq")}
    for i in p95s:
        empty |= {f"k{i}": 0, f"p{i}": None}
    return [
        ({**empty, **got.get((k, False), {})}, {**empty, **got.get((k, True), {})})
        for k in range(len(spans))
    ]


def change_values(
    rel: Relation,
    spans: Sequence[Span],
    aliases: Callable[[str], list[str]],
    measure: Measure,
    clusters: int | None = None,
) -> list[tuple[tuple[Any, Any], tuple[Any, Any]]]:
    """Per span, the (before, after) events of one measure as ``(units, values)`` arrays."""
    import numpy as np

    if not spans:
        return []
    params: dict[str, Any] = {}
    expr = _expr(rel, measure)
    unit_sql = _unit(clusters, params)
    ev = _span_scans(
        rel, spans, aliases, params, f"CAST({unit_sql} AS VARCHAR) AS unit, {expr} AS v"
    )
    _, rows = rel.run(f"SELECT k, after, unit, v FROM ({ev}) AS ev WHERE v IS NOT NULL", params)
    rows.sort(key=lambda r: (int(r[0]), int(r[1]), str(r[2]), float(r[3])))
    ks = np.asarray([int(r[0]) for r in rows], dtype=np.int64)
    after = np.asarray([bool(r[1]) for r in rows], dtype=bool)
    units = np.asarray([str(r[2]) for r in rows], dtype=object)
    values = np.asarray([float(r[3]) for r in rows], dtype=float)
    out = []
    for k in range(len(spans)):
        sides = []
        for side in (False, True):
            sel = (ks == k) & (after == side)
            sides.append((units[sel], values[sel]))
        out.append((sides[0], sides[1]))
    return out

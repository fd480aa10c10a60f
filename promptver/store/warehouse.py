"""The analysis' queries for events outside the promptver file, written once and translated.

The queries here are the ones ``promptver.store.stats`` and ``promptver.store.metrics`` run on the
file (the same per-user reduction first, then per variant or per hashed bucket; the same
figures), written in DuckDB's dialect over a relation ``{EV}`` that holds the contract's column
names. :class:`Relation` maps the source's columns onto those names (renames from the settings,
types checked once), and :meth:`Relation.translate` turns a query into the engine's dialect with
sqlglot, parameters included (``$name`` → ``%(name)s`` for psycopg, ``:name`` for Spark). Two
functions differ by engine and are rewritten on the syntax tree:

- ``PV_BUCKET(user, n[, salt])``: a hashed user bucket (the bootstrap's, or the trends' user
  clusters with their salt). DuckDB uses the file's own ``hash(user, salt) % n`` (so Parquet
  buckets equal the file's); PostgreSQL ``hashtextextended`` and Spark ``xxhash64`` of the same
  salted user.
- ``quantile_cont``: PostgreSQL's ``percentile_cont … WITHIN GROUP`` and Spark's exact
  ``percentile``; all three interpolate linearly between order statistics.

Every value is a bound parameter; identifiers (the source's column and table names) are quoted.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

from promptver.errors import SourceError
from promptver.store.engines import Engine, quote_ident

#: contract name → (name inside the queries, what it must hold)
CONTRACT: dict[str, tuple[str, str]] = {
    "timestamp": ("ts", "time"),
    "template": ("template", "text"),
    "user_id": ("user_id", "text"),
    "event_id": ("event_id", "text"),
    "experiment": ("experiment", "text"),
    "variant": ("variant", "text"),
    "version": ("version", "text"),
    "environment": ("environment", "text"),
    "latency_ms": ("latency_ms", "number"),
    "success": ("success", "flag"),
    "error": ("error", "flag"),
    "quality_score": ("quality_score", "number"),
    "cost_usd": ("cost_usd", "number"),
    "tokens_in": ("tokens_in", "number"),
    "tokens_out": ("tokens_out", "number"),
}
REQUIRED = ("timestamp", "template", "user_id")
#: the built-in metrics (all DOUBLE inside the queries: flags are 1.0 / 0.0)
BUILTIN = ("latency_ms", "success", "error", "quality_score", "cost_usd", "tokens_in", "tokens_out")

_NUMBER = re.compile(
    r"\b(int|integer|bigint|smallint|tinyint|hugeint|ubigint|uinteger|long|short|byte|double|"
    r"float|real|numeric|decimal)\b|^(int\d|float\d|uint\d+|decimal\(.*)"
)


def kind_of(type_name: str) -> str:
    """``time``, ``bool``, ``number``, ``text`` or ``other`` for an engine's type name."""
    t = type_name.strip().lower()
    if "timestamp" in t:
        return "time"
    if t.startswith("bool"):
        return "bool"
    if _NUMBER.search(t):
        return "number"
    if any(k in t for k in ("char", "text", "string", "varchar", "uuid")):
        return "text"
    return "other"


_WANT = {
    "time": "a timestamp",
    "text": "text",
    "number": "a number",
    "flag": "a boolean or a 0/1 number",
}


class Relation:
    """The source's events under the contract's names, and the translation of queries."""

    def __init__(self, engine: Engine, renames: dict[str, str]) -> None:
        self.engine = engine
        self.label = engine.label
        self._renames = dict(renames)
        self._side: Relation | None = None
        cols = engine.schema()
        types = {name: t for name, t in cols}
        lower = {name.lower(): name for name, _ in cols}
        parts = engine.partition_columns()
        proj: list[str] = []
        used: set[str] = set()
        self.present: set[str] = set()
        self.naive_ts = False
        for contract, (inner, want) in CONTRACT.items():
            src = renames.get(contract, contract)
            actual = src if src in types else lower.get(src.lower())
            if actual is None:
                if contract in REQUIRED:
                    renamed = f" (renamed from {contract!r})" if contract in renames else ""
                    raise SourceError(
                        f"{self.label}: required column {src!r}{renamed} is missing; the source"
                        f" has {', '.join(repr(c) for c, _ in cols[:30])}"
                    )
                null = "VARCHAR" if want == "text" else "DOUBLE"
                proj.append(f"CAST(NULL AS {null}) AS {inner}")
                continue
            used.add(actual)
            self.present.add(contract)
            kind = kind_of(types[actual])
            ok = {
                "time": kind == "time",
                "text": kind in ("text", "number"),
                "number": kind == "number",
                "flag": kind in ("bool", "number"),
            }[want]
            if not ok:
                raise SourceError(
                    f"{self.label}: column {actual!r} ({contract}) is {types[actual]}, expected"
                    f" {_WANT[want]}"
                )
            q = quote_ident(actual)
            if want == "time":
                self.naive_ts = "time zone" not in types[actual].lower() and engine.dialect in (
                    "duckdb",
                )
                proj.append(f"{q} AS ts")
            elif want == "text":
                proj.append(
                    f"{q} AS {inner}" if kind == "text" else f"CAST({q} AS VARCHAR) AS {inner}"
                )
            elif kind == "bool":
                # typed: a bare 1.0 is a DECIMAL in Spark, whose avg() rounds to its scale
                proj.append(
                    f"CAST(CASE WHEN {q} THEN 1 WHEN NOT {q} THEN 0 END AS DOUBLE) AS {inner}"
                )
            else:
                proj.append(f"CAST({q} AS DOUBLE) AS {inner}")
        #: custom metric name → its name inside the queries
        self.custom: dict[str, str] = {}
        #: segment dimension (``dim_*``, as the file names it) → its name inside the queries
        self.dims: dict[str, str] = {}
        for name, t in cols:
            if name in used:
                continue
            if name.lower().startswith("dim_"):  # a hive partition may be one too
                alias = f"d_{len(self.dims)}"
                self.dims[name.lower()] = alias
                q = quote_ident(name)
                text = kind_of(t) == "text"
                proj.append(f"{q} AS {alias}" if text else f"CAST({q} AS VARCHAR) AS {alias}")
                continue
            if name in parts:
                continue
            if kind_of(t) == "number":
                alias = f"c_{len(self.custom)}"
                self.custom[name] = alias
                proj.append(f"CAST({quote_ident(name)} AS DOUBLE) AS {alias}")
        self.events = f"(SELECT {', '.join(proj)} FROM {engine.relation()})"
        self._cache: dict[str, str] = {}
        #: per-user reductions: (where, parameters) → [events, users] of the last one
        self._users: dict[tuple[str, str], list[int]] = {}
        self._lock = threading.Lock()

    # -- queries ------------------------------------------------------------------------------
    def metric(self, name: str) -> str:
        """The expression of a metric inside the queries (NULL for one the source lacks)."""
        if name in BUILTIN:
            return name
        return self.custom.get(name, "CAST(NULL AS DOUBLE)")

    def translate(self, sql: str) -> str:
        """``sql`` (DuckDB dialect, ``{EV}`` for the events) in the engine's dialect."""
        with self._lock:
            if sql in self._cache:
                return self._cache[sql]
        out = _translate(sql.replace("{EV}", self.events), self.engine.dialect)
        with self._lock:
            self._cache[sql] = out
        return out

    def run(
        self, sql: str, params: dict[str, Any], *, parallel: bool = False
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Translate and run ``sql``; datetimes become what the engine's timestamps compare to.
        ``parallel``: the statement's state is small whatever the events (a count, ranges, a
        histogram of bounded bins), so an engine in this process may use every core."""
        if self.naive_ts:
            params = {k: _naive_utc(v) for k, v in params.items()}
        with self.engine.parallel() if parallel else nullcontext():
            return self.engine.run(self.translate(sql), params)

    def rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        names, rows = self.run(sql, params)
        return [dict(zip(names, r, strict=True)) for r in rows]

    # -- bounded memory (engines in this process) ---------------------------------------------
    def run_by_users(
        self, sql: str, params: dict[str, Any], where: str, *, metrics: int, keys: int
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a per-user reduction (its first ``keys`` columns are the output rows' key; the
        others are counts and sums over users), in as many passes over the events as it takes
        to keep each pass' per-user hash table under the engine's ``user_pass_bytes``.

        Pass ``k`` of ``K`` reads the users whose ``hash(user_id)`` is ``k`` modulo ``K``: every
        user is in exactly one pass, so the rows of the passes, summed key by key, are the rows
        of one pass over everything. How many users there are is estimated first
        (:meth:`_users_estimate`, constant memory). Engines that run elsewhere
        (``user_pass_bytes`` None: PostgreSQL, Spark) run ``sql`` once."""
        budget = self.engine.user_pass_bytes
        if not budget:
            return self.run(sql, params)
        users = self.users_estimate(where, params)
        passes = max(1, math.ceil(users * user_row_bytes(metrics) / budget))
        if passes == 1:
            names, out = self.run(sql, params)
        else:
            merged: dict[tuple[Any, ...], list[Any]] = {}
            for k in range(passes):
                # The slice is DuckDB's plain hash of the user (the salted bootstrap bucket
                # cost 0.5 s more a pass at 50M events), its numbers written into the statement,
                # not bound: DuckDB filtered each event through bound ones at a cost of 60 %
                # more time per pass (6.6 s against 4.0 s). They are our own integers.
                sliced = sql.replace(
                    "{EV}",
                    f"(SELECT * FROM {{EV}} AS sl WHERE hash(user_id) % {int(passes)} = {int(k)})",
                )
                names, rows = self.run(sliced, params)
                for r in rows:
                    got = merged.get(r[:keys])
                    if got is None:
                        merged[r[:keys]] = list(r)
                    else:
                        for j in range(keys, len(r)):
                            if r[j] is not None:
                                got[j] = r[j] if got[j] is None else got[j] + r[j]
            out = [tuple(r) for r in merged.values()]
        if "users" in names:  # the exact count, for the next analysis of these events
            j = names.index("users")
            with self._lock:
                self._users[_users_key(where, params)][1] = sum(int(r[j] or 0) for r in out)
        return names, out

    def users_estimate(self, where: str, params: dict[str, Any]) -> int:
        """About how many users the events under ``where`` have (:meth:`_users_estimate`)."""
        return self._users_estimate(_users_key(where, params), where, _named_in(where, params))

    def sidecar(self) -> Relation | None:
        """This relation over the engine's sidecar (:meth:`Engine.sidecar`), built once; None
        when the engine has none."""
        with self._lock:
            if self._side is not None:
                return self._side
        engine = self.engine.sidecar()
        if engine is None:
            return None
        side = Relation(engine, self._renames)
        with self._lock:
            if self._side is None:
                self._side = side
            return self._side

    def _users_estimate(self, key: tuple[str, str], where: str, params: dict[str, Any]) -> int:
        """Users of the events under ``where``: ``approx_count_distinct`` (a scan of the user
        ids, constant memory) the first time; afterwards the exact count the last reduction
        returned, scaled by how much the events have grown since (a count, far cheaper)."""
        with self._lock:
            known = self._users.get(key)
        if known is None:
            _, rows = self.run(
                f"SELECT count(*) AS n, approx_count_distinct(user_id) AS users"
                f" FROM {{EV}} AS ev WHERE {where}",
                params,
                parallel=True,  # a HyperLogLog sketch: constant memory
            )
            events, users = (int(rows[0][0] or 0), int(rows[0][1] or 0)) if rows else (0, 0)
        else:
            _, rows = self.run(
                f"SELECT count(*) AS n FROM {{EV}} AS ev WHERE {where}", params, parallel=True
            )
            events = int(rows[0][0] or 0) if rows else 0
            users = math.ceil(known[1] * max(1.0, events / max(1, known[0])))
        with self._lock:
            self._users[key] = [events, users]
        return users

    def quantile_rows(
        self, value: str, where: str, params: dict[str, Any], levels: Sequence[float]
    ) -> list[tuple[Any, ...]]:
        """``(variant, n, quantile at each level …)`` per variant, as DuckDB's
        ``quantile_cont(value, levels)`` computes them, in memory that does not grow with the
        events (:func:`exact_quantiles`)."""
        found = exact_quantiles(self, value, where, params, levels)
        return [(g, n, *qs) for g, (n, qs) in found.items()]


#: bytes of one row of the per-user hash table (two text keys, a count, three sums per metric)
def user_row_bytes(metrics: int) -> int:
    return 112 + 24 * metrics


#: the exact quantiles' histogram: bins per refinement pass, and how many values of a bin are
#: read and sorted here instead of refining further (both bound the memory of a pass)
QUANTILE_BINS = 2048
QUANTILE_FETCH = 50_000
QUANTILE_PASSES = 12


class _Span:
    """Values of one group in ``[lo, hi]`` (``count`` of them, ``below`` smaller ones) and the
    order statistics (0-based ranks in the group) still wanted from it."""

    __slots__ = ("group", "lo", "hi", "below", "count", "ranks")

    def __init__(self, group: Any, lo: float, hi: float, below: int, count: int, ranks: list):
        self.group, self.lo, self.hi = group, lo, hi
        self.below, self.count, self.ranks = below, count, ranks


def exact_quantiles(
    rel: Relation, value: str, where: str, params: dict[str, Any], levels: Sequence[float]
) -> dict[Any, tuple[int, list[float]]]:
    """Per variant: values present and ``quantile_cont`` at ``levels`` (linear interpolation
    between the order statistics ``floor``/``ceil`` of ``(n - 1)·q``, DuckDB's formula), found
    without holding the values: a first pass reads each variant's count, minimum and maximum;
    each further pass counts the values in ``QUANTILE_BINS`` even bins of the spans that hold a
    wanted order statistic (with each bin's own minimum and maximum, so the next span holds
    exactly that bin's values); a bin of one distinct value answers its ranks, and a bin of at
    most ``QUANTILE_FETCH`` values is read and sorted here. Infinite or NaN values fall back to
    ``quantile_cont`` (which holds every value)."""
    _, rows = rel.run(
        f"SELECT variant AS g, count({value}) AS n, min({value}) AS lo, max({value}) AS hi"
        f" FROM {{EV}} AS ev WHERE {where} GROUP BY 1",
        params,
        parallel=True,
    )
    if any(r[1] and not (math.isfinite(r[2]) and math.isfinite(r[3])) for r in rows):
        p = {**params, "pv_levels": [float(x) for x in levels]}
        _, qrows = rel.run(
            f"SELECT variant, count({value}) AS n, quantile_cont({value}, $pv_levels) AS qs"
            f" FROM {{EV}} AS ev WHERE {where} GROUP BY variant",
            p,
        )
        return {r[0]: (int(r[1]), [float(x) for x in (r[2] or [])]) for r in qrows}
    counts: dict[Any, int] = {}
    found: dict[Any, dict[int, float]] = {}
    todo: list[_Span] = []
    for g, n, lo, hi in rows:
        counts[g] = n = int(n)
        found[g] = {}
        if n:
            ranks = sorted({k for q in levels for k in _ranks(n, q)})
            todo.append(_Span(g, float(lo), float(hi), 0, n, ranks))
    passes = 0
    while todo:
        passes += 1
        done = [s for s in todo if s.lo == s.hi]
        for s in done:
            found[s.group].update(dict.fromkeys(s.ranks, s.lo))
        small = [
            s
            for s in todo
            if s.lo < s.hi and (s.count <= QUANTILE_FETCH or passes > QUANTILE_PASSES)
        ]
        wide = [s for s in todo if s.lo < s.hi and s not in small]
        if small:
            vals = _span_values(rel, value, where, params, small)
            for i, s in enumerate(small):
                got = sorted(vals.get(i, []))
                for r in s.ranks:
                    found[s.group][r] = got[r - s.below]
        todo = []
        if wide:
            bins = _span_bins(rel, value, where, params, wide)
            for i, s in enumerate(wide):
                todo.extend(_narrow(s, sorted(bins.get(i, []))))
    out: dict[Any, tuple[int, list[float]]] = {}
    for g, n in counts.items():
        if not n:
            out[g] = (0, [])
            continue
        qs = []
        for q in levels:
            lo_r, hi_r = _ranks(n, q)
            rn = (n - 1) * float(q)
            lo, hi = found[g][lo_r], found[g][hi_r]
            d = rn - math.floor(rn)
            qs.append(lo if lo_r == hi_r else lo * (1.0 - d) + hi * d)
        out[g] = (n, qs)
    return out


def _ranks(n: int, q: float) -> tuple[int, int]:
    rn = (n - 1) * float(q)
    return int(math.floor(rn)), int(math.ceil(rn))


def _span_case(value: str, spans: list[_Span], params: dict[str, Any]) -> tuple[str, str, str]:
    """``CASE`` expressions: which span a value falls in, and that span's low and high edge."""
    which, los, his = [], [], []
    for i, s in enumerate(spans):
        params[f"sg{i}"], params[f"slo{i}"], params[f"shi{i}"] = s.group, s.lo, s.hi
        which.append(
            f"WHEN variant IS NOT DISTINCT FROM $sg{i} AND {value} >= $slo{i}"
            f" AND {value} <= $shi{i} THEN {i}"
        )
        los.append(f"WHEN {i} THEN $slo{i}")
        his.append(f"WHEN {i} THEN $shi{i}")
    return (
        f"CASE {' '.join(which)} END",
        f"CASE s {' '.join(los)} END",
        f"CASE s {' '.join(his)} END",
    )


def _span_bins(
    rel: Relation, value: str, where: str, params: dict[str, Any], spans: list[_Span]
) -> dict[int, list[tuple[int, int, float, float]]]:
    p = {**params, "pv_bins": QUANTILE_BINS}
    which, lo, hi = _span_case(value, spans, p)
    _, rows = rel.run(
        f"SELECT s, least($pv_bins - 1, CAST(floor((v - {lo}) / ({hi} - {lo}) * $pv_bins)"
        f" AS BIGINT)) AS bin, count(*) AS c, min(v) AS lo, max(v) AS hi"
        f" FROM (SELECT {which} AS s, {value} AS v FROM {{EV}} AS ev WHERE {where}) AS w"
        f" WHERE s IS NOT NULL GROUP BY 1, 2",
        p,
        parallel=True,  # at most QUANTILE_BINS groups per span
    )
    out: dict[int, list[tuple[int, int, float, float]]] = {}
    for s, b, c, lo_b, hi_b in rows:
        out.setdefault(int(s), []).append((int(b), int(c), float(lo_b), float(hi_b)))
    return out


def _narrow(span: _Span, bins: list[tuple[int, int, float, float]]) -> list[_Span]:
    """The bins of ``span`` that hold its wanted ranks, as spans."""
    out: list[_Span] = []
    below = span.below
    ranks = list(span.ranks)
    for _, c, lo, hi in bins:
        here = [r for r in ranks if r < below + c]
        if here:
            out.append(_Span(span.group, lo, hi, below, c, here))
            ranks = ranks[len(here) :]
        below += c
        if not ranks:
            break
    if ranks:  # the counts cover every value of the span: cannot happen
        raise RuntimeError(f"quantile ranks {ranks} beyond the {span.count} values of the span")
    return out


def _span_values(
    rel: Relation, value: str, where: str, params: dict[str, Any], spans: list[_Span]
) -> dict[int, list[float]]:
    p = dict(params)
    which, _, _ = _span_case(value, spans, p)
    _, rows = rel.run(
        f"SELECT s, v FROM (SELECT {which} AS s, {value} AS v FROM {{EV}} AS ev"
        f" WHERE {where}) AS w WHERE s IS NOT NULL",
        p,
        parallel=True,  # at most QUANTILE_FETCH values per span
    )
    out: dict[int, list[float]] = {}
    for s, v in rows:
        out.setdefault(int(s), []).append(float(v))
    return out


def _users_key(where: str, params: dict[str, Any]) -> tuple[str, str]:
    """What a users estimate is kept under: the condition and the values it names."""
    return where, repr(sorted(_named_in(where, params).items()))


def _named_in(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters ``sql`` names (DuckDB refuses the others)."""
    return {k: v for k, v in params.items() if re.search(rf"\${re.escape(k)}\b", sql)}


def _naive_utc(v: Any) -> Any:
    if isinstance(v, datetime) and v.tzinfo is not None:
        return v.astimezone(UTC).replace(tzinfo=None)
    return v


#: ``PV_BUCKET(user, n[, salt])`` per engine; ``{2}`` is the salt as a string literal
_BUCKET_SQL = {
    "duckdb": "hash({0}, {2}) % CAST({1} AS UBIGINT)",
    "postgres": "mod(mod(hashtextextended({0} || ':' || {2}, 0), {1}) + {1}, {1})",
    "spark": "pmod(xxhash64({0}, {2}), {1})",
}


def _translate(sql: str, dialect: str) -> str:
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="duckdb")

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Anonymous) and node.name.upper() == "PV_BUCKET":
            args = [a.sql(dialect=dialect) for a in node.expressions]
            if len(args) == 2:  # the bootstrap's salt (the file's store.stats.bucket_sql)
                args.append("'promptver:bootstrap'")
            return sqlglot.parse_one(_BUCKET_SQL[dialect].format(*args), read=dialect)
        if dialect == "spark" and isinstance(node, exp.PercentileCont):
            return exp.Anonymous(this="percentile", expressions=[node.this, node.expression])
        return node

    out = tree.transform(fix).sql(dialect=dialect)
    if dialect == "postgres":  # psycopg reads % as a placeholder: double every other one
        out = re.sub(r"%(?!\(\w+\)s)", "%%", out)
    return out


def in_list(prefix: str, values: Sequence[Any], params: dict[str, Any]) -> str:
    """``($p0, $p1 …)`` for an IN list, the values bound as parameters."""
    names = []
    for i, v in enumerate(values):
        params[f"{prefix}{i}"] = v
        names.append(f"${prefix}{i}")
    return "(" + ", ".join(names or ["NULL"]) + ")"


def window_where(
    params: dict[str, Any],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    **equal: Any,
) -> str:
    """``AND``-joined conditions: each of ``equal`` is a column → value or list of values (any
    of them), and the time window ``[start, end]``; ``TRUE`` when there are none."""
    conds = []
    for col, value in equal.items():
        if value is None:
            continue
        values = list(value) if isinstance(value, list | tuple | set) else [value]
        conds.append(f"{col} IN {in_list('w_' + col + '_', values, params)}")
    if start is not None:
        params["w_start"] = start
        conds.append("ts >= $w_start")
    if end is not None:
        params["w_end"] = end
        conds.append("ts <= $w_end")
    return " AND ".join(conds) or "TRUE"

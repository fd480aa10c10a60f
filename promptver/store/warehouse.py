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

import re
import threading
from collections.abc import Sequence
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

    def run(self, sql: str, params: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Translate and run ``sql``; datetimes become what the engine's timestamps compare to."""
        if self.naive_ts:
            params = {k: _naive_utc(v) for k, v in params.items()}
        return self.engine.run(self.translate(sql), params)

    def rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        names, rows = self.run(sql, params)
        return [dict(zip(names, r, strict=True)) for r in rows]


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

"""The routing formula in DuckDB SQL: assign whole tables of user ids in one statement.

The contract's bucket is the first 8 bytes of ``md5(f"{salt}:{user_id}")`` read big-endian,
divided by 2**64. A portable SQL spelling is::

    ('0x' || left(md5(salt || ':' || user_id), 16))::UBIGINT::DOUBLE / 2**64

promptver computes the same number faster: DuckDB's ``md5_number`` returns the digest as a
128-bit integer read little-endian, so its low 64 bits are the first 8 bytes in reverse order;
swapping those bytes back with shifts and masks (vectorised integer arithmetic) avoids building
and parsing a hex string per row. ``UBIGINT → DOUBLE`` rounds to nearest like Python's
``int / 2**64``, and dividing by a power of two is exact, so buckets agree with Python bit for bit
(the tests check 100,000 ids, unicode included). Variant intervals are compared against the same
double-precision bounds that :class:`promptver.routing.Router` uses, passed as parameters.

Every user value (salt, bounds, variant names, prefix, counts) is a bound parameter; the only
names spliced into SQL are table and column identifiers, which must be plain identifiers and are
quoted.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Protocol

import duckdb

from promptver.errors import Problem, ValidationError

if TYPE_CHECKING:
    import pandas as pd

Con = duckdb.DuckDBPyConnection


class RoutingRule(Protocol):
    """What the SQL reads of a :class:`promptver.routing.Router`, named by shape so that the
    store does not import the service layer above it."""

    salt: str
    variants: tuple[str, ...]
    bounds: tuple[float, ...]
    coverage: float
    _cov_prefix: bytes

    def targets(self) -> dict[str, float]: ...


_IDENT_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
_LOW64 = "18446744073709551615"  # 2**64 - 1
_TWO64 = "18446744073709551616::DOUBLE"  # 2**64, exactly representable


def _swap64(x: str) -> str:
    """SQL reversing the byte order of the UBIGINT column ``x``."""
    return (
        f"((({x} & 255) << 56) | (({x} & 65280) << 40) | (({x} & 16711680) << 24)"
        f" | (({x} & 4278190080) << 8) | (({x} >> 8) & 4278190080)"
        f" | (({x} >> 24) & 16711680) | (({x} >> 40) & 65280) | ({x} >> 56))"
    )


def _low64(id_expr: str, prefix_param: str) -> str:
    """The low 64 bits of md5_number: the digest's first 8 bytes, little-endian."""
    return f"(md5_number(${prefix_param} || CAST({id_expr} AS VARCHAR)) & {_LOW64})::UBIGINT"


def bucket_sql(id_expr: str, prefix_param: str) -> str:
    """SQL for the bucket of ``id_expr`` given the parameter holding ``f"{salt}:"``."""
    return f"({_swap64(_low64(id_expr, prefix_param))})::DOUBLE / {_TWO64}"


def portable_bucket_sql(id_expr: str, prefix_param: str) -> str:
    """The same bucket through the hex digest (slower; what other SQL engines can copy)."""
    return (
        f"('0x' || left(md5(${prefix_param} || CAST({id_expr} AS VARCHAR)), 16))::UBIGINT"
        f"::DOUBLE / {_TWO64}"
    )


def _ident(name: str, what: str) -> str:
    if not isinstance(name, str) or not _IDENT_RE.match(name):
        raise ValidationError(
            "invalid name:",
            [
                Problem(
                    f"{name!r} must be a plain identifier (letters, digits and _, not starting with a "
                    "digit, up to 63 characters)",
                    field=what,
                )
            ],
        )
    return f'"{name}"'


def _assignment(router: RoutingRule, ids: str) -> tuple[str, dict[str, Any]]:
    """A query over ``ids`` (a FROM item with a ``pv_id`` column) giving ``pv_id, bucket,
    covered, variant``, and its parameters.

    Three levels: the md5 once per row (and salt), then the byte swap to the bucket, then the
    variant intervals; each level reads the columns of the one below, so no hash is computed twice.
    """
    params: dict[str, Any] = {"pv_prefix": f"{router.salt}:"}
    hashes = f"pv_id, {_low64('pv_id', 'pv_prefix')} AS pv_x"
    if router.coverage < 1.0:
        params["pv_cov_prefix"] = router._cov_prefix.decode()
        params["pv_coverage"] = router.coverage
        hashes += f", {_low64('pv_id', 'pv_cov_prefix')} AS pv_cx"
        covered = f"({_swap64('pv_cx')})::DOUBLE / {_TWO64} < $pv_coverage"
    else:
        covered = "TRUE"
    buckets = f"pv_id, ({_swap64('pv_x')})::DOUBLE / {_TWO64} AS bucket, {covered} AS covered"
    whens = []
    for i, bound in enumerate(router.bounds[:-1]):
        params[f"pv_c{i}"] = bound
        params[f"pv_v{i}"] = router.variants[i]
        whens.append(f"WHEN bucket < $pv_c{i} THEN $pv_v{i}")
    last = len(router.variants) - 1
    params[f"pv_v{last}"] = router.variants[last]
    case = f"CASE WHEN NOT covered THEN NULL {' '.join(whens)} ELSE $pv_v{last} END"
    # only our own expressions and parameter names are spliced in, never user text
    levels = f"(SELECT {buckets} FROM (SELECT {hashes} FROM {ids}))"
    sql = f"SELECT pv_id, bucket, covered, ({case})::VARCHAR AS variant FROM {levels}"
    return sql, params


def _select(router: RoutingRule, source: str, id_column: str) -> tuple[str, dict[str, Any]]:
    # source and id_column are quoted identifiers (see _ident) or our own names
    sql, params = _assignment(router, f"(SELECT {id_column} AS pv_id FROM {source})")
    return (f"SELECT pv_id AS user_id, bucket, covered, variant FROM ({sql})", params)


def assign_frame(con: Con, router: RoutingRule, frame: pd.DataFrame) -> pd.DataFrame:
    """Assign the ``user_id`` column of ``frame``; rows keep their order."""
    name = "pv_routing_ids"
    con.register(name, frame)
    try:
        sql, params = _select(router, name, "user_id")
        out = con.execute(sql, params).df()
    finally:
        con.unregister(name)
    return out


def assign_into(con: Con, router: RoutingRule, table: str, id_column: str, into: str) -> int:
    """``CREATE OR REPLACE TABLE into AS`` the assignment of every id in ``table``."""
    src, col, dst = _ident(table, "table"), _ident(id_column, "id_column"), _ident(into, "into")
    sql, params = _select(router, src, col)
    con.execute(f"CREATE OR REPLACE TABLE {dst} AS {sql}", params)
    return int(con.execute(f"SELECT count(*) FROM {dst}").fetchone()[0])


def synthetic_split(con: Con, router: RoutingRule, n: int, prefix: str) -> pd.DataFrame:
    """Users per variant among ``f"{prefix}{i}"`` for i in 0 … n-1 (``None``: not covered)."""
    import pandas as pd

    sql, params = _assignment(
        router, "(SELECT $pv_user_prefix || CAST(i AS VARCHAR) AS pv_id FROM range($pv_n) t(i))"
    )
    params.update(pv_n=n, pv_user_prefix=prefix)
    query = f"SELECT variant, count(*) FROM ({sql}) GROUP BY variant"
    rows = con.execute(query, params).fetchall()
    counts = {v: int(c) for v, c in rows}
    targets = router.targets()
    out = [
        {"variant": name, "users": counts.get(name, 0), "target": targets[name]}
        for name in router.variants
    ]
    if router.coverage < 1.0:
        out.append({"variant": None, "users": counts.get(None, 0), "target": 1 - router.coverage})
    frame = pd.DataFrame(out, columns=["variant", "users", "target"])
    # object dtype keeps None (pandas' str dtype would turn it into NaN)
    frame["variant"] = pd.Series([r["variant"] for r in out], dtype=object)
    frame["share"] = frame["users"] / n
    return frame[["variant", "users", "share", "target"]]

"""Consistent-hash traffic routing: which variant a user sees, reproducibly from any language.

The contract's formula, for a salt (the experiment's ``salt``, by default its id) and a user id::

    bucket = int.from_bytes(md5(f"{salt}:{user_id}".encode("utf-8")).digest()[:8], "big") / 2**64

Variants, in configured order, own consecutive intervals of [0, 1) sized by their normalised
weights: with ``W`` the sum of the weights and ``c_i = (w_1 + … + w_i) / W`` (summed in order, in
double precision), variant ``i`` owns ``[c_(i-1), c_i)``; the last variant owns everything from
``c_(n-1)`` up, which also catches a bucket that rounds to exactly 1.0.

Traffic coverage (the fraction of users that enter the experiment at all) uses a SEPARATE bucket,
``coverage_bucket = bucket`` computed with the salt ``f"{salt}:coverage"``; a user is in the
experiment when ``coverage_bucket < coverage`` (everyone when ``coverage`` is 1). Because the two
buckets are independent, raising coverage only adds users: nobody already in the experiment changes
variant, and the variant a user would get never depends on the coverage.

:class:`Router` precomputes what a lookup needs (salt bytes, cumulative bounds) so that a single
``route`` costs about a microsecond. The same formula runs in DuckDB SQL over whole tables of user
ids (:func:`assign_ids`, :func:`assign_table`, :func:`synthetic_split`; the SQL itself lives in
:mod:`promptver.store.routing`) and agrees with Python bit for bit.
"""

from __future__ import annotations

import math
import weakref
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from hashlib import md5
from typing import TYPE_CHECKING, Any

from promptver.errors import Problem, ValidationError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from promptver.models.experiments import Experiment

COVERAGE_SUFFIX = ":coverage"
_SCALE = 1.0 / 2**64  # a power of two: multiplying is exact, so this equals int / 2**64


def bucket(salt: str, user_id: str) -> float:
    """The contract's bucket of ``user_id`` under ``salt``, a float in [0, 1]."""
    return int.from_bytes(md5(f"{salt}:{user_id}".encode()).digest()[:8], "big") / 2**64


def coverage_salt(salt: str) -> str:
    """The salt of the coverage bucket (``f"{salt}:coverage"``)."""
    return f"{salt}{COVERAGE_SUFFIX}"


def coverage_bucket(salt: str, user_id: str) -> float:
    """The bucket that decides whether ``user_id`` enters the experiment at all."""
    return bucket(coverage_salt(salt), user_id)


def _bad(message: str, field_name: str) -> ValidationError:
    return ValidationError("invalid routing:", [Problem(message, field=field_name)])


def user_key(user_id: object) -> str:
    """``user_id`` as the text that is hashed (a string, or an integer in decimal).

    Raises:
        ValidationError: empty, not text, or not encodable as UTF-8 (a lone surrogate).
    """
    if isinstance(user_id, bool) or not isinstance(user_id, str | int):
        raise _bad(f"must be a string, not {type(user_id).__name__}", "user_id")
    text = str(user_id)
    if not text:
        raise _bad("must not be empty", "user_id")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise _bad("is not valid Unicode text (it holds a lone surrogate)", "user_id") from None
    return text


@dataclass(frozen=True, slots=True)
class Router:
    """The routing rule of one experiment, ready for fast lookups.

    Build it with :meth:`build` or :meth:`from_experiment`; it is immutable and thread-safe.
    ``bounds`` are the cumulative upper bounds ``c_1 … c_n`` of the variants' intervals.
    """

    salt: str
    variants: tuple[str, ...]
    weights: tuple[float, ...]
    bounds: tuple[float, ...]
    coverage: float = 1.0
    _inner: tuple[float, ...] = field(default=(), repr=False, compare=False)
    _prefix: bytes = field(default=b"", repr=False, compare=False)
    _cov_prefix: bytes = field(default=b"", repr=False, compare=False)

    @classmethod
    def build(
        cls,
        salt: str,
        variants: Sequence[tuple[str, float]] | Mapping[str, float],
        coverage: float = 1.0,
    ) -> Router:
        """A router for ``variants`` (``(name, weight)`` in order, the first is the control).

        Raises:
            ValidationError: no salt, fewer than two variants, duplicate names, a weight that is
                not a positive finite number, or coverage outside (0, 1].
        """
        pairs = list(variants.items()) if isinstance(variants, Mapping) else list(variants)
        if not isinstance(salt, str) or not salt:
            raise _bad("must be a non-empty string", "salt")
        if len(pairs) < 2:
            raise _bad("an experiment needs at least two variants", "variants")
        names = [str(n) for n, _ in pairs]
        if len(set(names)) != len(names):
            raise _bad("variant names must be unique", "variants")
        weights: list[float] = []
        for i, (_, w) in enumerate(pairs):
            if (
                isinstance(w, bool)
                or not isinstance(w, int | float)
                or not math.isfinite(w)
                or w <= 0
            ):
                raise _bad(f"must be a positive number, not {w!r}", f"variants[{i}].weight")
            weights.append(float(w))
        if (
            isinstance(coverage, bool)
            or not isinstance(coverage, int | float)
            or not (0 < coverage <= 1)
        ):
            raise _bad(f"must be a fraction in (0, 1], not {coverage!r}", "coverage")
        total = math.fsum(weights)
        acc = 0.0
        bounds = []
        for w in weights:
            acc += w  # summed in configured order: documented, so other languages match
            bounds.append(acc / total)
        return cls(
            salt=salt,
            variants=tuple(names),
            weights=tuple(w / total for w in weights),
            bounds=tuple(bounds),
            coverage=float(coverage),
            _inner=tuple(bounds[:-1]),
            _prefix=f"{salt}:".encode(),
            _cov_prefix=f"{coverage_salt(salt)}:".encode(),
        )

    @classmethod
    def from_experiment(cls, exp: Experiment) -> Router:
        """The router of an :class:`~promptver.models.Experiment` (salt, variants, coverage)."""
        return cls.build(exp.salt, [(v.name, v.weight) for v in exp.variants], exp.coverage)

    # -- lookups -------------------------------------------------------------------------
    def bucket(self, user_id: str) -> float:
        """The variant bucket of ``user_id`` (see the module docstring)."""
        return int.from_bytes(md5(self._prefix + user_id.encode()).digest()[:8], "big") * _SCALE

    def coverage_bucket(self, user_id: str) -> float:
        return int.from_bytes(md5(self._cov_prefix + user_id.encode()).digest()[:8], "big") * _SCALE

    def covered(self, user_id: str) -> bool:
        """Whether ``user_id`` enters the experiment (always, at coverage 1)."""
        return self.coverage >= 1.0 or self.coverage_bucket(user_id) < self.coverage

    def variant_index(self, b: float) -> int:
        """The position of the variant whose interval holds bucket ``b``."""
        return bisect_right(self._inner, b)

    def route(self, user_id: str) -> tuple[str | None, float]:
        """``(variant, bucket)`` for ``user_id``; the variant is ``None`` outside the coverage.

        Raises:
            ValidationError: ``user_id`` is empty, not text or not valid Unicode.
        """
        try:
            data = user_id.encode()
        except (AttributeError, UnicodeEncodeError):
            data = user_key(user_id).encode()  # raises for bad input, converts an int
        if not data:
            user_key(user_id)
        b = int.from_bytes(md5(self._prefix + data).digest()[:8], "big") * _SCALE
        if (
            self.coverage < 1.0
            and int.from_bytes(md5(self._cov_prefix + data).digest()[:8], "big") * _SCALE
            >= self.coverage
        ):
            return None, b
        return self.variants[bisect_right(self._inner, b)], b

    def targets(self) -> dict[str, float]:
        """Each variant's share of all users (weight × coverage); ``None`` key: outside."""
        return {name: w * self.coverage for name, w in zip(self.variants, self.weights)}

    def params(self) -> dict[str, Any]:
        """The routing configuration as plain data (what another language needs)."""
        return {
            "salt": self.salt,
            "coverage": self.coverage,
            "variants": [{"name": n, "weight": w} for n, w in zip(self.variants, self.weights)],
        }


# Routers of Experiment objects, so that route(experiment, …) stays fast. Keyed by object id and
# checked by identity through a weak reference: Experiment models are treated as values (the
# service never mutates one after building it), and an entry disappears with its experiment.
_ROUTERS: dict[int, tuple[weakref.ref[Any], Router]] = {}


def router_for(experiment_or_params: Any) -> Router:
    """A :class:`Router` for an Experiment, a Router, or a mapping of ``salt``, ``variants``
    (``[{"name", "weight"}]`` or ``[(name, weight)]``) and optional ``coverage``.

    Raises:
        ValidationError: the configuration is not routable.
    """
    obj = experiment_or_params
    if isinstance(obj, Router):
        return obj
    key = id(obj)
    hit = _ROUTERS.get(key)
    if hit is not None and hit[0]() is obj:
        return hit[1]
    from promptver.models.experiments import Experiment

    if isinstance(obj, Experiment):
        r = Router.from_experiment(obj)
        try:
            ref = weakref.ref(obj, lambda _r, k=key: _ROUTERS.pop(k, None))
        except TypeError:  # pragma: no cover - pydantic models support weak references
            return r
        _ROUTERS[key] = (ref, r)
        return r
    if isinstance(obj, Mapping):
        variants = obj.get("variants") or []
        pairs = [
            (v["name"], v["weight"]) if isinstance(v, Mapping) else (v[0], v[1]) for v in variants
        ]
        return Router.build(obj.get("salt", ""), pairs, obj.get("coverage", 1.0))
    raise TypeError(
        f"cannot route with {type(obj).__name__}: pass an Experiment, a Router or a "
        "mapping of salt, variants and coverage"
    )


def route(experiment_or_params: Any, user_id: str) -> tuple[str | None, float]:
    """``(variant, bucket)`` of ``user_id`` (variant ``None`` outside the coverage).

    ``experiment_or_params`` is an Experiment, a :class:`Router` or a mapping (see
    :func:`router_for`). The router of an Experiment is built once and reused.
    """
    return router_for(experiment_or_params).route(user_id)


# ---- batch assignment in SQL ----------------------------------------------------------------


def assign_ids(
    experiment_or_params: Any, user_ids: Iterable[str], con: duckdb.DuckDBPyConnection | None = None
) -> pd.DataFrame:
    """Assign many user ids at once in DuckDB.

    Returns:
        A DataFrame with ``user_id``, ``bucket``, ``covered`` and ``variant`` (``None`` outside
        the coverage), in input order.
    """
    import pandas as pd

    from promptver.store import routing as sql

    router = router_for(experiment_or_params)
    ids = [user_key(u) for u in user_ids]
    frame = pd.DataFrame({"user_id": pd.Series(ids, dtype=object)})
    if con is not None:
        return sql.assign_frame(con, router, frame)
    with _memory() as mem:
        return sql.assign_frame(mem, router, frame)


def assign_table(
    con: duckdb.DuckDBPyConnection,
    experiment_or_params: Any,
    table: str,
    *,
    id_column: str = "user_id",
    into: str | None = None,
) -> int:
    """Assign every user id in ``table`` (a DuckDB table or view) with one SQL statement.

    The result goes into the new table ``into`` (replaced if present; default
    ``f"{table}_assignment"``) with ``user_id``, ``bucket``, ``covered`` and ``variant``.
    Returns the number of rows assigned.

    Raises:
        ValidationError: a table or column name is not a plain identifier.
    """
    from promptver.store import routing as sql

    return sql.assign_into(
        con, router_for(experiment_or_params), table, id_column, into or f"{table}_assignment"
    )


def synthetic_split(
    experiment_or_params: Any, n: int = 10_000, *, prefix: str = "user-"
) -> pd.DataFrame:
    """How ``n`` synthetic users (``f"{prefix}{i}"``, ``i`` = 0 … n-1) split, computed in SQL.

    Returns:
        One row per variant (and ``None`` for users outside the coverage) with ``variant``,
        ``users``, ``share`` (observed fraction) and ``target`` (configured fraction).
    """
    from promptver.store import routing as sql

    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 100_000_000:
        raise _bad(f"must be a whole number from 1 to 100,000,000, not {n!r}", "n")
    router = router_for(experiment_or_params)
    with _memory() as mem:
        return sql.synthetic_split(mem, router, n, prefix)


@contextmanager
def _memory() -> Iterator[duckdb.DuckDBPyConnection]:
    """A private in-memory DuckDB (user ids to assign need no database file)."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        yield con
    finally:
        con.close()

"""Routing of ``allocation: bandit`` experiments (light: no numpy, runs inside ``get_prompt``).

- **The split** is the latest row of ``bandit_weights`` (the configured weights before the first
  change). Routing stays the contract's formula over the current weights.
- **Sticky assignment**: a user's first variant is recorded (``bandit_assignments``, with the
  period it fell in) and kept while the split moves; a new user is routed by the formula over the
  current weights.
- **Updates, at most hourly**: when the split is an hour old, Thompson sampling on the primary
  metric's per-arm sufficient statistics gives the new weights (each arm's share of posterior
  draws in which it is the best, with a 1 % floor); the change is recorded with its time. The
  draws are seeded by the experiment and the period, so two processes compute the same split
  (and the table's key lets only one record it).

The statistics here are the pure-Python twins of :func:`promptver.bandits.thompson_weights`
(a test checks that both agree).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from datetime import datetime, timedelta

from promptver.clock import utcnow
from promptver.errors import DatabaseBusy
from promptver.models.experiments import Experiment
from promptver.routing import Router
from promptver.store import bandits as sql
from promptver.store.db import Database

#: the split changes at most this often
UPDATE_EVERY = timedelta(hours=1)
FLOOR = 0.01
DRAWS = 10_000


def floor_weights(p: Sequence[float], floor: float = FLOOR) -> list[float]:
    """Probabilities with each at least ``floor``, summing to 1 (see ``bandits.apply_floor``)."""
    k = len(p)
    if k * floor >= 1:
        return [1 / k] * k
    total = sum(max(0.0, x) for x in p)
    q = [max(0.0, x) / total for x in p] if total > 0 else [1 / k] * k
    fixed = [False] * k
    while True:
        low = [not f and x < floor for f, x in zip(fixed, q)]
        if not any(low):
            return q
        fixed = [f or lo for f, lo in zip(fixed, low)]
        rest = 1 - floor * sum(fixed)
        mass = sum(x for f, x in zip(fixed, q) if not f)
        free = k - sum(fixed)
        q = [
            floor if f else (x * rest / mass if mass > 0 else rest / free) for f, x in zip(fixed, q)
        ]


def mean_se(sums: Sequence[float]) -> tuple[float, float] | None:
    """Mean per event and its delta-method standard error from (n, Σx, Σx², Σy, Σy², Σxy)."""
    n, sx, sxx, sy, syy, sxy = sums
    if n < 2 or sy <= 0:
        return None
    r = sx / sy
    rss = max(0.0, sxx - 2 * r * sxy + r * r * syy)
    return r, math.sqrt(n * rss / ((n - 1) * sy * sy))


def thompson(
    arms: Sequence[tuple[float, float] | None],
    direction: str,
    *,
    seed: int,
    floor: float = FLOOR,
    draws: int = DRAWS,
) -> list[float]:
    """Each arm's share of posterior draws in which it is best, floored (equal without data)."""
    k = len(arms)
    if any(a is None for a in arms):
        return [1 / k] * k
    rng = random.Random(seed)
    g = 1.0 if direction == "higher" else -1.0
    wins = [0] * k
    for _ in range(draws):
        best, best_v = 0, -math.inf
        for i, (m, s) in enumerate(arms):  # type: ignore[misc]
            v = g * rng.gauss(m, s if s > 0 else 1e-12)
            if v > best_v:
                best, best_v = i, v
        wins[best] += 1
    return floor_weights([w / draws for w in wins], floor)


def _seed(experiment_id: str, seq: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{experiment_id}:{seq}".encode()).digest()[:8], "big")


class BanditRouting:
    """The bandit side of :meth:`promptver.experiments.ExperimentService.assign`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._sticky: dict[tuple[str, str], str] = {}

    def router(
        self, exp: Experiment, now: datetime | None = None, *, update: bool = True
    ) -> tuple[Router, int]:
        """The router over the current split (updating it first when it is an hour old, unless
        ``update`` is False), and the period it belongs to."""
        now = now or utcnow()
        with self.db.read() as con:
            latest = sql.latest_weights(con, exp.id)
        since = latest[1] if latest else exp.started_at
        if update and since is not None and now - since >= UPDATE_EVERY:
            try:
                latest = self.update(exp, now) or latest
            except DatabaseBusy:  # another process holds the file: update on a later call
                pass
        weights = latest[2] if latest else [v.weight for v in exp.variants]
        seq = latest[0] if latest else 0
        pairs = [(v.name, w) for v, w in zip(exp.variants, weights)]
        return Router.build(exp.salt, pairs, exp.coverage), seq

    def update(
        self, exp: Experiment, now: datetime | None = None
    ) -> tuple[int, datetime, list[float]] | None:
        """Record a new split from the primary metric now (None when another process did)."""
        now = now or utcnow()
        metric = exp.primary_metric
        expr, params = sql.metric_sql(metric.name)
        with self.db.transaction() as con:
            latest = sql.latest_weights(con, exp.id)
            seq = (latest[0] if latest else 0) + 1
            sums = sql.arm_sums(con, exp.id, expr, params)
            arms = [mean_se(sums.get(v.name, (0, 0, 0, 0, 0, 0))) for v in exp.variants]
            weights = thompson(arms, metric.direction, seed=_seed(exp.id, seq))
            if not sql.insert_weights(con, exp.id, seq, now, weights):
                return None
        return seq, now, weights

    def variant(
        self,
        exp: Experiment,
        router: Router,
        period: int,
        user_id: str,
        now: datetime | None = None,
    ) -> tuple[str | None, float]:
        """The user's recorded variant, else the formula's over the current split (recorded)."""
        variant, b = router.route(user_id)
        if variant is None:  # outside the coverage
            return None, b
        key = (exp.id, user_id)
        hit = self._sticky.get(key)
        if hit is not None:
            return hit, b
        with self.db.read() as con:
            known = sql.assignment(con, exp.id, user_id)
        if known is None:
            try:
                with self.db.transaction() as con:
                    known = sql.assign(con, exp.id, user_id, variant, period, now or utcnow())
            except DatabaseBusy:  # serve the formula's answer now; it is recorded next time
                return variant, b
        if len(self._sticky) > 100_000:
            self._sticky.clear()
        self._sticky[key] = known
        return known, b

    def preview(self, exp: Experiment, user_id: str) -> tuple[str | None, float]:
        """What the user gets, without recording anything: their recorded variant, else the
        formula's over the current split."""
        router, _ = self.router(exp, update=False)
        variant, b = router.route(user_id)
        if variant is None:
            return None, b
        with self.db.read() as con:
            known = sql.assignment(con, exp.id, user_id)
        return known or variant, b

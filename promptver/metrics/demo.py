"""Demo metric events: 90 days of calls to the demo templates, and bulk events for benchmarks.

Deterministic for a seed. Every event is drawn at once with numpy (template, environment, time,
user and the noise of each metric), then *served* by what was live: the version deployed in its
environment at its time (read from the deployment log, which the demo back-dates), or, inside a
running experiment's window on that template and environment, the variant the contract's routing
formula gives its user. So figures per version, trends, change points and experiment results all
follow the history. Later versions of a template are a little better (quality, success) and cost
a little more. Two stories are built in:

- a regression: the newest version of ``qa-basic`` writes longer answers (more output tokens,
  higher cost) and gets slower every day it is live, until the demo rolls it back;
- an incident: the translation templates fail far more often for a few days (a provider outage),
  which the error-budget alert rule catches.

The same generator makes ``promptver demo --events N``: N more events over the last 90 days
(served the same way), written with one vectorised insert (:mod:`promptver.store.demo`), so that
a database with a million events builds in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from promptver.clock import utcnow
from promptver.store import demo as sql
from promptver.store import templates as template_sql
from promptver.store.demo import Batch

if TYPE_CHECKING:
    from promptver.models.core import Commit
    from promptver.models.experiments import Experiment
    from promptver.workspace import Workspace

DEMO_DAYS = 90
DEMO_EVENTS = 40_000
#: users of the demo's own events (``user-0001`` …); bulk events use more
DEMO_USERS = 2_000
#: the template whose newest version regresses after it is deployed
REGRESSION_TEMPLATE = "qa-basic"
#: share of the traffic per demo template (another template gets the mean share)
TRAFFIC = {
    "qa-basic": 0.34,
    "qa-citations": 0.22,
    "summarize-article": 0.14,
    "summarize-meeting": 0.10,
    "translate-formal": 0.12,
    "translate-chat": 0.08,
    "support-chat": 0.12,
    "ticket-entities": 0.06,
}
#: a translation provider outage: these templates fail this often in this window (days ago)
INCIDENT = (("translate-formal", "translate-chat"), 0.22, (-33.0, -30.5))


class BranchEffect(NamedTuple):
    """How an experiment arm that is a branch (not a version) changes the calls it serves,
    against the version it branched from."""

    latency: float = 1.0  # latency factor
    tokens_out: float = 1.0  # output-token factor
    quality: float = 0.0  # quality shift
    price: float = 1.0  # price per token factor (another model)


#: (template, branch) -> its effect; concise-tone writes shorter answers, cheaper-model runs
#: the same prompt on gpt-4.1-nano (2/3 of gpt-4o-mini's price per token, faster, a little worse)
BRANCH_EFFECTS = {
    ("qa-basic", "concise-tone"): BranchEffect(0.8, 0.6, 0.015),
    ("support-chat", "cheaper-model"): BranchEffect(0.7, 1.0, -0.02, 2 / 3),
}
_DAY_US = 86_400_000_000


def _semver(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def _env_shares(envs: list[str]) -> np.ndarray:
    """Production (the last environment) gets 75 % of the calls, the one before it 20 %, the
    others share the rest."""
    if len(envs) == 1:
        return np.array([1.0])
    shares = np.zeros(len(envs))
    shares[-1] = 0.75
    if len(envs) == 2:
        shares[0] = 0.25
    else:
        shares[-2] = 0.20
        shares[:-2] = 0.05 / (len(envs) - 2)
    return shares


@dataclass
class _Serving:
    """What one row of the serving table is: a commit served somewhere, and how it behaves."""

    version: str | None
    commit: str
    rank: int = 0
    latency: float = 1.0
    tokens_out: float = 1.0
    quality: float = 0.0
    price: float = 1.0
    regress_since_us: int | None = None  # the regressed release: live since then


@dataclass
class _Experiment:
    code: int
    template: int
    env: int
    start_us: int
    end_us: int
    variants: list[str]
    serving: list[int]  # serving-table row of each variant
    experiment: Experiment


@dataclass
class Schedule:
    """Everything the generator needs to serve a draw: templates and their traffic, the
    deployment timeline of each (template, environment), the running or ended experiments."""

    template_ids: list[str]
    template_names: list[str]
    weights: np.ndarray
    envs: list[str]
    env_shares: np.ndarray
    serving: list[_Serving] = field(default_factory=list)
    #: (template code, env code) -> (deployment times in µs, serving-table rows)
    live: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    experiments: list[_Experiment] = field(default_factory=list)

    @classmethod
    def read(cls, ws: Workspace) -> Schedule:
        templates = [t for t in ws.templates.list() if t.version]
        envs = list(ws.deployments.environments)
        mean = sum(TRAFFIC.values()) / len(TRAFFIC)
        w = np.array([TRAFFIC.get(t.name, mean) for t in templates], dtype=float)
        s = cls(
            template_ids=[t.id for t in templates],
            template_names=[t.name for t in templates],
            weights=w / w.sum() if len(w) else w,
            envs=envs,
            env_shares=_env_shares(envs),
        )
        with ws.db.read() as con:
            labels = template_sql.all_versions(con)
        ranks: dict[tuple[str, str], int] = {}
        newest: dict[str, str] = {}
        for v in sorted(labels, key=lambda v: _semver(v.version)):
            ranks[(v.template_id, v.version)] = sum(1 for k in ranks if k[0] == v.template_id)
            newest[v.template_id] = v.version
        index: dict[tuple[str | None, str, int | None], int] = {}

        def row(item: _Serving) -> int:
            key = (item.version, item.commit, item.regress_since_us)
            if key not in index:
                index[key] = len(s.serving)
                s.serving.append(item)
            return index[key]

        timeline: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
        for ti, t in enumerate(templates):
            regressed = (
                newest.get(t.id)
                if t.name == REGRESSION_TEMPLATE and ranks.get((t.id, newest.get(t.id, ""))) != 0
                else None
            )
            first_live: dict[int, int] = {}  # env -> when the regressed release first went live
            for d in reversed(ws.deployments.history(t.id)):  # oldest first
                if d.environment not in envs:
                    continue
                ei = envs.index(d.environment)
                times, rows = timeline.setdefault((ti, ei), ([], []))
                since = None
                if d.version is not None and d.version == regressed:
                    since = first_live.setdefault(ei, _us(d.created_at))
                times.append(_us(d.created_at))
                rows.append(
                    row(
                        _Serving(
                            d.version,
                            d.commit,
                            ranks.get((t.id, d.version or ""), 0),
                            regress_since_us=since,
                        )
                    )
                    if d.version is not None
                    else -1  # an unversioned commit: the demo serves nothing there
                )
        s.live = {
            k: (np.array(v[0], dtype=np.int64), np.array(v[1], dtype=np.int64))
            for k, v in timeline.items()
        }
        by_id = {tid: i for i, tid in enumerate(s.template_ids)}
        for exp in ws.experiments.list():
            start, end = exp.window()
            if exp.status == "draft" or start is None or exp.template_id not in by_id:
                continue
            if exp.environment not in envs:
                continue
            ti = by_id[exp.template_id]
            top = max((r for (tid, _), r in ranks.items() if tid == exp.template_id), default=0)
            arms = []
            for v in exp.variants:
                commit = ws.versions.get_commit(v.commit) if v.commit else None
                if commit is not None and commit.version is not None:
                    rank = ranks.get((exp.template_id, commit.version), 0)
                    arms.append(row(_Serving(commit.version, v.commit or "", rank)))
                else:
                    # a branch behaves like the version it branched from, changed by its effect
                    base = _base_version(ws, commit)
                    rank = top if base is None else ranks.get((exp.template_id, base), top)
                    e = BRANCH_EFFECTS.get((exp.template, v.ref), BranchEffect())
                    arms.append(
                        row(
                            _Serving(
                                None,
                                v.commit or "",
                                rank,
                                e.latency,
                                e.tokens_out,
                                e.quality,
                                e.price,
                            )
                        )
                    )
            s.experiments.append(
                _Experiment(
                    code=len(s.experiments),
                    template=ti,
                    env=envs.index(exp.environment),
                    start_us=_us(start),
                    end_us=_us(end) if end is not None else np.iinfo(np.int64).max,
                    variants=[v.name for v in exp.variants],
                    serving=arms,
                    experiment=exp,
                )
            )
        return s


def _base_version(ws: Workspace, commit: Commit | None) -> str | None:
    """The version of the nearest versioned ancestor of ``commit`` along first parents."""
    seen = 0
    while commit is not None and commit.version is None and commit.parents and seen < 100:
        commit = ws.versions.get_commit(commit.parents[0])
        seen += 1
    return None if commit is None else commit.version


def _us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def generate(
    schedule: Schedule,
    n: int,
    *,
    seed: int,
    stream: int = 0,
    now: datetime,
    users: int = DEMO_USERS,
    days: float = DEMO_DAYS,
) -> Batch:
    """Draw ``n`` events over the ``days`` before ``now`` and serve them (see the module doc).

    Draws that find nothing live (before a template's first deployment in that environment) are
    dropped and more are drawn, so ``n`` events come back whenever anything is deployed.
    ``stream`` picks an independent sequence for the same seed (bulk batches use 1, 2, …).
    """
    rng = np.random.default_rng([seed, stream, 7919])
    now_us = _us(now)
    n_t = len(schedule.template_ids)
    empty = Batch({}, [], [], [], [], [], 4)
    if n <= 0 or n_t == 0 or not schedule.live:
        return _finish(schedule, empty, {}, users)
    parts: list[dict[str, np.ndarray]] = []
    have = 0
    for _ in range(20):
        want = max(1024, int((n - have) * 1.15))
        draw = _draw(rng, schedule, want, now_us, users, days)
        parts.append(draw)
        have += len(draw["ts_us"])
        if have >= n:
            break
    cols = {k: np.concatenate([p[k] for p in parts])[:n] for k in parts[0]}
    order = np.argsort(cols["ts_us"], kind="stable")  # time order: DuckDB prunes row groups
    cols = {k: v[order] for k, v in cols.items()}
    return _finish(schedule, empty, cols, users)


def _finish(schedule: Schedule, empty: Batch, cols: dict[str, np.ndarray], users: int) -> Batch:
    if not cols:
        return empty
    return Batch(
        columns=cols,
        template_ids=schedule.template_ids,
        envs=schedule.envs,
        serving=[(s.version, s.commit) for s in schedule.serving],
        experiment_ids=[e.experiment.id for e in schedule.experiments],
        variants=[v for e in schedule.experiments for v in e.variants],
        user_width=max(4, len(str(users))),
    )


def _draw(
    rng: np.random.Generator,
    s: Schedule,
    n: int,
    now_us: int,
    users: int,
    days: float,
) -> dict[str, np.ndarray]:
    """``n`` raw draws, served; the ones that find nothing live are left out."""
    t = rng.choice(len(s.template_ids), size=n, p=s.weights).astype(np.int16)
    env = rng.choice(len(s.envs), size=n, p=s.env_shares).astype(np.int8)
    # more traffic lately: ages follow u**1.3 (denser near now), plus up to an hour of jitter
    age = rng.random(n) ** 1.3 * days * _DAY_US + rng.integers(0, 3_600_000_000, n)
    ts = (now_us - age).astype(np.int64)
    # a few users call much more often than most (u**1.6 skews toward the low numbers)
    user = (rng.random(n) ** 1.6 * users).astype(np.int32) + 1
    noise_ok = rng.random(n)
    noise_lat = rng.standard_normal(n)
    noise_q = rng.standard_normal(n)
    tokens_in = rng.integers(200, 1801, n)
    tokens_out_raw = rng.integers(40, 401, n)
    thumbs_u = rng.random(n)
    thumbs_v = rng.random(n)
    noise_tail = rng.random(n)

    serve = np.full(n, -1, dtype=np.int64)
    for (ti, ei), (times, rows) in s.live.items():
        mask = (t == ti) & (env == ei)
        if not mask.any():
            continue
        i = np.searchsorted(times, ts[mask], side="right") - 1
        got = np.where(i >= 0, rows[np.maximum(i, 0)], -1)
        serve[mask] = got
    exp = np.full(n, -1, dtype=np.int16)
    variant = np.full(n, -1, dtype=np.int16)
    offset = 0
    for e in s.experiments:
        mask = (t == e.template) & (env == e.env) & (ts >= e.start_us) & (ts < e.end_us)
        mask &= serve >= 0  # only where the template is live there (the control is deployed)
        if mask.any():
            arm = _arms(e, users)[user[mask] - 1]
            routed = arm >= 0
            idx = np.flatnonzero(mask)[routed]
            exp[idx] = e.code
            variant[idx] = offset + arm[routed]
            serve[idx] = np.asarray(e.serving)[arm[routed]]
        offset += len(e.variants)
    keep = serve >= 0
    serve = serve[keep]

    rank = np.array([x.rank for x in s.serving], dtype=float)[serve]
    lat_f = np.array([x.latency for x in s.serving])[serve]
    tok_f = np.array([x.tokens_out for x in s.serving])[serve]
    q_shift = np.array([x.quality for x in s.serving])[serve]
    price = np.array([x.price for x in s.serving])[serve]
    reg = np.array(
        [-1 if x.regress_since_us is None else x.regress_since_us for x in s.serving],
        dtype=np.int64,
    )[serve]
    ts, t, env, user = ts[keep], t[keep], env[keep], user[keep]
    tokens_in, tokens_out_raw = tokens_in[keep], tokens_out_raw[keep]

    p_ok = 0.93 + 0.02 * rank
    names, rate, (lo, hi) = INCIDENT
    hit = np.isin(t, [i for i, nm in enumerate(s.template_names) if nm in names])
    hit &= (ts >= now_us + lo * _DAY_US) & (ts < now_us + hi * _DAY_US)
    p_ok = np.where(hit, 1.0 - rate, p_ok)
    ok = noise_ok[keep] < p_ok
    latency = np.exp(6.4 - 0.04 * rank + 0.4 * noise_lat[keep]) * lat_f
    tokens_out = tokens_out_raw * tok_f
    # the regressed release: slower every day it is live, and more and more calls that run
    # into the output limit and take twice as long (the tail grows faster than the mean)
    regressed = reg >= 0
    days_live = np.where(regressed, (ts - reg) / _DAY_US, 0.0)
    slow = regressed & (noise_tail[keep] < 0.04 + 0.03 * days_live)
    latency = np.where(regressed, latency * (1.2 + 0.06 * days_live), latency)
    latency = np.where(slow, latency * 2.2, latency)
    tokens_out = np.where(regressed, tokens_out * 1.7, tokens_out).astype(np.int64)
    quality = np.clip(0.68 + 0.04 * rank + q_shift + 0.12 * noise_q[keep], 0.0, 1.0)
    thumbs = np.where(
        (thumbs_u[keep] < 0.2) & ok,
        (thumbs_v[keep] < 0.7 + 0.05 * rank).astype(float),
        -1.0,
    )
    return {
        "ts_us": ts,
        "t": t,
        "env": env,
        "user": user,
        "s": serve.astype(np.int32),
        "x": exp[keep],
        "v": variant[keep],
        "latency": np.round(latency, 1),
        "ok": ok,
        "quality": np.round(quality, 3),
        "cost": np.round((tokens_in * 0.15 + tokens_out * 0.6) / 1e6 * 4 * price, 6),
        "tokens_in": tokens_in.astype(np.int64),
        "tokens_out": tokens_out,
        "thumbs": thumbs,
    }


_ARMS: dict[tuple[object, ...], np.ndarray] = {}


def _arms(e: _Experiment, users: int) -> np.ndarray:
    """The variant position of every user ``1 … users`` (``-1`` outside the coverage), by the
    contract's formula. Cached: the same pool and experiment give the same assignment."""
    from promptver.routing import router_for

    x = e.experiment
    key = (x.salt, tuple((v.name, v.weight) for v in x.variants), x.coverage, users)
    hit = _ARMS.get(key)
    if hit is not None:
        return hit
    router = router_for(e.experiment)
    width = max(4, len(str(users)))
    names = {v: i for i, v in enumerate(e.variants)}
    out = np.empty(users, dtype=np.int64)
    for u in range(1, users + 1):
        v, _ = router.route(f"user-{u:0{width}d}")
        out[u - 1] = -1 if v is None else names[v]
    if len(_ARMS) > 16:
        _ARMS.clear()
    _ARMS[key] = out
    return out


def add_demo_events(
    ws: Workspace, seed: int = 7, events: int = DEMO_EVENTS, now: datetime | None = None
) -> int:
    """Write ``events`` demo events over the last 90 days; returns how many were written."""
    schedule = Schedule.read(ws)
    batch = generate(schedule, events, seed=seed, now=now or utcnow())
    if not len(batch):
        return 0
    with ws.db.transaction() as con:
        return sql.insert_batch(con, batch)


def add_bulk_events(
    ws: Workspace,
    n: int,
    *,
    seed: int = 7,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Add ``n`` synthetic events (``promptver demo --events N``) over the last 90 days.

    Deterministic for the seed and the number of earlier bulk batches in this workspace (each
    call draws a new stream, so two calls add different events). Users come from a pool of
    ``max(2,000, n / 25)`` so that per-user statistics stay realistic at scale. Written in
    chunks of at most a million events, each one transaction.

    Returns:
        The number of events written.
    """
    schedule = Schedule.read(ws)
    batches = int(ws.info("demo_bulk_batches") or 0)
    users = max(DEMO_USERS, n // 25)
    now = now or utcnow()
    chunk = 1_000_000
    written = 0
    for i in range(math.ceil(n / chunk) if n > 0 else 0):
        size = min(chunk, n - i * chunk)
        batch = generate(
            schedule, size, seed=seed, stream=1 + batches * 1000 + i, now=now, users=users
        )
        if not len(batch):
            break
        with ws.db.transaction() as con:
            written += sql.insert_batch(con, batch)
        if progress is not None:
            progress(written, n)
    ws.mark("demo_bulk_batches", str(batches + 1))
    return written

"""Demo metric events: a month of calls to the demo templates, so the Metrics screen has data.

Deterministic for a seed. Each event is served by the version that was live in its environment
at its time (read from the deployment log, which the demo back-dates), so figures per version,
trends and change points follow the deployments. Later versions of a template are a little
better (quality, success) and cost a little more. One release regresses: the newest version of
``qa-basic`` writes longer answers (more output tokens, higher cost) and gets slower every day it
is live, until the demo rolls it back, which the Trends and Alerts screens then show.
"""

from __future__ import annotations

import bisect
import json
import math
import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from promptver.store import metrics as sql
from promptver.store import templates as template_sql
from promptver.versioning import utcnow

if TYPE_CHECKING:
    from promptver.workspace import Workspace

DEMO_DAYS = 30
DEMO_EVENTS = 12_000
#: the template whose newest version regresses after it is deployed
REGRESSION_TEMPLATE = "qa-basic"
#: share of events per environment (the rest goes to development)
_ENV_SHARE = (("production", 0.75), ("staging", 0.95))


def _semver(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def add_demo_events(
    ws: Workspace, seed: int = 7, events: int = DEMO_EVENTS, now: datetime | None = None
) -> int:
    """Write ``events`` tracked-style events over the last 30 days; returns how many.

    An event goes to a template, an environment and a time drawn at random, and is served by
    the version live there then; draws that find nothing deployed are drawn again (a template
    without any deployment gets no events).
    """
    rng = random.Random(seed * 7919 + 1)
    templates = [t for t in ws.templates.list() if t.version]
    if not templates:
        return 0
    with ws.db.read() as con:
        labels = template_sql.all_versions(con)
    versions: dict[str, list[str]] = {t.id: [] for t in templates}
    for v in sorted(labels, key=lambda v: _semver(v.version)):
        if v.template_id in versions:
            versions[v.template_id].append(v.version)  # oldest first
    # what was live where and when: (times, deployments) per (template, environment)
    live: dict[tuple[str, str], tuple[list[datetime], list[tuple[str | None, str]]]] = {}
    first_live: dict[tuple[str, str, str], datetime] = {}
    for t in templates:
        for d in reversed(ws.deployments.history(t.id)):  # oldest first
            times, deps = live.setdefault((t.id, d.environment), ([], []))
            times.append(d.created_at)
            deps.append((d.version, d.commit))
            if d.version is not None:
                first_live.setdefault((t.id, d.environment, d.version), d.created_at)
    regressed = {
        t.id: versions[t.id][-1]
        for t in templates
        if t.name == REGRESSION_TEMPLATE and len(versions[t.id]) > 1
    }
    now = now or utcnow()
    cols: dict[str, list] = {name: [] for name in sql.TRACK_TYPES}
    attempts = 0
    while len(cols["ts_us"]) < events and attempts < events * 20:
        attempts += 1
        t = rng.choice(templates)
        age = rng.random() ** 1.3 * DEMO_DAYS
        ts = now - timedelta(days=age, seconds=rng.randint(0, 3600))
        draw = rng.random()
        env = next((e for e, share in _ENV_SHARE if draw < share), "development")
        times, deps = live.get((t.id, env), ([], []))
        i = bisect.bisect_right(times, ts) - 1
        if i < 0 or deps[i][0] is None:
            continue  # nothing (or an unversioned commit) live there then
        version, commit = deps[i]
        rank = versions[t.id].index(version) if version in versions[t.id] else 0
        ok = rng.random() < 0.93 + 0.02 * rank
        latency = math.exp(rng.gauss(6.4 - 0.04 * rank, 0.45))
        tokens_in = rng.randint(200, 1800)
        tokens_out = rng.randint(40, 400)
        if regressed.get(t.id) == version:
            days_live = (ts - first_live[(t.id, env, version)]).total_seconds() / 86400
            latency *= 1.3 + 0.12 * days_live  # longer answers, slower every day
            tokens_out = int(tokens_out * 1.7)
        cols["event_id"].append(None)
        cols["ts_us"].append(int(ts.timestamp() * 1_000_000))
        cols["template_id"].append(t.id)
        cols["user_id"].append(f"user-{rng.randint(1, 300):03d}")
        cols["experiment_id"].append(None)
        cols["variant"].append(None)
        cols["version"].append(version)
        cols["commit_id"].append(commit)
        cols["environment"].append(env)
        cols["latency_ms"].append(round(latency, 1))
        cols["success"].append(ok)
        cols["error"].append(not ok)
        cols["quality_score"].append(
            round(min(1.0, max(0.0, rng.gauss(0.68 + 0.04 * rank, 0.12))), 3) if ok else None
        )
        cols["cost_usd"].append(round((tokens_in * 0.15 + tokens_out * 0.6) / 1e6 * 4, 6))
        cols["tokens_in"].append(tokens_in)
        cols["tokens_out"].append(tokens_out)
        thumbs = rng.random() < 0.2
        cols["custom"].append(
            json.dumps({"thumbs_up": 1.0 if rng.random() < 0.7 + 0.05 * rank else 0.0})
            if thumbs and ok
            else None
        )
    if not cols["ts_us"]:
        return 0
    with ws.db.transaction() as con:
        return sql.insert_columns(con, cols)

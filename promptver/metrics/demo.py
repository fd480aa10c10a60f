"""Demo metric events: a month of calls to the demo templates, so the Metrics screen has data.

Deterministic for a seed. Later versions of a template are a little better (quality, success)
and cost a little more, so the figures per version tell a story.
"""

from __future__ import annotations

import json
import math
import random
from datetime import timedelta
from typing import TYPE_CHECKING

from promptver.store import metrics as sql
from promptver.store import templates as template_sql
from promptver.versioning import utcnow

if TYPE_CHECKING:
    from promptver.workspace import Workspace

DEMO_DAYS = 30
DEMO_EVENTS = 4000


def add_demo_events(ws: Workspace, seed: int = 7, events: int = DEMO_EVENTS) -> int:
    """Write ``events`` tracked-style events over the last 30 days; returns how many."""
    rng = random.Random(seed * 7919 + 1)
    templates = [t for t in ws.templates.list() if t.version]
    if not templates:
        return 0
    with ws.db.read() as con:
        labels = template_sql.all_versions(con)
    versions: dict[str, list[str]] = {t.id: [] for t in templates}
    commits: dict[str, dict[str, str]] = {t.id: {} for t in templates}
    for v in sorted(labels, key=lambda v: tuple(int(x) for x in v.version.split("."))):
        if v.template_id in versions:
            versions[v.template_id].append(v.version)  # oldest first
            commits[v.template_id][v.version] = v.commit_id
    now = utcnow()
    cols: dict[str, list] = {name: [] for name in sql.TRACK_TYPES}
    for _ in range(events):
        t = rng.choice(templates)
        labels = versions[t.id]
        # most traffic on the newest two versions
        k = min(len(labels) - 1, int(abs(rng.gauss(0, 0.9))))
        version = labels[-1 - k]
        rank = labels.index(version)
        age = rng.random() ** 1.3 * DEMO_DAYS
        ts = now - timedelta(days=age, seconds=rng.randint(0, 3600))
        env = "production" if rng.random() < 0.75 else "staging"
        ok = rng.random() < 0.93 + 0.02 * rank
        latency = math.exp(rng.gauss(6.4 - 0.04 * rank, 0.45))
        tokens_in = rng.randint(200, 1800)
        tokens_out = rng.randint(40, 400)
        cols["event_id"].append(None)
        cols["ts_us"].append(int(ts.timestamp() * 1_000_000))
        cols["template_id"].append(t.id)
        cols["user_id"].append(f"user-{rng.randint(1, 300):03d}")
        cols["experiment_id"].append(None)
        cols["variant"].append(None)
        cols["version"].append(version)
        cols["commit_id"].append(commits[t.id][version])
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
    with ws.db.transaction() as con:
        return sql.insert_columns(con, cols)

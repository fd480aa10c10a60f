"""Helpers for the trends and alerts tests: events written column-wise, back-dated history.

Events go straight into ``metric_events`` through the store's batch insert (no listener runs),
so a test controls exactly which events exist; the listener tests import or track on purpose.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from promptver.store import metrics as msql
from promptver.versioning import demo_clock, utcnow

DEFAULTS: dict[str, Any] = {
    "event_id": None,
    "experiment_id": None,
    "variant": None,
    "version": None,
    "commit_id": None,
    "environment": "production",
    "latency_ms": None,
    "success": None,
    "error": None,
    "quality_score": None,
    "cost_usd": None,
    "tokens_in": None,
    "tokens_out": None,
    "custom": None,
    "dims": None,
}


def add_events(ws, template: str, events: Iterable[dict[str, Any]]) -> int:
    """Write events of ``template``: dicts with ``ts`` (aware datetime), ``user_id`` and any
    metric columns (``custom`` as a dict); returns how many were written."""
    tid = ws.templates.row(template)["id"]
    cols: dict[str, list] = {name: [] for name in msql.TRACK_TYPES}
    for e in events:
        row = {**DEFAULTS, **e}
        cols["ts_us"].append(round(row["ts"].timestamp() * 1_000_000))
        cols["template_id"].append(tid)
        cols["user_id"].append(row["user_id"])
        for name in msql.TRACK_TYPES:
            if name in ("ts_us", "template_id", "user_id"):
                continue
            value = row[name]
            if name in ("custom", "dims") and value is not None:
                value = json.dumps(value)
            cols[name].append(value)
    with ws.db.transaction() as con:
        return msql.insert_columns(con, cols)


class Clock:
    """A settable clock for ``demo_clock``: commits and deployments land at ``t``."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        self.t += timedelta(microseconds=1)
        return self.t


def deploy_at(ws, template: str, version: str, env: str, at: datetime):
    """Deploy as if it happened at ``at`` (the log is back-dated like the demo's)."""
    clock = Clock(at)
    with demo_clock(clock):
        return ws.deployments.deploy(template, version, env, author="tester", reason="test")


def rollback_at(ws, template: str, env: str, at: datetime):
    clock = Clock(at)
    with demo_clock(clock):
        return ws.deployments.rollback(template, env, author="tester")


def day_start(days_ago: int, now: datetime | None = None) -> datetime:
    """Midnight UTC ``days_ago`` days before today."""
    now = now or utcnow()
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    return today - timedelta(days=days_ago)

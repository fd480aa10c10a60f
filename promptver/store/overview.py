"""SQL of the home screen's overview: recent activity, experiment progress and counts.

Each function is one or two aggregate queries, so the whole overview costs a handful of scans
however large the database: counting users per variant is the only query that touches the
events of an experiment, and counting all events reads DuckDB's column statistics.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import duckdb

from promptver.models.deployments import Deployment
from promptver.models.overview import RecentCommit, WorkspaceCounts
from promptver.store.deployments import _COLS as _DEPLOYMENT_COLS
from promptver.store.deployments import _FROM as _DEPLOYMENT_FROM
from promptver.store.deployments import _deployment

Con = duckdb.DuckDBPyConnection


def recent_commits(con: Con, limit: int) -> list[RecentCommit]:
    """The newest commits of active templates, with their version or the branch they head."""
    rows = con.execute(
        """
        SELECT t.name, c.id, c.parents,
               (SELECT v.version FROM versions v
                 WHERE v.template_id = c.template_id AND v.commit_id = c.id
                 ORDER BY v.major DESC, v.minor DESC, v.patch DESC LIMIT 1),
               (SELECT min(b.name) FROM branches b
                 WHERE b.template_id = c.template_id AND b.head = c.id AND b.name <> 'main'),
               c.message, c.author, c.created_at
        FROM commits c JOIN templates t ON t.id = c.template_id
        WHERE t.is_active
        ORDER BY c.created_at DESC, c.id
        LIMIT ?
        """,
        [limit],
    ).fetchall()
    return [
        RecentCommit(
            template=r[0],
            commit=r[1],
            parents=list(r[2]),
            version=r[3],
            branch=r[4],
            message=r[5],
            author=r[6],
            created_at=r[7],
        )
        for r in rows
    ]


def recent_deployments(con: Con, limit: int) -> list[Deployment]:
    """The newest deploys and rollbacks of active templates, newest first."""
    rows = con.execute(
        f"SELECT {_DEPLOYMENT_COLS}{_DEPLOYMENT_FROM} WHERE t.is_active"
        " ORDER BY d.created_at DESC, d.id DESC LIMIT ?",
        [limit],
    ).fetchall()
    return [_deployment(r) for r in rows]


def experiment_users(con: Con, experiment_ids: list[str]) -> dict[tuple[str, str], tuple[int, int]]:
    """(users, events) per (experiment, variant) among the experiments' events in their window
    (``[start or started, end or stopped]``, open while neither is set)."""
    if not experiment_ids:
        return {}
    rows = con.execute(
        """
        SELECT m.experiment_id, m.variant, count(DISTINCT m.user_id), count(*)
        FROM metric_events m JOIN experiments e ON e.id = m.experiment_id
        WHERE list_contains(?, e.id)
          AND m.variant IS NOT NULL
          AND (coalesce(e.start_at, e.started_at) IS NULL
               OR m.ts >= coalesce(e.start_at, e.started_at))
          AND (coalesce(e.end_at, e.stopped_at) IS NULL
               OR m.ts <= coalesce(e.end_at, e.stopped_at))
        GROUP BY m.experiment_id, m.variant
        """,
        [experiment_ids],
    ).fetchall()
    return {(r[0], r[1]): (int(r[2]), int(r[3])) for r in rows}


def frozen_results(con: Con, experiment_ids: list[str]) -> dict[str, Any]:
    """The results frozen when these experiments stopped (parsed JSON), by id."""
    if not experiment_ids:
        return {}
    rows = con.execute(
        "SELECT id, results FROM experiments WHERE list_contains(?, id) AND results IS NOT NULL",
        [experiment_ids],
    ).fetchall()
    return {r[0]: json.loads(r[1]) for r in rows}


def counts(con: Con) -> WorkspaceCounts:
    """How many templates, versions, branches, commits, deployments, experiments (by status),
    events, imports, alert rules and open alerts the workspace holds."""
    row = con.execute(
        """
        SELECT
          (SELECT count(*) FROM templates WHERE is_active),
          (SELECT count(*) FROM templates WHERE NOT is_active),
          (SELECT count(*) FROM versions v JOIN templates t ON t.id = v.template_id
            WHERE t.is_active),
          (SELECT count(*) FROM branches b JOIN templates t ON t.id = b.template_id
            WHERE t.is_active AND b.name <> 'main'),
          (SELECT count(*) FROM commits),
          (SELECT count(*) FROM deployments),
          (SELECT count(*) FROM metric_events),
          (SELECT min(ts) FROM metric_events),
          (SELECT max(ts) FROM metric_events),
          (SELECT count(*) FROM imports),
          (SELECT count(*) FROM alert_rules),
          (SELECT count(*) FROM alert_rules WHERE enabled),
          (SELECT count(*) FROM alerts WHERE acknowledged_at IS NULL)
        """
    ).fetchone()
    assert row is not None
    by_status = {
        r[0]: int(r[1])
        for r in con.execute("SELECT status, count(*) FROM experiments GROUP BY status").fetchall()
    }
    first: datetime | None = row[7]
    last: datetime | None = row[8]
    return WorkspaceCounts(
        templates=row[0],
        archived_templates=row[1],
        versions=row[2],
        branches=row[3],
        commits=row[4],
        deployments=row[5],
        experiments=by_status,
        events=row[6],
        first_event=first,
        last_event=last,
        imports=row[9],
        rules=row[10],
        rules_enabled=row[11],
        open_alerts=row[12],
    )

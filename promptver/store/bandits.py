"""SQL for bandit experiments: the history of the split and the sticky assignments."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import duckdb

Con = duckdb.DuckDBPyConnection


def weight_history(con: Con, experiment_id: str) -> list[tuple[int, datetime, list[float]]]:
    """Every change of the split, oldest first: (seq, time, weights in variant order)."""
    rows = con.execute(
        "SELECT seq, changed_at, weights FROM bandit_weights WHERE experiment_id = ? ORDER BY seq",
        [experiment_id],
    ).fetchall()
    return [(int(s), at, [float(w) for w in json.loads(ws)]) for s, at, ws in rows]


def latest_weights(con: Con, experiment_id: str) -> tuple[int, datetime, list[float]] | None:
    row = con.execute(
        "SELECT seq, changed_at, weights FROM bandit_weights WHERE experiment_id = ?"
        " ORDER BY seq DESC LIMIT 1",
        [experiment_id],
    ).fetchone()
    if row is None:
        return None
    return int(row[0]), row[1], [float(w) for w in json.loads(row[2])]


def insert_weights(
    con: Con, experiment_id: str, seq: int, at: datetime, weights: list[float]
) -> bool:
    """Record a new split as change ``seq``; False when another writer recorded it first."""
    before = con.execute(
        "SELECT count(*) FROM bandit_weights WHERE experiment_id = ? AND seq = ?",
        [experiment_id, seq],
    ).fetchone()[0]
    if before:
        return False
    con.execute(
        "INSERT INTO bandit_weights VALUES (?, ?, ?, ?)",
        [experiment_id, seq, at, json.dumps(weights)],
    )
    return True


def assignment(con: Con, experiment_id: str, user_id: str) -> str | None:
    row = con.execute(
        "SELECT variant FROM bandit_assignments WHERE experiment_id = ? AND user_id = ?",
        [experiment_id, user_id],
    ).fetchone()
    return row[0] if row else None


def assign(
    con: Con, experiment_id: str, user_id: str, variant: str, period: int, at: datetime
) -> str:
    """Record the user's variant unless one is recorded already; returns the recorded one."""
    con.execute(
        "INSERT INTO bandit_assignments VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [experiment_id, user_id, variant, period, at],
    )
    return assignment(con, experiment_id, user_id) or variant


def arm_sums(
    con: Con, experiment_id: str, metric_sql: str, params: dict[str, Any]
) -> dict[str, tuple[float, ...]]:
    """Per variant: users, Σx, Σx², Σy, Σy², Σxy of the metric (x a user's sum, y their events)
    over the experiment's events — what a weight update needs, in plain floats."""
    rows = con.execute(
        f"""
        SELECT variant, count(*) FILTER (WHERE y > 0), sum(x), sum(x * x), sum(y), sum(y * y),
               sum(x * y)
        FROM (SELECT variant, user_id, sum(m) AS x, count(m)::DOUBLE AS y
              FROM (SELECT variant, user_id, {metric_sql} AS m FROM metric_events
                    WHERE experiment_id = $exp)
              GROUP BY variant, user_id)
        GROUP BY variant
        """,
        {"exp": experiment_id, **params},
    ).fetchall()
    return {r[0]: tuple(float(v or 0) for v in r[1:]) for r in rows if r[0] is not None}


def period_user_counts(con: Con, experiment_id: str) -> dict[tuple[int, str], int]:
    """Assigned users per (period, variant)."""
    rows = con.execute(
        "SELECT period, variant, count(*) FROM bandit_assignments WHERE experiment_id = ?"
        " GROUP BY period, variant",
        [experiment_id],
    ).fetchall()
    return {(int(p), v): int(n) for p, v, n in rows}


#: built-in metric columns (True: cast to DOUBLE); as in promptver.store.stats, which loads numpy
_COLUMNS = {
    "latency_ms": False,
    "quality_score": False,
    "cost_usd": False,
    "success": True,
    "error": True,
    "tokens_in": True,
    "tokens_out": True,
}


def metric_sql(metric: str) -> tuple[str, dict[str, Any]]:
    """The metric as a DOUBLE expression (a whitelisted column, or ``custom[$m_name]``)."""
    if metric in _COLUMNS:
        return (f"CAST({metric} AS DOUBLE)" if _COLUMNS[metric] else metric), {}
    return "custom[$m_name]", {"m_name": metric}

"""SQL for alert rules, their evaluation over aligned windows, and the fired alerts.

Windows are numbered: window ``k`` of a rule with length ``L`` microseconds covers
``[ANCHOR + k·L, ANCHOR + (k + 1)·L)``, ``ANCHOR`` being Monday 2000-01-03 00:00 UTC. The number
is computed with integer arithmetic on ``epoch_us(ts)`` (an exact floor division, also before
the anchor), so an event on a boundary belongs to the window it opens, never to two.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb

from promptver.models.trends import Alert, AlertRule
from promptver.store.trends import P95, Measure, metric_expr

Con = duckdb.DuckDBPyConnection

#: windows are counted from this instant (a Monday at midnight UTC)
ANCHOR = datetime(2000, 1, 3, tzinfo=UTC)
ANCHOR_US = 946_857_600_000_000

_RULE_COLS = (
    "r.id, r.name, r.metric, r.comparator, r.threshold, r.window_text, r.window_seconds,"
    " r.min_events, r.template_id, t.name, r.environment, r.enabled, r.created_at,"
    " r.created_by, r.updated_at, r.updated_by"
)
_RULE_FROM = " FROM alert_rules r LEFT JOIN templates t ON t.id = r.template_id"


def _rule(r: tuple[Any, ...]) -> AlertRule:
    return AlertRule(
        id=r[0],
        name=r[1],
        metric=r[2],
        comparator=r[3],
        threshold=r[4],
        window=r[5],
        window_seconds=r[6],
        min_events=r[7],
        template_id=r[8],
        template=r[9],
        environment=r[10],
        enabled=r[11],
        created_at=r[12],
        created_by=r[13],
        updated_at=r[14],
        updated_by=r[15],
    )


def insert_rule(con: Con, row: dict[str, Any]) -> int:
    got = con.execute(
        "INSERT INTO alert_rules (name, metric, comparator, threshold, window_text,"
        " window_seconds, min_events, template_id, environment, enabled, created_at,"
        " created_by, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        [
            row["name"],
            row["metric"],
            row["comparator"],
            row["threshold"],
            row["window"],
            row["window_seconds"],
            row["min_events"],
            row["template_id"],
            row["environment"],
            row["enabled"],
            row["at"],
            row["author"],
            row["at"],
            row["author"],
        ],
    ).fetchone()
    return int(got[0])


#: columns an edit may change (keys of the service's row dicts → column names)
EDITABLE = {
    "name": "name",
    "metric": "metric",
    "comparator": "comparator",
    "threshold": "threshold",
    "window": "window_text",
    "window_seconds": "window_seconds",
    "min_events": "min_events",
    "template_id": "template_id",
    "environment": "environment",
    "enabled": "enabled",
}


def update_rule(con: Con, rule_id: int, changes: dict[str, Any], at: datetime, author: str) -> int:
    """Set the ``changes`` (keys of :data:`EDITABLE`); returns the rows updated (0 or 1)."""
    sets = [f"{EDITABLE[k]} = ?" for k in changes]
    params = [*changes.values(), at, author, rule_id]
    row = con.execute(
        f"UPDATE alert_rules SET {', '.join(sets)}, updated_at = ?, updated_by = ? WHERE id = ?",
        params,
    ).fetchone()
    return int(row[0]) if row else 0


def delete_rule(con: Con, rule_id: int) -> int:
    row = con.execute("DELETE FROM alert_rules WHERE id = ?", [rule_id]).fetchone()
    return int(row[0]) if row else 0


def get_rule(con: Con, rule_id: int) -> AlertRule | None:
    row = con.execute(f"SELECT {_RULE_COLS}{_RULE_FROM} WHERE r.id = ?", [rule_id]).fetchone()
    return _rule(row) if row else None


def list_rules(con: Con, enabled_only: bool = False) -> list[AlertRule]:
    where = " WHERE r.enabled" if enabled_only else ""
    return [
        _rule(r)
        for r in con.execute(f"SELECT {_RULE_COLS}{_RULE_FROM}{where} ORDER BY r.id").fetchall()
    ]


def window_values(
    con: Con,
    *,
    measure: Measure,
    window_us: int,
    first: int,
    last: int,
    template_id: str | None,
    environment: str | None,
) -> list[tuple[str, int, int, float]]:
    """(template_id, window number, events, value) for windows ``first … last`` of a rule.

    The value is the mean of the metric over the window's events that carry it, or its 95th
    percentile (``quantile_cont``, as in the performance figures) for a p95 measure.
    """
    p: dict[str, Any] = {}
    expr = metric_expr(measure, 0, p)
    value = f"quantile_cont(v, {P95})" if measure.p95 else "avg(v)"
    p.update(
        anchor=ANCHOR_US,
        len=window_us,
        lo=ANCHOR_US + first * window_us,
        hi=ANCHOR_US + (last + 1) * window_us,
    )
    where = "epoch_us(e.ts) >= $lo AND epoch_us(e.ts) < $hi"
    if template_id is not None:
        where += " AND e.template_id = $tid"
        p["tid"] = template_id
    if environment is not None:
        where += " AND e.environment = $env"
        p["env"] = environment
    rows = con.execute(
        "WITH ev AS (SELECT e.template_id, epoch_us(e.ts) - $anchor AS x,"
        f" {expr} AS v FROM metric_events e WHERE {where})"
        " SELECT template_id, ((x - ((x % $len) + $len) % $len) // $len)::BIGINT AS w,"
        f" count(v) AS events, {value} AS value FROM ev WHERE v IS NOT NULL"
        " GROUP BY ALL ORDER BY template_id, w",
        p,
    ).fetchall()
    return [(r[0], int(r[1]), int(r[2]), float(r[3])) for r in rows]


def insert_alert(con: Con, row: dict[str, Any]) -> int | None:
    """Store a fired alert; ``None`` when this rule already fired for this template and window."""
    got = con.execute(
        "INSERT INTO alerts (rule_id, template_id, window_start, window_end, value, events,"
        " fired_at, source, rule_name, metric, comparator, threshold, window_text, min_events,"
        " environment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING RETURNING id",
        [
            row["rule_id"],
            row["template_id"],
            row["window_start"],
            row["window_end"],
            row["value"],
            row["events"],
            row["fired_at"],
            row["source"],
            row["rule_name"],
            row["metric"],
            row["comparator"],
            row["threshold"],
            row["window"],
            row["min_events"],
            row["environment"],
        ],
    ).fetchone()
    return int(got[0]) if got else None


def alert_exists(con: Con, rule_id: int, template_id: str, window_start: datetime) -> bool:
    row = con.execute(
        "SELECT count(*) FROM alerts WHERE rule_id = ? AND template_id = ? AND window_start = ?",
        [rule_id, template_id, window_start],
    ).fetchone()
    return bool(row and row[0])


_ALERT_COLS = (
    "a.id, a.rule_id, r.id IS NOT NULL, a.template_id, coalesce(t.name, a.template_id),"
    " a.window_start, a.window_end, a.value, a.events, a.fired_at, a.source, a.rule_name,"
    " a.metric, a.comparator, a.threshold, a.window_text, a.min_events, a.environment,"
    " a.acknowledged_at, a.acknowledged_by, coalesce(a.window_end <= r.created_at, false)"
)
_ALERT_FROM = (
    " FROM alerts a LEFT JOIN alert_rules r ON r.id = a.rule_id"
    " LEFT JOIN templates t ON t.id = a.template_id"
)


def _alert(r: tuple[Any, ...]) -> Alert:
    return Alert(
        id=r[0],
        rule_id=r[1],
        rule_exists=r[2],
        template_id=r[3],
        template=r[4],
        window_start=r[5],
        window_end=r[6],
        value=r[7],
        events=r[8],
        fired_at=r[9],
        source=r[10],
        rule_name=r[11],
        metric=r[12],
        comparator=r[13],
        threshold=r[14],
        window=r[15],
        min_events=r[16],
        environment=r[17],
        status="open" if r[18] is None else "acknowledged",
        acknowledged_at=r[18],
        acknowledged_by=r[19],
        backfill=r[20],
    )


def get_alerts(con: Con, ids: Sequence[int]) -> list[Alert]:
    rows = con.execute(
        f"SELECT {_ALERT_COLS}{_ALERT_FROM} WHERE list_contains(?, a.id) ORDER BY a.id",
        [list(ids)],
    ).fetchall()
    return [_alert(r) for r in rows]


def list_alerts(
    con: Con,
    *,
    status: str | None = None,
    rule_id: int | None = None,
    template_id: str | None = None,
    limit: int = 200,
) -> list[Alert]:
    """Fired alerts, newest window first (then newest id)."""
    where: list[str] = []
    params: list[Any] = []
    if status == "open":
        where.append("a.acknowledged_at IS NULL")
    elif status == "acknowledged":
        where.append("a.acknowledged_at IS NOT NULL")
    if rule_id is not None:
        where.append("a.rule_id = ?")
        params.append(rule_id)
    if template_id is not None:
        where.append("a.template_id = ?")
        params.append(template_id)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    rows = con.execute(
        f"SELECT {_ALERT_COLS}{_ALERT_FROM}{clause}"
        " ORDER BY a.window_start DESC, a.id DESC LIMIT ?",
        [*params, limit],
    ).fetchall()
    return [_alert(r) for r in rows]


def count_open(con: Con) -> int:
    return int(
        con.execute("SELECT count(*) FROM alerts WHERE acknowledged_at IS NULL").fetchone()[0]
    )


def acknowledge(con: Con, ids: Sequence[int], at: datetime, author: str) -> int:
    """Acknowledge the open ones among ``ids``; returns how many changed."""
    row = con.execute(
        "UPDATE alerts SET acknowledged_at = ?, acknowledged_by = ?"
        " WHERE list_contains(?, id) AND acknowledged_at IS NULL",
        [at, author, list(ids)],
    ).fetchone()
    return int(row[0]) if row else 0

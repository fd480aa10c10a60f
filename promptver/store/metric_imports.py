"""SQL of the import log: accepted imports, refused attempts, and what an import warns about.

Accepted files are recorded in ``imports`` (with their SHA-256, so a file without event ids is
not imported twice); refused ones in ``import_attempts`` with their problems. The warnings of an
accepted file read the rows that land (staged or just appended) against the window, the
retention and the deployments.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb

from promptver.models.metrics import ImportAttempt, ImportProblem, ImportRecord

Con = duckdb.DuckDBPyConnection


# ---- imports -------------------------------------------------------------------------------


def insert_import(con: Con, rec: ImportRecord) -> None:
    con.execute(
        "INSERT INTO imports (id, file_name, sha256, rows_imported, rows_skipped_duplicate,"
        " has_event_ids, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            rec.id,
            rec.file_name,
            rec.sha256,
            rec.rows_imported,
            rec.rows_skipped_duplicate,
            rec.has_event_ids,
            rec.created_at,
            rec.created_by,
        ],
    )


def import_by_hash(con: Con, sha256: str) -> ImportRecord | None:
    rows = _imports(con, "WHERE i.sha256 = ? ORDER BY i.created_at LIMIT 1", [sha256])
    return rows[0] if rows else None


def list_imports(con: Con, limit: int = 100) -> list[ImportRecord]:
    return _imports(con, "ORDER BY i.created_at DESC LIMIT ?", [limit])


def get_import(con: Con, import_id: str) -> ImportRecord | None:
    rows = _imports(con, "WHERE i.id = ?", [import_id])
    return rows[0] if rows else None


def _imports(con: Con, tail: str, params: list[Any]) -> list[ImportRecord]:
    rows = con.execute(
        "SELECT i.id, i.file_name, i.sha256, i.rows_imported, i.rows_skipped_duplicate,"
        " i.has_event_ids, i.created_at, i.created_by,"
        " (SELECT count(*) FROM metric_events m WHERE m.import_id = i.id) AS events_present"
        f" FROM imports i {tail}",
        params,
    ).fetchall()
    return [
        ImportRecord(
            id=r[0],
            file_name=r[1],
            sha256=r[2],
            rows_imported=r[3],
            rows_skipped_duplicate=r[4],
            has_event_ids=r[5],
            created_at=r[6],
            created_by=r[7],
            events_present=r[8],
        )
        for r in rows
    ]


# ---- what an accepted import should warn about ---------------------------------------------


def landed_events(import_id: str) -> tuple[str, list[Any]]:
    """The rows an import appended (before its commit), as a relation for the warnings."""
    return (
        "SELECT ts, template_id, commit_id, version, experiment_id, environment"
        " FROM metric_events WHERE import_id = ?",
        [import_id],
    )


def staged_events(stage: str, keys: str, present: set[str], skip_existing: bool) -> str:
    """The rows of a staged file that would land, with their resolved ids (a relation)."""

    def join_key(name: str) -> str:
        return f"k.{name} IS NOT DISTINCT FROM {'s.' + name if name in present else 'NULL'}"

    env = "s.environment" if "environment" in present else "NULL::VARCHAR"
    where = ""
    if skip_existing:
        where = (
            " WHERE s.event_id IS NULL OR NOT EXISTS (SELECT 1 FROM metric_events m"
            " WHERE m.event_id = s.event_id)"
        )
    return (
        f"SELECT s.__ts AS ts, k.template_id, k.commit_id, k.version_out AS version,"
        f" k.experiment_id, {env} AS environment"
        f" FROM {stage} s JOIN {keys} k ON k.template = s.template AND {join_key('experiment')}"
        f" AND {join_key('variant')} AND {join_key('version')}{where}"
    )


def older_than(
    con: Con, relation: str, params: list[Any], cutoffs: Sequence[datetime]
) -> tuple[int, datetime | None, list[int]]:
    """(events, the oldest one's time, how many are older than each cutoff) of ``relation``."""
    parts = "".join(", count(*) FILTER (WHERE ts < ?)" for _ in cutoffs)
    row = con.execute(
        f"SELECT count(*), min(ts){parts} FROM ({relation})", [*cutoffs, *params]
    ).fetchone()
    return int(row[0]), row[1], [int(n) for n in row[2:]]


def before_deployment(
    con: Con, relation: str, params: list[Any], limit: int
) -> list[tuple[str, str, str | None, datetime | None, int, datetime]]:
    """Events of a version that precede its first deployment.

    Only events that name a version and no experiment count (an experiment serves its variants
    without deploying them). The first deployment is the earliest deploy or rollback that put
    the version's commit live in the event's environment (in any environment when the event
    names none); a version never deployed there has none, and all its events count.

    Returns:
        (template, version, environment, first deployment or None, events, first event),
        by template, version and environment.
    """
    rows = con.execute(
        f"""
        WITH r AS ({relation}),
        g AS (
            SELECT template_id, commit_id, version, environment, ts FROM r
            WHERE experiment_id IS NULL AND commit_id IS NOT NULL
        ),
        fd AS (
            SELECT k.template_id, k.commit_id, k.environment, min(d.created_at) AS first_at
            FROM (SELECT DISTINCT template_id, commit_id, environment FROM g) k
            LEFT JOIN deployments d ON d.template_id = k.template_id
                AND d.commit_id = k.commit_id
                AND (k.environment IS NULL OR d.environment = k.environment)
            GROUP BY ALL
        )
        SELECT t.name, g.version, g.environment, fd.first_at, count(*), min(g.ts)
        FROM g JOIN fd ON fd.template_id = g.template_id AND fd.commit_id = g.commit_id
            AND fd.environment IS NOT DISTINCT FROM g.environment
        JOIN templates t ON t.id = g.template_id
        WHERE fd.first_at IS NULL OR g.ts < fd.first_at
        GROUP BY ALL
        ORDER BY t.name, g.version, g.environment NULLS FIRST
        LIMIT ?
        """,
        [*params, limit],
    ).fetchall()
    return [(r[0], r[1], r[2], r[3], int(r[4]), r[5]) for r in rows]


# ---- refused imports -----------------------------------------------------------------------


def insert_attempt(con: Con, attempt: ImportAttempt) -> int:
    """Log a refused import; returns its id."""

    row = con.execute(
        "INSERT INTO import_attempts (file_name, sha256, size_bytes, attempted_at,"
        " attempted_by, reason, total_problems, problems) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        [
            attempt.file_name,
            attempt.sha256,
            attempt.size_bytes,
            attempt.attempted_at,
            attempt.attempted_by,
            attempt.reason,
            attempt.total_problems,
            json.dumps([p.model_dump() for p in attempt.problems]),
        ],
    ).fetchone()
    return int(row[0])


def list_attempts(con: Con, limit: int = 100) -> list[ImportAttempt]:
    """Refused imports, newest first."""

    rows = con.execute(
        "SELECT id, file_name, sha256, size_bytes, attempted_at, attempted_by, reason,"
        " total_problems, problems FROM import_attempts ORDER BY attempted_at DESC, id DESC"
        " LIMIT ?",
        [limit],
    ).fetchall()
    return [
        ImportAttempt(
            id=r[0],
            file_name=r[1],
            sha256=r[2],
            size_bytes=r[3],
            attempted_at=r[4],
            attempted_by=r[5],
            reason=r[6],
            total_problems=r[7],
            problems=[ImportProblem(**p) for p in json.loads(r[8])],
        )
        for r in rows
    ]


def template_names(con: Con, template_ids: list[str]) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT name FROM templates WHERE list_contains(?, id) ORDER BY name", [template_ids]
        ).fetchall()
    ]

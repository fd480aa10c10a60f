"""SQL for the deployment log, the live-version lookups and the evidence from experiments.

The log is append-only: this module inserts rows and reads them, and has no statement that
updates or deletes one.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from promptver.models.deployments import Deployment

Con = duckdb.DuckDBPyConnection

_COLS = (
    "d.id, d.template_id, t.name, d.environment, d.action, d.commit_id, d.version,"
    " d.replaced_deployment_id, d.replaced_commit_id, d.replaced_version, d.rollback_mode,"
    " d.restored_deployment_id, d.note, d.author, d.created_at, d.forced, d.force_reason,"
    " d.evidence_experiment_id, d.evidence_override_reason, d.gate_report, d.env_seq"
)
_FROM = " FROM deployments d JOIN templates t ON t.id = d.template_id"


def _deployment(r: tuple[Any, ...]) -> Deployment:
    return Deployment(
        id=r[0],
        template_id=r[1],
        template=r[2],
        environment=r[3],
        action=r[4],
        commit=r[5],
        version=r[6],
        replaced_deployment_id=r[7],
        replaced_commit=r[8],
        replaced_version=r[9],
        rollback_mode=r[10],
        restored_deployment_id=r[11],
        note=r[12],
        author=r[13],
        created_at=r[14],
        forced=r[15],
        force_reason=r[16],
        evidence_experiment_id=r[17],
        evidence_override_reason=r[18],
        gate_report=json.loads(r[19]) if r[19] else {},
    )


def insert(con: Con, row: dict[str, Any]) -> int:
    """Append one entry; returns its id. ``env_seq`` must be the live row's plus one."""
    got = con.execute(
        "INSERT INTO deployments (template_id, environment, env_seq, action, commit_id, version,"
        " replaced_deployment_id, replaced_commit_id, replaced_version, rollback_mode,"
        " restored_deployment_id, note, author, created_at, forced, force_reason,"
        " evidence_experiment_id, evidence_override_reason, gate_report)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [
            row["template_id"],
            row["environment"],
            row["env_seq"],
            row["action"],
            row["commit_id"],
            row["version"],
            row["replaced_deployment_id"],
            row["replaced_commit_id"],
            row["replaced_version"],
            row["rollback_mode"],
            row["restored_deployment_id"],
            row["note"],
            row["author"],
            row["created_at"],
            row["forced"],
            row["force_reason"],
            row["evidence_experiment_id"],
            row["evidence_override_reason"],
            json.dumps(row["gate_report"], sort_keys=True),
        ],
    ).fetchone()
    return int(got[0])


def get(con: Con, deployment_id: int) -> Deployment | None:
    row = con.execute(f"SELECT {_COLS}{_FROM} WHERE d.id = ?", [deployment_id]).fetchone()
    return _deployment(row) if row else None


def live(con: Con, template_id: str, environment: str) -> tuple[Deployment, int] | None:
    """The live entry of a template in an environment and its ``env_seq`` (None: never)."""
    row = con.execute(
        f"SELECT {_COLS}{_FROM} WHERE d.template_id = ? AND d.environment = ?"
        " ORDER BY d.env_seq DESC LIMIT 1",
        [template_id, environment],
    ).fetchone()
    return (_deployment(row), int(row[20])) if row else None


def history(
    con: Con, template_id: str, environment: str | None = None, limit: int | None = None
) -> list[Deployment]:
    """Entries of a template (optionally one environment), newest first."""
    where = "d.template_id = ?"
    params: list[Any] = [template_id]
    if environment is not None:
        where += " AND d.environment = ?"
        params.append(environment)
    sql = f"SELECT {_COLS}{_FROM} WHERE {where} ORDER BY d.id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [_deployment(r) for r in con.execute(sql, params).fetchall()]


def last_entry_with_commit(
    con: Con, template_id: str, environment: str, commit_id: str, before_id: int | None = None
) -> int | None:
    """The newest entry (older than ``before_id``) that put ``commit_id`` live there."""
    row = con.execute(
        "SELECT max(id) FROM deployments WHERE template_id = ? AND environment = ?"
        " AND commit_id = ? AND (? IS NULL OR id < ?)",
        [template_id, environment, commit_id, before_id, before_id],
    ).fetchone()
    return row[0] if row else None


def ever_deployed(con: Con, template_id: str, environment: str, commit_id: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM deployments WHERE template_id = ? AND environment = ?"
        " AND commit_id = ?",
        [template_id, environment, commit_id],
    ).fetchone()
    return bool(row and row[0])


def live_all(con: Con) -> list[Deployment]:
    """The live entry of every template in every environment it was ever deployed to."""
    rows = con.execute(
        f"SELECT {_COLS}{_FROM}"
        " QUALIFY row_number() OVER (PARTITION BY d.template_id, d.environment"
        " ORDER BY d.env_seq DESC) = 1"
    ).fetchall()
    return [_deployment(r) for r in rows]


# ---- evidence from experiments (tables of migration m003) ---------------------------------


def winning_experiment(
    con: Con, template_id: str, environment: str, candidate: str, live_commit: str
) -> tuple[str, str] | None:
    """A completed experiment on this template and environment whose stored results name as
    winner a variant serving ``candidate``, while another of its variants served
    ``live_commit``. Returns (id, name) of the most recent such experiment."""
    row = con.execute(
        """
        SELECT e.id, e.name FROM experiments e
        JOIN experiment_variants w
          ON w.experiment_id = e.id AND w.name = json_extract_string(e.results, '$.winner')
        WHERE e.template_id = ? AND e.environment = ? AND e.status = 'completed'
          AND w.commit_id = ?
          AND EXISTS (SELECT 1 FROM experiment_variants o WHERE o.experiment_id = e.id
                      AND o.position <> w.position AND o.commit_id = ?)
        ORDER BY coalesce(e.stopped_at, e.created_at) DESC, e.id LIMIT 1
        """,
        [template_id, environment, candidate, live_commit],
    ).fetchone()
    return (row[0], row[1]) if row else None


def running_experiments(con: Con) -> list[tuple[str, str, str, str]]:
    """(template_id, environment, id, name) of every running experiment."""
    return [
        tuple(r)
        for r in con.execute(  # type: ignore[misc]
            "SELECT template_id, environment, id, name FROM experiments WHERE status = 'running'"
            " ORDER BY coalesce(started_at, created_at), id"
        ).fetchall()
    ]


def experiment_name(con: Con, experiment_id: str) -> str | None:
    row = con.execute("SELECT name FROM experiments WHERE id = ?", [experiment_id]).fetchone()
    return row[0] if row else None

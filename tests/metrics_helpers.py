"""Helpers for the metrics tests: experiment rows, CSV files, event counts.

Experiments are written straight into the ``experiments`` tables (the experiments service is
another capability); only the columns the import resolves against matter here.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from promptver.versioning import utcnow


def add_experiment(
    ws,
    template: str,
    name: str,
    variants: list[tuple[str, str]],
    *,
    status: str = "running",
    environment: str = "production",
) -> str:
    """Insert an experiment on ``template`` with (variant name, ref) pairs; returns its id."""
    row = ws.templates.row(template)
    exp_id = "exp-" + uuid.uuid4().hex[:10]
    now = utcnow()
    with ws.db.transaction() as con:
        con.execute(
            "INSERT INTO experiments (id, name, template_id, environment, status, metrics, alpha,"
            " minimum_sample_size, salt, created_at, created_by, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 0.05, 100, ?, ?, 'tester', ?)",
            [
                exp_id,
                name,
                row["id"],
                environment,
                status,
                json.dumps([{"name": "quality_score", "direction": "higher", "role": "primary"}]),
                exp_id,
                now,
                now,
            ],
        )
        for i, (vname, ref) in enumerate(variants):
            commit = ws.versions.resolve(row["id"], ref).id
            con.execute(
                "INSERT INTO experiment_variants VALUES (?, ?, ?, ?, ?, 50)",
                [exp_id, i, vname, ref, commit],
            )
    return exp_id


def write(path: Path, content: str | bytes) -> Path:
    """Write a CSV exactly as given (bytes untouched; text as UTF-8, no newline translation)."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    path.write_bytes(data)
    return path


def count(ws) -> int:
    with ws.db.read() as con:
        return con.execute("SELECT count(*) FROM metric_events").fetchone()[0]


def imports_count(ws) -> int:
    with ws.db.read() as con:
        return con.execute("SELECT count(*) FROM imports").fetchone()[0]


def rows(ws, sql_tail: str = "ORDER BY event_id") -> list[dict]:
    with ws.db.read() as con:
        cur = con.execute(f"SELECT * FROM metric_events {sql_tail}")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

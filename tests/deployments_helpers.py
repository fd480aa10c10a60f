"""Test helpers for deployments: workspaces with rules, raw commits, experiment rows.

Experiments are written straight into the tables of migration m003 (the experiments service is
built separately); the evidence gate reads only those tables, so this is all it needs.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from promptver import Settings, Workspace
from promptver.models import Commit
from promptver.versioning import utcnow


def settings_with(rules: dict[str, dict[str, Any]] | None = None, **overrides: Any) -> Settings:
    """Default settings plus per-environment ``rules`` and ``section__key`` overrides."""
    s = Settings.load()
    if rules is not None:
        overrides["deployment__rules"] = rules
    return s.with_overrides(**overrides) if overrides else s


def open_ws(
    path: Path, rules: dict[str, dict[str, Any]] | None = None, **overrides: Any
) -> Workspace:
    return Workspace.open(path, settings=settings_with(rules, **overrides))


def three_versions(ws: Workspace, name: str = "qa") -> list[str]:
    """A template with versions 1.0.0, 1.1.0 and 1.2.0 on main; returns the versions."""
    ws.templates.create(name, "Answer {question}.", author="ana")
    ws.templates.update(name, "Answer {question} briefly.", author="ben")
    ws.templates.update(name, "Answer {question} briefly and politely.", author="ana")
    return ["1.0.0", "1.1.0", "1.2.0"]


def raw_commit(
    ws: Workspace, name: str, content: str, metadata: dict[str, Any] | None = None
) -> Commit:
    """Commit a text on main without the save-time validation (as an old or imported commit
    could be), so that the deployment gates are the only thing that can catch it."""
    row = ws.templates.row(name)
    return ws.versions.commit(
        row["id"], content, dict(metadata or {}), message="raw", author="importer", variables=[]
    )


def add_experiment(
    ws: Workspace,
    template: str,
    environment: str,
    variants: list[tuple[str, str]],
    *,
    status: str = "completed",
    winner: str | None = None,
    name: str | None = None,
) -> str:
    """Insert an experiment with ``variants`` [(name, commit id)], the first being the control;
    ``winner`` goes into the stored results as the contract's results object does."""
    tid = ws.templates.row(template)["id"]
    eid = uuid.uuid4().hex[:12]
    now = utcnow()
    results = None
    if status in ("completed", "stopped"):
        results = json.dumps(
            {
                "experiment_id": eid,
                "status": status,
                "metric": "quality_score",
                "alpha": 0.05,
                "variants": [],
                "comparisons": [],
                "srm": {"p_value": 0.5, "ok": True},
                "sample_size_ok": True,
                "winner": winner,
            }
        )
    with ws.db.transaction() as con:
        con.execute(
            "INSERT INTO experiments (id, name, template_id, environment, status, metrics, alpha,"
            " minimum_sample_size, salt, created_at, created_by, started_at, stopped_at,"
            " results) VALUES (?, ?, ?, ?, ?, ?, 0.05, 100, ?, ?, 'tester', ?, ?, ?)",
            [
                eid,
                name or f"exp-{eid[:4]}",
                tid,
                environment,
                status,
                json.dumps([{"name": "quality_score", "direction": "higher", "role": "primary"}]),
                eid,
                now,
                now,
                now if results else None,
                results,
            ],
        )
        for i, (vname, commit) in enumerate(variants):
            con.execute(
                "INSERT INTO experiment_variants VALUES (?, ?, ?, ?, ?, 50.0)",
                [eid, i, vname, commit[:10], commit],
            )
    return eid


def commit_of(ws: Workspace, name: str, version: str) -> str:
    return ws.templates.get(name, version).commit

"""SQL for history graphs and integrity checks (``fsck``) over commits, branches and versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

Con = duckdb.DuckDBPyConnection


def commit_graph(con: Con, template_id: str) -> list[tuple[str, list[str], datetime]]:
    """``(id, parents, created_at)`` of every commit of a template, oldest first."""
    rows = con.execute(
        "SELECT id, parents, created_at FROM commits WHERE template_id = ? ORDER BY created_at, id",
        [template_id],
    ).fetchall()
    return [(r[0], list(r[1]), r[2]) for r in rows]


def template_names(con: Con) -> dict[str, str]:
    """Template id → name, archived templates included."""
    return {r[0]: r[1] for r in con.execute("SELECT id, name FROM templates").fetchall()}


def raw_commits(con: Con) -> list[tuple[Any, ...]]:
    """Every commit row as stored (metadata as JSON text), for ``fsck`` to check."""
    return con.execute(
        "SELECT id, template_id, parents, content, variables, CAST(metadata AS VARCHAR), message,"
        " author, created_at, kind, CAST(messages AS VARCHAR), CAST(config AS VARCHAR)"
        " FROM commits ORDER BY template_id, created_at, id"
    ).fetchall()


def raw_versions(con: Con) -> list[tuple[Any, ...]]:
    return con.execute(
        "SELECT template_id, version, major, minor, patch, commit_id FROM versions"
        " ORDER BY template_id, major, minor, patch"
    ).fetchall()


def raw_branches(con: Con) -> list[tuple[Any, ...]]:
    return con.execute(
        "SELECT template_id, name, head FROM branches ORDER BY template_id, name"
    ).fetchall()


def experiment_variant_commits(con: Con) -> list[tuple[str, str, str, str]]:
    """``(experiment_id, variant name, template_id, commit_id)`` of every experiment arm."""
    return con.execute(
        "SELECT v.experiment_id, v.name, e.template_id, v.commit_id FROM experiment_variants v"
        " JOIN experiments e ON e.id = v.experiment_id ORDER BY v.experiment_id, v.position"
    ).fetchall()


def deployment_commits(con: Con) -> list[tuple[int, str, str, str, str | None]]:
    """``(id, environment, template_id, commit_id, replaced_commit_id)`` of every deployment."""
    return con.execute(
        "SELECT id, environment, template_id, commit_id, replaced_commit_id FROM deployments"
        " ORDER BY id"
    ).fetchall()

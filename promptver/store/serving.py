"""SQL of serving: what ``get_prompt`` reads (one join), apart from the deployment log's SQL so
that an application serving prompts loads neither the deployment models nor their queries."""

from __future__ import annotations

from typing import Any

import duckdb

from promptver.limits import stored_json

Con = duckdb.DuckDBPyConnection


def resolve(con: Con, ref: str, environment: str) -> dict[str, Any] | None:
    """Everything ``get_prompt`` needs in one query: the template (by id or name, id first),
    its live entry in ``environment`` and that commit's text. ``None`` when no template matches.

    This runs on every uncached ``get_prompt``, right after opening the file, so it is one plain
    join (a few hundred microseconds) rather than several round trips.
    """
    row = con.execute(
        "SELECT t.id, t.name, t.is_active, d.id, d.commit_id, d.version, c.content,"
        " c.variables, c.metadata, c.kind, c.messages, c.config"
        " FROM templates t"
        " LEFT JOIN deployments d ON d.template_id = t.id AND d.environment = ?"
        " LEFT JOIN commits c ON c.id = d.commit_id"
        " WHERE t.id = ? OR t.name = ?"
        " ORDER BY (t.id = ?) DESC, d.env_seq DESC NULLS LAST LIMIT 1",
        [environment, ref, ref, ref],
    ).fetchone()
    if row is None:
        return None
    return {
        "template_id": row[0],
        "name": row[1],
        "is_active": row[2],
        "deployment_id": row[3],
        "commit": row[4],
        "version": row[5],
        "content": row[6],
        "variables": list(row[7]) if row[7] is not None else [],
        "metadata": stored_json(row[8]),
        "kind": row[9] or "text",
        "messages": stored_json(row[10], None) if row[10] else None,
        "config": stored_json(row[11]),
    }


def version_label(con: Con, commit_id: str) -> str | None:
    """The (highest) version label a commit carries now, if any."""
    row = con.execute(
        "SELECT version FROM versions WHERE commit_id = ?"
        " ORDER BY major DESC, minor DESC, patch DESC LIMIT 1",
        [commit_id],
    ).fetchone()
    return row[0] if row else None

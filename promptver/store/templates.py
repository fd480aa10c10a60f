"""SQL for templates, commits, version labels and branches.

The models are imported where rows become models: listing templates reads plain rows and loads
no pydantic (``promptver.template_list``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb

from promptver.limits import stored_json

if TYPE_CHECKING:
    from promptver.models.core import Branch, Commit, VersionLabel

Con = duckdb.DuckDBPyConnection

_TEMPLATE_COLS = (
    "id, name, description, category, tags, created_at, created_by, is_active, archived_at, "
    "archived_by"
)


def _row_dict(cur: Con, row: tuple[Any, ...] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {d[0]: v for d, v in zip(cur.description, row, strict=True)}


# ---- templates -----------------------------------------------------------------------------


def insert_template(con: Con, row: dict[str, Any]) -> None:
    con.execute(
        "INSERT INTO templates (id, name, description, category, tags, created_at, created_by,"
        " is_active) VALUES (?, ?, ?, ?, ?, ?, ?, TRUE)",
        [
            row["id"],
            row["name"],
            row["description"],
            row["category"],
            row["tags"],
            row["created_at"],
            row["created_by"],
        ],
    )


def template_row(con: Con, ref: str) -> dict[str, Any] | None:
    """The template whose id or name is ``ref`` (id wins)."""
    cur = con.execute(
        f"SELECT {_TEMPLATE_COLS} FROM templates WHERE id = ? OR name = ?"
        " ORDER BY (id = ?) DESC LIMIT 1",
        [ref, ref, ref],
    )
    return _row_dict(cur, cur.fetchone())


def template_exists_by_name(con: Con, name: str) -> bool:
    return con.execute("SELECT count(*) FROM templates WHERE name = ?", [name]).fetchone()[0] > 0


def list_template_rows(
    con: Con,
    *,
    category: str | None = None,
    tags: list[str] | None = None,
    search: str | None = None,
    include_archived: bool = False,
) -> list[dict[str, Any]]:
    """Templates with the head of ``main`` joined in (content, commit), filtered."""
    where = ["b.name = 'main'"]
    params: list[Any] = []
    if not include_archived:
        where.append("t.is_active")
    if category:
        where.append("t.category = ?")
        params.append(category)
    for tag in tags or []:
        where.append("list_contains(t.tags, ?)")
        params.append(tag)
    if search:
        where.append(
            "(contains(lower(t.name), lower(?)) OR contains(lower(t.description), lower(?))"
            " OR contains(lower(c.content), lower(?))"
            " OR contains(lower(CAST(json_extract_string(c.messages, '$[*].content') AS VARCHAR)),"
            " lower(?))"
            " OR list_contains(list_transform(t.tags, lambda x: lower(x)), lower(?)))"
        )
        params.extend([search] * 5)
    sql = (
        f"SELECT {', '.join('t.' + c.strip() for c in _TEMPLATE_COLS.split(','))},"
        " c.id AS commit_id, c.content, c.variables, c.metadata, c.created_at AS updated_at,"
        " c.kind, c.messages, c.config,"
        " (SELECT v.version FROM versions v WHERE v.template_id = t.id AND v.commit_id = c.id"
        "  ORDER BY v.major DESC, v.minor DESC, v.patch DESC LIMIT 1) AS version"
        " FROM templates t JOIN branches b ON b.template_id = t.id"
        " JOIN commits c ON c.id = b.head"
        f" WHERE {' AND '.join(where)} ORDER BY lower(t.name)"
    )
    cur = con.execute(sql, params)
    return [_row_dict(cur, r) for r in cur.fetchall()]  # type: ignore[misc]


def categories(con: Con) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT category FROM templates WHERE category <> '' ORDER BY 1"
        ).fetchall()
    ]


def all_tags(con: Con) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT unnest(tags) AS tag FROM templates ORDER BY 1"
        ).fetchall()
    ]


def update_info(
    con: Con, template_id: str, description: str, category: str, tags: list[str]
) -> None:
    con.execute(
        "UPDATE templates SET description = ?, category = ?, tags = ? WHERE id = ?",
        [description, category, tags, template_id],
    )


def set_active(
    con: Con, template_id: str, active: bool, by: str | None, at: datetime | None
) -> None:
    con.execute(
        "UPDATE templates SET is_active = ?, archived_at = ?, archived_by = ? WHERE id = ?",
        [active, None if active else at, None if active else by, template_id],
    )


# ---- commits -------------------------------------------------------------------------------

_COMMIT_COLS = (
    "id, template_id, parents, content, variables, metadata, message, author, created_at,"
    " kind, messages, config"
)
_NCOLS = 12  # the version label, when selected, follows the commit's columns


def _commit(row: tuple[Any, ...], version: str | None = None) -> Commit:
    cid, tid, parents, content, variables, metadata, message, author, created_at = row[:9]
    kind, messages, config = row[9:_NCOLS]
    from promptver.models.core import Commit

    return Commit(
        id=cid,
        template_id=tid,
        parents=list(parents),
        content=content,
        variables=list(variables),
        metadata=stored_json(metadata),
        message=message,
        author=author,
        created_at=created_at,
        version=version,
        kind=kind or "text",
        messages=stored_json(messages, None) if messages else None,
        config=stored_json(config),
    )


def insert_commit(con: Con, c: Commit) -> None:
    con.execute(
        f"INSERT INTO commits ({_COMMIT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            c.id,
            c.template_id,
            c.parents,
            c.content,
            c.variables,
            json.dumps(c.metadata, sort_keys=True),
            c.message,
            c.author,
            c.created_at,
            c.kind,
            None if c.messages is None else json.dumps(c.messages, ensure_ascii=False),
            json.dumps(c.config, sort_keys=True, ensure_ascii=False),
        ],
    )


def get_commit(con: Con, commit_id: str) -> Commit | None:
    row = con.execute(
        f"SELECT {_COMMIT_COLS}, (SELECT v.version FROM versions v WHERE v.commit_id = commits.id"
        " ORDER BY v.major DESC, v.minor DESC, v.patch DESC LIMIT 1)"
        " FROM commits WHERE id = ?",
        [commit_id],
    ).fetchone()
    return _commit(row, row[_NCOLS]) if row else None


def commits_with_prefix(con: Con, template_id: str, prefix: str, limit: int = 10) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT id FROM commits WHERE template_id = ? AND starts_with(id, ?) ORDER BY id LIMIT ?",
            [template_id, prefix.lower(), limit],
        ).fetchall()
    ]


def commits_of(con: Con, template_id: str) -> list[Commit]:
    """Every commit of a template, each with its (highest) version label."""
    rows = con.execute(
        f"SELECT {', '.join('c.' + x.strip() for x in _COMMIT_COLS.split(','))}, v.version"
        " FROM commits c LEFT JOIN (SELECT commit_id, arg_max(version, major * 1000000000000"
        " + minor * 1000000 + patch) AS version FROM versions WHERE template_id = ?"
        " GROUP BY commit_id) v ON v.commit_id = c.id"
        " WHERE c.template_id = ? ORDER BY c.created_at, c.id",
        [template_id, template_id],
    ).fetchall()
    return [_commit(r, r[_NCOLS]) for r in rows]


def all_commits(con: Con) -> list[Commit]:
    rows = con.execute(
        f"SELECT {_COMMIT_COLS} FROM commits ORDER BY template_id, created_at"
    ).fetchall()
    return [_commit(r) for r in rows]


# ---- versions ------------------------------------------------------------------------------


def insert_version(
    con: Con, template_id: str, version: tuple[int, int, int], commit_id: str, at: datetime
) -> str:
    text = ".".join(map(str, version))
    con.execute(
        "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?)",
        [template_id, text, *version, commit_id, at],
    )
    return text


def latest_version(con: Con, template_id: str) -> tuple[int, int, int] | None:
    row = con.execute(
        "SELECT major, minor, patch FROM versions WHERE template_id = ?"
        " ORDER BY major DESC, minor DESC, patch DESC LIMIT 1",
        [template_id],
    ).fetchone()
    return tuple(row) if row else None  # type: ignore[return-value]


def version_commit(con: Con, template_id: str, version: str) -> str | None:
    row = con.execute(
        "SELECT commit_id FROM versions WHERE template_id = ? AND version = ?",
        [template_id, version],
    ).fetchone()
    return row[0] if row else None


def versions_of(con: Con, template_id: str) -> list[VersionLabel]:
    from promptver.models.core import VersionLabel

    rows = con.execute(
        "SELECT template_id, version, commit_id, created_at FROM versions WHERE template_id = ?"
        " ORDER BY major DESC, minor DESC, patch DESC",
        [template_id],
    ).fetchall()
    return [
        VersionLabel(template_id=r[0], version=r[1], commit_id=r[2], created_at=r[3]) for r in rows
    ]


def all_versions(con: Con) -> list[VersionLabel]:
    from promptver.models.core import VersionLabel

    rows = con.execute(
        "SELECT template_id, version, commit_id, created_at FROM versions"
    ).fetchall()
    return [
        VersionLabel(template_id=r[0], version=r[1], commit_id=r[2], created_at=r[3]) for r in rows
    ]


# ---- branches ------------------------------------------------------------------------------


def _branch(row: tuple[Any, ...]) -> Branch:
    from promptver.models.core import Branch

    return Branch(
        template_id=row[0], name=row[1], head=row[2], created_at=row[3], created_by=row[4]
    )


def insert_branch(con: Con, template_id: str, name: str, head: str, at: datetime, by: str) -> None:
    con.execute("INSERT INTO branches VALUES (?, ?, ?, ?, ?)", [template_id, name, head, at, by])


def get_branch(con: Con, template_id: str, name: str) -> Branch | None:
    row = con.execute(
        "SELECT template_id, name, head, created_at, created_by FROM branches"
        " WHERE template_id = ? AND name = ?",
        [template_id, name],
    ).fetchone()
    return _branch(row) if row else None


def branches_of(con: Con, template_id: str) -> list[Branch]:
    rows = con.execute(
        "SELECT template_id, name, head, created_at, created_by FROM branches"
        " WHERE template_id = ? ORDER BY name <> 'main', name",
        [template_id],
    ).fetchall()
    return [_branch(r) for r in rows]


def all_branches(con: Con) -> list[Branch]:
    rows = con.execute(
        "SELECT template_id, name, head, created_at, created_by FROM branches"
    ).fetchall()
    return [_branch(r) for r in rows]


def move_branch(con: Con, template_id: str, name: str, expected: str, new: str) -> bool:
    """Compare-and-swap a branch head; ``False`` when it no longer points at ``expected``."""
    row = con.execute(
        "UPDATE branches SET head = ? WHERE template_id = ? AND name = ? AND head = ?",
        [new, template_id, name, expected],
    ).fetchone()
    return bool(row and row[0] == 1)


def delete_branch(con: Con, template_id: str, name: str) -> None:
    con.execute("DELETE FROM branches WHERE template_id = ? AND name = ?", [template_id, name])


# ---- workspace info ------------------------------------------------------------------------


def get_info(con: Con, key: str) -> str | None:
    row = con.execute("SELECT value FROM workspace_info WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def set_info(con: Con, key: str, value: str, at: datetime) -> None:
    con.execute("INSERT OR REPLACE INTO workspace_info VALUES (?, ?, ?)", [key, value, at])


def count_templates(con: Con) -> int:
    return con.execute("SELECT count(*) FROM templates").fetchone()[0]

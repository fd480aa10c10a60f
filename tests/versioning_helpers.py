"""Helpers shared by the version-control tests: build small histories quickly."""

from __future__ import annotations

from typing import Any

BASE = "line 1 {question}\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\n"


def lines(*items: str) -> str:
    """A text with one line per item and a final newline."""
    return "\n".join(items) + "\n"


def edit(text: str, index: int, new: str) -> str:
    """``text`` with line ``index`` (0-based) replaced."""
    parts = text.split("\n")
    parts[index] = new
    return "\n".join(parts)


def state(ws: Any, name: str) -> dict[str, Any]:
    """Everything a failed merge must leave untouched: commits, versions and branch heads."""
    tid = ws.templates.row(name)["id"]
    with ws.db.read() as con:
        commits = con.execute(
            "SELECT count(*) FROM commits WHERE template_id = ?", [tid]
        ).fetchone()[0]
        versions = con.execute(
            "SELECT count(*) FROM versions WHERE template_id = ?", [tid]
        ).fetchone()[0]
        heads = dict(
            con.execute("SELECT name, head FROM branches WHERE template_id = ?", [tid]).fetchall()
        )
    return {"commits": commits, "versions": versions, "heads": heads}

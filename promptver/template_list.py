"""The template list as plain records: what ``template list`` prints, and what
:meth:`promptver.templates.TemplateService.list` turns into models.

Listing templates is the commonest command; it reads rows the write path has already validated,
so it builds no pydantic model and, with no settings file to validate, loads no pydantic at all
(``tests/test_import_footprint.py``). A record has the fields of
:class:`promptver.models.core.Template`, in the same order, so both print the same JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from promptver.limits import stored_json
from promptver.store.templates import list_template_rows

if TYPE_CHECKING:
    from promptver.store.db import Database


@dataclass(frozen=True, slots=True)
class TemplateRecord:
    """One template at the head of ``main``, as stored (see ``Template`` for the fields)."""

    id: str
    name: str
    description: str
    category: str
    tags: list[str]
    metadata: dict[str, Any]
    created_at: datetime
    created_by: str
    is_active: bool
    version: str | None
    commit: str
    content: str | None
    variables: list[str]
    branch: str | None = None
    updated_at: datetime | None = None
    kind: str = "text"
    messages: list[dict[str, Any]] | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The fields by name, in ``Template``'s order (what ``--json`` prints)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def list_templates(
    db: Database,
    *,
    category: str | None = None,
    tags: list[str] | None = None,
    search: str | None = None,
    include_archived: bool = False,
) -> list[TemplateRecord]:
    """Templates (head of ``main``) by name, filtered by category, all of ``tags`` and a text
    search over name, description, tags and content (case-insensitive)."""
    with db.read() as con:
        rows = list_template_rows(
            con, category=category, tags=tags, search=search, include_archived=include_archived
        )
    return [
        TemplateRecord(
            id=r["id"],
            name=r["name"],
            description=r["description"],
            category=r["category"],
            tags=list(r["tags"]),
            metadata=stored_json(r["metadata"]),
            created_at=r["created_at"],
            created_by=r["created_by"],
            is_active=r["is_active"],
            version=r["version"],
            commit=r["commit_id"],
            content=r["content"] if (r["kind"] or "text") == "text" else None,
            variables=list(r["variables"]),
            updated_at=r["updated_at"],
            kind=r["kind"] or "text",
            messages=stored_json(r["messages"], None) if r["messages"] else None,
            config=stored_json(r["config"]),
        )
        for r in rows
    ]

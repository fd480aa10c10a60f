"""Templates: create, update (a new commit), read at any ref, list and search, archive.

A template's identity (name, description, category, tags, active flag) lives in one row; its text
and metadata live in commits. Archiving hides a template from lists and ``get_prompt`` but never
deletes its history; restoring brings it back.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from promptver.clock import utcnow
from promptver.commits import MAIN, Bump
from promptver.config import ALL_CHECKS, Settings
from promptver.errors import NotFound, PromptverError, ValidationError, check_unicode
from promptver.limits import (
    MAX_DESCRIPTION,
    MAX_MESSAGE,
    check_author,
    check_json,
    check_text,
)
from promptver.models.core import Commit, Prompt, Template, check_name
from promptver.store import templates as sql
from promptver.store.db import Database
from promptver.templating import ValidationReport, parse_schema, render, validate

if TYPE_CHECKING:
    from promptver.versioning import VersionControl


def _clean_tags(tags: list[str] | None) -> list[str]:
    out: list[str] = []
    for t in tags or []:
        t = str(t).strip()
        if not t:
            continue
        if len(t) > 50 or any(ch in t for ch in ",\n\r\t"):
            raise ValidationError(
                "invalid tag:",
                [
                    _p(
                        f"tag {t[:60]!r} must be 1–50 characters without commas or line breaks",
                        "tags",
                    )
                ],
            )
        if t not in out:
            out.append(t)
    return out


def _p(message: str, field: str) -> Any:
    from promptver.errors import Problem

    return Problem(message, field=field)


def _check_text(value: str, field: str, limit: int) -> str:
    value = check_unicode((value or "").strip(), field)
    if len(value) > limit:
        raise ValidationError("invalid input:", [_p(f"must be at most {limit} characters", field)])
    return value


class TemplateService:
    """Operations on templates; one transaction per call."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        versions: VersionControl | Callable[[], VersionControl],
    ) -> None:
        self.db = db
        self.settings = settings
        # version control, or what builds it on first use (listing templates never needs it)
        self._versions = versions
        #: called after archive/restore, which change what get_prompt may serve (the Workspace
        #: connects it to the deployment cache)
        self.on_serving_change: Callable[[], None] = lambda: None

    @property
    def versions(self) -> VersionControl:
        """Version control of these templates."""
        v = self._versions
        if callable(v):
            v = self._versions = v()
        return v

    # -- reading ------------------------------------------------------------------------
    def row(self, ref: str) -> dict[str, Any]:
        """The stored row of the template named (or with id) ``ref``."""
        with self.db.read() as con:
            row = sql.template_row(con, ref)
        if row is None:
            raise NotFound(f"unknown template '{ref}'")
        return row

    def get(self, ref: str, version: str | None = None, *, branch: str | None = None) -> Template:
        """The template at the head of ``main``, or at ``version`` / any ref / a branch head.

        Raises:
            NotFound: unknown template or ref.
        """
        with self.db.read():
            row = self.row(ref)
            at = version if version is not None else (branch or MAIN)
            commit = self.versions.resolve(row["id"], at, template_name=row["name"])
        return self._view(row, commit, branch=branch if version is None else None)

    def _view(self, row: dict[str, Any], c: Commit, branch: str | None = None) -> Template:
        return Template(
            id=row["id"],
            name=row["name"],
            description=row["description"],
            category=row["category"],
            tags=list(row["tags"]),
            metadata=c.metadata,
            created_at=row["created_at"],
            created_by=row["created_by"],
            is_active=row["is_active"],
            version=c.version,
            commit=c.id,
            content=c.content if c.kind == "text" else None,
            variables=c.variables,
            branch=branch,
            updated_at=c.created_at,
            kind=c.kind,
            messages=c.messages,
            config=c.config,
        )

    def list(
        self,
        *,
        category: str | None = None,
        tags: list[str] | None = None,
        search: str | None = None,
        include_archived: bool = False,
    ) -> list[Template]:
        """Templates (head of ``main``), filtered by category, all of ``tags`` and a text search
        over name, description, tags and content (case-insensitive)."""
        from promptver.template_list import list_templates

        return [
            Template(**r.as_dict())
            for r in list_templates(
                self.db,
                category=category,
                tags=tags,
                search=search,
                include_archived=include_archived,
            )
        ]

    def categories(self) -> list[str]:
        with self.db.read() as con:
            return sql.categories(con)

    def tags(self) -> list[str]:
        with self.db.read() as con:
            return sql.all_tags(con)

    # -- validating ---------------------------------------------------------------------
    def validate(
        self,
        content: str | None,
        metadata: Mapping[str, Any] | None = None,
        *,
        checks: list[str] | None = None,
        kind: str = "text",
        messages: list[dict[str, Any]] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> ValidationReport:
        """Run the validation engine with this workspace's limits (a text, or a chat prompt's
        messages, and the model configuration)."""
        checks = checks if checks is not None else ALL_CHECKS
        if kind == "text" and not config:
            return validate(content or "", metadata, limits=self.settings.templates, checks=checks)
        from promptver.chat_checks import validate_prompt

        return validate_prompt(
            kind, content, messages, config, metadata, limits=self.settings.templates, checks=checks
        )

    def _checked(
        self,
        content: str | None,
        metadata: Mapping[str, Any] | None,
        kind: str = "text",
        messages: Any = None,
        config: Any = None,
    ) -> ValidationReport:
        if kind == "text" and not isinstance(content, str):
            raise ValidationError(
                "invalid input:",
                [
                    _p(
                        "content must be text (give messages instead for a chat template)",
                        "content",
                    )
                ],
            )
        if kind == "chat" and content:
            raise ValidationError(
                "invalid input:",
                [_p("a chat prompt has messages, not content", "content")],
            )
        # depth and size first: the structural checks walk these values
        if messages is not None:
            check_json(messages, "messages")
        if config is not None:
            check_json(config, "config")
        report = self.validate(content, metadata, kind=kind, messages=messages, config=config)
        report.raise_for_errors("template is invalid:")
        return report

    @staticmethod
    def _kind_of(kind: str | None, content: Any, messages: Any, default: str = "text") -> str:
        if kind is not None:
            return kind
        if messages is not None:
            return "chat"
        if content is not None:
            return "text"
        return default

    @staticmethod
    def _normalised(
        kind: str, messages: Any, config: Any
    ) -> tuple[list[dict[str, Any]] | None, dict[str, Any]]:
        from promptver.chat_checks import normalise_config, normalise_messages

        return (
            normalise_messages(messages) if kind == "chat" else None,
            normalise_config(config),
        )

    # -- writing ------------------------------------------------------------------------
    def create(
        self,
        name: str,
        content: str | None = None,
        *,
        kind: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        config: dict[str, Any] | None = None,
        description: str = "",
        category: str = "",
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        author: str = "unknown",
        message: str | None = None,
    ) -> Template:
        """Create a template and its first commit (version 1.0.0 on ``main``).

        A text template takes ``content``; a chat template (``kind="chat"``, or ``messages``
        given) takes ``messages``. Either may carry a model ``config``.

        Raises:
            ValidationError: bad name, a name already taken, invalid text, messages, config or
                metadata (every problem, each naming its path).
        """
        author = check_author(author)
        try:
            check_name(name, "template name")
        except ValueError as exc:
            raise ValidationError("invalid template:", [_p(str(exc), "name")]) from None
        if message is not None:
            message = check_text(message, "message", MAX_MESSAGE, strip=False)
        description = _check_text(description, "description", MAX_DESCRIPTION)
        category = _check_text(category, "category", 50)
        tags = _clean_tags(tags)
        check_json(metadata or {}, "metadata")
        metadata = dict(metadata or {})
        kind = self._kind_of(kind, content, messages)
        report = self._checked(content, metadata, kind, messages, config)
        messages, config = self._normalised(kind, messages, config)
        content = content if kind == "text" else ""
        now = utcnow()
        tid = uuid.uuid4().hex[:12]
        with self.db.transaction() as con:
            if sql.template_exists_by_name(con, name):
                raise ValidationError(
                    "invalid template:", [_p(f"a template named '{name}' already exists", "name")]
                )
            sql.insert_template(
                con,
                {
                    "id": tid,
                    "name": name,
                    "description": description,
                    "category": category,
                    "tags": tags,
                    "created_at": now,
                    "created_by": author,
                },
            )
            commit = self.versions.root_commit(
                con,
                tid,
                content,
                metadata,
                message=message or "Initial version",
                author=author,
                at=now,
                variables=report.variables,
                kind=kind,
                messages=messages,
                config=config,
            )
            row = sql.template_row(con, tid)
        assert row is not None
        return self._view(row, commit)

    def update(
        self,
        ref: str,
        content: str | None = None,
        *,
        kind: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        config: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        branch: str = MAIN,
        bump: Bump | None = None,
        author: str = "unknown",
        message: str | None = None,
        expected_head: str | None = None,
    ) -> Template:
        """Commit a new text (and/or metadata) on ``branch``; on ``main`` it gets a version.

        ``None`` keeps the current content, messages, config or metadata (giving ``content``
        makes a text prompt, ``messages`` a chat prompt; ``config={}`` removes the model
        configuration). ``bump`` defaults to ``patch`` when only the metadata changes and to
        ``minor`` when the prompt (text, messages or config) does. A variable schema that only
        spells out what absent rules mean (``type: str``, ``required: true``, a default written
        as text) is no change. ``expected_head`` guards against lost updates: pass the commit
        the edit started from.

        Raises:
            NotFound: unknown template or branch.
            ValidationError: invalid text, or nothing changed.
            Conflict: the branch moved since ``expected_head``.
        """
        if metadata is not None:
            check_json(metadata, "metadata")
        with self.db.transaction() as con:
            row = self.row(ref)
            b = sql.get_branch(con, row["id"], branch)
            if b is None:
                raise NotFound(f"template '{row['name']}' has no branch '{branch}'")
            head = self.versions.get_commit(b.head)
            new_kind = self._kind_of(kind, content, messages, head.kind)
            if new_kind == "chat":
                new_content = ""
                new_messages = head.messages if messages is None else messages
                if new_messages is None:
                    raise ValidationError(
                        "invalid input:",
                        [_p("a chat prompt needs messages (this version is text)", "messages")],
                    )
            else:
                new_content = head.content if content is None else content
                new_messages = None
                if head.kind == "chat" and content is None:
                    raise ValidationError(
                        "invalid input:",
                        [_p("a text prompt needs content (this version is chat)", "content")],
                    )
            new_config = head.config if config is None else config
            new_meta = dict(head.metadata if metadata is None else metadata)
            report = self._checked(new_content, new_meta, new_kind, new_messages, new_config)
            new_messages, new_config = self._normalised(new_kind, new_messages, new_config)
            same_text = (
                new_kind == head.kind
                and new_content == head.content
                and new_messages == head.messages
                and new_config == head.config
            )
            if same_text and same_metadata(new_meta, head.metadata):
                raise ValidationError(
                    f"nothing to commit: the text and metadata equal the head of '{branch}'"
                )
            if bump is None:
                bump = "patch" if same_text else "minor"
            commit = self.versions.commit(
                row["id"],
                new_content,
                new_meta,
                message=message or "Update",
                author=author,
                branch=branch,
                bump=bump,
                expected_head=expected_head or b.head,
                variables=report.variables,
                kind=new_kind,
                messages=new_messages,
                config=new_config,
            )
        return self._view(row, commit, branch=None if branch == MAIN else branch)

    def update_info(
        self,
        ref: str,
        *,
        description: str | None = None,
        category: str | None = None,
        tags: list[str] | None = None,
    ) -> Template:
        """Change description, category or tags (not versioned: they describe the template)."""
        with self.db.transaction() as con:
            row = self.row(ref)
            sql.update_info(
                con,
                row["id"],
                row["description"]
                if description is None
                else _check_text(description, "description", MAX_DESCRIPTION),
                row["category"] if category is None else _check_text(category, "category", 50),
                list(row["tags"]) if tags is None else _clean_tags(tags),
            )
            return self.get(row["id"])

    def archive(self, ref: str, *, author: str = "unknown") -> Template:
        """Hide a template from lists (its history and deployments stay)."""
        author = check_author(author)
        with self.db.transaction() as con:
            row = self.row(ref)
            sql.set_active(con, row["id"], False, author, utcnow())
            out = self.get(row["id"])
        self.on_serving_change()
        return out

    def restore(self, ref: str) -> Template:
        with self.db.transaction() as con:
            row = self.row(ref)
            sql.set_active(con, row["id"], True, None, None)
            out = self.get(row["id"])
        self.on_serving_change()
        return out

    # -- rendering ----------------------------------------------------------------------
    def prompt(self, ref: str, version: str | None = None) -> Prompt:
        """The template at ``version`` (default: head of ``main``) as a renderable prompt:
        ``text()``, ``messages()``, ``openai()``, ``anthropic()`` as ``get_prompt`` serves."""
        t = self.get(ref, version)
        return Prompt(
            template_id=t.id,
            name=t.name,
            version=t.version,
            commit=t.commit,
            content=t.content or "",
            variables=t.variables,
            metadata=t.metadata,
            kind=t.kind,
            chat_messages=t.messages,
            config=t.config,
            max_render_chars=self.settings.templates.max_render_chars,
        )

    def render(
        self,
        ref: str,
        values: Mapping[str, Any],
        *,
        version: str | None = None,
        strict: bool = True,
    ) -> str:
        """Render the text template at ``version`` (default: head of ``main``); a chat template
        renders with :meth:`prompt` (``messages()``, ``openai()``, ``anthropic()``).

        Raises:
            RenderError: a missing or unknown variable, or a chat template.
        """
        return self.prompt(ref, version).render_text(values, strict=strict)


def same_metadata(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Whether two metadata mean the same: equal, or equal once each variable's rules are read
    the way rendering reads them (absent ``type`` is ``str``, absent ``required`` is true, a
    default is coerced to its type)."""
    a, b = dict(a or {}), dict(b or {})
    if a == b:
        return True
    if {k: v for k, v in a.items() if k != "variables"} != {
        k: v for k, v in b.items() if k != "variables"
    }:
        return False
    specs_a, problems_a = parse_schema(a)
    specs_b, problems_b = parse_schema(b)
    if problems_a or problems_b:  # only a valid schema has a meaning to compare
        return False
    return {n: s.as_dict() for n, s in specs_a.items()} == {
        n: s.as_dict() for n, s in specs_b.items()
    }


def render_template(
    content: str,
    metadata: Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    strict: bool = True,
    max_chars: int,
) -> str:
    """Render with the variable schema kept in ``metadata`` (bad schemas were refused on save)."""
    schema, problems = parse_schema(metadata)
    if problems:  # pragma: no cover - refused when committed
        raise PromptverError(f"variable schema is invalid: {problems[0]}")
    return render(content, values, strict=strict, schema=schema, max_chars=max_chars)

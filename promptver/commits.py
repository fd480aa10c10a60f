"""What identifies a commit: its content address, the version numbers on ``main``, and the
variables its text uses (see :mod:`promptver.versioning` for the exact hashed document)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from promptver.errors import ValidationError, check_unicode, surrogate_problem
from promptver.models.core import VERSION_RE, Commit

Bump = Literal["major", "minor", "patch"]
MAIN = "main"


def commit_id(
    template_id: str,
    parents: Iterable[str],
    content: str,
    metadata: dict[str, Any],
    author: str,
    created_at: datetime,
    message: str,
    kind: str = "text",
    messages: list[dict[str, Any]] | None = None,
    config: dict[str, Any] | None = None,
) -> str:
    """The content address of a commit (see the module docstring for the exact document)."""
    doc: dict[str, Any] = {
        "template": template_id,
        "parents": list(parents),
        "content": content,
        "metadata": metadata,
        "author": author,
        "created_at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "message": message,
    }
    if kind != "text" or messages is not None or config:
        doc.update(kind=kind, messages=messages, config=config or {})
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()
    except UnicodeEncodeError:  # a Python caller passed a lone surrogate: name the field
        for field, value in (("content", content), ("author", author), ("message", message)):
            check_unicode(value, field)
        raise ValidationError("invalid input:", [surrogate_problem("metadata")]) from None


def expected_id(c: Commit) -> str:
    """Recompute a stored commit's id (``fsck`` compares it with ``c.id``)."""
    return commit_id(
        c.template_id,
        c.parents,
        c.content,
        c.metadata,
        c.author,
        c.created_at,
        c.message,
        c.kind,
        c.messages,
        c.config,
    )


def parse_version(text: str) -> tuple[int, int, int] | None:
    m = VERSION_RE.match(text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def next_version(latest: tuple[int, int, int] | None, bump: Bump = "minor") -> tuple[int, int, int]:
    """1.0.0 first; then bump the major, minor (default) or patch part."""
    if latest is None:
        return (1, 0, 0)
    major, minor, patch = latest
    if bump == "major":
        return (major + 1, 0, 0)
    if bump == "patch":
        return (major, minor, patch + 1)
    if bump == "minor":
        return (major, minor + 1, 0)
    raise ValidationError(f"bump must be major, minor or patch, not {bump!r}")


def variables_used(content: str, messages: list[dict[str, Any]] | None) -> list[str]:
    """The placeholders of a text, or of every message of a chat prompt, in order."""
    from promptver.templating import scan, variables_of

    if messages is None:
        return variables_of(scan(content)[0])
    out: list[str] = []
    for m in messages:
        if isinstance(m, dict) and isinstance(m.get("content"), str):
            for name in variables_of(scan(m["content"])[0]):
                if name not in out:
                    out.append(name)
    return out

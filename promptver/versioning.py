"""Content-addressed commits, semantic versions on ``main``, refs and history.

A commit id is the SHA-256 (hex) of a canonical JSON document holding the template id, the
parent ids, the content, the metadata, the author, the creation time (UTC, microseconds) and the
message: ``json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``. The
template id is included so that two templates can never share a commit. ``fsck`` recomputes it.

Branch heads are the only thing that moves, by compare-and-swap: a writer names the head it
based its work on, and loses with :class:`~promptver.errors.Conflict` if another writer moved it.
Versions are append-only labels on commits of ``main``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from promptver.errors import Conflict, NotFound, ValidationError
from promptver.models import VERSION_RE, Branch, Commit
from promptver.store import templates as sql
from promptver.store.db import Database

Bump = Literal["major", "minor", "patch"]
MAIN = "main"
MIN_PREFIX = 7
_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")


def utcnow() -> datetime:
    """Now in UTC, at the microsecond precision DuckDB stores."""
    return datetime.now(UTC)


def commit_id(
    template_id: str,
    parents: Iterable[str],
    content: str,
    metadata: dict[str, Any],
    author: str,
    created_at: datetime,
    message: str,
) -> str:
    """The content address of a commit (see the module docstring for the exact document)."""
    doc = {
        "template": template_id,
        "parents": list(parents),
        "content": content,
        "metadata": metadata,
        "author": author,
        "created_at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "message": message,
    }
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def expected_id(c: Commit) -> str:
    """Recompute a stored commit's id (``fsck`` compares it with ``c.id``)."""
    return commit_id(
        c.template_id, c.parents, c.content, c.metadata, c.author, c.created_at, c.message
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


class VersionControl:
    """Commits, refs and history of templates (one repository per template)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- refs -------------------------------------------------------------------------
    def resolve(self, template_id: str, ref: str, *, template_name: str | None = None) -> Commit:
        """The commit a ref names, tried as a version, a branch name, then a commit-id prefix.

        Raises:
            NotFound: nothing matches.
            ValidationError: a commit prefix is ambiguous (the candidates are listed).
        """
        label = template_name or template_id
        ref = (ref or "").strip()
        with self.db.read() as con:
            if parse_version(ref):
                cid = sql.version_commit(con, template_id, ref)
                if cid is None:
                    latest = sql.latest_version(con, template_id)
                    hint = f" (latest is {'.'.join(map(str, latest))})" if latest else ""
                    raise NotFound(f"template '{label}' has no version {ref}{hint}")
                return self._commit(con, cid)
            branch = sql.get_branch(con, template_id, ref)
            if branch is not None:
                return self._commit(con, branch.head)
            if len(ref) >= MIN_PREFIX and _HEX_RE.match(ref):
                found = sql.commits_with_prefix(con, template_id, ref)
                if len(found) == 1:
                    return self._commit(con, found[0])
                if len(found) > 1:
                    shown = ", ".join(f[:12] for f in found)
                    raise ValidationError(
                        f"ambiguous commit prefix '{ref}' for template '{label}': matches {shown}"
                    )
        raise NotFound(
            f"unknown ref '{ref}' for template '{label}': not a version, a branch or a commit "
            f"id prefix ({MIN_PREFIX}+ hex characters)"
        )

    def _commit(self, con: Any, cid: str) -> Commit:
        c = sql.get_commit(con, cid)
        if c is None:
            raise NotFound(f"commit {cid[:12]} does not exist")
        return c

    def get_commit(self, cid: str) -> Commit:
        with self.db.read() as con:
            return self._commit(con, cid)

    def branches(self, template_id: str) -> list[Branch]:
        """The template's branches, ``main`` first."""
        with self.db.read() as con:
            return sql.branches_of(con, template_id)

    def branch_head(self, template_id: str, branch: str = MAIN) -> str:
        with self.db.read() as con:
            b = sql.get_branch(con, template_id, branch)
        if b is None:
            raise NotFound(f"branch '{branch}' does not exist")
        return b.head

    # -- writing ----------------------------------------------------------------------
    def commit(
        self,
        template_id: str,
        content: str,
        metadata: dict[str, Any],
        *,
        message: str,
        author: str,
        branch: str = MAIN,
        bump: Bump = "minor",
        expected_head: str | None = None,
        extra_parents: Iterable[str] = (),
        variables: list[str] | None = None,
    ) -> Commit:
        """Add a commit on top of ``branch`` and move the branch (compare-and-swap).

        On ``main`` the commit gets the next semantic version. ``expected_head`` is the head the
        caller based its edit on; if the branch has moved since, nothing is written.

        Raises:
            NotFound: the branch does not exist.
            Conflict: the branch moved since ``expected_head`` (or during this write).
        """
        from promptver.templating import extract_variables

        with self.db.transaction() as con:
            b = sql.get_branch(con, template_id, branch)
            if b is None:
                raise NotFound(f"branch '{branch}' does not exist")
            if expected_head is not None and b.head != expected_head:
                raise Conflict(
                    f"branch '{branch}' moved to {b.head[:10]} since you started editing "
                    f"{expected_head[:10]}; reload and apply your change again"
                )
            now = utcnow()
            parents = [b.head, *[p for p in extra_parents if p != b.head]]
            c = Commit(
                id="",
                template_id=template_id,
                parents=parents,
                content=content,
                variables=variables if variables is not None else extract_variables(content),
                metadata=metadata,
                message=message,
                author=author,
                created_at=now,
            )
            c.id = expected_id(c)
            sql.insert_commit(con, c)
            if not sql.move_branch(con, template_id, branch, b.head, c.id):
                raise Conflict(f"branch '{branch}' moved during the write; nothing was written")
            if branch == MAIN:
                c.version = sql.insert_version(
                    con,
                    template_id,
                    next_version(sql.latest_version(con, template_id), bump),
                    c.id,
                    now,
                )
            return c

    def root_commit(
        self,
        con: Any,
        template_id: str,
        content: str,
        metadata: dict[str, Any],
        *,
        message: str,
        author: str,
        at: datetime,
        variables: list[str],
    ) -> Commit:
        """The first commit of a new template: version 1.0.0 and the ``main`` branch."""
        c = Commit(
            id="",
            template_id=template_id,
            parents=[],
            content=content,
            variables=variables,
            metadata=metadata,
            message=message,
            author=author,
            created_at=at,
        )
        c.id = expected_id(c)
        sql.insert_commit(con, c)
        sql.insert_branch(con, template_id, MAIN, c.id, at, author)
        c.version = sql.insert_version(con, template_id, (1, 0, 0), c.id, at)
        return c

    # -- history ----------------------------------------------------------------------
    def log(
        self, template_id: str, head: str, *, first_parent: bool = False, limit: int | None = None
    ) -> list[Commit]:
        """Commits reachable from ``head`` (a commit id), newest first.

        ``first_parent`` follows only the first parent of each commit (the mainline, as
        ``git log --first-parent``); otherwise every ancestor is listed, children before parents.
        """
        with self.db.read() as con:
            commits = {c.id: c for c in sql.commits_of(con, template_id)}
        out: list[Commit] = []
        if first_parent:
            cur: str | None = head
            while cur is not None and cur in commits and (limit is None or len(out) < limit):
                c = commits[cur]
                out.append(c)
                cur = c.parents[0] if c.parents else None
            return out
        # every ancestor; a commit is emitted only after all its descendants in the set
        reach: set[str] = set()
        stack = [head]
        while stack:
            cid = stack.pop()
            if cid in reach or cid not in commits:
                continue
            reach.add(cid)
            stack.extend(commits[cid].parents)
        children: dict[str, int] = {cid: 0 for cid in reach}
        for cid in reach:
            for p in commits[cid].parents:
                if p in children:
                    children[p] += 1
        ready = [cid for cid, n in children.items() if n == 0]
        while ready and (limit is None or len(out) < limit):
            ready.sort(key=lambda x: (commits[x].created_at, x))
            cid = ready.pop()
            out.append(commits[cid])
            for p in commits[cid].parents:
                if p in children:
                    children[p] -= 1
                    if children[p] == 0:
                        ready.append(p)
        return out

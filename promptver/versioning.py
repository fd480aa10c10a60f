"""Content-addressed commits, semantic versions on ``main``, refs and history.

A commit id is the SHA-256 (hex) of a canonical JSON document holding the template id, the
parent ids, the content, the metadata, the author, the creation time (UTC, microseconds) and the
message: ``json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``. The
template id is included so that two templates can never share a commit. A chat prompt, or any
prompt with a model configuration, adds ``kind``, ``messages`` and ``config`` to the document
(a text prompt without a configuration hashes exactly as before they existed, so the ids of
older commits never change). ``fsck`` recomputes it.

Branch heads are the only thing that moves, by compare-and-swap: a writer names the head it
based its work on, and loses with :class:`~promptver.errors.Conflict` if another writer moved it.
Versions are append-only labels on commits of ``main``.

On top of that: branches (create, list with ahead/behind against ``main``, delete), diffs between
any two refs (:mod:`promptver.diffing`), a drawable history graph, and ``fsck``
(:mod:`promptver.fsck`). Merging a ref into a branch is :mod:`promptver.branch_merge`; commit ids
and versions are :mod:`promptver.commits`, the commit DAG :mod:`promptver.commit_graph`.
``docs/versioning.md`` states every rule for users.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from promptver.branch_merge import BranchMerges
from promptver.branch_merge import MergePlan as MergePlan  # re-exported: the merge moved
from promptver.branch_merge import merge_body as merge_body
from promptver.branch_merge import messages_from_body as messages_from_body
from promptver.clock import demo_clock as demo_clock  # re-exported: promptver.demo, tests
from promptver.clock import utcnow
from promptver.commit_graph import Graph
from promptver.commits import (
    MAIN,
    Bump,
    commit_id,  # noqa: F401 - re-exported (older imports, tests)
    expected_id,
    next_version,
    parse_version,
)
from promptver.config import TemplateLimits
from promptver.errors import Conflict, NotFound, Problem, ValidationError
from promptver.limits import MAX_MESSAGE, check_author, check_json, check_text
from promptver.models.core import Branch, Commit, check_name
from promptver.models.versioning import FsckReport, GraphRow
from promptver.store import templates as sql
from promptver.store import versioning as vsql
from promptver.store.db import Database

if TYPE_CHECKING:
    from promptver.diffing import Diff

MIN_PREFIX = 7
_HEX_RE = re.compile(r"\A[0-9a-fA-F]+\Z")


class VersionControl(BranchMerges):
    """Commits, refs and history of templates (one repository per template).

    Merging a ref into a branch (``plan_merge``, ``merge``) is :class:`BranchMerges`.
    """

    def __init__(self, db: Database, limits: TemplateLimits | None = None) -> None:
        self.db = db
        #: limits a merged text must respect (the workspace's ``templates`` settings)
        self.limits = limits or TemplateLimits.model_construct()

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
        kind: str = "text",
        messages: list[dict[str, Any]] | None = None,
        config: dict[str, Any] | None = None,
    ) -> Commit:
        """Add a commit on top of ``branch`` and move the branch (compare-and-swap).

        On ``main`` the commit gets the next semantic version. ``expected_head`` is the head the
        caller based its edit on; if the branch has moved since, nothing is written.

        Raises:
            NotFound: the branch does not exist.
            Conflict: the branch moved since ``expected_head`` (or during this write).
        """
        author = check_author(author)
        message = check_text(message, "message", MAX_MESSAGE, strip=False)
        from promptver.templating import extract_variables

        check_json(metadata, "metadata")
        if messages is not None:
            check_json(messages, "messages")
        check_json(config or {}, "config")
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
                kind=kind,
                messages=messages,
                config=config or {},
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
            _emit_commit(con, c, branch)
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
        kind: str = "text",
        messages: list[dict[str, Any]] | None = None,
        config: dict[str, Any] | None = None,
    ) -> Commit:
        """The first commit of a new template: version 1.0.0 and the ``main`` branch."""
        author = check_author(author)
        message = check_text(message, "message", MAX_MESSAGE, strip=False)
        check_json(metadata, "metadata")
        if messages is not None:
            check_json(messages, "messages")
        check_json(config or {}, "config")
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
            kind=kind,
            messages=messages,
            config=config or {},
        )
        c.id = expected_id(c)
        sql.insert_commit(con, c)
        sql.insert_branch(con, template_id, MAIN, c.id, at, author)
        c.version = sql.insert_version(con, template_id, (1, 0, 0), c.id, at)
        _emit_commit(con, c, MAIN)
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

    # -- graph helpers ------------------------------------------------------------------
    def _template(self, con: Any, template: str) -> dict[str, Any]:
        row = sql.template_row(con, template)
        if row is None:
            raise NotFound(f"unknown template '{template}'")
        return row

    def graph(self, template_id: str) -> Graph:
        """The commit DAG of a template (ids, parents and times only)."""
        with self.db.read() as con:
            return Graph.from_rows(vsql.commit_graph(con, template_id))

    def merge_bases(self, template_id: str, a: str, b: str) -> list[str]:
        """The lowest common ancestors of two commits (several in criss-cross histories)."""
        return self.graph(template_id).merge_bases(a, b)

    def is_ancestor(self, template_id: str, ancestor: str, descendant: str) -> bool:
        """True when ``ancestor`` is ``descendant`` or one of its ancestors."""
        return ancestor in self.graph(template_id).ancestors(descendant)

    # -- branches -----------------------------------------------------------------------
    def list_branches(self, template: str) -> list[Branch]:
        """The branches of a template (``main`` first), each with ahead/behind against ``main``.

        ``ahead`` counts commits reachable from the branch but not from ``main``; ``behind``
        counts commits of ``main`` the branch lacks.
        """
        with self.db.read() as con:
            row = self._template(con, template)
            branches = sql.branches_of(con, row["id"])
            g = Graph.from_rows(vsql.commit_graph(con, row["id"]))
        main = next((b for b in branches if b.name == MAIN), None)
        main_anc = g.ancestors(main.head) if main else set()
        out = []
        for b in branches:
            anc = g.ancestors(b.head)
            out.append(
                b.model_copy(update={"ahead": len(anc - main_anc), "behind": len(main_anc - anc)})
            )
        return out

    def create_branch(
        self, template: str, name: str, *, from_ref: str = MAIN, author: str = "unknown"
    ) -> Branch:
        """Create branch ``name`` at the commit ``from_ref`` names (default: head of ``main``).

        Raises:
            ValidationError: an invalid name, one that would shadow a version or a commit id,
                or a branch that already exists.
            NotFound: unknown template or ref.
        """
        author = check_author(author)
        problems = branch_name_problems(name)
        if problems:
            raise ValidationError("invalid branch name:", problems)
        with self.db.transaction() as con:
            row = self._template(con, template)
            if sql.get_branch(con, row["id"], name) is not None:
                raise ValidationError(
                    "invalid branch name:",
                    [
                        Problem(
                            f"template '{row['name']}' already has a branch '{name}'", field="name"
                        )
                    ],
                )
            start = self.resolve(row["id"], from_ref or MAIN, template_name=row["name"])
            now = utcnow()
            sql.insert_branch(con, row["id"], name, start.id, now, author)
            return Branch(
                template_id=row["id"], name=name, head=start.id, created_at=now, created_by=author
            )

    def delete_branch(self, template: str, name: str, *, force: bool = False) -> Branch:
        """Delete a branch (never ``main``); its commits stay and remain reachable by id.

        A branch whose head is not contained in another branch has unmerged work: it is only
        deleted with ``force``.

        Raises:
            ValidationError: ``main``, or unmerged commits without ``force``.
            NotFound: unknown template or branch.
        """
        with self.db.transaction() as con:
            row = self._template(con, template)
            if name == MAIN:
                raise ValidationError("cannot delete branch 'main': it holds the versions")
            b = sql.get_branch(con, row["id"], name)
            if b is None:
                raise NotFound(f"template '{row['name']}' has no branch '{name}'")
            if not force:
                g = Graph.from_rows(vsql.commit_graph(con, row["id"]))
                others: set[str] = set()
                for other in sql.branches_of(con, row["id"]):
                    if other.name != name:
                        others |= g.ancestors(other.head)
                unmerged = g.ancestors(b.head) - others
                if unmerged:
                    n = len(unmerged)
                    raise ValidationError(
                        f"branch '{name}' has {n} unmerged commit{'s' if n != 1 else ''} "
                        f"(head {b.head[:10]}) that no other branch contains; merge it first or "
                        "delete it with --force (the commits stay and can be found by id)"
                    )
            sql.delete_branch(con, row["id"], name)
            return b

    # -- diff ---------------------------------------------------------------------------
    def diff(self, template: str, a: str, b: str, *, context: int = 3) -> Diff:
        """The difference from ref ``a`` to ref ``b`` of a template (text, words, variables,
        metadata)."""
        from promptver.diffing import diff_prompts

        with self.db.read() as con:
            row = self._template(con, template)
            old = self.resolve(row["id"], a, template_name=row["name"])
            new = self.resolve(row["id"], b, template_name=row["name"])
        d = diff_prompts(
            old,
            new,
            old_label=f"a/{row['name']}@{a}",
            new_label=f"b/{row['name']}@{b}",
            context=context,
        )
        d.old_commit, d.new_commit = old.id, new.id
        return d

    # -- history graph ------------------------------------------------------------------
    def history(self, template: str, *, limit: int | None = None) -> list[GraphRow]:
        """Every commit reachable from a branch head or a version, newest first, each in a lane.

        Lane 0 is ``main``'s first-parent chain; each other branch (by name) gets the next lane
        for the commits of its first-parent chain that no earlier lane took; commits only
        reachable through merges of deleted branches get lanes of their own (no name).
        """
        with self.db.read() as con:
            row = self._template(con, template)
            commits = {c.id: c for c in sql.commits_of(con, row["id"])}
            branches = sql.branches_of(con, row["id"])
            versions = sql.versions_of(con, row["id"])
        g = Graph(
            {cid: c.parents for cid, c in commits.items()},
            {cid: c.created_at for cid, c in commits.items()},
        )
        heads = [b.head for b in branches] + [v.commit_id for v in versions]
        order = g.topo_order(heads)
        if limit is not None:
            order = order[:limit]
        shown = set(order)
        lane_of: dict[str, int] = {}
        lane_names: list[str] = []
        for b in branches:  # main first, then by name
            cur: str | None = b.head
            took = False
            while cur is not None and cur in commits and cur not in lane_of:
                lane_of[cur] = len(lane_names)
                took = True
                cur = commits[cur].parents[0] if commits[cur].parents else None
            if took:
                lane_names.append(b.name)
        for cid in order:  # leftovers: first-parent chains of deleted branches
            if cid in lane_of:
                continue
            cur = cid
            while cur is not None and cur in commits and cur not in lane_of:
                lane_of[cur] = len(lane_names)
                cur = commits[cur].parents[0] if commits[cur].parents else None
            lane_names.append("")
        row_of = {cid: i for i, cid in enumerate(order)}
        at_head: dict[str, list[str]] = {}
        for b in branches:
            at_head.setdefault(b.head, []).append(b.name)
        out = []
        for i, cid in enumerate(order):
            c = commits[cid]
            ps = [p for p in c.parents if p in shown]
            out.append(
                GraphRow(
                    row=i,
                    commit=cid,
                    parents=c.parents,
                    parent_rows=[row_of[p] for p in ps],
                    parent_lanes=[lane_of[p] for p in ps],
                    lane=lane_of[cid],
                    lane_name=lane_names[lane_of[cid]],
                    version=c.version,
                    message=c.message,
                    author=c.author,
                    created_at=c.created_at,
                    branches=at_head.get(cid, []),
                )
            )
        return out

    # -- integrity ----------------------------------------------------------------------
    def fsck(self) -> FsckReport:
        """Check every commit hash, parent link, branch head, version label, experiment arm and
        deployment (:func:`promptver.fsck.fsck`). Nothing is repaired."""
        from promptver.fsck import fsck

        return fsck(self.db)


# ---- webhooks and merge bodies -----------------------------------------------------------------


def _emit_commit(con: Any, c: Commit, branch: str) -> None:
    """The ``commit.created`` webhook event, in the commit's transaction (not for the
    short-lived branch a prompt-file sync merges from: its merge commit is the event)."""
    from promptver.outbox import COMMIT_CREATED, SYNC_BRANCH_PREFIX, emit

    if branch.startswith(SYNC_BRANCH_PREFIX):
        return

    def data() -> dict[str, Any]:
        row = sql.template_row(con, c.template_id)
        return {
            "template": row["name"] if row else None,
            "template_id": c.template_id,
            "commit": c.id,
            "version": c.version,
            "branch": branch,
            "parents": list(c.parents),
            "author": c.author,
            "message": c.message,
            "kind": c.kind,
            "variables": list(c.variables),
        }

    emit(con, COMMIT_CREATED, data, at=c.created_at)


def branch_name_problems(name: str) -> list[Problem]:
    """Why ``name`` cannot be a branch name (empty when it can)."""
    try:
        check_name(name, "branch name")
    except ValueError as exc:
        return [Problem(str(exc), field="name")]
    if parse_version(name):
        return [
            Problem(
                f"branch name '{name}' looks like a version; versions are refs of "
                "their own, pick another name",
                field="name",
            )
        ]
    if len(name) >= MIN_PREFIX and _HEX_RE.match(name):
        return [
            Problem(
                f"branch name '{name}' looks like a commit id; add a letter outside a-f or a '-'",
                field="name",
            )
        ]
    return []

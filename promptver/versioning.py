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
any two refs (:mod:`promptver.diffing`), three-way merges against the merge base
(:mod:`promptver.merging`; criss-cross histories merge their several lowest common ancestors into
one virtual base first, as git's recursive strategy does), a drawable history graph, and
``fsck``. ``docs/versioning.md`` states every rule for users.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from promptver.clock import demo_clock as demo_clock  # re-exported: promptver.demo, tests
from promptver.clock import utcnow
from promptver.commit_graph import EPOCH, Graph
from promptver.commits import (
    MAIN,
    Bump,
    commit_id,  # noqa: F401 - re-exported (older imports, tests)
    expected_id,
    next_version,
    parse_version,
    variables_used,
)
from promptver.config import TemplateLimits
from promptver.diffing import Diff, diff_prompts
from promptver.errors import (
    Conflict,
    MergeConflict,
    NotFound,
    Problem,
    ValidationError,
)
from promptver.limits import MAX_MESSAGE, check_author, check_json, check_text
from promptver.merging import (
    MetadataMerge,
    TextMerge,
    conflict_markers,
    merge_metadata,
    merge_texts,
)
from promptver.models import (
    Branch,
    Commit,
    FsckReport,
    GraphRow,
    MergeResult,
    check_name,
)
from promptver.store import templates as sql
from promptver.store import versioning as vsql
from promptver.store.db import Database

MIN_PREFIX = 7
_HEX_RE = re.compile(r"\A[0-9a-fA-F]+\Z")


class VersionControl:
    """Commits, refs and history of templates (one repository per template)."""

    def __init__(self, db: Database, limits: TemplateLimits | None = None) -> None:
        self.db = db
        #: limits a merged text must respect (the workspace's ``templates`` settings)
        self.limits = limits or TemplateLimits()

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

    # -- merge --------------------------------------------------------------------------
    def plan_merge(self, template: str, source: str, *, into: str = MAIN) -> MergePlan:
        """Work out what merging ``source`` (any ref) into branch ``into`` would do, without
        writing anything: up to date, fast-forward, or a three-way merge (clean or not).

        Raises:
            NotFound: unknown template, ref or target branch.
        """
        with self.db.read() as con:
            row = self._template(con, template)
            target = sql.get_branch(con, row["id"], into)
            if target is None:
                raise NotFound(f"template '{row['name']}' has no branch '{into}' to merge into")
            theirs = self.resolve(row["id"], source, template_name=row["name"])
            ours = self._commit(con, target.head)
            g = Graph.from_rows(vsql.commit_graph(con, row["id"]))
            plan = MergePlan(
                template_id=row["id"],
                template_name=row["name"],
                target=into,
                source=source,
                ours=ours,
                theirs=theirs,
            )
            if theirs.id in g.ancestors(ours.id):
                plan.kind = "up_to_date"
                plan.bases = [theirs.id]
                return plan
            if ours.id in g.ancestors(theirs.id):
                plan.kind = "fast_forward"
                plan.bases = [ours.id]
                plan.base_content, plan.base_metadata = merge_body(ours), ours.metadata
                plan.base_config = ours.config
            else:
                plan.kind = "merge"
                plan.bases = g.merge_bases(ours.id, theirs.id)
                plan.base_content, plan.base_metadata, plan.base_config = _virtual_base(
                    g, lambda cid: self._commit(con, cid), ours.id, theirs.id
                )
        if plan.kind == "merge" and ours.kind != theirs.kind:
            raise MergeConflict(
                f"merging '{source}' into '{into}' of template '{row['name']}': '{into}' is a "
                f"{ours.kind} prompt and '{source}' a {theirs.kind} prompt (kind); nothing was "
                "written. Make both the same kind on one side first, then merge",
                [],
            )
        plan.text = merge_texts(
            plan.base_content,
            merge_body(ours),
            merge_body(theirs),
            ours_label=into,
            theirs_label=source,
        )
        plan.metadata = merge_metadata(plan.base_metadata, ours.metadata, theirs.metadata)
        plan.config = merge_metadata(plan.base_config, ours.config, theirs.config)
        return plan

    def merge(
        self,
        template: str,
        source: str,
        *,
        into: str = MAIN,
        message: str | None = None,
        author: str = "unknown",
        bump: Bump = "minor",
        resolution: str | None = None,
        resolution_metadata: dict[str, Any] | None = None,
        resolution_config: dict[str, Any] | None = None,
        expected_head: str | None = None,
        expected_source: str | None = None,
        no_ff: bool = False,
    ) -> MergeResult:
        """Merge ref ``source`` into branch ``into`` of a template.

        Up to date: nothing is written. Fast-forward (``into`` is an ancestor of ``source``):
        the branch moves to the source commit, which gets the next version when ``into`` is
        ``main``. Otherwise a merge commit with parents ``[into head, source commit]`` holds the
        three-way merge of text (a chat prompt: its messages, each a unit), metadata and model
        configuration (or ``resolution`` / ``resolution_metadata`` / ``resolution_config``, the
        caller's resolved versions; a chat resolution is the messages as JSON lines, see
        :func:`merge_body`); on ``main`` it gets the next version.

        ``expected_head`` / ``expected_source`` are the commits the caller saw (for example in
        a conflict editor); if either branch moved since, nothing is written.

        Raises:
            MergeConflict: overlapping changes and no resolution; lists the hunks.
            Conflict: a head moved (``expected_head``/``expected_source`` or during the write).
            ValidationError: the merged text is invalid or still holds conflict markers.
            NotFound: unknown template, ref or branch.
        """
        author = check_author(author)
        if resolution_metadata is not None:
            check_json(resolution_metadata, "resolution_metadata")
        with self.db.transaction() as con:
            plan = self.plan_merge(template, source, into=into)
            if expected_head is not None and plan.ours.id != expected_head:
                raise Conflict(
                    f"branch '{into}' moved to {plan.ours.id[:10]} since you looked at it "
                    f"({expected_head[:10]}); nothing was written, review the merge again"
                )
            if expected_source is not None and plan.theirs.id != expected_source:
                raise Conflict(
                    f"'{source}' moved to {plan.theirs.id[:10]} since you looked at it "
                    f"({expected_source[:10]}); nothing was written, review the merge again"
                )
            result = MergeResult(
                template_id=plan.template_id,
                target=into,
                source=source,
                commit=plan.ours.id,
                version=plan.ours.version,
                merge_bases=plan.bases,
            )
            resolved = (resolution, resolution_metadata, resolution_config)
            if plan.kind == "up_to_date":
                if any(r is not None for r in resolved):
                    raise ValidationError(
                        f"nothing to merge: '{into}' already contains "
                        f"'{source}', so there is nothing to resolve"
                    )
                result.up_to_date = True
                return result
            if plan.kind == "fast_forward" and not no_ff and all(r is None for r in resolved):
                version = self._fast_forward(con, plan, bump)
                return result.model_copy(
                    update={"commit": plan.theirs.id, "version": version, "fast_forward": True}
                )
            assert plan.text is not None and plan.metadata is not None and plan.config is not None
            if resolution is None and not plan.text.clean:
                raise self._conflict_error(plan)
            if resolution_metadata is None and not plan.metadata.clean:
                raise self._conflict_error(plan)
            if resolution_config is None and not plan.config.clean:
                raise self._conflict_error(plan)
            if plan.kind == "fast_forward":  # no_ff or an edited result: the source as it is
                content = merge_body(plan.theirs) if resolution is None else resolution
                metadata = dict(
                    plan.theirs.metadata if resolution_metadata is None else resolution_metadata
                )
                config = dict(
                    plan.theirs.config if resolution_config is None else resolution_config
                )
            else:
                content = plan.text.text() if resolution is None else resolution
                metadata = dict(
                    plan.metadata.merged if resolution_metadata is None else resolution_metadata
                )
                config = dict(
                    plan.config.merged if resolution_config is None else resolution_config
                )
            kind = plan.theirs.kind if plan.kind == "fast_forward" else plan.ours.kind
            messages = None
            if kind == "chat":
                markers = conflict_markers(content)
                if markers:
                    raise ValidationError("the merged text still has conflict markers:", markers)
                messages, content = messages_from_body(content), ""
            variables, messages, config = self._check_merged(
                content, metadata, kind=kind, messages=messages, config=config
            )
            c = self.commit(
                plan.template_id,
                content,
                metadata,
                message=message or f"Merge {source} into {into}",
                author=author,
                branch=into,
                bump=bump,
                expected_head=plan.ours.id,
                extra_parents=[plan.theirs.id],
                variables=variables,
                kind=kind,
                messages=messages,
                config=config,
            )
            return result.model_copy(
                update={
                    "commit": c.id,
                    "version": c.version,
                    "conflicts_resolved": len(plan.text.conflicts) if resolution is not None else 0,
                }
            )

    def _fast_forward(self, con: Any, plan: MergePlan, bump: Bump) -> str | None:
        if not sql.move_branch(con, plan.template_id, plan.target, plan.ours.id, plan.theirs.id):
            raise Conflict(f"branch '{plan.target}' moved during the merge; nothing was written")
        if plan.target != MAIN:
            return None
        if plan.theirs.version:
            return plan.theirs.version
        return sql.insert_version(
            con,
            plan.template_id,
            next_version(sql.latest_version(con, plan.template_id), bump),
            plan.theirs.id,
            utcnow(),
        )

    def _check_merged(
        self,
        content: str,
        metadata: dict[str, Any],
        *,
        kind: str = "text",
        messages: list[dict[str, Any]] | None = None,
        config: dict[str, Any] | None = None,
    ) -> tuple[list[str], list[dict[str, Any]] | None, dict[str, Any]]:
        """The merged prompt's variables, messages and configuration, once they pass the checks.

        Raises:
            ValidationError: conflict markers remain, or the merged prompt is invalid.
        """
        from promptver.chat import normalise_config, normalise_messages, validate_prompt

        markers = conflict_markers(content)
        if markers:
            raise ValidationError("the merged text still has conflict markers:", markers)
        report = validate_prompt(kind, content, messages, config, metadata, limits=self.limits)
        report.raise_for_errors(
            "the merged prompt is invalid:"
            if kind == "chat" or config
            else "the merged text is invalid:"
        )
        return (
            report.variables,
            normalise_messages(messages) if messages is not None else None,
            normalise_config(config),
        )

    def _conflict_error(self, plan: MergePlan) -> MergeConflict:
        assert plan.text is not None and plan.metadata is not None
        parts = []
        for i, h in enumerate(plan.text.hunks, start=1):
            if plan.chat:  # one message per line: name the messages
                last = h.base_start + len(h.base_lines) - 2
                where = (
                    f"messages[{h.base_start - 1}..{last}]"
                    if len(h.base_lines) > 1
                    else f"messages[{h.base_start - 1}]"
                    if h.base_lines
                    else f"after messages[{h.base_start - 2}]"
                )
                parts.append(
                    f"{where}: {plan.target} has {_preview(h.ours)}, "
                    f"{plan.source} has {_preview(h.theirs)}"
                )
                continue
            where = (
                f"base lines {h.base_start}-{h.base_start + len(h.base_lines) - 1}"
                if len(h.base_lines) > 1
                else f"base line {h.base_start}"
                if h.base_lines
                else f"after base line {h.base_start - 1}"
            )
            parts.append(
                f"hunk {i} at {where}: {plan.target} has {_preview(h.ours)}, "
                f"{plan.source} has {_preview(h.theirs)}"
            )
        for mc in plan.metadata.conflicts:
            parts.append(f"metadata key '{mc.key}' changed on both sides")
        for cc in plan.config.conflicts if plan.config is not None else []:
            parts.append(
                f"config.{cc.key} changed on both sides ({plan.target}: "
                f"{_json_short(cc.ours)}, {plan.source}: {_json_short(cc.theirs)})"
            )
        n = len(plan.text.hunks)
        kinds = []
        if n:
            unit = "message" if plan.chat else "hunk"
            kinds.append(f"{n} conflicting {unit}{'s' if n != 1 else ''}")
        if plan.metadata.conflicts:
            kinds.append("conflicting metadata")
        if plan.config is not None and plan.config.conflicts:
            paths = ", ".join("config." + c.key for c in plan.config.conflicts)
            kinds.append(f"conflicting config ({paths})")
        what = " and ".join(kinds) if kinds else "conflicts"
        message = (
            f"merging '{plan.source}' into '{plan.target}' of template '{plan.template_name}' "
            f"found {what}; nothing was written: "
            + "; ".join(parts)
            + f". Resolve them in the History & Diff screen, or write the merged text to a file "
            f"and run: promptver merge {plan.template_name} {plan.source} --into {plan.target}"
            " --resolve-file FILE"
            + (" --resolve-metadata-file META.json" if plan.metadata.conflicts else "")
        )
        error = MergeConflict(
            message,
            plan.text.hunks,
            base=plan.base_content,
            ours=merge_body(plan.ours),
            theirs=merge_body(plan.theirs),
            marked=plan.text.marked(),
        )
        error.config_conflicts = [
            {**c.as_dict(), "key": "config." + c.key}
            for c in (plan.config.conflicts if plan.config is not None else [])
        ]
        return error

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


def merge_body(c: Commit) -> str:
    """The text a three-way merge works on: a text prompt's content, or a chat prompt's
    messages one per line (canonical JSON), so that each message merges as a unit."""
    if c.kind != "chat":
        return c.content
    return "\n".join(json.dumps(m, sort_keys=True, ensure_ascii=False) for m in (c.messages or []))


def messages_from_body(text: str) -> list[dict[str, Any]]:
    """The messages of a merged chat body (see :func:`merge_body`).

    Raises:
        ValidationError: a line is not a message (a hand-edited resolution), naming it.
    """
    out: list[dict[str, Any]] = []
    for i, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            m = json.loads(line)
        except ValueError:
            m = None
        if not isinstance(m, dict):
            raise ValidationError(
                "the merged messages are invalid:",
                [Problem("not a message (one JSON object per line)", field="messages", line=i)],
            )
        out.append(m)
    return out


Base = tuple[str, dict[str, Any], dict[str, Any]]


def _virtual_base(g: Graph, load: Any, a: str, b: str) -> Base:
    """The body (see :func:`merge_body`), metadata and model configuration to use as the merge
    base of ``a`` and ``b``.

    One lowest common ancestor: its content. Several (a criss-cross history): like git's
    recursive strategy, the bases are merged with each other, oldest first, each pair against
    its own merge base (recursively); conflicting hunks stay in the virtual base with their
    markers, and conflicting metadata keys keep the value of that deeper base. Changes that both
    criss-crossing merges already contain then count as common history rather than as edits.
    """
    memo: dict[str, Base] = {}
    counter = [0]

    def content(cid: str) -> Base:
        if cid not in memo:
            c = load(cid)
            memo[cid] = (merge_body(c), c.metadata, c.config)
        return memo[cid]

    def base_of(x: str, y: str) -> Base:
        bases = g.merge_bases(x, y)
        if not bases:  # unrelated histories (never within one template): an empty base
            return "", {}, {}
        cur = bases[0]
        for nxt in bases[1:]:
            sub_text, sub_meta, sub_config = base_of(cur, nxt)
            (t1, m1, c1), (t2, m2, c2) = content(cur), content(nxt)
            tm = merge_texts(sub_text, t1, t2)
            mm = merge_metadata(sub_meta, m1, m2)
            cm = merge_metadata(sub_config, c1, c2)
            counter[0] += 1
            vid = f"virtual:{counter[0]}"
            g.add_virtual(
                vid, [cur, nxt], max(g.created.get(cur, EPOCH), g.created.get(nxt, EPOCH))
            )
            memo[vid] = (
                tm.marked() if not tm.clean else tm.text(),
                mm.resolve({c.key: "base" for c in mm.conflicts}),
                cm.resolve({c.key: "base" for c in cm.conflicts}),
            )
            cur = vid
        return content(cur)

    return base_of(a, b)


@dataclass
class MergePlan:
    """What merging ``source`` into ``target`` would do (see :meth:`VersionControl.plan_merge`).

    ``kind`` is ``up_to_date``, ``fast_forward`` or ``merge``. ``text`` and ``metadata`` hold
    the three-way merges against the base (for a fast-forward they simply equal the source).
    """

    template_id: str
    template_name: str
    target: str
    source: str
    ours: Commit
    theirs: Commit
    kind: Literal["up_to_date", "fast_forward", "merge"] = "merge"
    bases: list[str] = field(default_factory=list)
    base_content: str = ""
    base_metadata: dict[str, Any] = field(default_factory=dict)
    base_config: dict[str, Any] = field(default_factory=dict)
    text: TextMerge | None = None
    metadata: MetadataMerge | None = None
    #: the three-way merge of the model configurations (conflicts named by dotted path)
    config: MetadataMerge | None = None

    @property
    def chat(self) -> bool:
        """The prompts are chat prompts: ``text`` merges their messages, one per line."""
        return self.ours.kind == "chat"

    @property
    def clean(self) -> bool:
        """No text, metadata or configuration conflicts."""
        return (
            (self.text is None or self.text.clean)
            and (self.metadata is None or self.metadata.clean)
            and (self.config is None or self.config.clean)
        )

    @property
    def criss_cross(self) -> bool:
        return len(self.bases) > 1

    def preview(self) -> Diff:
        """What a clean merge would change on the target: the diff from the target's head to
        the merged prompt (text or messages, metadata and configuration)."""
        from types import SimpleNamespace

        assert self.text is not None and self.metadata is not None and self.config is not None
        body = self.text.text()
        chat = self.theirs.kind == "chat" if self.kind == "fast_forward" else self.chat
        messages = messages_from_body(body) if chat else None
        merged = SimpleNamespace(
            kind="chat" if chat else "text",
            content="" if chat else body,
            messages=messages,
            config=self.config.merged,
            metadata=self.metadata.merged,
            variables=variables_used(body, messages) if chat else variables_used(body, None),
        )
        return diff_prompts(self.ours, merged)


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


def _json_short(value: Any, width: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _preview(lines: list[str], width: int = 40) -> str:
    if not lines:
        return "nothing (deleted)"
    text = " / ".join(lines)
    text = text if len(text) <= width else text[: width - 1] + "…"
    return repr(text)

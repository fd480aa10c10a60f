"""Merging a ref into a branch of a template: the plan, the conflict report and the write.

:meth:`BranchMerges.plan_merge` works out, without writing, whether merging ``source`` into a
branch is up to date, a fast-forward or a three-way merge, and computes that merge of the text
(a chat prompt's messages, one per line: see :func:`merge_body`), the metadata and the model
configuration against the merge base. A criss-cross history has several lowest common ancestors:
they are merged with each other first into one virtual base, as git's recursive strategy does.
:meth:`BranchMerges.merge` writes the result as a merge commit (or moves the branch), or raises
:class:`~promptver.errors.MergeConflict` naming every conflict. The pure line and key merges are
:mod:`promptver.merging`.

:class:`BranchMerges` is a part of :class:`promptver.versioning.VersionControl`, which provides
``db``, ``limits``, ``resolve``, ``commit``, ``_commit`` and ``_template``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from promptver.clock import utcnow
from promptver.commit_graph import EPOCH, Graph
from promptver.commits import MAIN, Bump, next_version, variables_used
from promptver.errors import Conflict, MergeConflict, NotFound, Problem, ValidationError
from promptver.limits import check_author, check_json
from promptver.models.core import Commit
from promptver.models.versioning import MergeResult
from promptver.store import templates as sql
from promptver.store import versioning as vsql

if TYPE_CHECKING:  # the three-way merge and the diff load with the first merge, not at start
    from promptver.diffing import Diff
    from promptver.merging import MetadataMerge, TextMerge


class BranchMerges:
    """Plan and write merges (a part of :class:`~promptver.versioning.VersionControl`)."""

    def plan_merge(self, template: str, source: str, *, into: str = MAIN) -> MergePlan:
        """Work out what merging ``source`` (any ref) into branch ``into`` would do, without
        writing anything: up to date, fast-forward, or a three-way merge (clean or not).

        Raises:
            NotFound: unknown template, ref or target branch.
        """
        from promptver.merging import merge_metadata, merge_texts

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
        from promptver.merging import conflict_markers

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
        from promptver.merging import conflict_markers

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
    from promptver.merging import merge_metadata, merge_texts

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

        from promptver.diffing import diff_prompts

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


def _json_short(value: Any, width: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _preview(lines: list[str], width: int = 40) -> str:
    if not lines:
        return "nothing (deleted)"
    text = " / ".join(lines)
    text = text if len(text) <= width else text[: width - 1] + "…"
    return repr(text)

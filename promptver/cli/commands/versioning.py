"""``branch …``, ``diff``, ``merge`` and ``fsck``: git-like version control of templates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptver.cli.context import Context, nesting_guard, read_text_arg, table
from promptver.diffing import Diff
from promptver.errors import MergeConflict, PromptverError
from promptver.limits import load_yaml, read_text_file

if TYPE_CHECKING:
    from promptver.models.core import Branch


def register(sub: Any) -> None:
    bp = sub.add_parser("branch", help="create, list and delete branches of a template")
    bsub = bp.add_subparsers(dest="branch_command", metavar="ACTION")
    bsub.required = True

    p = bsub.add_parser("create", help="create a branch (default: from the head of main)")
    p.add_argument("ref", metavar="REF", help="template name or id")
    p.add_argument("name", metavar="NAME", help="the new branch")
    p.add_argument(
        "--from",
        dest="from_ref",
        default="main",
        metavar="REF2",
        help="a version, branch or commit prefix to start from (default main)",
    )
    p.add_argument("--author")
    p.set_defaults(handler=cmd_branch_create)

    p = bsub.add_parser("list", help="branches with their head and ahead/behind against main")
    p.add_argument("ref", metavar="REF", help="template name or id")
    p.set_defaults(handler=cmd_branch_list)

    p = bsub.add_parser("delete", help="delete a branch (its commits are kept)")
    p.add_argument("ref", metavar="REF", help="template name or id")
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--force", action="store_true", help="delete even if no other branch contains its commits"
    )
    p.set_defaults(handler=cmd_branch_delete)

    p = sub.add_parser("diff", help="what changed between two refs of a template")
    p.add_argument("ref", metavar="REF", help="template name or id")
    p.add_argument("a", metavar="A", help="the old side: a version, branch or commit prefix")
    p.add_argument("b", metavar="B", help="the new side")
    p.add_argument(
        "--context",
        type=int,
        default=3,
        metavar="N",
        help="unchanged lines around each change (default 3)",
    )
    p.add_argument(
        "--word-diff",
        action="store_true",
        help="show changed words inline as [-old-]{+new+} instead of a unified diff",
    )
    p.set_defaults(handler=cmd_diff)

    p = sub.add_parser("merge", help="merge a ref into a branch (three-way, or fast-forward)")
    p.add_argument("ref", metavar="REF", help="template name or id")
    p.add_argument("source", metavar="SOURCE", help="the branch (or any ref) to merge")
    p.add_argument(
        "--into",
        default="main",
        metavar="BRANCH",
        help="the branch that receives the merge (default main)",
    )
    p.add_argument("--message", "-m", metavar="M")
    p.add_argument(
        "--resolve-file",
        metavar="PATH",
        help="the resolved text of a conflicting merge ('-' for stdin)",
    )
    p.add_argument(
        "--resolve-metadata-file",
        metavar="PATH",
        help="the resolved metadata (JSON or YAML mapping) when metadata conflicts",
    )
    p.add_argument(
        "--write-conflicts",
        metavar="PATH",
        help="on conflict, write the text with conflict markers here to edit it",
    )
    p.add_argument(
        "--bump",
        choices=["major", "minor", "patch"],
        default="minor",
        help="version part to bump when merging into main (default minor)",
    )
    p.add_argument(
        "--no-ff",
        action="store_true",
        help="record a merge commit even when a fast-forward is possible",
    )
    p.add_argument(
        "--expect-head",
        metavar="COMMIT",
        help="refuse if the target branch no longer points at this commit",
    )
    p.add_argument("--author")
    p.set_defaults(handler=cmd_merge)

    p = sub.add_parser("fsck", help="check the integrity of every commit, branch and version")
    p.set_defaults(handler=cmd_fsck)


# ---- branches ---------------------------------------------------------------------------------


def _branch_dict(b: Branch) -> dict[str, Any]:
    return b.model_dump(mode="python")


def cmd_branch_create(ctx: Context) -> None:
    a = ctx.args
    b = ctx.ws.versions.create_branch(a.ref, a.name, from_ref=a.from_ref, author=ctx.author)
    ctx.emit(_branch_dict(b), f"created branch {b.name} at {b.head[:10]} (from {a.from_ref})")


def cmd_branch_list(ctx: Context) -> None:
    branches = ctx.ws.versions.list_branches(ctx.args.ref)
    ctx.emit(
        [_branch_dict(b) for b in branches],
        lambda: table(
            [
                [
                    b.name,
                    b.head[:10],
                    b.ahead,
                    b.behind,
                    b.created_at.strftime("%Y-%m-%d %H:%M"),
                    b.created_by,
                ]
                for b in branches
            ],
            ["BRANCH", "HEAD", "AHEAD", "BEHIND", "CREATED (UTC)", "BY"],
        ),
    )


def cmd_branch_delete(ctx: Context) -> None:
    a = ctx.args
    b = ctx.ws.versions.delete_branch(a.ref, a.name, force=a.force)
    ctx.emit(
        _branch_dict(b) | {"deleted": True},
        f"deleted branch {b.name} (was {b.head[:10]}); its commits are kept: "
        f"'promptver branch create {a.ref} {b.name} --from {b.head[:12]}' brings it back",
    )


# ---- diff -------------------------------------------------------------------------------------


def _word_diff_text(d: Diff) -> str:
    out: list[str] = []
    for block in d.blocks:
        if block.op == "equal":
            continue
        out.append(f"@@ old line {block.old_start}, new line {block.new_start} @@")
        if block.op == "replace":
            pieces = []
            for w in block.words:
                if w.op == "equal":
                    pieces.append(w.old)
                if w.op in ("delete", "replace"):
                    pieces.append(f"[-{w.old}-]")
                if w.op in ("insert", "replace"):
                    pieces.append(f"{{+{w.new}+}}")
            out.append("".join(pieces).rstrip("\n"))
        else:
            out.extend(f"[-{x}-]" for x in block.old_lines)
            out.extend(f"{{+{x}+}}" for x in block.new_lines)
    return "\n".join(out)


def _diff_human(d: Diff, word: bool) -> str:
    if d.identical:
        return "no differences"
    parts = []
    text = _word_diff_text(d) if word else d.unified.rstrip("\n")
    if text:
        parts.append(text)
    if d.variables_added or d.variables_removed:
        parts.append("")
        if d.variables_added:
            parts.append("variables added: " + ", ".join(d.variables_added))
        if d.variables_removed:
            parts.append("variables removed: " + ", ".join(d.variables_removed))
    if d.metadata_changes:
        parts.append("")
        parts.append("metadata:")
        for m in d.metadata_changes:
            if m.op == "added":
                parts.append(f"  + {m.key} = {json.dumps(m.new, ensure_ascii=False)}")
            elif m.op == "removed":
                parts.append(f"  - {m.key} (was {json.dumps(m.old, ensure_ascii=False)})")
            else:
                parts.append(
                    f"  ~ {m.key}: {json.dumps(m.old, ensure_ascii=False)} -> "
                    f"{json.dumps(m.new, ensure_ascii=False)}"
                )
    return "\n".join(parts)


def cmd_diff(ctx: Context) -> None:
    a = ctx.args
    d = ctx.ws.versions.diff(a.ref, a.a, a.b, context=a.context)
    ctx.emit(d.as_dict(), lambda: _diff_human(d, a.word_diff))


# ---- merge ------------------------------------------------------------------------------------


def _read_metadata(path: str) -> dict[str, Any]:
    # the core's bounded reader: size cap, no YAML aliases, nesting limited
    with nesting_guard("--resolve-metadata-file", path):
        data = load_yaml(read_text_file(path, what="metadata file"), path)
    if not isinstance(data, dict):
        raise PromptverError(f"metadata in {path} must be a mapping (a JSON object)")
    return data


def cmd_merge(ctx: Context) -> None:
    a = ctx.args
    resolution = read_text_arg(a, "resolve_text", "resolve_file") if a.resolve_file else None
    meta = _read_metadata(a.resolve_metadata_file) if a.resolve_metadata_file else None
    try:
        r = ctx.ws.versions.merge(
            a.ref,
            a.source,
            into=a.into,
            message=a.message,
            author=ctx.author,
            bump=a.bump,
            resolution=resolution,
            resolution_metadata=meta,
            expected_head=a.expect_head,
            no_ff=a.no_ff,
        )
    except MergeConflict as exc:
        if a.write_conflicts:
            try:
                Path(a.write_conflicts).write_text(exc.marked, encoding="utf-8")
            except OSError as err:
                raise PromptverError(f"cannot write {a.write_conflicts}: {err}") from None
            exc.message += (
                f" (the text with conflict markers is in {a.write_conflicts}: edit it"
                " and pass it to --resolve-file)"
            )
        if ctx.json:  # scripts get the hunks on stdout; the error line still goes to stderr
            ctx.emit({"conflicts": [h.as_dict() for h in exc.hunks], "marked": exc.marked})
        raise
    if r.up_to_date:
        human = f"already up to date: {a.into} contains {a.source}"
    elif r.fast_forward:
        human = f"fast-forward: {a.into} now at {r.commit[:10]}" + (
            f", version {r.version}" if r.version else ""
        )
    else:
        human = (
            f"merged {a.source} into {a.into}: commit {r.commit[:10]}"
            + (f", version {r.version}" if r.version else "")
            + (f" ({r.conflicts_resolved} conflicts resolved)" if r.conflicts_resolved else "")
        )
    ctx.emit(r.as_contract(), human)


# ---- fsck -------------------------------------------------------------------------------------


def cmd_fsck(ctx: Context) -> int:
    report = ctx.ws.versions.fsck()

    def human() -> str:
        head = (
            f"checked {report.templates} templates, {report.commits} commits, "
            f"{report.branches} branches, {report.versions} versions"
        )
        if report.ok:
            return f"ok: {head}"
        lines = [
            f"{len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}: {head}"
        ]
        for p in report.problems:
            lines.append(
                f"  [{p.kind}] {p.template or p.template_id or '-'} {p.object}: {p.message}"
            )
        return "\n".join(lines)

    ctx.emit(report, human)
    return 0 if report.ok else 1

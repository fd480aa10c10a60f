"""``export`` and ``sync``: prompts as files in a folder (docs/prompts-in-git.md)."""

from __future__ import annotations

import sys
from typing import Any

from promptver.cli.context import Context, visible


def register(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write one prompt file per template into a folder (for git)",
        description="Write DIR/<name>.yaml for every active template (head of main) and "
        "DIR/.promptver-sync.json, the base of later syncs.",
    )
    p.add_argument("dir", metavar="DIR")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser(
        "sync",
        help="reconcile a folder of prompt files with the database, both ways",
        description="File changed: a new commit. Database changed: the file is rewritten. "
        "Both: a three-way merge with the recorded commit as base; a conflict exits 1 and "
        "writes nothing. A new file creates a template.",
    )
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--branch", default="main", help="commit file changes on this branch")
    p.add_argument("--message", "-m", help="message of the commits a sync makes")
    p.add_argument("--author")
    p.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 when a sync would change anything (for CI)",
    )
    p.set_defaults(handler=cmd_sync)


def cmd_export(ctx: Context) -> None:
    from promptver.filesync import FileSync

    names = FileSync(ctx.ws).export(ctx.args.dir)
    ctx.emit(
        {"written": names},
        f"exported {len(names)} template{'s' if len(names) != 1 else ''} to {ctx.args.dir}",
    )


def cmd_sync(ctx: Context) -> int:
    from promptver.filesync import FileSync, iter_conflict_lines

    a = ctx.args
    result = FileSync(ctx.ws).sync(
        a.dir, branch=a.branch, message=a.message, author=ctx.author, check=a.check
    )
    data = result.as_dict()

    def human() -> str:
        if result.conflicts:
            return "nothing was written: resolve the conflicts and sync again"
        verbs = (
            ("created", "would create" if a.check else "created"),
            ("committed", "would commit" if a.check else "committed"),
            ("written", "would write" if a.check else "wrote"),
        )
        lines = [f"{v}: {', '.join(data[k])}" for k, v in verbs if data[k]]
        if not lines:
            return f"in sync ({len(data['unchanged'])} unchanged)"
        return "\n".join(lines)

    ctx.emit(data, human)
    for line in iter_conflict_lines(result):
        sys.stderr.write(f"error: {visible(line)}\n")
    if result.conflicts:
        return 1
    if a.check and result.changed:
        return 1
    return 0

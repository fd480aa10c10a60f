"""``template …``, ``render`` and ``log``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from promptver.cli.context import (
    Context,
    UsageError,
    limit_arg,
    nesting_guard,
    parse_vars,
    read_text_arg,
    table,
)
from promptver.errors import PromptverError
from promptver.models import Template


def register(sub: Any) -> None:
    tp = sub.add_parser("template", help="create, update, show and list templates")
    tsub = tp.add_subparsers(dest="template_command", metavar="ACTION")
    tsub.required = True

    p = tsub.add_parser("create", help="create a template (version 1.0.0)")
    p.add_argument("name")
    _content_args(p)
    p.add_argument("--category", default="")
    p.add_argument("--description", default="")
    p.add_argument(
        "--tag",
        action="append",
        default=[],
        dest="tags",
        metavar="T",
        help="a tag (repeat for several)",
    )
    p.add_argument(
        "--metadata-file",
        metavar="PATH",
        help="JSON or YAML metadata, e.g. a variable schema under 'variables'",
    )
    p.add_argument("--author")
    p.add_argument("--message", "-m")
    p.set_defaults(handler=cmd_create)

    p = tsub.add_parser("update", help="commit a new text (a new version on main)")
    p.add_argument("ref", metavar="REF", help="template name or id")
    _content_args(p)
    p.add_argument("--branch", default="main", help="branch to commit on (default main)")
    p.add_argument("--bump", choices=["major", "minor", "patch"], default="minor")
    p.add_argument("--metadata-file", metavar="PATH")
    p.add_argument(
        "--expect-head", metavar="COMMIT", help="refuse if the branch head is no longer this commit"
    )
    p.add_argument("--author")
    p.add_argument("--message", "-m")
    p.set_defaults(handler=cmd_update)

    p = tsub.add_parser("show", help="show a template (head of main, or --version)")
    p.add_argument("ref", metavar="REF")
    p.add_argument("--version", help="a version, branch or commit prefix")
    p.set_defaults(handler=cmd_show)

    p = tsub.add_parser("list", help="list templates")
    p.add_argument("--category")
    p.add_argument("--tag", action="append", dest="tags", metavar="T")
    p.add_argument("--search", help="text to look for in names, descriptions, tags and content")
    p.add_argument("--all", action="store_true", help="include archived templates")
    p.set_defaults(handler=cmd_list)

    p = tsub.add_parser("edit", help="change description, category or tags (not versioned)")
    p.add_argument("ref", metavar="REF")
    p.add_argument("--category")
    p.add_argument("--description")
    p.add_argument(
        "--tag",
        action="append",
        dest="tags",
        metavar="T",
        help="replace the tags (repeat for several)",
    )
    p.set_defaults(handler=cmd_edit)

    for action, helptext in (
        ("archive", "hide a template (history is kept)"),
        ("restore", "bring back an archived template"),
    ):
        p = tsub.add_parser(action, help=helptext)
        p.add_argument("ref", metavar="REF")
        p.add_argument("--author")
        p.set_defaults(handler=cmd_archive if action == "archive" else cmd_restore)

    p = tsub.add_parser("validate", help="check a text without saving it")
    _content_args(p)
    p.add_argument("--metadata-file", metavar="PATH")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("render", help="render a template with variables")
    p.add_argument("ref", metavar="REF")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--version", help="a version, branch or commit prefix (default: head of main)"
    )
    which.add_argument(
        "--env",
        metavar="ENV",
        help="what is deployed to this environment (as get_prompt serves it)",
    )
    p.add_argument("--user-id", metavar="U", help="with --env: the user asking (get_prompt)")
    p.add_argument("--var", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--vars-file", metavar="PATH", help="JSON object of variables")
    p.add_argument("--no-strict", action="store_true", help="ignore unknown variables")
    p.set_defaults(handler=cmd_render)

    p = sub.add_parser("log", help="commit history of a template")
    p.add_argument("ref", metavar="REF")
    p.add_argument("--branch", default="main")
    p.add_argument("--first-parent", action="store_true", help="follow only first parents")
    p.add_argument(
        "--all",
        action="store_true",
        dest="all_branches",
        help="every commit reachable from any branch or version",
    )
    p.add_argument("--limit", type=limit_arg)
    p.set_defaults(handler=cmd_log)


def _content_args(p: Any) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--content", help="the template text")
    g.add_argument("--file", metavar="PATH", help="read the text from a file ('-' for stdin)")


def _metadata(ctx: Context) -> dict[str, Any] | None:
    path = getattr(ctx.args, "metadata_file", None)
    if not path:
        return None
    try:
        with nesting_guard("--metadata-file", path):
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PromptverError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PromptverError(f"cannot read metadata from {path}: {exc}") from None
    if not isinstance(data, dict):
        raise PromptverError(f"metadata in {path} must be a mapping")
    return data


def _show(t: Template) -> str:
    lines = [
        f"{t.name}  {t.version or '(no version)'}  commit {t.commit[:12]}",
        f"id: {t.id}   category: {t.category or '-'}   tags: {', '.join(t.tags) or '-'}"
        + ("" if t.is_active else "   (archived)"),
    ]
    if t.description:
        lines.append(f"description: {t.description}")
    lines.append(f"variables: {', '.join(t.variables) or '-'}")
    lines += ["", t.content]
    return "\n".join(lines)


def _summary_text(verb: str, t: Template) -> str:
    where = f" on branch {t.branch}" if t.branch else ""
    return f"{verb} {t.name} {t.version or ''}{where} (commit {t.commit[:12]})".replace("  ", " ")


def cmd_create(ctx: Context) -> None:
    a = ctx.args
    t = ctx.ws.templates.create(
        a.name,
        read_text_arg(a),
        description=a.description,
        category=a.category,
        tags=a.tags,
        metadata=_metadata(ctx),
        author=ctx.author,
        message=a.message,
    )
    ctx.emit(t.summary(), _summary_text("created", t))


def cmd_update(ctx: Context) -> None:
    a = ctx.args
    t = ctx.ws.templates.update(
        a.ref,
        read_text_arg(a),
        metadata=_metadata(ctx),
        branch=a.branch,
        bump=a.bump,
        author=ctx.author,
        message=a.message,
        expected_head=a.expect_head,
    )
    ctx.emit(t.summary(), _summary_text("committed", t))


def cmd_show(ctx: Context) -> None:
    t = ctx.ws.templates.get(ctx.args.ref, ctx.args.version)
    ctx.emit(t, lambda: _show(t))


def cmd_list(ctx: Context) -> None:
    a = ctx.args
    items = ctx.ws.templates.list(
        category=a.category, tags=a.tags, search=a.search, include_archived=a.all
    )
    ctx.emit(
        items,
        lambda: (
            table(
                [
                    [
                        t.name,
                        t.version,
                        t.category,
                        ", ".join(t.tags),
                        ", ".join(t.variables),
                        "" if t.is_active else "archived",
                    ]
                    for t in items
                ],
                ["NAME", "VERSION", "CATEGORY", "TAGS", "VARIABLES", ""],
            )
            if items
            else "no templates (create one with 'promptver template create')"
        ),
    )


def cmd_edit(ctx: Context) -> None:
    a = ctx.args
    t = ctx.ws.templates.update_info(
        a.ref, description=a.description, category=a.category, tags=a.tags
    )
    ctx.emit(t, f"updated {t.name}")


def cmd_archive(ctx: Context) -> None:
    t = ctx.ws.templates.archive(ctx.args.ref, author=ctx.author)
    ctx.emit(t.summary() | {"is_active": t.is_active}, f"archived {t.name}")


def cmd_restore(ctx: Context) -> None:
    t = ctx.ws.templates.restore(ctx.args.ref)
    ctx.emit(t.summary() | {"is_active": t.is_active}, f"restored {t.name}")


def cmd_validate(ctx: Context) -> int:
    from promptver.templating import validate

    report = validate(read_text_arg(ctx.args), _metadata(ctx), limits=ctx.settings.templates)

    def human() -> str:
        lines = [
            f"{'ok' if report.ok else 'invalid'}: {report.chars} characters, about "
            f"{report.tokens} tokens, variables: {', '.join(report.variables) or '-'}"
        ]
        lines += [f"error: {p}" for p in report.errors]
        lines += [f"warning: {p}" for p in report.warnings]
        return "\n".join(lines)

    ctx.emit(report, human)
    return 0 if report.ok else 1


def _vars(ctx: Context) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if ctx.args.vars_file:
        try:
            with nesting_guard("--vars-file", ctx.args.vars_file):
                loaded = json.loads(Path(ctx.args.vars_file).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PromptverError(f"file not found: {ctx.args.vars_file}") from None
        except (OSError, ValueError) as exc:
            raise PromptverError(
                f"cannot read variables from {ctx.args.vars_file}: {exc}"
            ) from None
        if not isinstance(loaded, dict):
            raise UsageError("--vars-file must hold a JSON object")
        values.update(loaded)
    values.update(parse_vars(ctx.args.var))
    return values


def cmd_render(ctx: Context) -> None:
    a = ctx.args
    if a.env is not None:
        from promptver.templates import render_template

        p = ctx.ws.get_prompt(a.ref, a.env, user_id=a.user_id)
        text = render_template(
            p.content, p.metadata, _vars(ctx), strict=not a.no_strict, max_chars=p.max_render_chars
        )
        ctx.emit(
            {"text": text, "version": p.version, "commit": p.commit, "variant": p.variant},
            text,
            exact=True,
        )
        return
    if a.user_id is not None:
        raise UsageError("--user-id needs --env (users get what is deployed to an environment)")
    t = ctx.ws.templates.get(a.ref, a.version)
    text = ctx.ws.templates.render(t.id, _vars(ctx), version=t.commit, strict=not a.no_strict)
    ctx.emit(
        {"text": text, "version": t.version, "commit": t.commit, "variant": None}, text, exact=True
    )


def cmd_log(ctx: Context) -> None:
    a = ctx.args
    ws = ctx.ws
    if a.all_branches:
        rows = ws.versions.history(a.ref, limit=a.limit)
        data = [
            {
                "commit": r.commit,
                "parents": r.parents,
                "version": r.version,
                "message": r.message,
                "author": r.author,
                "created_at": r.created_at,
                "branches": r.branches,
            }
            for r in rows
        ]
        ctx.emit(
            data,
            lambda: table(
                [
                    [
                        r.commit[:10],
                        r.version or "",
                        ", ".join(r.branches),
                        r.lane_name,
                        r.created_at.strftime("%Y-%m-%d %H:%M"),
                        r.author,
                        r.message,
                    ]
                    for r in rows
                ],
                ["COMMIT", "VERSION", "HEADS", "LANE", "DATE (UTC)", "AUTHOR", "MESSAGE"],
            ),
        )
        return
    t = ws.templates.get(a.ref, branch=a.branch) if a.branch != "main" else ws.templates.get(a.ref)
    commits = ws.versions.log(t.id, t.commit, first_parent=a.first_parent, limit=a.limit)
    data = [
        {
            "commit": c.id,
            "parents": c.parents,
            "version": c.version,
            "message": c.message,
            "author": c.author,
            "created_at": c.created_at,
        }
        for c in commits
    ]
    ctx.emit(
        data,
        lambda: table(
            [
                [
                    c.id[:10],
                    c.version or "",
                    c.created_at.strftime("%Y-%m-%d %H:%M"),
                    c.author,
                    c.message,
                ]
                for c in commits
            ],
            ["COMMIT", "VERSION", "DATE (UTC)", "AUTHOR", "MESSAGE"],
        ),
    )

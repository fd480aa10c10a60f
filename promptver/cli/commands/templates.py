"""``template …``, ``render`` and ``log``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from promptver.limits import load_json, load_yaml, read_text_file

if TYPE_CHECKING:
    from promptver.models.core import Template


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
    p.add_argument(
        "--format",
        choices=["text", "yaml"],
        default="text",
        help="yaml: the prompt file that recreates this version (for create/update --file)",
    )
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
    p.add_argument(
        "--history",
        metavar="FILE.json",
        help="chat prompts: the messages for the placeholder (a JSON list), or an object "
        "{PLACEHOLDER: [messages]} when there are several",
    )
    p.add_argument(
        "--format",
        choices=["openai", "anthropic"],
        help="print exactly the keyword arguments for that SDK's create call (JSON)",
    )
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
    g.add_argument(
        "--file",
        metavar="PATH",
        help="read the text from a file ('-' for stdin); a .yaml, .yml or .json file is a "
        "prompt file (kind, messages or content, config: see docs/prompts.md)",
    )


PROMPT_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def _prompt_input(ctx: Context) -> dict[str, Any]:
    """What ``--content``/``--file`` give: ``{"content"}`` for a text, or the fields of a prompt
    file (``kind``, ``content`` or ``messages``, ``config``, and the file's ``doc``)."""
    a = ctx.args
    path = getattr(a, "file", None)
    if not path or path == "-" or Path(path).suffix.lower() not in PROMPT_FILE_SUFFIXES:
        return {"content": read_text_arg(a)}
    from promptver.chat import parse_document

    raw = read_text_file(path, what="prompt file")
    doc = load_json(raw, path) if path.lower().endswith(".json") else load_yaml(raw, path)
    d = parse_document(doc, source=path)
    return {
        "kind": d.kind,
        "content": d.content,
        "messages": d.messages,
        "config": d.config,
        "doc": d,
    }


def _metadata(ctx: Context) -> dict[str, Any] | None:
    path = getattr(ctx.args, "metadata_file", None)
    if not path:
        return None
    # the core's bounded reader: size cap, no YAML aliases, nesting limited
    with nesting_guard("--metadata-file", path):
        data = load_yaml(read_text_file(path, what="metadata file"), path)
    if not isinstance(data, dict):
        raise PromptverError(f"metadata in {path} must be a mapping")
    return data


def _show(t: Template) -> str:
    from promptver.chat import readable

    lines = [
        f"{t.name}  {t.version or '(no version)'}  commit {t.commit[:12]}  ({t.kind})",
        f"id: {t.id}   category: {t.category or '-'}   tags: {', '.join(t.tags) or '-'}"
        + ("" if t.is_active else "   (archived)"),
    ]
    if t.description:
        lines.append(f"description: {t.description}")
    lines.append(f"variables: {', '.join(t.variables) or '-'}")
    lines += ["", readable(t.kind, t.content, t.messages or [], t.config)]
    return "\n".join(lines)


def _show_json(t: Template) -> dict[str, Any]:
    """The contract's ``template show --json``: a chat template's ``content`` is null."""
    return t.model_dump(mode="json")


def prompt_file_text(t: Template) -> str:
    """The prompt file (YAML) that recreates this version of ``t``."""
    from promptver.chat import dump_prompt_file, prompt_document

    return dump_prompt_file(
        prompt_document(
            t.kind,
            t.content,
            t.messages,
            t.config,
            name=t.name,
            version=t.version,
            description=t.description,
            category=t.category,
            tags=t.tags,
            metadata=t.metadata,
        )
    )


def _summary_text(verb: str, t: Template) -> str:
    where = f" on branch {t.branch}" if t.branch else ""
    return f"{verb} {t.name} {t.version or ''}{where} (commit {t.commit[:12]})".replace("  ", " ")


def cmd_create(ctx: Context) -> None:
    a = ctx.args
    given = _prompt_input(ctx)
    doc = given.pop("doc", None)
    metadata = _metadata(ctx)
    if doc is not None:  # a prompt file's identity fills what the command line leaves out
        if doc.name is not None and doc.name != a.name:
            raise UsageError(f"the prompt file names '{doc.name}', the command '{a.name}'")
        metadata = metadata if metadata is not None else doc.metadata
    t = ctx.ws.templates.create(
        a.name,
        **given,
        description=a.description or (doc.description if doc else None) or "",
        category=a.category or (doc.category if doc else None) or "",
        tags=a.tags or (doc.tags if doc else None) or [],
        metadata=metadata,
        author=ctx.author,
        message=a.message,
    )
    ctx.emit(t.summary(), _summary_text("created", t))


def cmd_update(ctx: Context) -> None:
    a = ctx.args
    given = _prompt_input(ctx)
    doc = given.pop("doc", None)
    if doc is not None:
        # a prompt file is the whole prompt: a file without config removes the configuration
        given["config"] = doc.config
    metadata = _metadata(ctx)
    if metadata is None and doc is not None and doc.metadata is not None:
        metadata = doc.metadata
    t = ctx.ws.templates.update(
        a.ref,
        **given,
        metadata=metadata,
        branch=a.branch,
        bump=a.bump,
        author=ctx.author,
        message=a.message,
        expected_head=a.expect_head,
    )
    ctx.emit(t.summary(), _summary_text("committed", t))


def cmd_show(ctx: Context) -> None:
    t = ctx.ws.templates.get(ctx.args.ref, ctx.args.version)
    if ctx.args.format == "yaml":
        ctx.out.write(prompt_file_text(t))
        return
    ctx.emit(_show_json(t), lambda: _show(t))


def cmd_list(ctx: Context) -> None:
    from promptver.template_list import list_templates

    a = ctx.args
    # plain records, the same JSON as the models: the commonest command loads no pydantic
    items = list_templates(
        ctx.ws.db, category=a.category, tags=a.tags, search=a.search, include_archived=a.all
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
    from promptver.chat import validate_document, validate_prompt

    a = ctx.args
    path = getattr(a, "file", None)
    if path and path != "-" and Path(path).suffix.lower() in PROMPT_FILE_SUFFIXES:
        raw = read_text_file(path, what="prompt file")
        doc = load_json(raw, path) if path.lower().endswith(".json") else load_yaml(raw, path)
        report = validate_document(doc, _metadata(ctx), limits=ctx.settings.templates)
    else:
        report = validate_prompt(
            "text", read_text_arg(a), None, None, _metadata(ctx), limits=ctx.settings.templates
        )

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
        path = ctx.args.vars_file
        with nesting_guard("--vars-file", path):
            loaded = load_json(read_text_file(path, what="variables file"), path)
        if not isinstance(loaded, dict):
            raise UsageError("--vars-file must hold a JSON object")
        values.update(loaded)
    values.update(parse_vars(ctx.args.var))
    return values


def _history(ctx: Context, placeholders: list[str]) -> dict[str, Any]:
    """The message lists ``--history FILE.json`` gives, by placeholder name."""
    path = ctx.args.history
    if path is None:
        return {}
    data = load_json(read_text_file(path, what="history file"), path)
    if isinstance(data, dict):
        return data
    if not isinstance(data, list):
        raise UsageError("--history must hold a JSON list of messages (or an object of lists)")
    if len(placeholders) != 1:
        names = ", ".join(placeholders) or "none"
        raise UsageError(
            f"--history as a list needs exactly one placeholder in the prompt (it has: {names}); "
            "give an object {PLACEHOLDER: [messages]} instead"
        )
    return {placeholders[0]: data}


def _render_out(ctx: Context, p: Any, info: dict[str, Any]) -> None:
    """Render prompt ``p`` (a served Prompt) and print it as the options ask."""
    from promptver.chat import placeholders_of

    a = ctx.args
    values = _vars(ctx) | _history(ctx, placeholders_of(p.chat_messages or []))
    strict = not a.no_strict
    if a.format is not None:
        payload = (
            p.openai(strict, **values) if a.format == "openai" else p.anthropic(strict, **values)
        )
        ctx.out.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return
    if p.kind == "chat":
        messages = p.messages(strict, **values)
        ctx.emit(
            {"messages": messages, "config": p.config, **info},
            lambda: "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages),
            exact=True,
        )
        return
    text = p.render_text(values, strict=strict)
    ctx.emit({"text": text, **info}, text, exact=True)


def cmd_render(ctx: Context) -> None:
    a = ctx.args
    if a.env is not None:
        p = ctx.ws.get_prompt(a.ref, a.env, user_id=a.user_id)
        _render_out(ctx, p, {"version": p.version, "commit": p.commit, "variant": p.variant})
        return
    if a.user_id is not None:
        raise UsageError("--user-id needs --env (users get what is deployed to an environment)")
    p = ctx.ws.templates.prompt(a.ref, a.version)
    _render_out(ctx, p, {"version": p.version, "commit": p.commit, "variant": None})


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

"""``experiment create|edit|start|stop|list|show|delete`` and ``route``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from promptver.cli.commands import results as results_cli
from promptver.cli.context import Context, nesting_guard, table, to_jsonable
from promptver.experiment_defs import STATUSES

if TYPE_CHECKING:
    from promptver.models.experiments import Experiment


def experiment_actions(sub: Any) -> Any:
    """The sub-commands of ``experiment`` (created on first use), so that other command
    modules (e.g. ``experiment results``) can add their actions to the same group."""
    parser = sub.choices.get("experiment")
    if parser is None:
        parser = sub.add_parser(
            "experiment", help="configure, start, stop and inspect A/B experiments"
        )
        actions = parser.add_subparsers(dest="experiment_command", metavar="ACTION")
        actions.required = True
        return actions
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def register(sub: Any) -> None:
    esub = experiment_actions(sub)

    p = esub.add_parser("create", help="create a draft experiment from a YAML or JSON file")
    p.add_argument(
        "--file",
        required=True,
        metavar="PATH",
        help="the experiment file ('-' reads stdin); see docs/experiments.md",
    )
    p.add_argument("--author")
    p.set_defaults(handler=cmd_create)

    p = esub.add_parser(
        "edit",
        help="replace a draft's configuration from a file (once "
        "started, only description and hypothesis may change)",
    )
    p.add_argument("experiment", metavar="ID", help="experiment id or name")
    p.add_argument("--file", required=True, metavar="PATH")
    p.add_argument("--author")
    p.set_defaults(handler=cmd_edit)

    p = esub.add_parser(
        "results",
        help="statistics of an experiment (running: now; ended: the frozen final results)",
    )
    p.add_argument("experiment", metavar="ID", help="experiment id or name")
    results_cli.add_arguments(p)
    p.set_defaults(handler=cmd_results)

    p = esub.add_parser("start", help="start a draft: freeze its variants and route users")
    p.add_argument("experiment", metavar="ID", help="experiment id or name")
    p.add_argument("--author")
    p.set_defaults(handler=cmd_start)

    p = esub.add_parser(
        "stop", help="stop a running experiment (completed; or stopped early with --reason)"
    )
    p.add_argument("experiment", metavar="ID", help="experiment id or name")
    p.add_argument("--reason", help="why it stops early (needed before its planned end)")
    p.add_argument("--author")
    p.set_defaults(handler=cmd_stop)

    p = esub.add_parser("list", help="list experiments (running first)")
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--template", metavar="REF", help="only experiments on this template")
    p.set_defaults(handler=cmd_list)

    p = esub.add_parser("show", help="show an experiment's configuration and history")
    p.add_argument("experiment", metavar="ID", help="experiment id or name")
    p.add_argument(
        "--as-file",
        action="store_true",
        help="print its configuration as an experiment file (YAML)",
    )
    p.set_defaults(handler=cmd_show)

    p = esub.add_parser("delete", help="delete a draft")
    p.add_argument("experiment", metavar="ID", help="experiment id or name")
    p.add_argument("--author")
    p.set_defaults(handler=cmd_delete)

    p = sub.add_parser("route", help="which variant an experiment gives a user, and the bucket")
    p.add_argument("experiment", metavar="EXPERIMENT", help="experiment id or name")
    p.add_argument("user_id", metavar="USER_ID")
    p.set_defaults(handler=cmd_route)


def _spec(path: str) -> dict[str, Any]:
    from promptver.experiments import load_spec, read_spec_file

    with nesting_guard("--file", path):
        if path == "-":
            return load_spec(sys.stdin.read(), "stdin")
        return read_spec_file(path)


def _split(e: Experiment) -> str:
    total = sum(v.weight for v in e.variants)
    return " / ".join(f"{v.name} {100 * v.weight / total:.4g}%" for v in e.variants)


def _show(e: Experiment) -> str:
    lines = [
        f"{e.name}  [{e.status}]  id {e.id}",
        f"template {e.template or e.template_id} in {e.environment}"
        + (f"   coverage {100 * e.coverage:.4g}%" if e.coverage < 1 else ""),
    ]
    if e.hypothesis:
        lines.append(f"hypothesis: {e.hypothesis}")
    if e.description:
        lines.append(f"description: {e.description}")
    lines.append("variants:")
    total = sum(v.weight for v in e.variants)
    for i, v in enumerate(e.variants):
        role = " (control)" if i == 0 else ""
        lines.append(
            f"  {v.name}{role}: {v.ref} -> {(v.commit or '')[:10]}  {100 * v.weight / total:.4g}%"
        )
    lines.append(
        "metrics: " + ", ".join(f"{m.name} ({m.role}, {m.direction} is better)" for m in e.metrics)
    )
    lines.append(
        f"alpha {e.alpha:g}   minimum sample {e.minimum_sample_size} users per variant"
        f"   salt {e.salt}"
    )
    if e.start_at or e.end_at:
        lines.append(
            f"window: {e.start_at.isoformat() if e.start_at else 'start'} .. "
            f"{e.end_at.isoformat() if e.end_at else 'stop'}"
        )
    for label, value in (
        ("created", e.created_at),
        ("started", e.started_at),
        ("stopped", e.stopped_at),
    ):
        if value:
            lines.append(f"{label}: {value.isoformat()}")
    if e.stop_reason:
        lines.append(f"reason: {e.stop_reason}")
    return "\n".join(lines)


def _verb(e: Experiment, verb: str) -> str:
    return f"{verb} experiment {e.name} ({e.id}): {e.status}"


def cmd_create(ctx: Context) -> None:
    e = ctx.ws.experiments.create(_spec(ctx.args.file), author=ctx.author)
    ctx.emit(e, _verb(e, "created") + f"; start it with 'promptver experiment start {e.id}'")


def cmd_edit(ctx: Context) -> None:
    e = ctx.ws.experiments.update(ctx.args.experiment, _spec(ctx.args.file), author=ctx.author)
    ctx.emit(e, _verb(e, "updated"))


def cmd_start(ctx: Context) -> None:
    e = ctx.ws.experiments.start(ctx.args.experiment, author=ctx.author)
    ctx.emit(
        e, _verb(e, "started") + f"; routing {e.template} users in {e.environment}: " + _split(e)
    )


def cmd_stop(ctx: Context) -> None:
    e = ctx.ws.experiments.stop(ctx.args.experiment, reason=ctx.args.reason, author=ctx.author)
    ctx.emit(e, _verb(e, "stopped"))


def cmd_list(ctx: Context) -> None:
    items = ctx.ws.experiments.list(status=ctx.args.status, template=ctx.args.template)
    ctx.emit(
        items,
        lambda: (
            table(
                [
                    [
                        e.id,
                        e.name,
                        e.template,
                        e.environment,
                        e.status,
                        _split(e),
                        e.primary_metric.name,
                        e.started_at.strftime("%Y-%m-%d %H:%M") if e.started_at else "",
                        e.stopped_at.strftime("%Y-%m-%d %H:%M") if e.stopped_at else "",
                    ]
                    for e in items
                ],
                [
                    "ID",
                    "NAME",
                    "TEMPLATE",
                    "ENV",
                    "STATUS",
                    "SPLIT",
                    "PRIMARY",
                    "STARTED (UTC)",
                    "STOPPED (UTC)",
                ],
            )
            if items
            else "no experiments (create one with 'promptver experiment create --file')"
        ),
    )


def cmd_results(ctx: Context) -> None:
    results_cli.show_results(ctx, ctx.ws.experiments.get(ctx.args.experiment))


def cmd_show(ctx: Context) -> None:
    svc = ctx.ws.experiments
    e = svc.get(ctx.args.experiment)
    if ctx.args.as_file:
        from promptver.experiments import dump_spec, to_spec

        spec = to_spec(e)
        ctx.emit(spec, dump_spec(spec))
        return
    history = svc.history(e.id)
    data = to_jsonable(e) | {"results": svc.stored_results(e.id), "history": history}

    def human() -> str:
        lines = [_show(e), "", "history:"]
        lines += [
            f"  {h.at.strftime('%Y-%m-%d %H:%M:%S')}  {h.action:<10} {h.author}"
            + (f"  {h.detail}" if h.detail else "")
            for h in history
        ]
        return "\n".join(lines)

    ctx.emit(data, human)


def cmd_delete(ctx: Context) -> None:
    e = ctx.ws.experiments.get(ctx.args.experiment)
    ctx.ws.experiments.delete(e.id, author=ctx.author)
    ctx.emit({"id": e.id, "deleted": True}, f"deleted draft experiment {e.name} ({e.id})")


def cmd_route(ctx: Context) -> None:
    variant, bucket = ctx.ws.experiments.route(ctx.args.experiment, ctx.args.user_id)
    ctx.emit(
        {"variant": variant, "bucket": bucket},
        f"{variant if variant is not None else '(outside coverage)'}  bucket {bucket!r}",
    )

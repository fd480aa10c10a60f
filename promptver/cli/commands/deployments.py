"""``deploy``, ``promote``, ``rollback``, ``deployments`` and ``environments``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from promptver.cli.context import Context, limit_arg, table

if TYPE_CHECKING:
    from promptver.models.deployments import Deployment, GateReport

_STATUS_MARK = {
    "passed": "ok",
    "failed": "FAILED",
    "overridden": "overridden",
    "skipped": "skipped",
}


def register(sub: Any) -> None:
    p = sub.add_parser("deploy", help="put a version live in an environment (after the gates)")
    p.add_argument("ref", metavar="REF", help="template name or id")
    p.add_argument("version", metavar="VERSION", help="a version, commit prefix or branch")
    p.add_argument("--env", required=True, metavar="ENV", help="the environment")
    _common(p)
    p.add_argument(
        "--force",
        action="store_true",
        help="deploy even if it was not deployed to the previous environment "
        "(needs --reason; recorded)",
    )
    p.add_argument(
        "--reason",
        metavar="TEXT",
        help="why: required with --force; also lets a version that did not win an "
        "experiment replace the live one where that gate is on (recorded)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="only show what the gates decide (exit 1 if they refuse)",
    )
    p.set_defaults(handler=cmd_deploy)

    p = sub.add_parser("promote", help="deploy what is live in ENV to the next environment")
    p.add_argument("ref", metavar="REF", help="template name or id")
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="ENV",
        help="the environment whose live version moves on",
    )
    _common(p)
    p.add_argument("--force", action="store_true", help="as for deploy (needs --reason)")
    p.add_argument("--reason", metavar="TEXT", help="as for deploy")
    p.set_defaults(handler=cmd_promote)

    p = sub.add_parser("rollback", help="restore the version live before the current one")
    p.add_argument("ref", metavar="REF", help="template name or id")
    p.add_argument("--env", required=True, metavar="ENV", help="the environment")
    p.add_argument(
        "--to",
        metavar="VERSION",
        help="restore this version (or commit prefix) instead of the previous one",
    )
    _common(p)
    p.set_defaults(handler=cmd_rollback)

    p = sub.add_parser("deployments", help="deployment history of a template, newest first")
    p.add_argument("ref", metavar="REF", help="template name or id")
    p.add_argument("--env", metavar="ENV", help="only this environment")
    p.add_argument("--limit", type=limit_arg, metavar="N", help="at most N entries")
    p.set_defaults(handler=cmd_history)

    p = sub.add_parser("environments", help="environments in promotion order, with their rules")
    p.set_defaults(handler=cmd_environments)


def _common(p: Any) -> None:
    p.add_argument("--note", "-m", default="", metavar="TEXT", help="what and why (recorded)")
    p.add_argument("--author", help="who deploys (default: $PROMPTVER_AUTHOR or login name)")


def _gate_lines(report: GateReport) -> list[str]:
    lines = []
    for g in report.gates:
        if g.status == "skipped":
            continue
        lines.append(f"  {_STATUS_MARK[g.status]:<10} {g.gate}: {g.message}")
        for p in g.problems:
            where = ", ".join(f"{k} {p[k]}" for k in ("line", "column") if p.get(k) is not None)
            lines.append(
                f"             {p.get('severity')}: {where + ': ' if where else ''}"
                f"{p.get('message')}"
            )
    return lines


def _done(verb: str, d: Deployment) -> str:
    lines = [
        f"{verb} {d.template} {d.label()} to {d.environment} as #{d.id}"
        + (f" (replaced {d.replaced_label()})" if d.replaced_commit else " (first deployment)")
    ]
    if d.forced:
        lines.append(f"  forced: {d.force_reason}")
    if d.evidence_override_reason:
        lines.append(f"  without an experiment win: {d.evidence_override_reason}")
    warnings = [
        p
        for g in d.gate_report.get("gates", [])
        for p in g.get("problems", [])
        if p.get("severity") == "warning"
    ]
    for p in warnings:
        lines.append(f"  warning: {p.get('message')}")
    return "\n".join(lines)


def cmd_deploy(ctx: Context) -> int:
    a = ctx.args
    deps = ctx.ws.deployments
    if a.dry_run:
        report = deps.check(a.ref, a.version, a.env, force=a.force, reason=a.reason)
        data = report.model_dump(mode="json") | {"ok": report.ok}
        ctx.emit(
            data,
            lambda: "\n".join(
                [
                    f"{'would deploy' if report.ok else 'refused:'} {report.template} "
                    f"{report.version or report.commit[:10]} to {report.environment}"
                ]
                + _gate_lines(report)
            ),
        )
        return 0 if report.ok else 1
    d = deps.deploy(
        a.ref, a.version, a.env, note=a.note, author=ctx.author, force=a.force, reason=a.reason
    )
    ctx.emit(d, lambda: _done("deployed", d))
    return 0


def cmd_promote(ctx: Context) -> None:
    a = ctx.args
    d = ctx.ws.deployments.promote(
        a.ref, a.source, note=a.note, author=ctx.author, force=a.force, reason=a.reason
    )
    ctx.emit(d, lambda: _done("promoted", d))


def cmd_rollback(ctx: Context) -> None:
    a = ctx.args
    d = ctx.ws.deployments.rollback(a.ref, a.env, to=a.to, note=a.note, author=ctx.author)
    ctx.emit(d, lambda: _done("rolled back", d))


def cmd_history(ctx: Context) -> None:
    a = ctx.args
    items = ctx.ws.deployments.history(a.ref, a.env, limit=a.limit)

    def human() -> str:
        if not items:
            where = f" in {a.env}" if a.env else ""
            return (
                f"no deployments of {a.ref}{where} yet (promptver deploy {a.ref} VERSION --env ENV)"
            )
        rows = []
        for d in items:
            flags = ", ".join(
                x
                for x in (
                    "forced" if d.forced else "",
                    "no experiment win" if d.evidence_override_reason else "",
                )
                if x
            )
            rows.append(
                [
                    f"#{d.id}",
                    d.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    d.environment,
                    d.action,
                    d.label(),
                    d.replaced_label() or "-",
                    d.author,
                    flags,
                    d.note,
                ]
            )
        return table(
            rows,
            [
                "ID",
                "DATE (UTC)",
                "ENVIRONMENT",
                "ACTION",
                "VERSION",
                "REPLACED",
                "AUTHOR",
                "FLAGS",
                "NOTE",
            ],
        )

    ctx.emit(items, human)


def cmd_environments(ctx: Context) -> None:
    infos = ctx.ws.deployments.environment_info()
    ctx.emit(
        infos,
        lambda: table(
            [
                [
                    i.position,
                    i.name,
                    i.previous or "-",
                    ", ".join(c.removesuffix("_validation") for c in i.required_checks) or "-",
                    "yes" if i.require_previous else "no",
                    "yes" if i.require_experiment_win else "no",
                ]
                for i in infos
            ],
            ["#", "ENVIRONMENT", "PROMOTED FROM", "CHECKS", "REQUIRE PREVIOUS", "REQUIRE WIN"],
        ),
    )

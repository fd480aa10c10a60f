"""``alerts add|list|edit|enable|disable|delete|check|fired|ack`` and ``trends``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from promptver.cli.context import (
    MAX_LIMIT,
    Context,
    UsageError,
    duration_arg,
    int_arg,
    limit_arg,
    table,
)
from promptver.errors import ValidationError
from promptver.metric_defs import METRICS, p_text, parse_duration, signed_pct_text, value_text

if TYPE_CHECKING:
    from promptver.models.trends import Alert, AlertCheck, AlertRule, TrendReport


def register(sub: Any) -> None:
    ap = sub.add_parser("alerts", help="alert rules on metrics, their checks and fired alerts")
    asub = ap.add_subparsers(dest="alerts_command", metavar="ACTION")
    asub.required = True

    p = asub.add_parser(
        "add",
        help="create a rule: METRIC COMPARATOR THRESHOLD over a window",
        description="Fire when METRIC over a window compares with THRESHOLD, e.g. "
        "'alerts add latency_p95 gt 1500 --window 24h --template qa-basic --env production'. "
        "Rates are fractions (5 % is 0.05).",
    )
    p.add_argument(
        "metric",
        metavar="METRIC",
        help=f"{', '.join(METRICS)}, custom:NAME or a custom metric's name",
    )
    p.add_argument("comparator", metavar="COMPARATOR", help=">, >=, <, <= (or gt, ge, lt, le)")
    p.add_argument("threshold", metavar="THRESHOLD", help="a number")
    _rule_options(p, defaults=True)
    p.add_argument("--disabled", action="store_true", help="create it switched off")
    p.set_defaults(handler=cmd_add)

    p = asub.add_parser("list", help="every rule, oldest first")
    p.add_argument("--enabled", action="store_true", help="only enabled rules")
    p.set_defaults(handler=cmd_list)

    p = asub.add_parser("edit", help="change fields of a rule (fired alerts keep theirs)")
    p.add_argument("rule", metavar="RULE_ID")
    p.add_argument("--metric", metavar="METRIC")
    p.add_argument("--comparator", metavar="COMPARATOR")
    p.add_argument("--threshold", metavar="THRESHOLD")
    _rule_options(p, defaults=False)
    p.set_defaults(handler=cmd_edit)

    for name, helptext in (
        ("enable", "switch a rule on"),
        ("disable", "switch a rule off (it keeps its alerts)"),
        ("delete", "delete a rule (the alerts it fired stay)"),
    ):
        p = asub.add_parser(name, help=helptext)
        p.add_argument("rule", metavar="RULE_ID")
        p.add_argument("--author", help="who (default: $PROMPTVER_AUTHOR or login name)")
        p.set_defaults(handler=cmd_switch, switch=name)

    p = asub.add_parser(
        "check",
        help="evaluate the enabled rules now (current and previous window)",
        description="Evaluate the enabled rules on the current window and the one before it "
        "(or every window since --since). A window fires at most once per rule and template.",
    )
    p.add_argument(
        "--since",
        metavar="WHEN",
        help="also evaluate every window since then: a duration back from now (7d) or an "
        "ISO 8601 time",
    )
    p.add_argument("--rule", action="append", metavar="RULE_ID", help="only these rules")
    p.add_argument(
        "--fail-on-alert",
        action="store_true",
        help="exit 1 when this check fired a new alert (for cron and CI)",
    )
    p.set_defaults(handler=cmd_check)

    p = asub.add_parser("fired", help="fired alerts, newest window first")
    p.add_argument(
        "--status",
        choices=["open", "acknowledged", "all"],
        default="all",
        help="open: not acknowledged yet (default: all)",
    )
    p.add_argument("--rule", metavar="RULE_ID", help="only this rule's alerts")
    p.add_argument("--template", metavar="REF", help="only this template's alerts")
    p.add_argument("--limit", type=limit_arg, default=200, metavar="N")
    p.set_defaults(handler=cmd_fired)

    p = asub.add_parser("ack", help="acknowledge fired alerts (who and when are recorded)")
    p.add_argument("alerts", nargs="*", metavar="ALERT_ID")
    p.add_argument("--all", action="store_true", help="every open alert")
    p.add_argument("--author", help="who (default: $PROMPTVER_AUTHOR or login name)")
    p.set_defaults(handler=cmd_ack)

    p = sub.add_parser(
        "trends",
        help="metric trends of templates over a period, with recommendations",
        description="Metrics per time bucket with CIs, a robust trend line per metric "
        "(slope per day and in % of the level), the windows before and after each deployment, "
        "and recommendations. See docs/trends.md.",
    )
    p.add_argument("refs", nargs="+", metavar="REF", help="template names or ids")
    p.add_argument(
        "--metric",
        action="append",
        metavar="M",
        help=f"repeatable; default: all of {', '.join(METRICS)}",
    )
    p.add_argument(
        "--period",
        default="7d",
        type=duration_arg,
        help="how far back: 24h, 7d (default), 30d, 12w …",
    )
    p.add_argument("--by", choices=["version", "variant", "environment"], help="one series each")
    p.add_argument("--env", dest="environment", metavar="ENV", help="only this environment")
    p.add_argument(
        "--bucket", choices=["hour", "day", "week"], help="default: chosen from the period"
    )
    p.add_argument(
        "--min-events",
        type=int,
        default=5,
        metavar="N",
        help="fewest events for a bucket to enter a trend line (default 5; p95 needs 20)",
    )
    p.add_argument(
        "--change-window",
        default="7d",
        type=duration_arg,
        metavar="W",
        help="longest window compared before and after each deployment (default 7d)",
    )
    p.set_defaults(handler=cmd_trends)


def _rule_options(p: argparse.ArgumentParser, *, defaults: bool) -> None:
    p.add_argument(
        "--window",
        required=defaults,
        type=duration_arg,
        metavar="W",
        help="window length: 15m, 1h, 24h, 7d … (windows are aligned: see docs/alerts.md)",
    )
    p.add_argument(
        "--min-events",
        type=int_arg(1, MAX_LIMIT),
        default=10 if defaults else None,
        metavar="N",
        help="a window with fewer events with the metric never fires"
        + (" (default 10)" if defaults else ""),
    )
    p.add_argument(
        "--template",
        default="*" if defaults else None,
        metavar="REF",
        help="a template name or id, or * for every template, each on its own"
        + (" (default *)" if defaults else ""),
    )
    p.add_argument(
        "--env",
        dest="environment",
        default="*" if defaults else None,
        metavar="ENV",
        help="one environment, or * for any" + (" (default *)" if defaults else ""),
    )
    p.add_argument("--name", default="" if defaults else None, metavar="TEXT", help="a label")
    p.add_argument("--author", help="who (default: $PROMPTVER_AUTHOR or login name)")


def _rule_line(r: AlertRule) -> list[Any]:
    return [
        r.id,
        "on" if r.enabled else "off",
        r.name,
        r.describe(),
    ]


def _rules_table(rules: list[AlertRule]) -> str:
    if not rules:
        return "no alert rules (promptver alerts add METRIC COMPARATOR THRESHOLD --window W)"
    return table([_rule_line(r) for r in rules], ["id", "state", "name", "condition"])


def _alerts_table(alerts: list[Alert]) -> str:
    if not alerts:
        return "no alerts"
    rows = [
        [
            a.id,
            a.status,
            a.template,
            f"{a.window_start:%Y-%m-%d %H:%M} +{a.window}",
            f"{value_text(a.metric, a.value)} {a.comparator} {a.threshold:g}",
            a.events,
            a.rule_name or f"rule #{a.rule_id}",
            a.acknowledged_by or "",
        ]
        for a in alerts
    ]
    return table(
        rows, ["id", "status", "template", "window (UTC)", "value", "events", "rule", "acked by"]
    )


def cmd_add(ctx: Context) -> None:
    a = ctx.args
    rule = ctx.ws.alerts.add(
        a.metric,
        a.comparator,
        a.threshold,  # checked with the other fields, so one error names them all
        a.window,
        min_events=a.min_events,
        template=a.template,
        environment=a.environment,
        name=a.name,
        enabled=not a.disabled,
        author=ctx.author,
    )
    ctx.emit(rule, f"created rule #{rule.id}: {rule.describe()}")


def cmd_list(ctx: Context) -> None:
    rules = ctx.ws.alerts.rules(enabled_only=ctx.args.enabled)
    ctx.emit(rules, lambda: _rules_table(rules))


def cmd_edit(ctx: Context) -> None:
    a = ctx.args
    changes: dict[str, Any] = {}
    for field in ("metric", "comparator", "window", "min_events", "template", "name"):
        if getattr(a, field) is not None:
            changes[field] = getattr(a, field)
    if a.environment is not None:
        changes["environment"] = a.environment
    if a.threshold is not None:
        changes["threshold"] = a.threshold
    if not changes:
        raise UsageError("nothing to change: give --metric, --threshold, --window … (see --help)")
    rule = ctx.ws.alerts.update(a.rule, author=ctx.author, **changes)
    ctx.emit(rule, f"rule #{rule.id}: {rule.describe()}")


def cmd_switch(ctx: Context) -> None:
    a = ctx.args
    svc = ctx.ws.alerts
    if a.switch == "delete":
        rule = svc.delete(a.rule)
        ctx.emit(rule, f"deleted rule #{rule.id} ({rule.describe()}); its alerts stay")
        return
    rule = (
        svc.enable(a.rule, author=ctx.author)
        if a.switch == "enable"
        else svc.disable(a.rule, author=ctx.author)
    )
    ctx.emit(rule, f"rule #{rule.id} is {'on' if rule.enabled else 'off'}: {rule.describe()}")


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    from promptver.versioning import utcnow

    try:
        return utcnow() - parse_duration(text, "since")
    except ValidationError as exc:
        if any(p.code == "range" for p in exc.problems):
            raise UsageError(f"--since {exc.problems[0].message}") from None
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since expects a duration (7d, 24h) or an ISO 8601 time, got {text!r}"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def cmd_check(ctx: Context) -> int:
    a = ctx.args
    result: AlertCheck = ctx.ws.alerts.check(since=_since(a.since), rules=a.rule)

    def human() -> str:
        head = (
            f"checked {result.rules} rule(s) on {result.windows} window(s): "
            f"{len(result.fired)} new alert(s)"
            + (f", {result.already_fired} had fired before" if result.already_fired else "")
        )
        return head + ("\n\n" + _alerts_table(result.fired) if result.fired else "")

    ctx.emit(result, human)
    return 1 if a.fail_on_alert and result.fired else 0


def cmd_fired(ctx: Context) -> None:
    a = ctx.args
    if a.limit < 1:
        raise UsageError("--limit must be at least 1")
    alerts = ctx.ws.alerts.alerts(
        status=None if a.status == "all" else a.status,
        rule_id=a.rule,
        template=a.template,
        limit=a.limit,
    )
    ctx.emit(alerts, lambda: _alerts_table(alerts))


def cmd_ack(ctx: Context) -> None:
    a = ctx.args
    if a.all and a.alerts:
        raise UsageError("give alert ids or --all, not both")
    ids: list[Any] = list(a.alerts)
    if a.all:
        ids = [x.id for x in ctx.ws.alerts.alerts(status="open", limit=100_000)]
        if not ids:
            ctx.emit([], "no open alerts")
            return
    elif not ids:
        raise UsageError("name the alerts to acknowledge (ALERT_ID …) or use --all")
    done = ctx.ws.alerts.acknowledge(ids, author=ctx.author)
    ctx.emit(done, lambda: f"acknowledged {len(done)} alert(s)\n\n" + _alerts_table(done))


def cmd_trends(ctx: Context) -> None:
    a = ctx.args
    report = ctx.ws.trends.analyse(
        a.refs,
        a.metric,
        period=a.period,
        by=a.by,
        environment=a.environment,
        bucket=a.bucket,
        min_bucket_events=a.min_events,
        change_window=a.change_window,
    )
    ctx.emit(report, lambda: _trends_text(report))


def _trends_text(r: TrendReport) -> str:
    scope = f" in {r.environment}" if r.environment else ""
    lines = [
        f"{', '.join(r.templates)}{scope}: {r.period} to {r.end:%Y-%m-%d %H:%M} UTC, "
        f"{r.bucket} buckets"
        + (f", one series per {r.by}" if r.by else "")
        + (f"; intervals over {r.clusters:,} hashed clusters of users" if r.clusters else ""),
        "",
    ]
    lines += [f"- {t}" for t in r.recommendations]
    rows = []
    for s in r.series:
        f = s.fit
        rows.append(
            [
                s.template + (f" {s.group}" if s.group is not None else ""),
                s.label,
                len(s.points),
                "" if f.level is None else value_text(s.metric, f.level),
                "" if f.pct_per_day is None else signed_pct_text(f.pct_per_day),
                "" if f.p_value is None else p_text(f.p_value),
                f.verdict,
                "" if f.since_version is None else f"{f.since_version} ({f.since_environment})",
            ]
        )
    if rows:
        lines += [
            "",
            table(
                rows,
                ["series", "metric", "buckets", "level", "per day", "p", "trend", "since"],
            ),
        ]
    if r.change_points:
        lines += ["", "Around deployments (observational):"]
        for cp in r.change_points:
            d = cp.deployment
            what = f"{d.action} {d.version or d.commit[:10]} to {d.environment}"
            lines.append(f"  {d.template} #{d.deployment_id} {what} at {d.at:%Y-%m-%d %H:%M} UTC")
            for m in cp.metrics:
                change = (
                    ""
                    if m.relative_change is None
                    else f" ({signed_pct_text(100 * m.relative_change)})"
                )
                test = (
                    p_text(m.p_value_adjusted)
                    if m.p_value_adjusted is not None
                    else (m.message or "not tested")
                )
                lines.append(
                    f"    {m.label}: {value_text(m.metric, m.before)} → "
                    f"{value_text(m.metric, m.after)}{change}, {m.verdict}, {test}"
                )
    return "\n".join(lines)

"""``metrics import | summary | figures | imports | purge``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from promptver.cli.context import (
    MAX_DURATION_DAYS,
    Context,
    UsageError,
    int_arg,
    limit_arg,
    table,
    visible,
    window_arg,
)
from promptver.metric_defs import FIGURE_DIMENSIONS as DIMENSIONS


def register(sub: Any) -> None:
    mp = sub.add_parser("metrics", help="import, summarise and purge metric events")
    msub = mp.add_subparsers(dest="metrics_command", metavar="ACTION")
    msub.required = True

    p = msub.add_parser("import", help="import a metric-events CSV (all rows or none)")
    p.add_argument("file", metavar="FILE.csv")
    p.add_argument("--author", help="who imports it (default: $PROMPTVER_AUTHOR or login)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check the file and count what would be imported; write nothing",
    )
    p.set_defaults(handler=cmd_import)

    p = msub.add_parser("summary", help="events, users, first/last and each metric's mean")
    p.add_argument("--template", metavar="REF", help="only this template (name or id)")
    p.set_defaults(handler=cmd_summary)

    p = msub.add_parser("figures", help="performance figures per template/version/variant/env")
    p.add_argument("--template", metavar="REF")
    p.add_argument("--env", dest="environment", metavar="ENV")
    p.add_argument(
        "--window",
        default="7d",
        type=window_arg,
        help="24h, 7d (default), 30d, all, or N h / N d such as 12h or 90d",
    )
    p.add_argument(
        "--by",
        default=",".join(DIMENSIONS),
        help=f"comma-separated grouping (default {','.join(DIMENSIONS)})",
    )
    p.set_defaults(handler=cmd_figures)

    p = msub.add_parser("imports", help="import history, newest first")
    p.add_argument("--limit", type=limit_arg, default=50)
    p.set_defaults(handler=cmd_imports)

    p = msub.add_parser(
        "purge",
        help="delete events older than the retention period "
        "(dry run unless --yes; imports stay recorded)",
    )
    p.add_argument(
        "--older-than-days",
        type=int_arg(1, MAX_DURATION_DAYS),
        metavar="N",
        help="default: performance_tracking.metrics_retention_days",
    )
    p.add_argument("--yes", action="store_true", help="really delete (default: only count)")
    p.set_defaults(handler=cmd_purge)


def cmd_import(ctx: Context) -> None:
    args: argparse.Namespace = ctx.args
    progress = None
    if not ctx.json and sys.stderr.isatty():

        def progress(fraction: float, message: str) -> None:
            sys.stderr.write(f"\r{fraction:4.0%} {visible(message):<40}")
            if fraction >= 1:
                sys.stderr.write("\n")

    result = ctx.ws.metrics.import_csv(
        args.file, author=ctx.author, dry_run=args.dry_run, progress=progress
    )
    data = result.contract()
    if args.dry_run:
        data = {**data, "dry_run": True}
        human = (
            f"{result.file_name} is valid: {result.rows_imported:,} events would be "
            f"imported, {result.rows_skipped_duplicate:,} skipped as already stored"
        )
    else:
        human = (
            f"imported {result.rows_imported:,} events from {result.file_name} "
            f"({result.rows_skipped_duplicate:,} skipped as already stored) in "
            f"{result.seconds:.2f} s; import {result.import_id}"
        )
    ctx.emit(data, human)


def cmd_summary(ctx: Context) -> None:
    s = ctx.ws.metrics.summary(ctx.args.template)
    data = s.contract()

    def human() -> str:
        head = f"{s.events:,} events from {s.users:,} users" + (
            f", {data['first']} … {data['last']}" if s.events else ""
        )
        rows = [
            [name, m.count, "" if m.mean is None else f"{m.mean:.6g}"]
            for name, m in s.metrics.items()
        ]
        return head + "\n\n" + table(rows, ["metric", "count", "mean"])

    ctx.emit(data, human)


def cmd_figures(ctx: Context) -> None:
    args = ctx.args
    by = [b.strip() for b in args.by.split(",") if b.strip()]
    figures = ctx.ws.metrics.figures(
        args.window, template=args.template, environment=args.environment, by=by
    )

    def fmt(v: Any, spec: str) -> str:
        return "" if v is None else format(v, spec)

    def human() -> str:
        if not figures:
            return f"no events in the window ({args.window})"
        rows = [
            [
                *(getattr(f, d) or "–" for d in by),
                f.requests,
                f.users,
                fmt(f.latency_avg, ".0f"),
                fmt(f.latency_p50, ".0f"),
                fmt(f.latency_p95, ".0f"),
                fmt(f.success_rate, ".1%"),
                fmt(f.error_rate, ".1%"),
                fmt(f.quality_mean, ".3f"),
                fmt(f.cost_per_request, ".5f"),
            ]
            for f in figures
        ]
        return table(
            rows,
            [
                *by,
                "requests",
                "users",
                "lat avg",
                "p50",
                "p95",
                "success",
                "errors",
                "quality",
                "cost/req",
            ],
        )

    ctx.emit([f.model_dump(mode="json") for f in figures], human)


def cmd_imports(ctx: Context) -> None:
    if ctx.args.limit < 1:
        raise UsageError("--limit must be at least 1")
    records = ctx.ws.metrics.imports(ctx.args.limit)

    def human() -> str:
        if not records:
            return "no imports yet"
        return table(
            [
                [
                    r.id,
                    f"{r.created_at:%Y-%m-%d %H:%M}",
                    r.created_by,
                    r.file_name,
                    r.rows_imported,
                    r.rows_skipped_duplicate,
                    r.events_present,
                ]
                for r in records
            ],
            ["import", "when (UTC)", "who", "file", "imported", "skipped", "present"],
        )

    ctx.emit(records, human)


def cmd_purge(ctx: Context) -> None:
    args = ctx.args
    result = ctx.ws.metrics.purge(args.older_than_days, dry_run=not args.yes)
    if result.dry_run:
        human = (
            f"{result.events:,} events are older than {result.older_than_days} days "
            f"(before {result.cutoff:%Y-%m-%d %H:%M} UTC); run again with --yes to delete "
            "them (import records stay)"
        )
    else:
        human = (
            f"deleted {result.deleted:,} events older than {result.older_than_days} days "
            f"(before {result.cutoff:%Y-%m-%d %H:%M} UTC); import records stay"
        )
    ctx.emit(result, human)

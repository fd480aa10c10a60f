"""``init`` and ``demo``: create a database, fill it with the demo workspace."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from promptver.cli.context import MAX_SEED, Context, int_arg


def register(sub: Any) -> None:
    p = sub.add_parser("init", help="create (or upgrade) the database file")
    p.set_defaults(handler=cmd_init, creates_database=True)
    p = sub.add_parser(
        "demo",
        help="fill the database with the demo workspace (and --events N more events)",
        description="Fill the database with the demo workspace: templates with branches and "
        "merges, deployments with a rollback, a completed and a running experiment, 90 days "
        "of metric events and alert rules. With --events N, also add N synthetic events "
        "(served by what was live, routed into the experiments' variants); on a database that "
        "already holds the demo, only the events are added.",
    )
    p.add_argument(
        "--seed",
        type=int_arg(0, MAX_SEED),
        default=7,
        help="random seed, 0 or more (same seed, same demo)",
    )
    p.add_argument(
        "--events",
        type=int,
        default=0,
        metavar="N",
        help="add N synthetic events over the last 90 days (1,000,000 take a few seconds)",
    )
    p.set_defaults(handler=cmd_demo, creates_database=True)
    p = sub.add_parser("backup", help="write a consistent copy of the database (safe while in use)")
    p.add_argument("path", metavar="PATH", help="the new backup file")
    p.add_argument("--overwrite", action="store_true", help="replace PATH if it exists")
    p.set_defaults(handler=cmd_backup)
    p = sub.add_parser("restore", help="replace the database with a backup (stop the app first)")
    p.add_argument("path", metavar="PATH", help="a file written by 'promptver backup'")
    p.add_argument("--yes", action="store_true", help="confirm replacing the database")
    p.set_defaults(handler=cmd_restore)


def cmd_init(ctx: Context) -> None:
    from promptver.store.migrations import applied

    ws = ctx.ws
    with ws.db.read() as con:
        migrations = applied(con)
    ctx.emit(
        {"path": str(ws.path), "migrations": migrations},
        f"database ready: {ws.path} ({len(migrations)} migrations applied)",
    )


def cmd_demo(ctx: Context) -> None:
    from promptver.cli.context import UsageError
    from promptver.demo import build_demo, has_demo
    from promptver.metrics.demo import add_bulk_events

    args: argparse.Namespace = ctx.args
    if not 0 <= args.events <= MAX_DEMO_EVENTS:
        raise UsageError(f"--events must be a whole number from 0 to {MAX_DEMO_EVENTS:,}")
    ws = ctx.ws
    names: list[str] = []
    if not (args.events and has_demo(ws)):  # --events on an existing demo only adds events
        names = build_demo(ws, seed=args.seed)
    added = 0
    if args.events:
        added = add_bulk_events(ws, args.events, seed=args.seed)
    parts = []
    if names:
        parts.append(f"demo workspace created in {ws.path}: {', '.join(names)}")
    if args.events:
        parts.append(f"{added:,} synthetic events added to {ws.path}")
    ctx.emit(
        {"path": str(ws.path), "seed": args.seed, "templates": names, "events_added": added},
        "; ".join(parts),
    )


#: ``demo --events`` at most (a billion events would take an hour and most of a disk)
MAX_DEMO_EVENTS = 100_000_000


def cmd_backup(ctx: Context) -> None:
    from promptver.backup import backup

    target = backup(ctx.ws.db, ctx.args.path, overwrite=ctx.args.overwrite)
    size = target.stat().st_size
    ctx.emit({"path": str(target), "bytes": size}, f"backup written to {target} ({size:,} bytes)")


def cmd_restore(ctx: Context) -> None:
    from promptver.backup import check_backup, restore
    from promptver.cli.context import UsageError
    from promptver.store.db import Database

    src = Path(ctx.args.path)
    check_backup(src.expanduser().resolve())
    if not ctx.args.yes:
        raise UsageError(
            "restore replaces the database: pass --yes to confirm "
            "(stop the dashboard and applications first)"
        )
    db = Database(ctx.args.db or ctx.settings.storage.path, ctx.settings.storage.busy_timeout)
    kept = restore(db, src)
    ctx.emit(
        {
            "path": str(db.path),
            "restored_from": str(src.resolve()),
            "previous": str(kept) if kept else None,
        },
        f"restored {db.path} from {src}"
        + (f"; the replaced file is kept as {kept}" if kept else ""),
    )

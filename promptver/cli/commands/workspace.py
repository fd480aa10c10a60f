"""``init`` and ``demo``: create a database, fill it with the demo workspace."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from promptver.cli.context import Context


def register(sub: Any) -> None:
    p = sub.add_parser("init", help="create (or upgrade) the database file")
    p.set_defaults(handler=cmd_init)
    p = sub.add_parser("demo", help="fill the database with the demo workspace")
    p.add_argument("--seed", type=int, default=7, help="random seed (same seed, same demo)")
    p.set_defaults(handler=cmd_demo)
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
    from promptver.demo import build_demo

    args: argparse.Namespace = ctx.args
    names = build_demo(ctx.ws, seed=args.seed)
    ctx.emit(
        {"path": str(ctx.ws.path), "seed": args.seed, "templates": names},
        f"demo workspace created in {ctx.ws.path}: {', '.join(names)}",
    )


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

"""``init`` and ``demo``: create a database, fill it with the demo workspace."""

from __future__ import annotations

import argparse
from typing import Any

from promptver.cli.context import Context


def register(sub: Any) -> None:
    p = sub.add_parser("init", help="create (or upgrade) the database file")
    p.set_defaults(handler=cmd_init)
    p = sub.add_parser("demo", help="fill the database with the demo workspace")
    p.add_argument("--seed", type=int, default=7, help="random seed (same seed, same demo)")
    p.set_defaults(handler=cmd_demo)


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

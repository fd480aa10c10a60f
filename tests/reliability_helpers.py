"""Worker processes for the reliability tests (crash and concurrency).

Run as ``python -m tests.reliability_helpers ROLE …`` from the repository root. Every worker
prints one line per step on stdout (``ready``, ``begin K``, ``done K …``) and flushes it, so the
test that started it knows what had finished when it killed it, and writes the outcome of every
operation it tried (``ok`` with what was written, or the error's type and message) as JSON lines.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: rows per CSV in the crash test of imports (about 0.2 s of import each)
CRASH_IMPORT_ROWS = 100_000
#: events per tracking batch in the crash test of flushes
CRASH_TRACK_ROWS = 5_000


# ---- data -----------------------------------------------------------------------------------


def events_csv(template: str, prefix: str, n: int, *, users: int = 200) -> str:
    """A valid metric-events CSV whose event ids all start with ``prefix-``."""
    lines = ["timestamp,template,user_id,event_id,latency_ms,success,quality_score"]
    for i in range(n):
        lines.append(
            f"2026-01-0{1 + i % 9}T{i % 24:02d}:{i % 60:02d}:00Z,{template},u{i % users},"
            f"{prefix}-{i},{100 + i % 900},{i % 2},{(i % 10) / 10}"
        )
    return "\n".join(lines) + "\n"


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _arm(point: str | None) -> None:
    """Arm the crash-test hook of ``promptver.store.db`` for the operations that follow."""
    if point:
        from promptver.store import db as dbmod

        dbmod.CRASH_POINT = point


# ---- crash workers --------------------------------------------------------------------------


def crash_import(ws: Any, start: int, point: str | None) -> None:
    files = []
    for k in range(start, start + 4):
        path = Path(f"{ws.path}.crash-{k}.csv")
        path.write_text(events_csv("crash", f"imp{k}", CRASH_IMPORT_ROWS))
        files.append((k, path))
    _arm(point)
    _say("ready")
    for k, path in files:
        _say(f"begin {k}")
        r = ws.metrics.import_csv(path, file_name=f"crash-{k}.csv", author="crash")
        _say(f"done {k} {r.import_id}")


def crash_merge(ws: Any, start: int, point: str | None) -> None:
    """Each round: a branch, a commit on it and one on main, then a three-way merge (the hook,
    when armed, stops the merge's own transaction)."""
    if not point:
        _say("ready")
    for k in range(start, start + 200):
        _say(f"begin {k}")
        head = ws.templates.get("crash")
        lines = head.content.split("\n")
        ws.versions.create_branch("crash", f"b{k}", author="crash")
        ws.templates.update(
            "crash", "\n".join([f"first {k}", *lines[1:]]), branch=f"b{k}", author="crash"
        )
        ws.templates.update("crash", "\n".join([*lines[:-1], f"last {k}"]), author="crash")
        if point:
            _arm(point)
            _say("ready")
        r = ws.versions.merge("crash", f"b{k}", message=f"merge {k}", author="crash")
        _say(f"done {k} {r.commit} {r.version}")


def crash_deploy(ws: Any, start: int, point: str | None) -> None:
    _arm(point)
    _say("ready")
    for k in range(start, start + 2000):
        live = ws.deployments.history("crash", "production", limit=1)[0].version
        _say(f"begin {k}")
        d = ws.deployments.deploy(
            "crash", "1.0.0" if live == "1.1.0" else "1.1.0", "production", note=f"n{k}"
        )
        _say(f"done {k} {d.id} {d.version}")


def crash_track(ws: Any, start: int, point: str | None) -> None:
    p = ws.get_prompt("crash", "production")
    _arm(point)
    _say("ready")
    for k in range(start, start + 200):
        for i in range(CRASH_TRACK_ROWS):
            ws.track(p, user_id=f"u{i % 50}", event_id=f"trk{k}-{i}", latency_ms=i % 700)
        _say(f"begin {k}")
        ws.metrics.flush()
        _say(f"done {k}")


CRASH_WORKERS: dict[str, Callable[[Any, int, str | None], None]] = {
    "import": crash_import,
    "merge": crash_merge,
    "deploy": crash_deploy,
    "track": crash_track,
}


def run_crash(kind: str, db: str, start: int, point: str | None) -> None:
    from promptver import Settings, Workspace

    # explicit flushes only: one flush is one batch, one transaction
    settings = Settings().with_overrides(
        performance_tracking__batch_size=10_000_000, performance_tracking__flush_interval=3600
    )
    ws = Workspace.open(db, settings=settings)
    CRASH_WORKERS[kind](ws, start, point)
    _say("finished")
    os._exit(0)  # never reached in a crash round: the test kills the process first


# ---- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability_helpers")
    sub = parser.add_subparsers(dest="role", required=True)
    c = sub.add_parser("crash")
    c.add_argument("kind", choices=sorted(CRASH_WORKERS))
    c.add_argument("db")
    c.add_argument("--start", type=int, default=0)
    c.add_argument("--point", choices=["before-commit", "after-commit"])
    args = parser.parse_args(argv)
    if args.role == "crash":
        run_crash(args.kind, args.db, args.start, args.point)


if __name__ == "__main__":
    main()

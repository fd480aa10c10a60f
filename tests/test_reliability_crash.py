"""Crash safety: ``kill -9`` during an import, a merge, a deployment and a tracking flush.

A worker process (``tests/reliability_helpers.py``) repeats one kind of operation on a database
and prints ``begin K`` / ``done K`` around each; the test kills it with SIGKILL after a varied
delay, or exactly before / after the COMMIT of the operation's transaction (the
``PROMPTVER_CRASH_POINT`` hook of ``promptver.store.db``). After every kill the file must open
(DuckDB replays its write-ahead log), ``fsck`` must be clean, every operation reported done must be
there whole, and every operation that was under way must be there whole or not at all. Several
rounds run on the same file, so recovery from a recovered file is exercised too.

A write-ahead log that DuckDB cannot replay must give a clear error pointing to the recovery
steps, in the API and in the CLI.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from promptver import Workspace
from promptver.errors import DatabaseError
from promptver.store.db import RECOVERY_HINT
from tests.reliability_helpers import CRASH_IMPORT_ROWS, CRASH_TRACK_ROWS

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

#: seconds after ``ready`` at which the random-delay rounds kill the worker
DELAYS = [0.0, 0.15, 0.4, 0.8]
POINTS = ["before-commit", "after-commit"]
#: kills performed by this module (RELIABILITY.md quotes it): kinds × (delays + points)
KILLS_PER_KIND = len(DELAYS) + len(POINTS)


class Worker:
    """A crash worker subprocess whose stdout and stderr lines are collected as they come."""

    def __init__(self, kind: str, db: Path, start: int, point: str | None) -> None:
        cmd = [sys.executable, "-m", "tests.reliability_helpers", "crash", kind, str(db)]
        cmd += ["--start", str(start)] + (["--point", point] if point else [])
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, sink: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            sink.append(line.rstrip("\n"))

    def wait_for(self, sink: list[str], prefix: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not any(x.startswith(prefix) for x in sink):
            if self.proc.poll() is not None:
                for t in self._threads:
                    t.join(timeout=5)
                if any(x.startswith(prefix) for x in sink):
                    return
                raise AssertionError(
                    f"worker exited ({self.proc.returncode}) before {prefix!r}: "
                    + "\n".join(self.err[-20:])
                )
            assert time.monotonic() < deadline, f"no {prefix!r} within {timeout} s"
            time.sleep(0.01)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        for t in self._threads:
            t.join(timeout=5)
        assert self.proc.returncode == -signal.SIGKILL
        assert not any("Traceback" in x for x in self.err), "\n".join(self.err)

    def begun(self) -> list[int]:
        return [int(x.split()[1]) for x in self.out if x.startswith("begin ")]

    def done(self) -> dict[int, list[str]]:
        return {int(x.split()[1]): x.split()[2:] for x in self.out if x.startswith("done ")}


def kill_round(kind: str, db: Path, start: int, *, delay: float = 0.0, point: str | None = None):
    w = Worker(kind, db, start, point)
    try:
        w.wait_for(w.out, "ready")
        if point:
            w.wait_for(w.err, "promptver-crash-point")
        else:
            time.sleep(delay)
    finally:
        w.kill()
    return w


# ---- the set-up of each kind of operation ---------------------------------------------------


def setup(kind: str, db: Path) -> None:
    with Workspace.open(db) as ws:
        if kind == "merge":
            ws.templates.create("crash", "top line\nmiddle {x}\nbottom line", author="crash")
        else:
            ws.templates.create("crash", "Answer {q}.", author="crash")
            ws.templates.update("crash", "Answer {q} briefly.", author="crash")
            ws.deployments.deploy("crash", "1.1.0", "production", author="crash")


# ---- what must hold after a crash -------------------------------------------------------------


def check_common(db: Path) -> Workspace:
    ws = Workspace.open(db)  # the file opens (DuckDB replays its log)
    report = ws.versions.fsck()
    assert report.ok, [p.message for p in report.problems]
    return ws


def prefix_counts(ws: Workspace, like: str) -> dict[str, int]:
    with ws.db.read() as con:
        rows = con.execute(
            "SELECT split_part(event_id, '-', 1), count(*) FROM metric_events"
            " WHERE event_id LIKE ? GROUP BY 1",
            [like],
        ).fetchall()
    return dict(rows)


def last_begun(w: Worker, point: str | None) -> int | None:
    """The operation under way when the worker was killed (at a crash point there is one)."""
    begun = w.begun()
    assert begun or point is None, "the crash point was reached before any operation began"
    return begun[-1] if begun else None


def in_flight(w: Worker, last: int | None, present: bool) -> str | None:
    """What became of the operation under way at the kill: ``present`` (whole), ``absent``,
    or None when the kill fell between operations."""
    if last is None or last in w.done():
        return None
    return "present" if present else "absent"


def check_import(ws: Workspace, w: Worker, point: str | None) -> str | None:
    counts = prefix_counts(ws, "imp%")
    with ws.db.read() as con:
        imports = {
            r[0]: (r[1], r[2])
            for r in con.execute(
                "SELECT file_name, id, rows_imported FROM imports WHERE file_name LIKE 'crash-%'"
            ).fetchall()
        }
        by_import = dict(
            con.execute(
                "SELECT import_id, count(*) FROM metric_events WHERE import_id IS NOT NULL"
                " GROUP BY 1"
            ).fetchall()
        )
    for k in w.begun():
        n = counts.get(f"imp{k}", 0)
        rec = imports.get(f"crash-{k}.csv")
        assert n in (0, CRASH_IMPORT_ROWS), f"import {k} is half there: {n} events"
        assert (rec is not None) == (n == CRASH_IMPORT_ROWS), f"import {k}: record {rec}, {n}"
        if rec is not None:
            assert rec[1] == CRASH_IMPORT_ROWS and by_import.get(rec[0]) == CRASH_IMPORT_ROWS
    for k, (import_id,) in w.done().items():
        assert imports[f"crash-{k}.csv"][0] == import_id
    last = last_begun(w, point)
    if point == "before-commit":
        assert f"crash-{last}.csv" not in imports
    elif point == "after-commit":
        assert imports[f"crash-{last}.csv"][1] == CRASH_IMPORT_ROWS
    return in_flight(w, last, f"crash-{last}.csv" in imports)


def check_merge(ws: Workspace, w: Worker, point: str | None) -> str | None:
    tid = ws.templates.row("crash")["id"]
    with ws.db.read() as con:
        commits = {
            r[0]: (list(r[1]), r[2])
            for r in con.execute(
                "SELECT id, parents, message FROM commits WHERE template_id = ?", [tid]
            ).fetchall()
        }
        versions = {r[0] for r in con.execute("SELECT commit_id FROM versions").fetchall()}
    reachable: set[str] = set()
    for b in ws.versions.branches(tid):
        reachable |= {c.id for c in ws.versions.log(tid, b.head)}
    # no commit was left behind by a half-done operation: everything hangs off a branch
    assert set(commits) == reachable
    main = [c.id for c in ws.versions.log(tid, ws.versions.branch_head(tid), first_parent=True)]
    merges = {cid: msg for cid, (parents, msg) in commits.items() if len(parents) == 2}
    for cid, msg in merges.items():  # a merge into main is there with its version, or not at all
        assert cid in main and cid in versions, f"merge {msg!r} is half there"
    for _k, (commit, _version) in w.done().items():
        assert commit in merges
    last = w.begun()[-1]
    merged = {msg for msg in merges.values()}
    if point == "before-commit":
        assert f"merge {last}" not in merged
    elif point == "after-commit":
        assert f"merge {last}" in merged
    return in_flight(w, last, f"merge {last}" in merged)


def check_deploy(ws: Workspace, w: Worker, point: str | None) -> str | None:
    with ws.db.read() as con:
        rows = con.execute(
            "SELECT id, env_seq, note FROM deployments WHERE environment = 'production' ORDER BY id"
        ).fetchall()
    assert [r[1] for r in rows] == list(range(1, len(rows) + 1))
    ids = {r[0] for r in rows}
    for _k, (dep_id, _version) in w.done().items():
        assert int(dep_id) in ids
    history = ws.deployments.history("crash", "production")
    live = ws.get_prompt("crash", "production")
    assert live.version == history[0].version  # what is live is the last deployment recorded
    notes = {r[2] for r in rows}
    last = last_begun(w, point)
    if point == "before-commit":
        assert f"n{last}" not in notes
    elif point == "after-commit":
        assert f"n{last}" in notes
    return in_flight(w, last, f"n{last}" in notes)


def check_track(ws: Workspace, w: Worker, point: str | None) -> str | None:
    counts = prefix_counts(ws, "trk%")
    for k in w.begun():
        assert counts.get(f"trk{k}", 0) in (0, CRASH_TRACK_ROWS), f"flush {k} is half there"
    for k in w.done():
        assert counts[f"trk{k}"] == CRASH_TRACK_ROWS
    last = last_begun(w, point)
    if point == "before-commit":
        assert f"trk{last}" not in counts
    elif point == "after-commit":
        assert counts[f"trk{last}"] == CRASH_TRACK_ROWS
    return in_flight(w, last, f"trk{last}" in counts)


CHECKS = {
    "import": check_import,
    "merge": check_merge,
    "deploy": check_deploy,
    "track": check_track,
}


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_kill_9_leaves_each_operation_whole_or_absent(kind, tmp_path):
    db = tmp_path / f"crash-{kind}.duckdb"
    setup(kind, db)
    rng = random.Random(f"crash-{kind}")
    rounds: list[tuple[float, str | None]] = [(d + rng.uniform(0, 0.1), None) for d in DELAYS] + [
        (0.0, p) for p in POINTS
    ]
    completed = 0
    fates: list[str | None] = []
    for i, (delay, point) in enumerate(rounds):
        w = kill_round(kind, db, start=1000 * (i + 1), delay=delay, point=point)
        ws = check_common(db)
        try:
            fates.append(CHECKS[kind](ws, w, point))
        finally:
            ws.close()
        completed += len(w.done())
    # the random rounds did real work before they were killed (the test is not vacuous), and
    # the crash points caught an operation in the middle
    assert completed > 0 and fates[-2:] == ["absent", "present"]
    print(
        f"\n{kind}: {len(rounds)} kills, {completed} operations done before them, "
        f"in flight at the kill: {fates}"
    )


# ---- a write-ahead log DuckDB cannot replay ---------------------------------------------------


def _wal_after_a_kill(tmp_path: Path) -> Path:
    """A database whose last transactions exist only in its .wal (the writer was killed)."""
    db = tmp_path / "wal.duckdb"
    setup("deploy", db)
    with duckdb.connect(str(db)) as con:
        con.execute("FORCE CHECKPOINT")
    w = kill_round("deploy", db, start=1, point="after-commit")
    wal = Path(str(db) + ".wal")
    assert w.begun() and wal.exists() and wal.stat().st_size > 0
    return db


def test_an_unreplayable_wal_gives_a_clear_error_with_the_recovery_steps(tmp_path, run_cli):
    db = _wal_after_a_kill(tmp_path)
    wal = Path(str(db) + ".wal")
    keep = tmp_path / "kept"
    keep.mkdir()
    shutil.copy(db, keep / db.name)
    data = bytearray(wal.read_bytes())
    for i in range(64, len(data), 31):  # flip bytes past the header: the checksums no longer match
        data[i] ^= 0xFF
    wal.write_bytes(bytes(data))

    with pytest.raises(DatabaseError) as err:
        Workspace.open(db)
    message = str(err.value)
    assert "could not replay its write-ahead log" in message
    assert "Recovering a damaged database" in message and RECOVERY_HINT in message

    r = run_cli("template", "list", db=db)
    assert r.code == 1
    assert r.err.startswith("error: cannot open") and "write-ahead log" in r.err
    assert "Recovering a damaged database" in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1

    # the documented recovery: move the .wal aside, open the last checkpointed state
    wal.rename(tmp_path / "wal.duckdb.wal.damaged")
    ws = Workspace.open(db)
    assert ws.versions.fsck().ok
    assert [d.version for d in ws.deployments.history("crash", "production")] == ["1.1.0"]
    ws.close()


def test_the_readme_documents_the_recovery_steps_the_error_points_to():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Recovering a damaged database" in readme
    section = readme.split("## Recovering a damaged database", 1)[1].split("\n## ", 1)[0]
    assert ".wal" in section and "backup" in section

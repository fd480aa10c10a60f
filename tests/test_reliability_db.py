"""Regressions found by the stress test, in the connection layer (promptver/store/db.py).

Threads of one process open and close their own connections to the same file. Opening the
first connection creates DuckDB's shared database instance and closing the last one tears it
down; a thread connecting in the middle of either got "Unique file handle conflict … already
attached" (reported as a damaged file) or a connection missing the pandas scan function. Opening
and closing are now serialised within the process, and the attach race is retried like a lock.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from promptver.store import db as dbmod
from promptver.store.db import Database


def test_threads_opening_and_closing_the_file_never_collide(tmp_path):
    db = Database(tmp_path / "race.duckdb", busy_timeout=10)
    with db.transaction() as con:
        con.execute("CREATE TABLE t (a INTEGER)")
    frame = pd.DataFrame({"a": [1, 2, 3]})
    errors: list[str] = []

    def work() -> None:
        for _ in range(150):
            try:
                with db.transaction() as con:  # a fresh connection each time
                    con.register("v", frame)  # needs the pandas scan function
                    con.execute("INSERT INTO t SELECT a FROM v")
            except Exception as exc:  # collected: the assertion below shows them
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.read() as con:
        assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 6 * 150 * 3


def test_connect_and_close_are_serialised_within_the_process(tmp_path, monkeypatch):
    """No connect overlaps a close (the instance is never half built or half torn down)."""
    active = {"connect": 0, "close": 0}
    overlaps: list[str] = []
    guard = threading.Lock()
    real_connect = duckdb.connect

    def enter(kind: str) -> None:
        with guard:
            active[kind] += 1
            other = "close" if kind == "connect" else "connect"
            if active[other]:
                overlaps.append(kind)

    def leave(kind: str) -> None:
        with guard:
            active[kind] -= 1

    class Tracked:
        def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
            self._con = con

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(self._con, name)

        def close(self) -> None:
            enter("close")
            time.sleep(0.002)
            try:
                self._con.close()
            finally:
                leave("close")

    def connect(*args, **kwargs):  # type: ignore[no-untyped-def]
        enter("connect")
        time.sleep(0.002)
        try:
            return Tracked(real_connect(*args, **kwargs))
        finally:
            leave("connect")

    monkeypatch.setattr(dbmod.duckdb, "connect", connect)
    db = Database(tmp_path / "serial.duckdb")

    def work() -> None:
        for _ in range(20):
            with db.read() as con:
                con.execute("SELECT 1").fetchall()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []


@pytest.mark.parametrize(
    "error",
    [
        duckdb.IOException(
            'Unique file handle conflict: Cannot attach "x" - the database file "x" is '
            'already attached by database "x"'
        ),
        duckdb.BinderException(
            'Unique file handle conflict: Cannot attach "x" - the database file "x" is '
            'already attached by database "x"'
        ),
    ],
)
def test_the_attach_race_is_retried_not_reported_as_damage(tmp_path, monkeypatch, error):
    real_connect = duckdb.connect
    calls = {"n": 0}

    def connect(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise error
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(dbmod.duckdb, "connect", connect)
    db = Database(tmp_path / "retry.duckdb", busy_timeout=2)
    with db.read() as con:
        assert con.execute("SELECT 42").fetchone()[0] == 42
    assert calls["n"] == 2


def test_the_crash_hook_is_off_unless_asked_for():
    assert dbmod.CRASH_POINT is None  # PROMPTVER_CRASH_POINT is never set in the test suite


def test_saved_tracking_events_are_written_once_even_if_the_writer_died_before_cleaning_up(
    tmp_path, monkeypatch
):
    """Events a process could not write at exit are saved next to the database; the next flush
    anywhere writes them. If that writer is killed after its COMMIT but before removing the
    file, the file's claim goes stale and is retried 10 minutes later: it must not be written
    a second time (events without ``event_id`` cannot be told apart otherwise)."""
    import os

    from promptver import Workspace

    db = tmp_path / "spill.duckdb"
    ws = Workspace.open(db)
    ws.templates.create("t", "Hello {a}")
    ws.deployments.deploy("t", "1.0.0", "production")
    p = ws.get_prompt("t", "production")
    for i in range(5):
        ws.track(p, user_id=f"u{i}", latency_ms=i)  # no event ids
    saved = ws.metrics.buffer.spill()
    assert saved is not None and saved.exists()

    def events() -> int:
        with ws.db.read() as con:
            return con.execute("SELECT count(*) FROM metric_events").fetchone()[0]

    other = Workspace.open(db)
    with monkeypatch.context() as m:  # the writer dies right after COMMIT: nothing cleaned up
        m.setattr(Path, "unlink", lambda self, missing_ok=False: None)
        assert other.metrics.flush() == 5
    (claimed,) = saved.parent.glob("*.claimed-*")
    stale = time.time() - 3600
    os.utime(claimed, (stale, stale))

    third = Workspace.open(db)
    third.metrics.flush()  # takes the stale claim back, sees it was written, removes it
    assert events() == 5
    assert list(saved.parent.iterdir()) == []
    for w in (other, third, ws):
        w.close()


HOG = """
import sys, threading, time
from promptver.store.db import Database
db = Database(sys.argv[1], busy_timeout=30)
stop = time.monotonic() + float(sys.argv[2])
def work():
    while time.monotonic() < stop:
        with db.read() as con:  # the threads' connections overlap: the file is never let go
            con.execute("SELECT count(*) FROM t").fetchall()
            time.sleep(0.02)
threads = [threading.Thread(target=work) for _ in range(3)]
for t in threads:
    t.start()
print("holding", flush=True)
for t in threads:
    t.join()
"""


@pytest.mark.slow
def test_a_process_that_keeps_the_file_busy_lets_a_waiting_process_in(tmp_path):
    """Without turns, a process whose threads open connections back to back never lets the
    file go, and every write of another process ends in DatabaseBusy."""
    import os
    import subprocess
    import sys

    from promptver.errors import DatabaseBusy

    root = Path(__file__).resolve().parents[1]
    path = tmp_path / "turns.duckdb"
    db = Database(path, busy_timeout=8)  # generous for loaded CI machines: turns take ~0.1 s
    with db.transaction() as con:
        con.execute("CREATE TABLE t (a INTEGER)")
    hog = subprocess.Popen(
        [sys.executable, "-c", HOG, str(path), "30"],
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.PIPE,
        text=True,
    )
    waits, busy = [], 0
    try:
        assert hog.stdout.readline().strip() == "holding"
        time.sleep(0.3)
        for i in range(5):
            t0 = time.monotonic()
            try:
                with db.transaction() as con:
                    con.execute("INSERT INTO t VALUES (?)", [i])
                waits.append(time.monotonic() - t0)
            except DatabaseBusy:
                busy += 1
    finally:
        hog.kill()
        hog.wait()
    assert busy == 0 and len(waits) == 5
    # the waiter's mark is gone once it got in (the hog, killed while it waited in its turn,
    # may leave a mark of its own)
    mark = Path(f"{path}.waiting")
    assert not mark.exists() or mark.read_text().strip() != str(os.getpid())

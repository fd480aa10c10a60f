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

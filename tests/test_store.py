"""The one-file store: migrations, transactions, and sharing the file with other processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import pytest

from promptver import DatabaseBusy, Workspace
from promptver.errors import DatabaseError, ValidationError
from promptver.store.db import Database
from promptver.store.migrations import MIGRATIONS, applied, migrate
from promptver.store.schema import HEAD, ensure_schema


def test_new_file_records_every_migration_in_order(db_path):
    ws = Workspace.open(db_path)
    with ws.db.read() as con:
        assert applied(con) == [name for name, _ in MIGRATIONS]
    assert migrate(ws.db) == []  # idempotent


def test_opening_an_older_file_upgrades_it_and_keeps_its_data(db_path):
    old = Database(db_path)
    migrate(old, MIGRATIONS[:1])  # a file from the first release
    con = duckdb.connect(str(db_path))
    con.execute(
        "INSERT INTO templates (id, name, created_at, created_by) VALUES "
        "('t1', 'legacy', now(), 'old')"
    )
    con.execute(
        "INSERT INTO commits VALUES ('c1', 't1', [], 'Hi {name}', ['name'], '{}', 'init',"
        " 'old', now())"
    )
    con.execute("INSERT INTO branches VALUES ('t1', 'main', 'c1', now(), 'old')")
    con.execute("INSERT INTO versions VALUES ('t1', '1.0.0', 1, 0, 0, 'c1', now())")
    con.close()
    ws = Workspace.open(db_path)
    with ws.db.read() as con:
        assert applied(con) == [name for name, _ in MIGRATIONS]
        cols = {
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'templates'"
            ).fetchall()
        }
    assert {"archived_at", "archived_by"} <= cols
    t = ws.templates.get("legacy")
    assert t.content == "Hi {name}" and t.version == "1.0.0"
    assert ws.templates.update("legacy", "Hello {name}").version == "1.1.0"


def test_the_schema_head_names_the_last_migration():
    """Opening a current file reads one row instead of loading the migrations: the head it
    compares with must be the real one, or an older file would never be upgraded."""
    assert (len(MIGRATIONS), MIGRATIONS[-1][0]) == HEAD


def test_ensure_schema_applies_what_an_older_file_lacks(db_path):
    old = Database(db_path)
    migrate(old, MIGRATIONS[:3])
    assert ensure_schema(old) == [name for name, _ in MIGRATIONS[3:]]
    assert ensure_schema(old) == []  # current now: one read, nothing applied


def test_a_file_from_a_newer_promptver_is_refused(db_path):
    Workspace.open(db_path)
    con = duckdb.connect(str(db_path))
    con.execute("INSERT INTO schema_migrations VALUES (999, 'm999_from_the_future', now())")
    con.close()
    with pytest.raises(DatabaseError, match="newer promptver.*m999_from_the_future"):
        Workspace.open(db_path)


def test_a_failed_action_leaves_nothing_half_written(ws):
    with pytest.raises(RuntimeError), ws.db.transaction() as con:
        con.execute(
            "INSERT INTO templates (id, name, created_at, created_by) VALUES ('x', 'x', now(), 'a')"
        )
        raise RuntimeError("boom")
    assert ws.templates.list(include_archived=True) == []


def test_nested_transactions_join_the_outer_one(ws):
    with pytest.raises(ValidationError), ws.db.transaction():
        ws.templates.create("a", "one")
        ws.templates.create("a", "dup")  # fails: the whole action is undone
    assert ws.templates.list(include_archived=True) == []


def test_connections_are_released_between_operations(ws, qa, db_path):
    # another process can open the file as soon as our call returns
    code = "import duckdb,sys; c=duckdb.connect(sys.argv[1]); print(c.execute('select count(*) from templates').fetchone()[0])"
    out = subprocess.run(
        [sys.executable, "-c", code, str(db_path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


HOLDER = textwrap.dedent("""
    import duckdb, sys, time
    con = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
""")


def _hold(db_path: Path, seconds: float) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db_path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout.readline().strip() == "holding"
    return p


def test_busy_file_raises_database_busy_after_the_wait(db_path):
    Workspace.open(db_path).templates.create("t", "x")
    holder = _hold(db_path, 30)
    try:
        ws = Workspace(db_path, settings=None)
        ws.db.busy_timeout = 0.5
        t0 = time.monotonic()
        with pytest.raises(
            DatabaseBusy, match="database busy: another promptver process is writing"
        ):
            ws.templates.get("t")
        assert 0.45 <= time.monotonic() - t0 < 5
    finally:
        holder.kill()
        holder.wait()


def test_a_writer_waits_for_a_short_lock_and_then_succeeds(db_path):
    Workspace.open(db_path).templates.create("t", "x")
    holder = _hold(db_path, 1.0)
    try:
        ws = Workspace(db_path)
        ws.db.busy_timeout = 20
        t = ws.templates.update("t", "y")  # waits for the holder to let go
        assert t.version == "1.1.0"
    finally:
        holder.wait()


def test_threads_share_the_file_in_one_process(ws):
    ws.templates.create("t", "v0")
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(5):
                ws.templates.get("t")
                ws.templates.list()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


def test_damaged_file_gives_recovery_steps(tmp_path):
    bad = tmp_path / "bad.duckdb"
    bad.write_bytes(b"this is not a duckdb file at all" * 100)
    with pytest.raises(DatabaseError, match="cannot open .*Recovering a damaged database"):
        Workspace.open(bad)


def test_data_version_changes_on_writes_here_and_in_other_processes(ws, qa, db_path):
    v0 = ws.db.data_version()
    ws.templates.get("qa-basic")
    ws.templates.list()
    assert ws.db.data_version() == v0, "reads do not change it"
    ws.templates.update("qa-basic", "Changed {question} {context}")
    v1 = ws.db.data_version()
    assert v1 != v0
    time.sleep(0.01)
    code = (
        "import sys; from promptver import Workspace; "
        "Workspace.open(sys.argv[1]).templates.update('qa-basic', 'Other process {question}')"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(db_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert r.returncode == 0, r.stderr
    assert ws.db.data_version() != v1
    assert ws.db.data_version()[0] == v1[0], "the other process's write is seen through the file"


def test_lazy_session_opens_only_when_needed_and_once(ws, qa, monkeypatch):
    opened = []
    real = ws.db._open

    def counting():
        opened.append(1)
        return real()

    monkeypatch.setattr(ws.db, "_open", counting)
    with ws.db.lazy_session():
        pass
    assert opened == []
    with ws.db.lazy_session():
        ws.templates.get("qa-basic")
        ws.templates.list()
        with ws.db.lazy_session():
            ws.templates.get("qa-basic", "1.0.0")
    assert opened == [1]
    assert ws.db._state.con is None and ws.db._state.depth == 0  # released at the end

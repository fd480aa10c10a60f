"""``promptver backup`` from a second process while another process keeps writing.

tests/test_backup.py covers backups taken by a thread of the writing process; here the writer is
another process (as the dashboard or an application would be) and the backups are taken with the
CLI, so the file is shared through DuckDB's file lock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from promptver import Workspace
from promptver.backup import restore

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

WRITER = """
import os, sys, time
from promptver import Workspace
ws = Workspace.open(sys.argv[1])
stop = sys.argv[2]  # the test creates this file once its backups are done
deadline = time.monotonic() + 120  # a bound, should the test die
i = 0
while time.monotonic() < deadline and not os.path.exists(stop):
    i += 1
    t = ws.templates.update("t", f"version {i} of {{x}}", author="writer")
    print(t.commit, t.version, flush=True)
    time.sleep(0.02)
ws.close()
"""


def test_cli_backups_while_another_process_writes_are_complete_and_consistent(tmp_path, run_cli):
    db = tmp_path / "live.duckdb"
    with Workspace.open(db) as ws:
        ws.templates.create("t", "version 0 of {x}", author="seed")
        seed = ws.templates.get("t").commit
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROMPTVER_BUSY_TIMEOUT": "20"}
    stop = tmp_path / "stop-writing"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(stop)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    written: list[str] = [seed]
    reader = threading.Thread(target=lambda: written.extend(x.split()[0] for x in writer.stdout))
    reader.start()
    backups = []
    try:
        time.sleep(1.5)
        for i in range(3):
            target = tmp_path / f"backup-{i}.duckdb"
            r = run_cli("backup", str(target), db=db, env={"PROMPTVER_BUSY_TIMEOUT": "20"})
            assert r.code == 0, r.err
            backups.append(target)
            time.sleep(0.5)
        time.sleep(1.0)  # the writer goes on committing after the last backup
    finally:
        stop.touch()
        writer.wait(timeout=60)
        reader.join(timeout=10)
    assert writer.returncode == 0, writer.stderr.read()
    done = set(written)
    heads = []
    for target in backups:
        copy = Workspace.open(target)
        try:
            assert copy.versions.fsck().ok
            head = copy.templates.get("t")
            log = copy.versions.log(head.id, head.commit)
            # one snapshot: the whole chain up to its head, versions without a gap
            assert [c.version for c in log] == [f"1.{n}.0" for n in range(len(log))][::-1]
            assert {c.id for c in log} <= done  # only commits the writer reported
            heads.append(len(log))
        finally:
            copy.close()
    assert heads == sorted(heads) and heads[-1] > 1  # later backups hold more of the history
    # the writer was never blocked for good: it went on committing after the last backup
    with Workspace.open(db) as ws:
        final = ws.templates.get("t")
        assert len(ws.versions.log(final.id, final.commit)) == len(done) > heads[-1]
        # and a backup restores into a working database with exactly its history
        restore(ws.db, backups[0])
    with Workspace.open(db) as ws:
        t = ws.templates.get("t")
        assert len(ws.versions.log(t.id, t.commit)) == heads[0]
        assert ws.templates.update("t", "after restore {x}").version == f"1.{heads[0]}.0"


def test_restore_refuses_a_backup_that_fails_fsck_and_changes_nothing(tmp_path):
    """The backup is checked like ``fsck`` before it replaces anything (a tampered commit)."""
    import duckdb

    from promptver.backup import backup
    from promptver.errors import IntegrityError

    db = tmp_path / "live.duckdb"
    with Workspace.open(db) as ws:
        ws.templates.create("t", "Hello {x}", author="seed")
        copy = backup(ws.db, tmp_path / "copy.duckdb")
    with duckdb.connect(str(copy)) as con:
        con.execute("UPDATE commits SET content = 'Tampered {x}'")
    with Workspace.open(db) as ws:
        with pytest.raises(IntegrityError, match="fails the integrity check.*does not match"):
            restore(ws.db, copy)
        assert ws.templates.get("t").content == "Hello {x}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.duckdb", "live.duckdb"]

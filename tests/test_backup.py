"""``promptver backup`` and ``restore``."""

from __future__ import annotations

import threading

import duckdb
import pytest

from promptver import Workspace
from promptver.backup import backup, restore
from promptver.errors import PromptverError
from promptver.versioning import expected_id


def _snapshot(ws: Workspace) -> list:
    return [
        (t.name, t.version, t.commit, t.content) for t in ws.templates.list(include_archived=True)
    ]


def test_backup_is_a_complete_working_copy(ws, qa, tmp_path):
    ws.templates.create("second", "Hi {x}")
    dest = backup(ws.db, tmp_path / "b" / "copy.duckdb")
    copy = Workspace.open(dest)
    assert _snapshot(copy) == _snapshot(ws)
    for t in copy.templates.list():
        for c in copy.versions.log(t.id, t.commit):
            assert c.id == expected_id(c)
    # the copy is a working database: it accepts new commits with the next version
    assert copy.templates.update("qa-basic", "New {question} {context}").version == "1.2.0"


def test_backup_while_another_thread_writes_is_consistent(ws, tmp_path):
    ws.templates.create("t", "v0")
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            ws.templates.update("t", f"v{i}")

    th = threading.Thread(target=writer)
    th.start()
    try:
        paths = [backup(ws.db, tmp_path / f"b{i}.duckdb") for i in range(3)]
    finally:
        stop.set()
        th.join()
    for p in paths:
        copy = Workspace.open(p)
        head = copy.templates.get("t")
        # every version label points at a commit that exists and the chain is complete
        log = copy.versions.log(head.id, head.commit)
        assert log[-1].version == "1.0.0"
        assert len(log) == int(head.version.split(".")[1]) + 1


def test_backup_refuses_to_overwrite_or_copy_onto_itself(ws, qa, tmp_path, db_path):
    dest = backup(ws.db, tmp_path / "c.duckdb")
    with pytest.raises(PromptverError, match="already exists"):
        backup(ws.db, dest)
    backup(ws.db, dest, overwrite=True)
    with pytest.raises(PromptverError, match="another file"):
        backup(ws.db, db_path)


def test_restore_brings_back_the_backup_and_keeps_the_replaced_file(ws, qa, tmp_path, db_path):
    dest = backup(ws.db, tmp_path / "good.duckdb")
    before = _snapshot(ws)
    ws.templates.update("qa-basic", "After the backup {question} {context}")
    ws.templates.create("newer", "x")
    kept = restore(ws.db, dest)
    assert _snapshot(Workspace.open(db_path)) == before
    assert kept is not None and {t[0] for t in _snapshot(Workspace.open(kept))} == {
        "qa-basic",
        "newer",
    }


def test_restore_refuses_files_that_are_not_promptver_backups(ws, tmp_path):
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"nope" * 100)
    with pytest.raises(PromptverError, match="not a readable DuckDB file"):
        restore(ws.db, junk)
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).execute("create table x(a int)").close()
    with pytest.raises(PromptverError, match="not a promptver database"):
        restore(ws.db, other)


def test_cli_backup_and_restore(cli, tmp_path, db_path):
    cli("template", "create", "t", "--content", "one")
    r = cli("backup", str(tmp_path / "bk.duckdb"), json=True)
    assert r.code == 0, r.err
    assert r.json()["bytes"] > 0
    cli("template", "update", "t", "--content", "two")
    r = cli("restore", str(tmp_path / "bk.duckdb"))
    assert r.code == 2 and "--yes" in r.err
    r = cli("restore", str(tmp_path / "bk.duckdb"), "--yes", json=True)
    assert r.code == 0, r.err
    assert cli("template", "show", "t", json=True).json()["content"] == "one"

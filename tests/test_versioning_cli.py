"""The version-control CLI: branch, diff, merge, fsck (and log) with the contract's shapes."""

from __future__ import annotations

import json

import pytest

from tests.versioning_helpers import BASE, edit, state


@pytest.fixture
def t(cli):
    assert cli("template", "create", "t", "--content", BASE).code == 0
    assert cli("branch", "create", "t", "feature").code == 0


def test_branch_create_list_delete(cli, t):
    r = cli("branch", "create", "t", "old", "--from", "1.0.0", json=True)
    assert r.code == 0 and r.json()["name"] == "old"
    cli("template", "update", "t", "--branch", "old", "--content", edit(BASE, 1, "x"))
    r = cli("branch", "list", "t", json=True)
    got = {b["name"]: (b["ahead"], b["behind"]) for b in r.json()}
    assert got == {"main": (0, 0), "feature": (0, 0), "old": (1, 0)}
    human = cli("branch", "list", "t").out
    assert human.splitlines()[0].split() == [
        "BRANCH",
        "HEAD",
        "AHEAD",
        "BEHIND",
        "CREATED",
        "(UTC)",
        "BY",
    ]
    r = cli("branch", "delete", "t", "old")
    assert r.code == 1 and r.err.startswith("error: branch 'old' has 1 unmerged commit")
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1
    r = cli("branch", "delete", "t", "old", "--force")
    assert r.code == 0 and "branch create t old --from" in r.out
    assert cli("branch", "delete", "t", "main").code == 1
    r = cli("branch", "create", "t", "1.0.0")
    assert r.code == 1 and "looks like a version" in r.err
    assert cli("branch", "create", "t").code == 2  # usage error


def test_diff_json_shape_and_human_output(cli, t):
    cli(
        "template",
        "update",
        "t",
        "--branch",
        "feature",
        "--content",
        edit(BASE, 1, "line two {context}"),
    )
    r = cli("diff", "t", "main", "feature", json=True)
    assert r.code == 0
    out = r.json()
    assert list(out) == [
        "unified",
        "changes",
        "variables_added",
        "variables_removed",
        "config_changes",
        "messages_changed",
    ]
    assert out["variables_added"] == ["context"] and out["variables_removed"] == []
    assert out["changes"][0]["words"][1] == {"op": "replace", "old": "2", "new": "two {context}"}
    human = cli("diff", "t", "main", "feature").out
    assert "-line 2\n+line two {context}" in human and "variables added: context" in human
    words = cli("diff", "t", "main", "feature", "--word-diff").out
    assert "line [-2-]{+two {context}+}" in words
    assert cli("diff", "t", "main", "main").out.strip() == "no differences"
    r = cli("diff", "t", "main", "nope")
    assert r.code == 1 and "unknown ref 'nope'" in r.err


def test_merge_fast_forward_and_three_way_json(cli, t):
    f = cli(
        "template", "update", "t", "--branch", "feature", "--content", edit(BASE, 1, "f"), json=True
    ).json()
    r = cli("merge", "t", "feature", json=True)
    assert r.code == 0 and r.json() == {
        "commit": f["commit"],
        "version": "1.1.0",
        "fast_forward": True,
    }
    cli(
        "template",
        "update",
        "t",
        "--branch",
        "feature",
        "--content",
        edit(edit(BASE, 1, "f"), 6, "seven"),
    )
    cli("template", "update", "t", "--content", edit(edit(BASE, 1, "f"), 0, "one {question}"))
    r = cli("merge", "t", "feature", "--message", "Bring in seven", json=True)
    assert r.code == 0 and set(r.json()) == {"commit", "version", "fast_forward"}
    assert r.json()["version"] == "1.3.0" and r.json()["fast_forward"] is False
    log = cli("log", "t", json=True).json()
    assert log[0]["message"] == "Bring in seven" and len(log[0]["parents"]) == 2
    assert cli("merge", "t", "feature").out.startswith("already up to date")


def test_conflicting_merge_exit_1_then_resolve_file(cli, ws, tmp_path, t):
    cli("template", "update", "t", "--content", edit(BASE, 1, "main"))
    cli("template", "update", "t", "--branch", "feature", "--content", edit(BASE, 1, "feat"))
    before = state(ws, "t")
    marked = tmp_path / "merged.txt"
    r = cli("merge", "t", "feature", "--write-conflicts", str(marked), json=True)
    assert r.code == 1 and r.err.startswith("error: merging 'feature' into 'main'")
    assert len(r.err.strip().splitlines()) == 1 and str(marked) in r.err
    assert r.json()["conflicts"] == [
        {"base_start": 2, "base": ["line 2"], "ours": ["main"], "theirs": ["feat"]}
    ]
    assert "<<<<<<< main\nmain\n=======\nfeat\n>>>>>>> feature" in marked.read_text()
    assert state(ws, "t") == before
    r = cli("merge", "t", "feature", "--resolve-file", str(marked))
    assert r.code == 1 and "conflict marker" in r.err and "line 2" in r.err
    marked.write_text(edit(BASE, 1, "main and feat"))
    r = cli("merge", "t", "feature", "--resolve-file", str(marked), json=True)
    assert r.code == 0 and r.json()["version"] == "1.2.0"
    shown = cli("template", "show", "t", json=True).json()
    assert shown["content"] == edit(BASE, 1, "main and feat")


def test_merge_resolve_from_stdin_and_metadata_file(cli, tmp_path, t):
    meta_a, meta_b = tmp_path / "a.yaml", tmp_path / "b.json"
    meta_a.write_text("tone: formal\n")
    meta_b.write_text(json.dumps({"tone": "casual"}))
    cli("template", "update", "t", "--content", BASE + "x\n", "--metadata-file", str(meta_a))
    cli(
        "template",
        "update",
        "t",
        "--branch",
        "feature",
        "--content",
        BASE + "y\n",
        "--metadata-file",
        str(meta_b),
    )
    r = cli("merge", "t", "feature")
    assert r.code == 1 and "metadata key 'tone'" in r.err and "--resolve-metadata-file" in r.err
    r = cli(
        "merge",
        "t",
        "feature",
        "--resolve-file",
        "-",
        "--resolve-metadata-file",
        str(meta_b),
        stdin=BASE + "x\ny\n",
        json=True,
    )
    assert r.code == 0
    shown = cli("template", "show", "t", json=True).json()
    assert shown["content"] == BASE + "x\ny\n"
    assert cli("merge", "t", "feature", "--resolve-metadata-file", "missing.yaml").code == 1


def test_merge_into_another_branch(cli, t):
    cli("branch", "create", "t", "review")
    cli("template", "update", "t", "--branch", "feature", "--content", edit(BASE, 1, "f"))
    r = cli("merge", "t", "feature", "--into", "review", json=True)
    assert r.json()["version"] is None and r.json()["fast_forward"] is True
    assert cli("template", "show", "t", json=True).json()["version"] == "1.0.0"


def test_fsck_ok_then_catches_a_corrupted_row(cli, ws, t):
    r = cli("fsck", json=True)
    assert r.code == 0 and r.json()["ok"] is True and r.json()["commits"] == 1
    tid = ws.templates.row("t")["id"]
    with ws.db.transaction() as con:
        con.execute(
            "UPDATE commits SET content = content || 'tampered' WHERE template_id = ?", [tid]
        )
    r = cli("fsck")
    assert r.code == 1 and "[hash_mismatch] t" in r.out and "was changed" in r.out
    r = cli("fsck", json=True)
    assert r.code == 1 and [p["kind"] for p in r.json()["problems"]] == ["hash_mismatch"]


def test_fsck_catches_broken_links(ws, qa):
    tid = qa.id
    root = ws.versions.resolve(tid, "1.0.0").id
    with ws.db.transaction() as con:
        con.execute("DELETE FROM commits WHERE id = ?", [root])  # 1.1.0 loses its parent
        con.execute("INSERT INTO branches VALUES (?, 'ghost', 'f00d', now(), 'x')", [tid])
        con.execute(
            "UPDATE versions SET major = 7 WHERE template_id = ? AND version = '1.1.0'", [tid]
        )
        con.execute("UPDATE commits SET metadata = '[1]' WHERE id = ?", [qa.commit])
    report = ws.versions.fsck()
    kinds = sorted(p.kind for p in report.problems)
    assert not report.ok
    assert kinds == [
        "bad_metadata",
        "bad_version",
        "missing_head",
        "missing_parent",
        "missing_version_commit",
    ]
    assert all(p.template == "qa-basic" for p in report.problems)


def test_fsck_catches_versions_off_main_and_wrong_variables(ws, qa):
    ws.versions.create_branch("qa-basic", "side")
    side = ws.templates.update("qa-basic", "Side {question} {context}", branch="side")
    with ws.db.transaction() as con:
        con.execute(
            "INSERT INTO versions VALUES (?, '9.0.0', 9, 0, 0, ?, now())", [qa.id, side.commit]
        )
        con.execute("UPDATE commits SET variables = ['nope'] WHERE id = ?", [qa.commit])
    kinds = sorted(p.kind for p in ws.versions.fsck().problems)
    assert kinds == ["bad_variables", "version_off_main"]


def test_log_contract_shape_and_all_branches(cli, t):
    cli("template", "update", "t", "--branch", "feature", "--content", edit(BASE, 1, "f"))
    cli("template", "update", "t", "--content", edit(BASE, 2, "m"))
    log = cli("log", "t", json=True).json()
    assert [set(e) for e in log] == [
        {"commit", "parents", "version", "message", "author", "created_at"}
    ] * 2
    assert [e["version"] for e in log] == ["1.1.0", "1.0.0"]
    feature = cli("log", "t", "--branch", "feature", json=True).json()
    assert [e["version"] for e in feature] == [None, "1.0.0"]
    every = cli("log", "t", "--all", json=True).json()
    assert len(every) == 3 and sorted(h for e in every for h in e["branches"]) == [
        "feature",
        "main",
    ]
    assert "LANE" in cli("log", "t", "--all").out


def test_console_entry_exit_codes_without_tracebacks(run_cli, ws, qa):
    ws.versions.create_branch("qa-basic", "side", from_ref="1.0.0")
    ws.templates.update("qa-basic", "Side {question} using {context}.", branch="side")
    r = run_cli("merge", "qa-basic", "side")
    assert r.code == 1 and r.err.startswith("error: merging 'side' into 'main'")
    assert "Traceback" not in r.err
    with ws.db.transaction() as con:
        con.execute("UPDATE commits SET author = 'mallory' WHERE id = ?", [qa.commit])
    r = run_cli("fsck")
    assert r.code == 1 and "[hash_mismatch] qa-basic" in r.out
    assert run_cli("merge", "qa-basic").code == 2  # usage error


def test_fsck_catches_deployments_of_missing_or_foreign_commits(ws, qa):
    other = ws.templates.create("other", "Other {x}")
    ws.deployments.deploy("qa-basic", "1.0.0", "development", author="t")
    ws.deployments.deploy("qa-basic", "1.1.0", "development", author="t")
    assert ws.versions.fsck().ok
    with ws.db.transaction() as con:
        con.execute("UPDATE deployments SET commit_id = 'deadbeef' WHERE env_seq = 1")
        con.execute(
            "UPDATE deployments SET replaced_commit_id = ? WHERE env_seq = 2", [other.commit]
        )
    kinds = sorted(p.kind for p in ws.versions.fsck().problems)
    assert kinds == ["foreign_deployed_commit", "missing_deployed_commit"]

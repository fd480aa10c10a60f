"""Refs, branches, compare-and-swap heads, diffs, history lanes and fsck."""

from __future__ import annotations

import threading

import pytest

from promptver import Conflict, NotFound, ValidationError
from promptver.diffing import apply_unified, diff_texts, split_lines, unified_diff
from promptver.models import Commit
from promptver.store import templates as sql
from tests.versioning_helpers import BASE, edit

# ---- refs ------------------------------------------------------------------------------------


def test_refs_resolve_versions_branches_and_prefixes(ws, qa):
    tid = qa.id
    v1 = ws.versions.resolve(tid, "1.0.0")
    assert v1.version == "1.0.0" and "briefly" not in v1.content
    assert ws.versions.resolve(tid, "main").id == qa.commit
    assert ws.versions.resolve(tid, qa.commit[:7]).id == qa.commit
    assert ws.versions.resolve(tid, qa.commit[:7].upper()).id == qa.commit
    assert ws.versions.resolve(tid, qa.commit).id == qa.commit
    with pytest.raises(NotFound, match="no version 9.9.9"):
        ws.versions.resolve(tid, "9.9.9")
    with pytest.raises(NotFound, match="7"):  # 6 characters are not a prefix
        ws.versions.resolve(tid, qa.commit[:6])
    with pytest.raises(NotFound, match="unknown ref 'nope'"):
        ws.versions.resolve(tid, "nope")


def test_ambiguous_prefix_lists_the_candidates(ws, qa):
    head = ws.versions.get_commit(qa.commit)
    twin_id = qa.commit[:7] + ("0" if qa.commit[7] != "0" else "1") + "f" * 56
    with ws.db.transaction() as con:
        sql.insert_commit(con, Commit(**{**head.model_dump(), "id": twin_id, "version": None}))
    with pytest.raises(ValidationError, match="ambiguous commit prefix") as err:
        ws.versions.resolve(qa.id, qa.commit[:7])
    assert qa.commit[:12] in err.value.message and twin_id[:12] in err.value.message
    assert ws.versions.resolve(qa.id, qa.commit[:8]).id == qa.commit  # one more char decides


def test_branch_is_resolved_before_a_commit_prefix(ws, qa):
    ws.versions.create_branch("qa-basic", "feature-x", from_ref="1.0.0")
    assert ws.versions.resolve(qa.id, "feature-x").version == "1.0.0"


@pytest.mark.parametrize(
    "name,why",
    [
        ("1.2.0", "looks like a version"),
        ("deadbeef", "looks like a commit id"),
        ("bad name", "is invalid"),
        ("/lead", "no leading"),
        ("", "is invalid"),
    ],
)
def test_branch_names_that_would_be_ambiguous_are_refused(ws, qa, name, why):
    with pytest.raises(ValidationError, match=why):
        ws.versions.create_branch("qa-basic", name)


# ---- branches --------------------------------------------------------------------------------


def test_branches_list_ahead_behind_against_main(ws, qa):
    ws.versions.create_branch("qa-basic", "old", from_ref="1.0.0", author="ana")
    ws.templates.update("qa-basic", "Old branch {question} {context}", branch="old")
    ws.templates.update("qa-basic", "Again {question} {context}", branch="old")
    ws.versions.create_branch("qa-basic", "tip")
    got = {b.name: (b.ahead, b.behind) for b in ws.versions.list_branches("qa-basic")}
    assert got == {"main": (0, 0), "old": (2, 1), "tip": (0, 0)}
    assert [b.name for b in ws.versions.list_branches("qa-basic")][0] == "main"
    old = next(b for b in ws.versions.list_branches("qa-basic") if b.name == "old")
    assert old.created_by == "ana"


def test_commits_on_a_branch_get_no_version_and_leave_main_alone(ws, qa):
    ws.versions.create_branch("qa-basic", "draft")
    t = ws.templates.update("qa-basic", "Draft {question} {context}", branch="draft")
    assert t.version is None
    assert ws.templates.get("qa-basic").commit == qa.commit


def test_create_branch_errors(ws, qa):
    ws.versions.create_branch("qa-basic", "dup")
    with pytest.raises(ValidationError, match="already has a branch 'dup'"):
        ws.versions.create_branch("qa-basic", "dup")
    with pytest.raises(NotFound, match="unknown ref"):
        ws.versions.create_branch("qa-basic", "x", from_ref="zzz")
    with pytest.raises(NotFound, match="unknown template"):
        ws.versions.create_branch("nope", "x")


def test_delete_branch_rules(ws, qa):
    with pytest.raises(ValidationError, match="cannot delete branch 'main'"):
        ws.versions.delete_branch("qa-basic", "main")
    with pytest.raises(NotFound, match="no branch 'ghost'"):
        ws.versions.delete_branch("qa-basic", "ghost")
    ws.versions.create_branch("qa-basic", "merged")
    ws.versions.delete_branch("qa-basic", "merged")  # head is on main: nothing to lose
    ws.versions.create_branch("qa-basic", "work")
    t = ws.templates.update("qa-basic", "Work {question} {context}", branch="work")
    with pytest.raises(ValidationError, match="1 unmerged commit .*--force"):
        ws.versions.delete_branch("qa-basic", "work")
    ws.versions.create_branch("qa-basic", "keeper", from_ref="work")
    ws.versions.delete_branch("qa-basic", "work")  # another branch contains it
    ws.versions.create_branch("qa-basic", "work", from_ref="keeper")
    ws.versions.delete_branch("qa-basic", "keeper")  # "work" contains it again
    deleted = ws.versions.delete_branch("qa-basic", "work", force=True)
    assert deleted.head == t.commit
    assert [b.name for b in ws.versions.list_branches("qa-basic")] == ["main"]
    # deleting a branch never deletes commits
    assert ws.versions.resolve(qa.id, t.commit[:10]).content == "Work {question} {context}"


# ---- compare-and-swap ------------------------------------------------------------------------


def test_stale_expected_head_is_refused(ws, qa):
    ws.templates.update("qa-basic", "Newer {question} {context}")
    with pytest.raises(Conflict, match="moved"):
        ws.templates.update("qa-basic", "Mine {question} {context}", expected_head=qa.commit)
    assert ws.templates.get("qa-basic").content == "Newer {question} {context}"


def test_two_threads_editing_the_same_head_one_wins_one_conflicts(ws, qa):
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def edit_as(who: str) -> None:
        barrier.wait()
        try:
            outcomes[who] = ws.templates.update(
                "qa-basic",
                f"{who} says {{question}} {{context}}",
                author=who,
                expected_head=qa.commit,
            )
        except Conflict as exc:
            outcomes[who] = exc

    threads = [threading.Thread(target=edit_as, args=(w,)) for w in ("tab1", "tab2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    wins = [w for w, o in outcomes.items() if not isinstance(o, Exception)]
    losses = [w for w, o in outcomes.items() if isinstance(o, Conflict)]
    assert len(wins) == 1 and len(losses) == 1, outcomes
    head = ws.templates.get("qa-basic")
    assert head.content == f"{wins[0]} says {{question}} {{context}}"
    assert head.version == "1.2.0"
    log = ws.versions.log(qa.id, head.commit)
    assert [c.version for c in log] == ["1.2.0", "1.1.0", "1.0.0"]  # the loser left nothing
    # the loser can re-apply on top of the new head
    again = ws.templates.update(
        "qa-basic", f"{losses[0]} again {{question}} {{context}}", expected_head=head.commit
    )
    assert again.version == "1.3.0"


def test_two_threads_merging_into_main_at_once(ws, qa):
    for name in ("left", "right"):
        ws.versions.create_branch("qa-basic", name)
    ws.templates.update("qa-basic", "Left {question} briefly using {context}.", branch="left")
    ws.templates.update(
        "qa-basic", "Answer {question} briefly using {context}. Right.", branch="right"
    )
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def merge(src: str) -> None:
        barrier.wait()
        try:
            outcomes[src] = ws.versions.merge("qa-basic", src, expected_head=qa.commit)
        except Conflict as exc:
            outcomes[src] = exc

    threads = [threading.Thread(target=merge, args=(s,)) for s in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    kinds = sorted(
        "Conflict" if isinstance(o, Conflict) else type(o).__name__ for o in outcomes.values()
    )
    assert kinds == ["Conflict", "MergeResult"]  # the loser: a moved head or a write race
    assert len([v for v in ws.templates.get("qa-basic").version or ""]) > 0
    versions = [
        c.version for c in ws.versions.log(qa.id, ws.templates.get("qa-basic").commit) if c.version
    ]
    assert versions == ["1.2.0", "1.1.0", "1.0.0"]


# ---- diff ------------------------------------------------------------------------------------


def test_diff_between_refs(ws):
    ws.templates.create("t", BASE, metadata={"variables": {"question": {"type": "str"}}})
    ws.versions.create_branch("t", "b")
    new = edit(edit(BASE, 2, "line three {context}"), 5, "line 6 changed")
    ws.templates.update(
        "t",
        new,
        branch="b",
        metadata={
            "variables": {"question": {"type": "str", "description": "Asked"}},
            "owner": "ana",
        },
    )
    d = ws.versions.diff("t", "1.0.0", "b")
    out = d.as_dict()
    assert set(out) == {
        "unified",
        "changes",
        "variables_added",
        "variables_removed",
        "config_changes",
        "messages_changed",
    }
    assert out["variables_added"] == ["context"] and out["variables_removed"] == []
    assert "-line 3\n+line three {context}\n" in out["unified"]
    assert out["unified"].startswith("--- a/t@1.0.0\n+++ b/t@b\n")
    text = [c for c in out["changes"] if c["kind"] == "text"]
    assert [(c["op"], c["old_start"], c["new_start"]) for c in text] == [
        ("replace", 3, 3),
        ("replace", 6, 6),
    ]
    words = [(w["op"], w["old"], w["new"]) for w in text[0]["words"] if w["op"] != "equal"]
    assert words == [("replace", "3", "three {context}")]
    assert "".join(w["old"] for w in text[0]["words"]) == "line 3\n"
    meta = [
        (c["op"], c["key"], c["old"], c["new"]) for c in out["changes"] if c["kind"] == "metadata"
    ]
    assert meta == [
        ("added", "owner", None, "ana"),
        ("added", "variables.question.description", None, "Asked"),
    ]
    assert apply_unified(BASE, out["unified"]) == new
    assert d.old_commit == ws.versions.resolve(ws.templates.row("t")["id"], "1.0.0").id


def test_diff_of_equal_refs_is_empty(ws, qa):
    d = ws.versions.diff("qa-basic", "main", "1.1.0")
    assert d.identical and d.as_dict() == {
        "unified": "",
        "changes": [],
        "variables_added": [],
        "variables_removed": [],
        "config_changes": [],
        "messages_changed": [],
    }


def test_diff_keeps_line_endings_and_missing_final_newline():
    a, b = "x\r\ny\nlast", "x\r\ny\nlast\n"
    patch = unified_diff(a, b)
    assert "\\ No newline at end of file" in patch
    assert apply_unified(a, patch) == b
    assert split_lines("a\u2028b\nc") == ["a\u2028b\n", "c"]
    d = diff_texts("same", "same")
    assert d.unified == "" and d.changes == []


def test_patch_that_does_not_apply_is_refused():
    patch = unified_diff("a\nb\nc\n", "a\nB\nc\n")
    with pytest.raises(ValidationError, match="does not apply"):
        apply_unified("a\nX\nc\n", patch)
    with pytest.raises(ValidationError, match="hunk header"):
        apply_unified("a\n", "--- a\n+++ b\nnonsense\n")


# ---- history ---------------------------------------------------------------------------------


def test_history_puts_branches_in_lanes(ws, qa):
    ws.versions.create_branch("qa-basic", "feature")
    f1 = ws.templates.update("qa-basic", "F1 {question} {context}", branch="feature")
    ws.versions.create_branch("qa-basic", "zzz-gone")
    gone = ws.templates.update("qa-basic", "Gone {question} {context}", branch="zzz-gone")
    ws.versions.merge("qa-basic", "zzz-gone", no_ff=True)
    ws.versions.delete_branch("qa-basic", "zzz-gone")
    rows = ws.versions.history("qa-basic")
    by = {r.commit: r for r in rows}
    assert rows[0].lane == 0 and rows[0].lane_name == "main" and rows[0].branches == ["main"]
    assert len(rows[0].parents) == 2
    assert by[f1.commit].lane_name == "feature" and by[f1.commit].branches == ["feature"]
    assert by[gone.commit].lane_name == "" and by[gone.commit].lane == 2
    assert [r.row for r in rows] == list(range(len(rows)))
    for r in rows:  # every parent is drawn below its child
        assert all(p > r.row for p in r.parent_rows)
    assert [r.version for r in rows if r.lane == 0] == ["1.2.0", "1.1.0", "1.0.0"]
    assert len(ws.versions.history("qa-basic", limit=2)) == 2

"""Three-way merges: fast-forward, clean, conflicting, resolved, branch-to-branch, criss-cross."""

from __future__ import annotations

import pytest

from promptver import Conflict, MergeConflict, NotFound, ValidationError
from promptver.merging import merge_metadata, merge_texts
from tests.versioning_helpers import BASE, edit, state


@pytest.fixture
def t(ws):
    """Template ``t`` (1.0.0 = BASE) with a branch ``feature`` at 1.0.0."""
    ws.templates.create("t", BASE, author="ana")
    ws.versions.create_branch("t", "feature")
    return ws.templates.row("t")["id"]


def test_fast_forward_into_main_labels_the_source_head_with_the_next_version(ws, t):
    ws.templates.update("t", edit(BASE, 1, "line 2 a"), branch="feature")
    f2 = ws.templates.update("t", edit(BASE, 1, "line 2 b"), branch="feature")
    before = state(ws, "t")
    r = ws.versions.merge("t", "feature")
    assert r.fast_forward and not r.up_to_date
    assert r.as_contract() == {"commit": f2.commit, "version": "1.1.0", "fast_forward": True}
    after = state(ws, "t")
    assert after["commits"] == before["commits"]  # no new commit, just a moved head
    assert after["heads"]["main"] == f2.commit and after["versions"] == 2
    assert ws.templates.get("t", "1.1.0").content == edit(BASE, 1, "line 2 b")
    # the intermediate branch commit stays unversioned
    log = ws.versions.log(t, f2.commit)
    assert [c.version for c in log] == ["1.1.0", None, "1.0.0"]


def test_fast_forward_with_major_bump_and_no_ff(ws, t):
    ws.templates.update("t", edit(BASE, 1, "two"), branch="feature")
    r = ws.versions.merge("t", "feature", bump="major", no_ff=True, message="Release")
    assert not r.fast_forward and r.version == "2.0.0"
    c = ws.versions.get_commit(r.commit)
    assert c.message == "Release" and len(c.parents) == 2
    assert c.content == edit(BASE, 1, "two")


def test_merging_an_ancestor_or_itself_is_a_no_op(ws, t):
    ws.templates.update("t", edit(BASE, 1, "x"))
    before = state(ws, "t")
    for src in ("feature", "1.0.0", "main", "1.1.0"):
        r = ws.versions.merge("t", src)
        assert r.up_to_date and not r.fast_forward and r.commit == before["heads"]["main"]
    assert state(ws, "t") == before
    with pytest.raises(ValidationError, match="nothing to merge"):
        ws.versions.merge("t", "feature", resolution="anything")


def test_clean_three_way_merge_combines_both_sides(ws, t):
    ws.templates.update("t", edit(BASE, 1, "line 2 from main"))
    f = ws.templates.update("t", edit(BASE, 5, "line 6 {context} from feature"), branch="feature")
    main_head = ws.templates.get("t").commit
    r = ws.versions.merge("t", "feature", author="ben")
    assert not r.fast_forward and r.version == "1.2.0"
    assert r.merge_bases == [ws.versions.resolve(t, "1.0.0").id]
    c = ws.versions.get_commit(r.commit)
    assert c.parents == [main_head, f.commit]
    assert c.content == edit(edit(BASE, 1, "line 2 from main"), 5, "line 6 {context} from feature")
    assert c.variables == ["question", "context"] and c.author == "ben"
    assert c.message == "Merge feature into main"
    # merging again is a no-op, and the branch is now "merged"
    assert ws.versions.merge("t", "feature").up_to_date
    ws.versions.delete_branch("t", "feature")


def test_conflicting_merge_reports_hunks_and_writes_nothing(ws, t):
    ws.templates.update("t", edit(edit(BASE, 1, "main 2"), 5, "main 6"))
    ws.templates.update("t", edit(edit(BASE, 1, "feature 2"), 6, "feature 7"), branch="feature")
    before = state(ws, "t")
    with pytest.raises(MergeConflict) as err:
        ws.versions.merge("t", "feature")
    exc = err.value
    assert [h.as_dict() for h in exc.hunks] == [
        {"base_start": 2, "base": ["line 2"], "ours": ["main 2"], "theirs": ["feature 2"]},
        {
            "base_start": 6,
            "base": ["line 6", "line 7"],
            "ours": ["main 6", "line 7"],
            "theirs": ["line 6", "feature 7"],
        },
    ]
    assert "2 conflicting hunks" in exc.message and "nothing was written" in exc.message
    assert "hunk 1 at base line 2" in exc.message and "--resolve-file" in exc.message
    assert exc.marked.count("<<<<<<< main") == 2 and ">>>>>>> feature" in exc.marked
    assert state(ws, "t") == before


def test_resolution_commits_a_merge_with_two_parents_and_a_version(ws, t):
    main = ws.templates.update("t", edit(BASE, 1, "main 2"))
    feat = ws.templates.update("t", edit(BASE, 1, "feature 2"), branch="feature")
    plan = ws.versions.plan_merge("t", "feature")
    assert plan.kind == "merge" and not plan.clean and len(plan.text.conflicts) == 1
    assert plan.text.resolve(["theirs"]) == edit(BASE, 1, "feature 2")
    assert plan.text.resolve(["ours+theirs"]) == edit(BASE, 1, "main 2\nfeature 2")
    with pytest.raises(ValidationError, match="conflict markers") as err:
        ws.versions.merge("t", "feature", resolution=plan.text.marked())
    assert err.value.problems[0].line == 2
    with pytest.raises(ValidationError, match="merged text is invalid"):
        ws.versions.merge("t", "feature", resolution="broken {x.y}")
    resolved = edit(BASE, 1, "line 2 from both")
    r = ws.versions.merge(
        "t",
        "feature",
        resolution=resolved,
        message="Resolve wording",
        expected_head=main.commit,
        expected_source=feat.commit,
    )
    assert r.version == "1.2.0" and r.conflicts_resolved == 1 and not r.fast_forward
    c = ws.versions.get_commit(r.commit)
    assert c.parents == [main.commit, feat.commit] and c.content == resolved
    assert ws.templates.get("t").version == "1.2.0"


def test_resolution_against_a_moved_head_is_refused(ws, t):
    main = ws.templates.update("t", edit(BASE, 1, "main 2"))
    feat = ws.templates.update("t", edit(BASE, 1, "feature 2"), branch="feature")
    ws.templates.update("t", edit(BASE, 1, "main 2 again"))
    before = state(ws, "t")
    with pytest.raises(Conflict, match="branch 'main' moved"):
        ws.versions.merge("t", "feature", resolution="x", expected_head=main.commit)
    ws.templates.update("t", edit(BASE, 1, "feature 2 again"), branch="feature")
    with pytest.raises(Conflict, match="'feature' moved"):
        ws.versions.merge("t", "feature", resolution="x", expected_source=feat.commit)
    assert state(ws, "t")["commits"] == before["commits"] + 1


def test_merge_a_branch_into_another_branch(ws, t):
    ws.versions.create_branch("t", "review")
    ws.templates.update("t", edit(BASE, 0, "line 1 {question} reviewed"), branch="review")
    f = ws.templates.update("t", edit(BASE, 6, "line 7 feature"), branch="feature")
    r = ws.versions.merge("t", "feature", into="review")
    assert r.version is None and not r.fast_forward
    review = ws.templates.get("t", branch="review")
    assert review.commit == r.commit and review.version is None
    assert review.content == edit(edit(BASE, 0, "line 1 {question} reviewed"), 6, "line 7 feature")
    assert f.commit in ws.versions.get_commit(r.commit).parents
    assert ws.templates.get("t").version == "1.0.0"  # main untouched
    # fast-forward into a branch moves it without a version
    ws.versions.create_branch("t", "trail", from_ref="1.0.0")
    ff = ws.versions.merge("t", "review", into="trail")
    assert ff.fast_forward and ff.version is None and ff.commit == review.commit
    with pytest.raises(NotFound, match="no branch 'ghost' to merge into"):
        ws.versions.merge("t", "review", into="ghost")


def test_metadata_merges_key_by_key_and_conflicts_need_a_resolution(ws, t):
    ws.templates.update("t", metadata={"owner": "ana", "tone": "formal"})
    ws.templates.update("t", metadata={"tone": "casual", "lang": "en"}, branch="feature")
    before = state(ws, "t")
    with pytest.raises(MergeConflict, match="metadata key 'tone' changed on both sides"):
        ws.versions.merge("t", "feature")
    assert state(ws, "t") == before
    plan = ws.versions.plan_merge("t", "feature")
    assert plan.text.clean and [c.key for c in plan.metadata.conflicts] == ["tone"]
    meta = plan.metadata.resolve({"tone": "theirs"})
    assert meta == {"owner": "ana", "tone": "casual", "lang": "en"}
    r = ws.versions.merge("t", "feature", resolution_metadata=meta)
    assert ws.versions.get_commit(r.commit).metadata == meta


def test_criss_cross_merge_uses_a_virtual_base_of_both_merge_bases(ws, t):
    """Both branches merged each other (two merge bases). main then reverts feature's line 7
    and feature changes line 3. The recursive (virtual) base holds both old changes, so the
    revert on main survives; merging against main's old commit alone would bring line 7 back."""
    m1 = ws.templates.update("t", edit(BASE, 0, "line 1 {question} main"))
    f1 = ws.templates.update("t", edit(BASE, 6, "line 7 feature"), branch="feature")
    both = edit(edit(BASE, 0, "line 1 {question} main"), 6, "line 7 feature")
    # criss-cross: each side merges the other's *old* head
    ws.versions.merge("t", f1.commit[:12], into="main")
    ws.versions.create_branch("t", "tmp", from_ref=m1.commit[:12])
    ws.versions.merge("t", "feature", into="tmp")  # a merge commit (m1 + f1) for feature
    ws.versions.merge("t", "tmp", into="feature")  # feature fast-forwards to it
    main = ws.templates.get("t")
    feature = ws.templates.get("t", branch="feature")
    assert main.content == feature.content == both and main.commit != feature.commit
    bases = ws.versions.merge_bases(t, main.commit, feature.commit)
    assert sorted(bases) == sorted([m1.commit, f1.commit])
    # main reverts line 7, feature changes line 3
    reverted = edit(both, 6, "line 7")
    ws.templates.update("t", reverted)
    ws.templates.update("t", edit(both, 2, "line 3 feature"), branch="feature")
    plan = ws.versions.plan_merge("t", "feature")
    assert plan.criss_cross and plan.base_content == both
    r = ws.versions.merge("t", "feature")
    assert ws.versions.get_commit(r.commit).content == edit(reverted, 2, "line 3 feature")
    naive = merge_texts(m1.content, reverted, edit(both, 2, "line 3 feature")).text()
    assert "line 7 feature" in naive  # what a single, arbitrary base would have done
    # and in the other direction
    ws.versions.create_branch("t", "other", from_ref=r.commit[:12])
    assert ws.versions.merge("t", "main", into="other").up_to_date


def test_criss_cross_with_conflicting_bases_keeps_markers_in_the_virtual_base(ws, t):
    ws.templates.update("t", edit(BASE, 3, "main 4"))
    ws.templates.update("t", edit(BASE, 3, "feature 4"), branch="feature")
    m1, f1 = ws.templates.get("t").commit, ws.templates.get("t", branch="feature").commit
    ws.versions.merge("t", f1[:12], resolution=edit(BASE, 3, "agreed 4"))
    ws.versions.create_branch("t", "tmp", from_ref=f1[:12])
    ws.versions.merge("t", m1[:12], into="tmp", resolution=edit(BASE, 3, "agreed 4"))
    ws.versions.merge("t", "tmp", into="feature")
    ws.templates.update("t", edit(edit(BASE, 3, "agreed 4"), 0, "line 1 {question} m"))
    plan = ws.versions.plan_merge("t", "feature")
    assert plan.criss_cross and "<<<<<<<" in plan.base_content
    # both sides resolved the same way: no conflict, main's later edit survives
    assert plan.clean and plan.text.text() == edit(
        edit(BASE, 3, "agreed 4"), 0, "line 1 {question} m"
    )


# ---- the pure merge --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base,ours,theirs,merged",
    [
        ("a\nb\nc", "A\nb\nc", "a\nb\nC", "A\nb\nC"),  # changes far apart
        ("a\nb\nc", "a\nb\nc\nd", "z\na\nb\nc", "z\na\nb\nc\nd"),  # appends at both ends
        ("a\nb\nc", "a\nc", "a\nc", "a\nc"),  # same deletion on both sides
        ("a\nb", "a\nb\n", "A\nb", "A\nb\n"),  # final newline merges too
        ("", "x", "", "x"),
    ],
)
def test_merge_texts_clean_cases(base, ours, theirs, merged):
    m = merge_texts(base, ours, theirs)
    assert m.clean and m.text() == merged


def test_adjacent_line_changes_conflict_as_in_git():
    m = merge_texts("a\nb\nc\nd", "a\nB\nc\nd", "a\nb\nC\nd")
    assert not m.clean and m.hunks[0].base_lines == ["b", "c"]
    with pytest.raises(ValidationError, match="1 conflicting"):
        m.text()
    with pytest.raises(ValidationError, match="one choice per conflict"):
        m.resolve([])
    with pytest.raises(ValidationError, match="unknown conflict choice"):
        m.resolve(["mine"])
    assert m.marked(with_base=True).split("\n")[1:8] == [
        "<<<<<<< ours",
        "B",
        "c",
        "||||||| base",
        "b",
        "c",
        "=======",
    ]


def test_merge_metadata_nested_and_deleted_keys():
    base = {"variables": {"q": {"type": "str"}, "n": {"type": "int"}}, "x": 1}
    ours = {"variables": {"q": {"type": "str", "description": "Q"}, "n": {"type": "int"}}, "x": 1}
    theirs = {"variables": {"q": {"type": "str"}}, "x": 1.0}
    mm = merge_metadata(base, ours, theirs)
    assert mm.clean
    assert mm.merged == {"variables": {"q": {"type": "str", "description": "Q"}}, "x": 1.0}
    mm = merge_metadata({"k": 1}, {}, {"k": 2})
    assert [c.as_dict()["ours_present"] for c in mm.conflicts] == [False]
    assert mm.resolve({}) == {} and mm.resolve({"k": "theirs"}) == {"k": 2}
    with pytest.raises(ValidationError, match="ours, theirs or base"):
        mm.resolve({"k": "mine"})

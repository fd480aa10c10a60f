"""Hypothesis properties of diff and merge (pure functions, and merges through the database)."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptver import ValidationError
from promptver.diffing import apply_unified, diff_texts, unified_diff
from promptver.merging import merge_texts

# Few distinct lines, so that texts share lines and the matcher has real work to do.
LINE = st.sampled_from(["alpha", "beta", "gamma", "delta {x}", "", "  indented", "a\rb", "ünï"])
TEXT = st.builds(
    lambda ls, nl: "\n".join(ls) + ("\n" if nl and ls else ""),
    st.lists(LINE, max_size=12),
    st.booleans(),
)
ANY_TEXT = st.one_of(TEXT, st.text(max_size=60))
FAST = settings(max_examples=300, deadline=None)


@FAST
@given(ANY_TEXT, ANY_TEXT, st.integers(min_value=0, max_value=4))
def test_diff_applied_gives_b(a, b, context):
    assert apply_unified(a, unified_diff(a, b, context=context)) == b
    assert apply_unified(a, diff_texts(a, b).as_dict()["unified"]) == b


@FAST
@given(ANY_TEXT, ANY_TEXT)
def test_word_changes_rebuild_both_sides(a, b):
    for c in diff_texts(a, b).changes:
        if c.op == "replace":
            for side, lines in (("old", c.old_lines), ("new", c.new_lines)):
                joined = "".join(getattr(w, side) for w in c.words)
                assert joined in ("\n".join(lines), "\n".join(lines) + "\n")


@FAST
@given(TEXT, TEXT)
def test_when_only_one_side_changed_the_merge_equals_that_side(base, changed):
    theirs_only = merge_texts(base, base, changed)
    ours_only = merge_texts(base, changed, base)
    assert theirs_only.clean and theirs_only.text() == changed
    assert ours_only.clean and ours_only.text() == changed


@FAST
@given(TEXT, TEXT)
def test_merging_with_itself_or_the_same_change_is_that_text(base, changed):
    m = merge_texts(base, changed, changed)
    assert m.clean and m.text() == changed


@FAST
@given(TEXT, TEXT, TEXT)
def test_merge_is_symmetric_and_choices_rebuild_each_side_of_a_conflict(base, ours, theirs):
    m = merge_texts(base, ours, theirs)
    flipped = merge_texts(base, theirs, ours)
    assert len(m.conflicts) == len(flipped.conflicts)
    if m.clean:
        assert m.text() == flipped.text()
    n = len(m.conflicts)
    assert m.resolve(["ours"] * n) == flipped.resolve(["theirs"] * n)
    assert m.resolve(["ours+theirs"] * n) == flipped.resolve(["theirs+ours"] * n)


_names = itertools.count()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    TEXT.filter(lambda s: s.strip()),
    st.lists(TEXT.filter(lambda s: s.strip()), min_size=1, max_size=3),
    st.integers(min_value=0, max_value=2),
)
def test_merges_through_the_database(ws, base, edits, older):
    """A branch merged into main with only the branch changed is a fast-forward to exactly the
    branch's text; merging it (or main itself, or an older version) again is a no-op."""
    name = f"p{next(_names)}"
    ws.templates.create(name, base)
    ws.versions.create_branch(name, "work")
    head = None
    for text in edits:
        try:
            head = ws.templates.update(name, text, branch="work")
        except ValidationError as exc:  # the text did not change
            assert "nothing to commit" in exc.message
    r = ws.versions.merge(name, "work")
    if head is None:
        assert r.up_to_date
    else:
        assert r.fast_forward and r.version == "1.1.0"
        assert ws.templates.get(name).content == head.content
    main = ws.templates.get(name)
    for src in ("work", "main", "1.0.0", main.commit[: 7 + older]):
        again = ws.versions.merge(name, src)
        assert again.up_to_date and again.commit == main.commit
    again = ws.versions.merge(name, "main", into="work")
    assert again.up_to_date or again.fast_forward
    assert ws.templates.get(name, branch="work").content == main.content


@FAST
@given(TEXT, TEXT, st.integers(min_value=0, max_value=4))
def test_unified_is_byte_identical_to_difflib_when_texts_end_with_newline(a, b, context):
    import difflib

    a, b = a + "\n", b + "\n"

    def keepends(text: str) -> list[str]:  # lines split on "\n" only, like ours
        return [x + "\n" for x in text.split("\n")[:-1]]

    theirs = "".join(difflib.unified_diff(keepends(a), keepends(b), "a", "b", n=context))
    ours = unified_diff(a, b, context=context)
    # difflib's default junk heuristic never applies below 200 lines, so the hunks agree
    assert ours == theirs

"""Templates and their commits: create, update, versions, content hashes, search, archive."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC

import pytest

from promptver.errors import Conflict, NotFound, ValidationError


def _independent_commit_id(c) -> str:
    """The documented commit address, computed here without promptver's helper."""
    doc = {
        "template": c.template_id,
        "parents": c.parents,
        "content": c.content,
        "metadata": c.metadata,
        "author": c.author,
        "message": c.message,
        "created_at": c.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"),
    }
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


def test_create_gives_version_1_0_0_and_a_content_address(ws):
    t = ws.templates.create(
        "qa-basic",
        "Answer {question} with {context}.",
        category="qa",
        description="Q&A",
        tags=["support", "rag", "support"],
        author="ana",
        message="first",
    )
    assert t.version == "1.0.0"
    assert t.variables == ["question", "context"]
    assert t.tags == ["support", "rag"]
    assert t.created_by == "ana" and t.is_active
    c = ws.versions.get_commit(t.commit)
    assert c.parents == [] and c.message == "first" and c.author == "ana"
    assert len(c.id) == 64 and c.id == _independent_commit_id(c)


def test_updates_bump_minor_by_default_or_major_patch_on_request(ws):
    ws.templates.create("t", "v1 {a}")
    versions = [
        ws.templates.update("t", f"v{i} {{a}}", bump=b).version
        for i, b in enumerate(["minor", "minor", "patch", "major", "minor"], start=2)
    ]
    assert versions == ["1.1.0", "1.2.0", "1.2.1", "2.0.0", "2.1.0"]
    head = ws.templates.get("t")
    c = ws.versions.get_commit(head.commit)
    assert c.id == _independent_commit_id(c)
    assert c.parents == [ws.templates.get("t", "2.0.0").commit]


def test_get_by_version_id_and_commit_prefix(ws, qa):
    first = ws.templates.get("qa-basic", "1.0.0")
    assert first.content == "Answer {question} using {context}."
    assert ws.templates.get(qa.id).name == "qa-basic"
    assert ws.templates.get("qa-basic", qa.commit[:8]).version == "1.1.0"
    with pytest.raises(NotFound, match="has no version 9.9.9 \\(latest is 1.1.0\\)"):
        ws.templates.get("qa-basic", "9.9.9")
    with pytest.raises(NotFound, match="unknown template 'nope'"):
        ws.templates.get("nope")
    with pytest.raises(NotFound, match="unknown ref 'zzz'"):
        ws.templates.get("qa-basic", "zzz")


def test_names_are_validated_and_unique(ws):
    ws.templates.create("a/b.c-d_e", "x")
    for bad in ["", "has space", "semi;colon", "x" * 101, "/lead", "trail/", "a//b"]:
        with pytest.raises(ValidationError, match="name"):
            ws.templates.create(bad, "x")
    with pytest.raises(ValidationError, match="already exists"):
        ws.templates.create("a/b.c-d_e", "y")


def test_invalid_text_is_refused_and_nothing_is_written(ws):
    with pytest.raises(ValidationError, match=r"line 1, column 4: attribute access"):
        ws.templates.create("t", "Hi {x.__class__}")
    assert ws.templates.list(include_archived=True) == []
    ws.templates.create("t", "ok {a}")
    with pytest.raises(ValidationError, match="format spec"):
        ws.templates.update("t", "{a:>99999}")
    assert ws.templates.get("t").version == "1.0.0"


def test_an_unchanged_update_is_refused(ws, qa):
    with pytest.raises(ValidationError, match="nothing to commit"):
        ws.templates.update("qa-basic", qa.content)


def test_metadata_is_versioned_with_the_text(ws):
    ws.templates.create("t", "{n} items", metadata={"variables": {"n": {"type": "int"}}})
    t2 = ws.templates.update("t", metadata={"variables": {"n": {"type": "int", "default": 3}}})
    assert t2.version == "1.0.1" and t2.content == "{n} items"  # metadata only: a patch
    assert ws.templates.render("t", {}) == "3 items"
    with pytest.raises(Exception, match="missing variable: n"):
        ws.templates.render("t", {}, version="1.0.0")
    with pytest.raises(ValidationError, match=r"metadata.variables.n.type"):
        ws.templates.update("t", metadata={"variables": {"n": {"type": "date"}}})


def test_stale_edit_is_refused_by_compare_and_swap(ws, qa):
    first = ws.templates.get("qa-basic", "1.0.0").commit
    with pytest.raises(Conflict, match="moved"):
        ws.templates.update("qa-basic", "Other {question} {context}", expected_head=first)
    assert ws.templates.get("qa-basic").version == "1.1.0"
    ok = ws.templates.update("qa-basic", "Other {question} {context}", expected_head=qa.commit)
    assert ok.version == "1.2.0"


def test_list_filters_and_search(ws):
    ws.templates.create(
        "qa-basic",
        "Answer {q}",
        category="qa",
        tags=["support", "rag"],
        description="Customer answers",
    )
    ws.templates.create("sum-news", "Summarize {article}", category="summarization", tags=["news"])
    ws.templates.create(
        "tr-formal", "Translate {text} formally", category="translation", tags=["i18n", "support"]
    )
    names = lambda **kw: [t.name for t in ws.templates.list(**kw)]  # noqa: E731
    assert names() == ["qa-basic", "sum-news", "tr-formal"]
    assert names(category="qa") == ["qa-basic"]
    assert names(tags=["support"]) == ["qa-basic", "tr-formal"]
    assert names(tags=["support", "rag"]) == ["qa-basic"]
    assert names(search="SUMMARIZE") == ["sum-news"]  # content, case-insensitive
    assert names(search="customer") == ["qa-basic"]  # description
    assert names(search="i18n") == ["tr-formal"]  # tag
    assert names(search="100%_") == []  # LIKE wildcards are plain text
    assert ws.templates.categories() == ["qa", "summarization", "translation"]
    assert ws.templates.tags() == ["i18n", "news", "rag", "support"]


def test_archive_hides_and_restore_brings_back_keeping_history(ws, qa):
    ws.templates.archive("qa-basic", author="ana")
    assert ws.templates.list() == []
    archived = ws.templates.list(include_archived=True)[0]
    assert not archived.is_active
    assert ws.templates.get("qa-basic", "1.0.0").version == "1.0.0"  # history is kept
    ws.templates.restore("qa-basic")
    assert [t.name for t in ws.templates.list()] == ["qa-basic"]


def test_update_info_is_not_versioned(ws, qa):
    t = ws.templates.update_info("qa-basic", description="new", category="support", tags=["a", "b"])
    assert (t.description, t.category, t.tags, t.version) == ("new", "support", ["a", "b"], "1.1.0")
    with pytest.raises(ValidationError, match="tags"):
        ws.templates.update_info("qa-basic", tags=["bad,tag"])


def test_log_lists_history_newest_first(ws, qa):
    log = ws.versions.log(qa.id, qa.commit)
    assert [c.version for c in log] == ["1.1.0", "1.0.0"]
    assert log[0].parents == [log[1].id]
    assert [c.author for c in log] == ["ben", "ana"]


def test_unicode_content_round_trips(ws):
    text = "Réponds en {langue} 🙂 — «{question}» 中文"
    t = ws.templates.create("unicode", text)
    assert ws.templates.get("unicode").content == text
    assert (
        ws.templates.render("unicode", {"langue": "fr", "question": "{x}"})
        == "Réponds en fr 🙂 — «{x}» 中文"
    )
    c = ws.versions.get_commit(t.commit)
    assert c.id == _independent_commit_id(c)


def test_a_schema_that_only_spells_out_the_defaults_is_no_change(ws):
    """``required: true`` and ``type: str`` are what an absent rule means: writing them out is
    not a change (the dashboard's schema editor fills them in), so nothing is committed."""
    ws.templates.create(
        "t",
        "{n} items for {who}",
        metadata={"variables": {"n": {"type": "int", "default": 3}, "who": {"description": "x"}}},
    )
    spelled_out = {
        "variables": {
            "n": {"type": "int", "required": True, "default": "3"},
            "who": {"type": "str", "required": True, "description": "x"},
        }
    }
    with pytest.raises(ValidationError, match="nothing to commit"):
        ws.templates.update("t", metadata=spelled_out)
    assert [c.version for c in ws.versions.history("t")] == ["1.0.0"]


def test_a_metadata_only_change_gets_a_patch_version_text_changes_a_minor_one(ws):
    ws.templates.create("t", "{n} items", metadata={"variables": {"n": {"type": "int"}}})
    t2 = ws.templates.update("t", metadata={"variables": {"n": {"type": "int", "default": 3}}})
    assert t2.version == "1.0.1"
    t3 = ws.templates.update("t", "{n} things")
    assert t3.version == "1.1.0"
    t4 = ws.templates.update("t", "{n} things", metadata={}, bump="minor")  # asked for: honoured
    assert t4.version == "1.2.0"

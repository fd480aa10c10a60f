"""Prompts as files: export and two-way sync (CONTRACT "Prompts as files")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from promptver.filesync import RECORD_NAME, FileSync
from tests.test_chat import CONTRACT_EXAMPLE


@pytest.fixture
def fs(ws):
    return FileSync(ws)


@pytest.fixture
def exported(ws, qa, fs, tmp_path):
    """qa-basic (text, 1.1.0) and support-chat (chat) exported to DIR."""
    doc = yaml.safe_load(CONTRACT_EXAMPLE)
    ws.templates.create("support-chat", kind="chat", messages=doc["messages"], config=doc["config"])
    out = tmp_path / "prompts"
    fs.export(out)
    return out


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_export_writes_prompt_files_and_the_record(exported, ws):
    doc = yaml.safe_load((exported / "qa-basic.yaml").read_text())
    assert doc == {
        "kind": "text",
        "name": "qa-basic",
        "version": "1.1.0",
        "category": "qa",
        "tags": ["support"],
        "content": "Answer {question} briefly using {context}.",
    }
    chat = yaml.safe_load((exported / "support-chat.yaml").read_text())
    assert chat["kind"] == "chat" and chat["messages"][1] == {"placeholder": "history"}
    assert list(chat["config"]) == sorted(chat["config"])  # sorted keys: minimal diffs
    record = json.loads((exported / RECORD_NAME).read_text())
    head = ws.templates.get("qa-basic")
    assert record["templates"]["qa-basic"]["commit"] == head.commit


def test_export_is_byte_stable(exported, fs, tmp_path):
    before = {p.name: p.read_bytes() for p in exported.iterdir()}
    again = tmp_path / "again"
    fs.export(again)
    assert {p.name: p.read_bytes() for p in again.iterdir()} == before


def test_multiline_text_is_a_block_string(ws, fs, tmp_path):
    ws.templates.create("multi", "Line one {a}\nLine two\n")
    fs.export(tmp_path / "d")
    text = (tmp_path / "d" / "multi.yaml").read_text()
    assert "content: |\n  Line one {a}\n  Line two\n" in text


def test_second_sync_is_a_noop(exported, fs):
    r = fs.sync(exported)
    assert r.as_dict()["unchanged"] == ["qa-basic", "support-chat"] and not r.changed


def test_file_edit_becomes_a_new_version(exported, fs, ws):
    _edit(exported / "qa-basic.yaml", "briefly", "very briefly")
    r = fs.sync(exported, message="from git")
    assert r.committed == ["qa-basic"]
    t = ws.templates.get("qa-basic")
    assert t.version == "1.2.0" and t.content == "Answer {question} very briefly using {context}."
    assert ws.versions.get_commit(t.commit).message == "from git"
    assert "version: 1.2.0" in (exported / "qa-basic.yaml").read_text()  # file refreshed
    assert not fs.sync(exported).changed


def test_database_edit_rewrites_the_file(exported, fs, ws):
    ws.templates.update("qa-basic", "Answer {question} with {context}, politely.")
    r = fs.sync(exported)
    assert r.written == ["qa-basic"] and not r.committed
    doc = yaml.safe_load((exported / "qa-basic.yaml").read_text())
    assert doc["content"] == "Answer {question} with {context}, politely."
    assert doc["version"] == "1.2.0"
    assert not fs.sync(exported).changed


def test_description_edited_in_the_database_reaches_the_file(exported, fs, ws):
    ws.templates.update_info("qa-basic", description="Short answers")
    assert fs.sync(exported).written == ["qa-basic"]
    assert yaml.safe_load((exported / "qa-basic.yaml").read_text())["description"] == (
        "Short answers"
    )


def test_edits_on_both_sides_merge(ws, fs, tmp_path):
    ws.templates.create("multi", "Intro {a}\nmiddle\nOutro\n")
    out = tmp_path / "d"
    fs.export(out)
    ws.templates.update("multi", "Intro {a}, changed in db\nmiddle\nOutro\n")
    _edit(out / "multi.yaml", "Outro", "Outro changed in file")
    r = fs.sync(out)
    assert r.committed == ["multi"]
    t = ws.templates.get("multi")
    assert t.content == "Intro {a}, changed in db\nmiddle\nOutro changed in file\n"
    head = ws.versions.get_commit(t.commit)
    assert len(head.parents) == 2  # a merge commit: db head + the file's commit
    assert {b.name for b in ws.versions.branches(t.id)} == {"main"}  # no leftover branch
    assert yaml.safe_load((out / "multi.yaml").read_text())["content"] == t.content
    assert not fs.sync(out).changed


def test_chat_messages_in_file_and_config_in_db_merge(exported, fs, ws):
    t = ws.templates.get("support-chat")
    ws.templates.update("support-chat", config={**t.config, "temperature": 0.7})
    _edit(exported / "support-chat.yaml", "Be brief.", "Be very brief.")
    r = fs.sync(exported)
    assert r.committed == ["support-chat"]
    t = ws.templates.get("support-chat")
    assert t.config["temperature"] == 0.7
    assert t.messages[0]["content"].endswith("Be very brief.")


def test_conflict_names_paths_and_writes_nothing(exported, fs, ws):
    ws.templates.update("qa-basic", "Answer {question} from the DB using {context}.")
    _edit(exported / "qa-basic.yaml", "briefly", "from the file")
    ws.templates.create("other", "Hello {x}")  # would be written, but nothing is
    files = {p: p.read_bytes() for p in exported.iterdir()}
    head = ws.templates.get("qa-basic").commit
    r = fs.sync(exported)
    assert r.conflicts == ["qa-basic"]
    assert r.details["qa-basic"] == ["content (line 1)"]
    assert r.created == r.committed == r.written == []
    assert ws.templates.get("qa-basic").commit == head
    assert {p: p.read_bytes() for p in exported.iterdir()} == files
    assert not (exported / "other.yaml").exists()
    assert {b.name for b in ws.versions.branches(ws.templates.get("qa-basic").id)} == {"main"}


def test_config_conflict_names_the_config_path(exported, fs, ws):
    t = ws.templates.get("support-chat")
    ws.templates.update("support-chat", config={**t.config, "temperature": 0.7})
    _edit(exported / "support-chat.yaml", "temperature: 0.2", "temperature: 0.9")
    r = fs.sync(exported)
    assert r.conflicts == ["support-chat"]
    assert r.details["support-chat"] == ["config.temperature"]


def test_new_file_creates_a_template(exported, fs, ws):
    (exported / "team").mkdir()
    (exported / "team" / "greeter.yaml").write_text(
        "kind: text\ncontent: Hello {name}\ndescription: Says hello\n", encoding="utf-8"
    )
    r = fs.sync(exported)
    assert r.created == ["team/greeter"]
    t = ws.templates.get("team/greeter")
    assert t.version == "1.0.0" and t.content == "Hello {name}" and t.description == "Says hello"
    assert "name: team/greeter" in (exported / "team" / "greeter.yaml").read_text()
    assert not fs.sync(exported).changed


def test_new_template_in_the_database_gets_a_file(exported, fs, ws):
    ws.templates.create("fresh", "Hi {who}")
    assert fs.sync(exported).written == ["fresh"]
    assert (exported / "fresh.yaml").exists()


def test_invalid_file_is_refused_naming_the_field_and_nothing_is_written(exported, fs, ws):
    _edit(exported / "qa-basic.yaml", "briefly", "{bad")
    (exported / "new.yaml").write_text("kind: text\ncontent: ok\n", encoding="utf-8")
    from promptver.errors import ValidationError

    with pytest.raises(ValidationError) as e:
        fs.sync(exported)
    assert "qa-basic.yaml" in str(e.value) and "line 1, column 19" in str(e.value)
    assert "new" not in {t.name for t in ws.templates.list()}
    assert ws.templates.get("qa-basic").version == "1.1.0"


def test_branch_option_commits_on_a_branch(exported, fs, ws):
    _edit(exported / "qa-basic.yaml", "briefly", "on a branch")
    r = fs.sync(exported, branch="from-git")
    assert r.committed == ["qa-basic"]
    assert ws.templates.get("qa-basic").version == "1.1.0"  # main untouched
    b = ws.templates.get("qa-basic", branch="from-git")
    assert b.content == "Answer {question} on a branch using {context}."


def test_check_changes_nothing(exported, fs, ws):
    _edit(exported / "qa-basic.yaml", "briefly", "tersely")
    before = (exported / "qa-basic.yaml").read_bytes()
    r = fs.sync(exported, check=True)
    assert r.committed == ["qa-basic"] and r.changed
    assert ws.templates.get("qa-basic").version == "1.1.0"
    assert (exported / "qa-basic.yaml").read_bytes() == before


def test_cli_export_sync_and_check_exit_codes(cli, qa, tmp_path):
    out = str(tmp_path / "p")
    assert cli("export", out).code == 0
    r = cli("sync", out, "--check", json=True)
    assert r.code == 0 and r.json() == {
        "created": [],
        "committed": [],
        "written": [],
        "unchanged": ["qa-basic"],
        "conflicts": [],
    }
    _edit(Path(out) / "qa-basic.yaml", "briefly", "tersely")
    assert cli("sync", out, "--check").code == 1
    r = cli("sync", out, json=True)
    assert r.code == 0 and r.json()["committed"] == ["qa-basic"]
    assert cli("sync", out, "--check").code == 0


def test_cli_conflict_exits_1_naming_template_and_paths(cli, qa, tmp_path):
    out = tmp_path / "p"
    assert cli("export", str(out)).code == 0
    assert cli("template", "update", "qa-basic", "--content", "Db {question} {context}").code == 0
    _edit(out / "qa-basic.yaml", "Answer {question} briefly", "File {question}")
    r = cli("sync", str(out), json=True)
    assert r.code == 1
    assert r.json()["conflicts"] == ["qa-basic"]
    assert "error: conflict in 'qa-basic': content (line 1)" in r.err


def test_the_database_remembers_the_last_sync(exported, fs, ws):
    last = fs.last_sync()
    assert last is not None and last["dir"] == str(exported.resolve())
    assert last["templates"]["qa-basic"] == ws.templates.get("qa-basic").commit


# -- property: any valid prompt exported and re-imported gives the same commit content ---------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ident = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
_literal = st.lists(
    st.text(
        alphabet=st.characters(
            blacklist_characters="{}\r", blacklist_categories=("Cs", "Cc"), max_codepoint=0x2FFF
        ),
        max_size=8,
    )
    | st.sampled_from(["\n", "\t", " ", "  ", "- ", ": ", "#", "'", '"', "|", ">", "\n\n"]),
    max_size=5,
).map("".join)
_text = st.lists(st.one_of(_literal, _ident.map(lambda n: "{" + n + "}")), min_size=1, max_size=6)
_config = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["gpt-4o-mini", "claude-x"]),
        "temperature": st.sampled_from([0, 0.2, 1.5]),
        "max_tokens": st.integers(1, 4096),
        "stop": st.lists(st.text(max_size=5), max_size=3),
        "extra": st.dictionaries(_ident, st.integers() | st.text(max_size=5), max_size=3),
    },
)


@st.composite
def _prompts(draw):
    kind = draw(st.sampled_from(["text", "chat"]))
    if kind == "text":
        return {"kind": "text", "content": "".join(draw(_text)), "config": draw(_config)}
    n = draw(st.integers(1, 3))
    messages = [
        {"role": draw(st.sampled_from(["system", "user", "assistant"])), "content": "".join(t)}
        for t in draw(st.lists(_text, min_size=n, max_size=n))
    ]
    return {"kind": "chat", "messages": messages, "config": draw(_config)}


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI cannot flake on a new draw
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    p=_prompts(),
    description=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20).map(
        str.strip
    ),
    tags=st.lists(_ident, max_size=3, unique=True),
)
def test_any_valid_prompt_round_trips_through_a_file(tmp_path_factory, p, description, tags):
    from hypothesis import assume

    from promptver import Workspace
    from promptver.errors import ValidationError

    src = Workspace.open(":memory:")
    try:
        try:
            t = src.templates.create(
                "p", p.get("content"), kind=p["kind"], messages=p.get("messages"),
                config=p["config"], description=description, tags=tags,
            )  # fmt: skip
        except ValidationError:
            assume(False)
        out = tmp_path_factory.mktemp("rt")
        FileSync(src).export(out)
        (out / RECORD_NAME).unlink()  # a fresh database: the file is a new template there
        dst = Workspace.open(":memory:")
        try:
            assert FileSync(dst).sync(out).created == ["p"]
            c1, c2 = src.versions.get_commit(t.commit), dst.templates.get("p")
            assert (c2.kind, c2.content, c2.messages, c2.config, c2.metadata) == (
                c1.kind, t.content, c1.messages, c1.config, c1.metadata,
            )  # fmt: skip
            assert (c2.description, c2.tags) == (t.description, t.tags)
            # and the file the copy writes is byte for byte the one it was made from
            assert FileSync(dst).sync(out).as_dict()["unchanged"] == ["p"]
        finally:
            dst.close()
    finally:
        src.close()


def test_templates_screen_shows_the_export(db_path, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from promptver import Workspace
    from tests.conftest import ROOT

    with Workspace.open(db_path) as w:
        w.mark("seeded", "test")
        w.templates.create("qa", "Answer {q}.")
        t = w.templates.create("other", "Hi {x}")
        FileSync(w).export(tmp_path / "prompts")
        w.templates.update("other", "Hello {x}")
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.switch_page("pages/templates.py").run()
    at.selectbox(key="tpl_pick").select("qa").run()
    notes = [c.value for c in at.caption if "Exported to files" in c.value]
    assert len(notes) == 1 and "newer" not in notes[0], notes
    at.selectbox(key="tpl_pick").select("other").run()
    notes = [c.value for c in at.caption if "Exported to files" in c.value]
    assert len(notes) == 1 and t.commit[:10] in notes[0] and "newer" in notes[0]

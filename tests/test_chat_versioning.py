"""Chat prompts in storage and version control: content addressing, migration of older files,
get_prompt rendering, structural diffs and the three-way merge per message and config path."""

from __future__ import annotations

import duckdb
import pytest

from promptver.errors import MergeConflict, RenderError, ValidationError
from promptver.versioning import commit_id
from tests.versioning_helpers import state

MESSAGES = [
    {"role": "system", "content": "You answer questions about {product}. Be brief."},
    {"placeholder": "history"},
    {"role": "user", "content": "{question}"},
]
CONFIG = {"provider": "openai", "model": "gpt-4o-mini", "temperature": 0.2}


@pytest.fixture
def chat(ws):
    return ws.templates.create("support-chat", messages=MESSAGES, config=CONFIG, author="ana")


def test_create_chat_template(ws, chat):
    assert chat.kind == "chat" and chat.version == "1.0.0"
    assert chat.variables == ["product", "question"]
    assert chat.messages == MESSAGES and chat.config == CONFIG
    again = ws.templates.get("support-chat")
    assert (again.kind, again.messages, again.config) == ("chat", MESSAGES, CONFIG)


def test_commit_id_covers_kind_messages_and_config(ws, chat):
    c = ws.versions.get_commit(chat.commit)
    args = (c.template_id, c.parents, c.content, c.metadata, c.author, c.created_at, c.message)
    assert c.id == commit_id(*args, "chat", MESSAGES, CONFIG)
    assert c.id != commit_id(*args, "chat", MESSAGES, {**CONFIG, "temperature": 0.3})
    assert c.id != commit_id(*args, "chat", MESSAGES[:1], CONFIG)


def test_changing_only_the_temperature_is_a_new_version(ws, chat):
    t = ws.templates.update("support-chat", config={**CONFIG, "temperature": 0.7})
    assert t.version == "1.1.0" and t.commit != chat.commit
    assert t.messages == MESSAGES and t.config["temperature"] == 0.7
    with pytest.raises(ValidationError, match="nothing to commit"):
        ws.templates.update("support-chat", config={**CONFIG, "temperature": 0.7})
    assert ws.versions.fsck().ok


def test_text_commits_keep_the_id_they_always_had(ws):
    t = ws.templates.create("plain", "Hello {name}", author="ana")
    c = ws.versions.get_commit(t.commit)
    # the document of the first release: no kind, messages or config in it
    old = commit_id(
        c.template_id, c.parents, c.content, c.metadata, c.author, c.created_at, c.message
    )
    assert c.id == old and c.kind == "text" and c.config == {}


def test_an_older_file_upgrades_with_the_same_ids_and_a_clean_fsck(tmp_path):
    from promptver import Workspace
    from promptver.store import migrations

    path = tmp_path / "old.duckdb"
    ws = Workspace.open(path)
    ws.templates.create("plain", "Hello {name}")
    ws.templates.update("plain", "Hello {name}!")
    ids = [
        c.id
        for c in ws.versions.log(ws.templates.row("plain")["id"], ws.templates.get("plain").commit)
    ]
    ws.close()
    # make it a file of the first release: without the chat columns and their migration
    con = duckdb.connect(str(path))
    con.execute("DROP INDEX commits_template")
    for col in ("kind", "messages", "config"):
        con.execute(f"ALTER TABLE commits DROP COLUMN {col}")
    con.execute("CREATE INDEX commits_template ON commits (template_id)")
    con.execute("DELETE FROM schema_migrations WHERE name = 'm080_chat_prompts'")
    con.close()
    assert "m080_chat_prompts" in [n for n, _ in migrations.MIGRATIONS]
    ws = Workspace.open(path)
    try:
        t = ws.templates.get("plain")
        assert t.kind == "text" and t.config == {} and t.content == "Hello {name}!"
        log = ws.versions.log(t.id, t.commit)
        assert [c.id for c in log] == ids
        assert ws.versions.fsck().ok
    finally:
        ws.close()


def test_fsck_notices_a_changed_config(ws, chat, db_path):
    ws.close()
    con = duckdb.connect(str(db_path))
    con.execute('UPDATE commits SET config = \'{"model": "other"}\' WHERE id = ?', [chat.commit])
    con.close()
    from promptver import Workspace

    w = Workspace.open(db_path)
    try:
        report = w.versions.fsck()
        assert [p.kind for p in report.problems] == ["hash_mismatch"]
    finally:
        w.close()


def test_invalid_chat_prompt_writes_nothing(ws):
    bad = [{"role": "system", "content": "x"}, {"role": "user", "content": "{a.b}"}]
    with pytest.raises(ValidationError) as info:
        ws.templates.create("bad", messages=bad, config={"temperature": 5})
    fields = {p.field for p in info.value.problems}
    assert fields == {"messages[1].content", "config.temperature"}
    assert ws.templates.list() == []


def test_kind_switches_need_their_body(ws, chat):
    t = ws.templates.update("support-chat", content="Now plain {x}")
    assert t.kind == "text" and t.messages is None and t.config == CONFIG
    with pytest.raises(ValidationError, match="content"):
        ws.templates.create("both", "text", kind="chat", messages=MESSAGES)


# ---- serving and rendering ---------------------------------------------------------------


def test_get_prompt_serves_the_whole_call(ws, chat):
    ws.deployments.deploy("support-chat", "1.0.0", "production")
    p = ws.get_prompt("support-chat", env="production", user_id="u42")
    assert p.kind == "chat" and p.config == CONFIG
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    msgs = p.messages(history=history, product="DuckDB", question="Why?")
    assert msgs == [
        {"role": "system", "content": "You answer questions about DuckDB. Be brief."},
        *history,
        {"role": "user", "content": "Why?"},
    ]
    assert p.openai(history=[], product="p", question="q")["temperature"] == 0.2
    assert p.anthropic(history=[], product="p", question="q")["system"].startswith("You answer")
    with pytest.raises(RenderError, match="messages()"):
        p.text(product="p", question="q")


def test_messages_of_a_text_prompt_is_one_user_message(ws):
    ws.templates.create("plain", "Hello {name}")
    ws.deployments.deploy("plain", "1.0.0", "production")
    p = ws.get_prompt("plain", env="production")
    assert p.messages(name="Ana") == [{"role": "user", "content": "Hello Ana"}]


def test_deploy_gates_check_chat_prompts(ws, chat):
    d = ws.deployments.deploy("support-chat", "1.0.0", "staging")
    assert d.version == "1.0.0"


# ---- diff and merge ----------------------------------------------------------------------


def test_diff_names_config_paths_and_changed_messages(ws, chat):
    ws.templates.update(
        "support-chat",
        messages=[*MESSAGES[:2], {"role": "user", "content": "{question} Answer in JSON."}],
        config={**CONFIG, "model": "gpt-4.1-nano", "temperature": 0.7},
    )
    d = ws.versions.diff("support-chat", "1.0.0", "1.1.0").as_dict()
    assert d["config_changes"] == [
        {"path": "model", "old": "gpt-4o-mini", "new": "gpt-4.1-nano"},
        {"path": "temperature", "old": 0.2, "new": 0.7},
    ]
    assert d["messages_changed"] == [2]
    assert "-temperature: 0.2" in d["unified"] and "+temperature: 0.7" in d["unified"]
    assert "[user]" in d["unified"]


def test_messages_on_one_side_and_config_on_the_other_merge_cleanly(ws, chat):
    ws.versions.create_branch("support-chat", "tone", from_ref="1.0.0")
    ws.templates.update(
        "support-chat",
        branch="tone",
        messages=[{"role": "system", "content": "Be warm about {product}."}, *MESSAGES[1:]],
    )
    ws.templates.update("support-chat", config={**CONFIG, "temperature": 0.5})
    r = ws.versions.merge("support-chat", "tone")
    t = ws.templates.get("support-chat")
    assert r.version == t.version == "1.2.0"
    assert t.messages[0]["content"] == "Be warm about {product}."
    assert t.config["temperature"] == 0.5


def test_same_config_path_on_both_sides_is_a_conflict_that_writes_nothing(ws, chat):
    ws.versions.create_branch("support-chat", "hot", from_ref="1.0.0")
    ws.templates.update("support-chat", branch="hot", config={**CONFIG, "temperature": 0.9})
    ws.templates.update("support-chat", config={**CONFIG, "temperature": 0.5})
    before = state(ws, "support-chat")
    with pytest.raises(MergeConflict) as info:
        ws.versions.merge("support-chat", "hot")
    assert "config.temperature" in str(info.value)
    assert [c["key"] for c in info.value.config_conflicts] == ["config.temperature"]
    assert state(ws, "support-chat") == before
    r = ws.versions.merge("support-chat", "hot", resolution_config={**CONFIG, "temperature": 0.7})
    assert ws.templates.get("support-chat").config["temperature"] == 0.7 and r.version == "1.2.0"


def test_the_same_message_changed_on_both_sides_conflicts_naming_it(ws, chat):
    ws.versions.create_branch("support-chat", "b", from_ref="1.0.0")
    ws.templates.update(
        "support-chat",
        branch="b",
        messages=[*MESSAGES[:2], {"role": "user", "content": "Q: {question}"}],
    )
    ws.templates.update(
        "support-chat", messages=[*MESSAGES[:2], {"role": "user", "content": "{question}?"}]
    )
    with pytest.raises(MergeConflict, match=r"messages\[2\]"):
        ws.versions.merge("support-chat", "b")

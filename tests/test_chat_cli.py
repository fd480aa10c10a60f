"""The CLI for chat prompts: prompt files in, the contract's shapes out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.test_chat import CONTRACT_EXAMPLE


@pytest.fixture
def prompt_file(tmp_path: Path, cli) -> Path:
    assert cli("init").code == 0
    path = tmp_path / "support-chat.yaml"
    path.write_text(CONTRACT_EXAMPLE, encoding="utf-8")
    return path


def test_create_from_the_contract_example_and_show_json(cli, prompt_file):
    r = cli("template", "create", "support-chat", "--file", str(prompt_file), json=True)
    assert r.code == 0, r.err
    assert r.json()["version"] == "1.0.0" and r.json()["variables"] == ["product", "question"]
    shown = cli("template", "show", "support-chat", json=True).json()
    assert shown["kind"] == "chat" and shown["content"] is None
    assert shown["messages"][1] == {"placeholder": "history"}
    assert shown["config"]["model"] == "gpt-4o-mini"
    assert shown["config"]["tools"][0]["function"]["name"] == "search_docs"
    for key in ("id", "name", "version", "commit", "variables", "description", "category", "tags"):
        assert key in shown


def test_show_format_yaml_round_trips_the_contract_example(cli, prompt_file, tmp_path):
    assert cli("template", "create", "support-chat", "--file", str(prompt_file)).code == 0
    out = cli("template", "show", "support-chat", "--format", "yaml")
    assert out.code == 0, out.err
    doc = yaml.safe_load(out.out)
    example = yaml.safe_load(CONTRACT_EXAMPLE)
    assert doc["messages"] == example["messages"]
    assert doc["config"] == {k: v for k, v in example["config"].items() if v != {}}
    assert (doc["kind"], doc["name"], doc["version"]) == ("chat", "support-chat", "1.0.0")
    # the printed file recreates the same prompt: a second template from it has equal content
    again = tmp_path / "again.yaml"
    again.write_text(out.out.replace("name: support-chat", "name: copy"), encoding="utf-8")
    assert cli("template", "create", "copy", "--file", str(again)).code == 0
    copy = cli("template", "show", "copy", json=True).json()
    original = cli("template", "show", "support-chat", json=True).json()
    for key in ("kind", "messages", "config", "variables", "content"):
        assert copy[key] == original[key], key
    # byte-stable: showing the copy prints the same file but for its name
    second = cli("template", "show", "copy", "--format", "yaml").out
    assert second == out.out.replace("name: support-chat", "name: copy")


def test_text_templates_show_their_kind_and_an_empty_config(cli):
    assert cli("init").code == 0
    assert cli("template", "create", "plain", "--content", "Hi {name}").code == 0
    shown = cli("template", "show", "plain", json=True).json()
    assert (shown["kind"], shown["content"], shown["messages"], shown["config"]) == (
        "text",
        "Hi {name}",
        None,
        {},
    )
    assert yaml.safe_load(cli("template", "show", "plain", "--format", "yaml").out)["content"] == (
        "Hi {name}"
    )


def test_update_from_a_file_changing_only_the_temperature(cli, prompt_file, tmp_path):
    assert cli("template", "create", "support-chat", "--file", str(prompt_file)).code == 0
    warmer = tmp_path / "warmer.yaml"
    warmer.write_text(CONTRACT_EXAMPLE.replace("temperature: 0.2", "temperature: 0.7"), "utf-8")
    r = cli("template", "update", "support-chat", "--file", str(warmer), json=True)
    assert r.code == 0, r.err and r.json()["version"] == "1.1.0"
    d = cli("diff", "support-chat", "1.0.0", "1.1.0", json=True).json()
    assert d["config_changes"] == [{"path": "temperature", "old": 0.2, "new": 0.7}]
    assert d["messages_changed"] == []


def test_a_bad_prompt_file_names_the_path_and_writes_nothing(cli, prompt_file, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONTRACT_EXAMPLE.replace("temperature: 0.2", "temperature: 3"), "utf-8")
    r = cli("template", "create", "support-chat", "--file", str(bad))
    assert r.code == 1 and "config.temperature: must be between 0 and 2" in r.err
    assert "Traceback" not in r.err
    assert cli("template", "list", json=True).json() == []


def test_a_json_prompt_file(cli, tmp_path):
    assert cli("init").code == 0
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps({"kind": "chat", "messages": [{"role": "user", "content": "Hi {who}"}]}),
        "utf-8",
    )
    assert cli("template", "create", "j", "--file", str(path)).code == 0
    assert cli("template", "show", "j", json=True).json()["variables"] == ["who"]


def test_render_chat_json_history_and_sdk_payloads(cli, prompt_file, tmp_path):
    assert cli("template", "create", "support-chat", "--file", str(prompt_file)).code == 0
    history = tmp_path / "history.json"
    history.write_text(json.dumps([{"role": "user", "content": "Hi"}]), "utf-8")
    args = ("--var", "product=Acme", "--var", "question=Why?", "--history", str(history))
    r = cli("render", "support-chat", *args, json=True)
    assert r.code == 0, r.err
    out = r.json()
    assert list(out) == ["messages", "config", "version", "commit", "variant"]
    assert [m["role"] for m in out["messages"]] == ["system", "user", "user"]
    assert out["messages"][0]["content"] == "You answer questions about Acme. Be brief."
    openai = json.loads(cli("render", "support-chat", *args, "--format", "openai").out)
    assert openai["model"] == "gpt-4o-mini" and openai["messages"] == out["messages"]
    assert openai["temperature"] == 0.2 and openai["stop"] == ["\n\nUser:"]
    anthropic = json.loads(cli("render", "support-chat", *args, "--format", "anthropic").out)
    assert anthropic["system"].startswith("You answer") and anthropic["max_tokens"] == 512
    assert anthropic["stop_sequences"] == ["\n\nUser:"]
    human = cli("render", "support-chat", *args)
    assert human.out.startswith("[system]\nYou answer questions about Acme.")


def test_render_chat_errors_are_clear(cli, prompt_file, tmp_path):
    assert cli("template", "create", "support-chat", "--file", str(prompt_file)).code == 0
    r = cli("render", "support-chat", "--var", "product=A", "--var", "question=q")
    assert r.code == 1 and "history" in r.err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"role": "robot", "content": "x"}]), "utf-8")
    r = cli(
        "render", "support-chat", "--var", "product=A", "--var", "question=q", "--history", str(bad)
    )
    assert r.code == 1 and "history[0].role" in r.err


def test_validate_a_prompt_file(cli, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "kind: chat\nmessages:\n  - {role: user, content: 'x {a.b}'}\nconfig: {top_p: 0}\n", "utf-8"
    )
    r = cli("template", "validate", "--file", str(path), json=True)
    assert r.code == 1
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"messages[0].content", "config.top_p"}

"""The HTTP API for chat prompts: create, show, update and render return the new fields."""

from __future__ import annotations

import yaml

from tests.api_helpers import (
    api_fixture,  # noqa: F401 - fixture
    fields,
    problem,
    serve_fixture,  # noqa: F401 - fixture
)
from tests.test_chat import CONTRACT_EXAMPLE

EXAMPLE = yaml.safe_load(CONTRACT_EXAMPLE)
HISTORY = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
VARS = {"product": "Acme", "question": "Why?"}


def _create(api):
    r = api.post(
        "/prompts",
        json={"name": "support-chat", "messages": EXAMPLE["messages"], "config": EXAMPLE["config"]},
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_create_and_show_a_chat_prompt(api):
    created = _create(api)
    assert created["kind"] == "chat" and created["content"] is None
    assert created["messages"] == EXAMPLE["messages"]
    assert created["config"]["model"] == "gpt-4o-mini" and "extra" not in created["config"]
    shown = api.get("/prompts/support-chat").json()
    assert shown["commit"] == created["commit"] and shown["variables"] == ["product", "question"]
    text = api.post("/prompts", json={"name": "plain", "content": "Hi {x}"}).json()
    assert (text["kind"], text["messages"], text["config"]) == ("text", None, {})


def test_a_config_change_is_a_new_version(api):
    _create(api)
    r = api.put("/prompts/support-chat", json={"config": {**EXAMPLE["config"], "temperature": 0.7}})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == "1.1.0" and r.json()["config"]["temperature"] == 0.7


def test_invalid_chat_prompts_are_problems_naming_each_path(api):
    bad = {"name": "bad", "messages": [{"role": "sytem", "content": "x"}], "config": {"top_p": 0}}
    body = problem(api.post("/prompts", json=bad), 422, "validation-error")
    assert sorted(fields(body)) == ["config.top_p", "messages[0].role"]
    assert "did you mean 'system'" in body["detail"]
    assert api.get("/prompts").json() == []


def test_render_chat_messages_and_sdk_payloads(api, ws):
    _create(api)
    body = {"variables": VARS, "history": HISTORY}
    r = api.post("/prompts/support-chat/render", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert list(out) == ["messages", "config", "version", "commit", "variant"]
    assert [m["role"] for m in out["messages"]] == ["system", "user", "assistant", "user"]
    openai = api.post("/prompts/support-chat/render", json={**body, "format": "openai"}).json()
    assert openai["model"] == "gpt-4o-mini" and openai["messages"] == out["messages"]
    assert openai["tools"][0]["function"]["name"] == "search_docs"
    ws.deployments.deploy("support-chat", "1.0.0", "production")
    anthropic = api.post(
        "/prompts/support-chat/render",
        json={**body, "env": "production", "user_id": "u1", "format": "anthropic"},
    ).json()
    assert anthropic["system"] == "You answer questions about Acme. Be brief."
    assert anthropic["stop_sequences"] == ["\n\nUser:"]
    named = api.post(
        "/prompts/support-chat/render", json={"variables": VARS, "history": {"history": HISTORY}}
    )
    assert named.json()["messages"] == out["messages"]


def test_render_errors_for_chat_prompts(api):
    _create(api)
    r = api.post("/prompts/support-chat/render", json={"variables": VARS})
    assert r.status_code == 422 and "history" in r.json()["detail"]
    r = api.post(
        "/prompts/support-chat/render",
        json={"variables": VARS, "history": [{"role": "robot", "content": "x"}]},
    )
    assert r.status_code == 422 and "history[0].role" in r.json()["detail"]


def test_a_variable_named_strict_renders(api):
    api.post("/prompts", json={"name": "s", "content": "Mode: {strict}"})
    r = api.post("/prompts/s/render", json={"variables": {"strict": "on"}})
    assert r.status_code == 200 and r.json()["text"] == "Mode: on"

"""The payloads of ``openai()`` and ``anthropic()`` go through the real SDKs unchanged.

Each SDK client is pointed at a tiny HTTP server on 127.0.0.1 that records the request body and
answers with a minimal valid response; the test asserts the body the SDK sent. The SDKs are dev
dependencies only: the core never imports them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from promptver.chat import (
    CompiledChat,
    anthropic_payload,
    openai_payload,
    parse_document,
    render_messages,
)
from tests.test_chat import example

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")

OPENAI_REPLY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": '{"answer": "42"}'},
        }
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}
ANTHROPIC_REPLY = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "42"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 1, "output_tokens": 1},
}


class _Recorder(BaseHTTPRequestHandler):
    bodies: list[tuple[str, dict]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length))
        type(self).bodies.append((self.path, body))
        reply = OPENAI_REPLY if "chat/completions" in self.path else ANTHROPIC_REPLY
        raw = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list]]:
    _Recorder.bodies = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", _Recorder.bodies
    finally:
        httpd.shutdown()
        httpd.server_close()


def _messages_and_config():
    d = parse_document(example())
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    msgs = render_messages(
        CompiledChat(d.messages), {"history": history, "product": "DuckDB", "question": "Why?"}
    )
    return msgs, d.config


def test_openai_sdk_sends_the_payload_unchanged(server):
    url, bodies = server
    msgs, config = _messages_and_config()
    payload = openai_payload(msgs, config)
    client = openai.OpenAI(base_url=url + "/v1", api_key="test", max_retries=0)
    reply = client.chat.completions.create(**payload)
    assert reply.choices[0].message.content == '{"answer": "42"}'
    (path, body) = bodies[-1]
    assert path == "/v1/chat/completions"
    assert body == json.loads(json.dumps(payload))  # exactly what we built, nothing added
    assert body["response_format"]["type"] == "json_schema"
    assert body["tools"][0]["function"]["name"] == "search_docs"


def test_anthropic_sdk_sends_the_payload_unchanged(server):
    url, bodies = server
    msgs, config = _messages_and_config()
    payload = anthropic_payload(msgs, {**config, "model": "claude-sonnet-4-5"})
    client = anthropic.Anthropic(base_url=url, api_key="test", max_retries=0)
    reply = client.messages.create(**payload)
    assert reply.content[0].text == "42"
    (path, body) = bodies[-1]
    assert path == "/v1/messages"
    assert body == json.loads(json.dumps(payload))
    assert body["system"] == "You answer questions about DuckDB. Be brief."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["tools"][0]["input_schema"]["required"] == ["query"]

"""promptver.client.Client against a real ``promptver serve`` subprocess on 127.0.0.1.

The server is a separate process so that a test can stop it mid-test (and start it again on
the same port), as an outage would. The in-process ``Workspace.get_prompt`` is the reference for
what the client must answer; what ``track`` sent is read back from the database file after the
server has stopped. Every wait polls a condition with a deadline.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from promptver import Workspace
from promptver.client import Client, ServerUnavailable
from promptver.errors import NotFound
from promptver.models import Prompt
from tests.experiments_helpers import seed_lab, spec

ROOT = Path(__file__).resolve().parent.parent
USERS = [f"user-{i}" for i in range(12)]
VALUES = {"question": "Why?", "context": "Because."}
CHAT = [
    {"role": "system", "content": "You answer questions about {product}. Be brief."},
    {"placeholder": "history"},
    {"role": "user", "content": "{question}"},
]
CHAT_CONFIG = {"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 512, "stop": ["###"]}
CHAT_VALUES = {
    "product": "promptver",
    "question": "Why?",
    "history": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
}


def wait_for(cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``cond`` until it returns something truthy (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m promptver --db DB serve`` on a fixed loopback port, stoppable and
    restartable."""

    def __init__(self, db: Path, log: Path) -> None:
        self.db, self.log, self.port = db, log, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "promptver", "--db", str(self.db), "serve"]
                + ["--port", str(self.port), "--no-access-log"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )

        def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            try:
                return httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 60, "the server to answer /health")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.proc = None

    def deploy(self, version: str, env: str = "production") -> None:
        r = httpx.post(
            f"{self.url}/api/v1/prompts/qa-basic/deploy",
            json={"version": version, "env": env},
            timeout=30,
        )
        assert r.status_code == 201, r.text


class Counting(httpx.HTTPTransport):
    """A real transport that counts the requests it was asked to send, by path."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return super().handle_request(request)

    def count(self, suffix: str) -> int:
        return sum(p.endswith(suffix) for p in self.paths)


@pytest.fixture
def lab_db(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Prompt]]]:
    """qa-basic 1.1.0 live in production with an experiment running there; returns the file
    and the in-process answers of get_prompt (the reference) for USERS and for no user."""
    db = tmp_path / "lab.duckdb"
    ws = Workspace.open(db)
    seed_lab(ws)
    ws.deployments.deploy("qa-basic", "1.1.0", "production", author="t")
    exp = ws.experiments.create(spec(), author="t")
    ws.experiments.start(exp.id, author="t")
    ws.templates.create("support-chat", messages=CHAT, config=CHAT_CONFIG, author="ana")
    ws.deployments.deploy("support-chat", "1.0.0", "production", author="t")
    expected = {u: ws.get_prompt("qa-basic", "production", user_id=u) for u in USERS}
    expected[""] = ws.get_prompt("qa-basic", "production")
    expected["chat"] = ws.get_prompt("support-chat", "production", user_id="u")
    ws.close()
    yield db, expected


@pytest.fixture
def server(lab_db, tmp_path: Path) -> Iterator[Server]:
    s = Server(lab_db[0], tmp_path / "server.log")
    yield s.start()
    s.stop()


@pytest.fixture
def make_client() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(*args: Any, **kwargs: Any) -> Client:
        made.append(Client(*args, **kwargs))
        return made[-1]

    yield make
    for c in made:
        c.close(timeout=0)


def stored_events(db: Path) -> list[dict[str, Any]]:
    ws = Workspace.open(db)
    try:
        with ws.db.read() as con:
            cur = con.execute(
                "SELECT event_id, user_id, experiment_id, variant, version, environment, "
                "latency_ms, success FROM metric_events ORDER BY latency_ms"
            )
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]
    finally:
        ws.close()


def client_logs(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "promptver.client" and r.levelno == level
    ]


# -- get_prompt -----------------------------------------------------------------------------


def test_get_prompt_answers_what_the_in_process_workspace_answers(lab_db, server, make_client):
    _, expected = lab_db
    c = make_client(server.url)
    for user in USERS:
        got, want = c.get_prompt("qa-basic", "production", user_id=user), expected[user]
        assert (got.version, got.commit, got.variant, got.experiment_id, got.user_id) == (
            want.version,
            want.commit,
            want.variant,
            want.experiment_id,
            user,
        )
        assert (got.kind, got.config, got.environment) == (want.kind, want.config, "production")
        assert got.text(**VALUES) == want.text(**VALUES)
        assert got.messages(**VALUES) == want.messages(**VALUES)
    assert {expected[u].variant for u in USERS} == {"control", "concise"}  # both are exercised
    chat, want = c.get_prompt("support-chat", "production", user_id="u"), expected["chat"]
    assert (chat.kind, chat.config, chat.version) == ("chat", want.config, "1.0.0")
    assert chat.messages(**CHAT_VALUES) == want.messages(**CHAT_VALUES)
    assert chat.openai(**CHAT_VALUES) == want.openai(**CHAT_VALUES)
    assert chat.anthropic(**CHAT_VALUES) == want.anthropic(**CHAT_VALUES)
    assert chat.openai(**CHAT_VALUES)["model"] == "gpt-4o-mini"
    plain = c.get_prompt("qa-basic", "production")
    assert (plain.version, plain.variant) == ("1.1.0", None) == (expected[""].version, None)


def test_the_server_s_refusals_are_raised_not_hidden_by_a_fallback(server, make_client):
    c = make_client(server.url, fallback={"nope": "a fallback", "qa-basic": "x"})
    with pytest.raises(NotFound, match="nope"):
        c.get_prompt("nope", "production")
    with pytest.raises(NotFound, match="environment"):
        c.get_prompt("qa-basic", "no-such-env")


def test_a_second_call_within_the_ttl_makes_no_request(server, make_client):
    t = Counting()
    c = make_client(server.url, ttl=60, transport=t)
    first = c.get_prompt("qa-basic", "production", user_id="user-1")
    for _ in range(50):
        assert c.get_prompt("qa-basic", "production", user_id="user-1") is first
    assert t.count("/live") == 1
    c.get_prompt("qa-basic", "production", user_id="user-2")  # another user: its own answer
    assert t.count("/live") == 2


def test_after_the_ttl_the_cached_answer_comes_at_once_and_is_refreshed_behind(server, make_client):
    t = Counting()
    c = make_client(server.url, ttl=0.2, transport=t)
    server.deploy("1.1.0", "staging")
    old = c.get_prompt("qa-basic", "staging")
    assert old.version == "1.1.0"
    server.deploy("1.0.0", "staging")  # through the server: its own cache shows it at once
    stale_at = time.monotonic() + 0.2
    wait_for(lambda: time.monotonic() > stale_at, what="the TTL to pass")
    # stale: the old answer at once (a synchronous fetch would have returned 1.0.0) ...
    assert c.get_prompt("qa-basic", "staging") is old
    # ... and the new one once the background refresh is back
    new = wait_for(
        lambda: (p := c.get_prompt("qa-basic", "staging")).version == "1.0.0" and p,
        what="the background refresh",
    )
    assert new.text(**VALUES) == "Answer Why? using Because.."
    assert t.count("/live") >= 2


def test_the_last_good_answer_is_served_while_the_server_is_down_and_said_once(
    server, make_client, caplog
):
    caplog.set_level(logging.INFO, logger="promptver.client")
    t = Counting()
    c = make_client(server.url, ttl=0.05, transport=t)
    good = c.get_prompt("qa-basic", "production", user_id="user-3")
    server.stop()
    # every call answers at once with the last good answer, while refreshes fail behind it
    tried = t.count("/live")
    wait_for(
        lambda: (
            c.get_prompt("qa-basic", "production", user_id="user-3") is good
            and t.count("/live") >= tried + 3
        ),
        what="three failed refreshes",
    )
    assert c.get_prompt("qa-basic", "production", user_id="user-3").text(**VALUES) == good.text(
        **VALUES
    )
    warnings = client_logs(caplog)
    assert len(warnings) == 1, warnings
    assert "unreachable" in warnings[0] and server.url in warnings[0]
    # back: fresh answers again, and a line that says so
    server.start()
    wait_for(
        lambda: (
            c.get_prompt("qa-basic", "production", user_id="user-3")
            and any("reachable again" in m for m in client_logs(caplog, logging.INFO))
        ),
        what="the client to see the server again",
    )
    assert len(client_logs(caplog)) == 1


def test_a_cold_start_with_the_server_down_uses_the_fallback(tmp_path, make_client, caplog):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    fb = Prompt(
        template_id="",
        name="qa-basic",
        version=None,
        commit="",
        content="Answer {question} (offline) using {context}.",
    )
    c = make_client(url, fallback=fb, timeout=2)
    p = c.get_prompt("qa-basic", "production", user_id="u1")
    assert p.text(**VALUES) == "Answer Why? (offline) using Because.."
    assert (p.user_id, p.environment, p.variant) == ("u1", "production", None)
    texts = make_client(url, fallback={"qa-basic": "Plain {question}"}, timeout=2)
    assert texts.get_prompt("qa-basic", "production").text(question="q") == "Plain q"
    with pytest.raises(ServerUnavailable, match=r"no cached answer, snapshot or fallback"):
        make_client(url, timeout=2).get_prompt("qa-basic", "production")
    with pytest.raises(ServerUnavailable, match="other"):
        c.get_prompt("other", "production")  # the fallback stands in for its own name only
    assert len([m for m in client_logs(caplog) if "unreachable" in m]) == 3  # one per client


def test_a_restarted_client_starts_from_its_snapshot_without_the_server(
    lab_db, server, make_client, tmp_path, caplog
):
    _, expected = lab_db
    snap = tmp_path / "snap" / "prompts.json"
    c = make_client(server.url, snapshot_path=snap)
    for u in USERS[:4]:
        c.get_prompt("qa-basic", "production", user_id=u)
    c.get_prompt("qa-basic", "production")  # the deployed version, for users never seen
    c.close()
    server.stop()
    again = make_client(server.url, snapshot_path=snap, timeout=2)
    for u in USERS[:4]:
        p, want = again.get_prompt("qa-basic", "production", user_id=u), expected[u]
        assert (p.version, p.commit, p.variant, p.experiment_id) == (
            want.version,
            want.commit,
            want.variant,
            want.experiment_id,
        )
        assert p.text(**VALUES) == want.text(**VALUES)
    # a user the snapshot never saw gets the deployed version (no variant), not an error
    other = again.get_prompt("qa-basic", "production", user_id="someone-new")
    assert (other.variant, other.user_id) == (None, "someone-new")
    assert other.commit == expected[""].commit and other.version == "1.1.0"
    assert len(client_logs(caplog)) == 1, client_logs(caplog)


def test_a_damaged_snapshot_is_ignored_with_a_warning(server, make_client, tmp_path, caplog):
    snap = tmp_path / "prompts.json"
    snap.write_text("{not json", encoding="utf-8")
    c = make_client(server.url, snapshot_path=snap)
    assert c.get_prompt("qa-basic", "production").version == "1.1.0"
    assert any("ignoring the promptver snapshot" in m for m in client_logs(caplog))
    c.close()
    assert json.loads(snap.read_text(encoding="utf-8"))["prompts"][0]["key"] == [
        "qa-basic",
        "production",
        None,
    ]


# -- track ----------------------------------------------------------------------------------


def test_track_batches_keeps_events_while_the_server_is_down_and_delivers_them(
    lab_db, server, make_client
):
    db, expected = lab_db
    t = Counting()
    c = make_client(server.url, batch_size=3, flush_interval=0.05, transport=t)
    prompts = [c.get_prompt("qa-basic", "production", user_id=u) for u in USERS[:7]]
    for i, p in enumerate(prompts[:3]):
        c.track(p, latency_ms=float(i), success=True)
    wait_for(lambda: c.delivered == 3, what="the first batch")
    server.stop()
    for i, p in enumerate(prompts[3:], start=3):
        c.track(p, latency_ms=float(i), success=i % 2 == 0)
    sent = t.count("/events")
    wait_for(lambda: t.count("/events") >= sent + 2, what="failed sends")
    assert c.pending == 4 and c.delivered == 3
    server.start()
    wait_for(lambda: c.delivered == 7 and c.pending == 0, what="the retried events")
    c.close()
    server.stop()
    rows = stored_events(db)
    assert [r["latency_ms"] for r in rows] == [float(i) for i in range(7)]  # each once
    for i, r in enumerate(rows):
        want = expected[USERS[i]]
        assert (r["user_id"], r["variant"], r["experiment_id"], r["environment"]) == (
            USERS[i],
            want.variant,
            want.experiment_id,
            "production",
        )
        assert r["success"] == (True if i < 3 else i % 2 == 0)
    assert t.count("/events") >= 3  # batches: 3 + at least one try and one delivery after


def test_close_delivers_what_is_buffered(lab_db, server, make_client):
    db, _ = lab_db
    c = make_client(server.url, batch_size=1000, flush_interval=3600)
    p = c.get_prompt("qa-basic", "production", user_id="user-1")
    for i in range(25):
        c.track(p, latency_ms=float(i), quality_score=0.5)
    assert c.pending == 25  # nothing sent yet: the batch is not full, the interval not over
    c.close()
    server.stop()
    assert [r["latency_ms"] for r in stored_events(db)] == [float(i) for i in range(25)]


def test_a_full_buffer_drops_the_oldest_with_a_counted_warning(lab_db, server, make_client, caplog):
    db, _ = lab_db
    c = make_client(server.url, max_buffer=5, batch_size=100, flush_interval=0.05)
    p = c.get_prompt("qa-basic", "production", user_id="user-1")
    server.stop()
    for i in range(8):
        c.track(p, latency_ms=float(i))
    assert (c.pending, c.dropped) == (5, 3)
    assert len([m for m in client_logs(caplog) if "buffer is full" in m]) == 1
    server.start()
    wait_for(lambda: c.delivered == 5, what="delivery")
    wait_for(
        lambda: any("3 events were dropped" in m for m in client_logs(caplog)),
        what="the count of dropped events",
    )
    c.close()
    server.stop()
    assert [r["latency_ms"] for r in stored_events(db)] == [3.0, 4.0, 5.0, 6.0, 7.0]


def test_events_left_at_close_with_the_server_down_are_sent_by_the_next_start(
    lab_db, server, make_client, tmp_path
):
    db, _ = lab_db
    snap = tmp_path / "client.json"
    c = make_client(server.url, snapshot_path=snap, flush_interval=3600, batch_size=100)
    p = c.get_prompt("qa-basic", "production", user_id="user-1")
    server.stop()
    for i in range(4):
        c.track(p, latency_ms=float(i))
    c.close(timeout=0.2)
    assert len(json.loads(snap.read_text(encoding="utf-8"))["events"]) == 4
    server.start()
    again = make_client(server.url, snapshot_path=snap, flush_interval=0.05)
    wait_for(lambda: again.delivered == 4, what="the kept events")
    again.close()
    server.stop()
    assert [r["latency_ms"] for r in stored_events(db)] == [0.0, 1.0, 2.0, 3.0]
    assert json.loads(snap.read_text(encoding="utf-8"))["events"] == []


def test_track_refuses_bad_input_naming_it(server, make_client):
    c = make_client(server.url)
    p = c.get_prompt("qa-basic", "production")
    with pytest.raises(Exception, match="user_id is required"):
        c.track(p, latency_ms=1.0)
    with pytest.raises(Exception, match="metric 'note' must be a number"):
        c.track(p, user_id="u", note="hello")
    with pytest.raises(Exception, match="at least one metric"):
        c.track(p, user_id="u")
    with pytest.raises(Exception, match="expected the Prompt"):
        c.track("qa-basic", user_id="u", latency_ms=1.0)  # type: ignore[arg-type]
    assert c.pending == 0

"""Bearer-token auth on write endpoints, and the ``serve`` command itself."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from promptver import Settings
from promptver.errors import ConfigError
from tests.api_helpers import (
    EXPERIMENT,
    TOKEN,
    TOKEN_HASH,
    open_ws,
    problem,
    seed,
    serve_fixture,  # noqa: F401 - fixture
)

ROOT = Path(__file__).resolve().parents[1]
VARS = {"question": "q", "context": "c"}

# every write endpoint, with a body that would succeed given the token
WRITES = [
    ("POST", "/prompts", {"name": "new", "content": "Hi {x}."}),
    ("PUT", "/prompts/qa-basic", {"content": "Answer {question} now, using {context}."}),
    ("POST", "/prompts/qa-basic/deploy", {"version": "1.0.0", "env": "staging"}),
    ("POST", "/prompts/qa-basic/rollback", {"env": "production"}),
    ("POST", "/prompts/qa-basic/experiments", {**EXPERIMENT, "name": "second"}),
    ("POST", "/experiments/{eid}/start", None),
    ("POST", "/experiments/{running}/stop", None),
    (
        "POST",
        "/events",
        {
            "events": [
                {
                    "timestamp": "2026-01-01T00:00:00Z",
                    "template": "qa-basic",
                    "user_id": "u",
                    "latency_ms": 5,
                }
            ]
        },
    ),
]


@pytest.fixture
def secured(serve, db_path):
    """A server whose settings accept TOKEN (and another token), with a deployment, a draft
    and a running experiment to act on; yields (client, ids)."""
    other = hashlib.sha256(b"another").hexdigest()
    ws = open_ws(db_path, server__token_hashes=[other, TOKEN_HASH.upper()])
    seed(ws)
    ws.deployments.deploy("qa-basic", "1.0.0", "production")
    ws.deployments.deploy("qa-basic", "1.1.0", "production")
    running = ws.experiments.create({**EXPERIMENT, "template": "qa-basic", "name": "live"})
    ws.experiments.start(running.id)
    draft = ws.experiments.create(
        {**EXPERIMENT, "template": "qa-basic", "name": "draft", "environment": "staging"}
    )
    try:
        yield serve(ws), {"eid": draft.id, "running": running.id}
    finally:
        ws.close()


@pytest.mark.parametrize("method, path, body", WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_writes_need_an_accepted_token(secured, method, path, body):
    api, ids = secured
    url = path.format(**ids)
    r = api.request(method, url, json=body)
    p = problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == 'Bearer realm="promptver"'
    assert "Authorization: Bearer" in p["detail"]

    r = api.request(method, url, json=body, headers={"Authorization": "Bearer wrong"})
    problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == 'Bearer realm="promptver", error="invalid_token"'
    r = api.request(method, url, json=body, headers={"Authorization": f"Basic {TOKEN}"})
    problem(r, 401, "unauthorized")

    r = api.request(method, url, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code in (200, 201), r.text
    # the other configured token works too
    if path == "/events":
        body["events"][0]["user_id"] = "someone else"
        r = api.post(url, json=body, headers={"Authorization": "bearer another"})
        assert r.status_code == 200


def test_reads_and_render_need_no_token(secured):
    api, ids = secured
    assert api.get("/prompts").status_code == 200
    assert api.get("/prompts/qa-basic").status_code == 200
    assert api.get("/prompts/qa-basic/deployments").status_code == 200
    assert api.get("/experiments").status_code == 200
    assert api.get(f"/experiments/{ids['running']}/results").status_code == 200
    r = api.post("/prompts/qa-basic/render", json={"variables": VARS, "env": "production"})
    assert r.status_code == 200
    h = api.get("/health").json()
    assert h["auth"] is True and h["status"] == "ok"


def test_unauthenticated_writes_change_nothing(secured):
    api, _ = secured
    api.post("/prompts", json={"name": "new", "content": "Hi {x}."})
    problem(api.get("/prompts/new"), 404, "not-found")


def test_without_token_hashes_writes_are_open(serve, ws):
    api = serve(ws)
    assert api.post("/prompts", json={"name": "t", "content": "Hi {x}."}).status_code == 201
    # a token sent anyway is ignored
    r = api.post(
        "/prompts", json={"name": "u", "content": "Hi {x}."}, headers={"Authorization": "Bearer x"}
    )
    assert r.status_code == 201
    assert api.get("/health").json()["auth"] is False


def test_settings_refuse_a_token_in_place_of_its_hash():
    with pytest.raises(ConfigError, match=r"server\.token_hashes: .*hash-token"):
        Settings.from_dict({"server": {"token_hashes": [TOKEN]}})
    ok = Settings.from_dict({"server": {"token_hashes": [f"  {TOKEN_HASH.upper()} "]}})
    assert ok.server.token_hashes == [TOKEN_HASH]


# ---- the command ------------------------------------------------------------------------------


def test_hash_token_prints_the_sha256_of_stdin(cli):
    r = cli("serve", "--hash-token", stdin=TOKEN + "\n")
    assert (r.code, r.out.strip()) == (0, TOKEN_HASH)
    r = cli("serve", "--hash-token", stdin=TOKEN, json=True)
    assert r.json() == {"sha256": TOKEN_HASH}
    r = cli("serve", "--hash-token", stdin="")
    assert r.code == 2 and r.err.startswith("error: no token on stdin")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PROMPTVER_AUTHOR": "tester"}


def test_serve_runs_the_api_until_interrupted(db_path, tmp_path):
    from promptver import Workspace

    Workspace.open(db_path).close()  # serve opens a database, it does not create one
    cmd = [sys.executable, "-m", "promptver", "--db", str(db_path), "serve", "--port", "0"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path
    )
    try:
        banner = proc.stderr.readline()
        m = re.search(
            r"promptver API on (http://127\.0\.0\.1:\d+)/api/v1 \(database (.+); no auth", banner
        )
        assert m, banner
        assert m.group(2) == str(db_path)
        with httpx.Client(base_url=m.group(1) + "/api/v1", timeout=30) as c:
            for _ in range(200):  # the banner comes just before uvicorn starts accepting
                try:
                    r = c.get("/health")
                    break
                except httpx.ConnectError:
                    import time

                    time.sleep(0.05)
            assert r.status_code == 200 and r.json()["database"]["ok"] is True
            r = c.post("/prompts", json={"name": "qa", "content": "Hi {x}."})
            assert r.status_code == 201
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "error" not in err
        assert err.rstrip().endswith("promptver API stopped")
        assert '"POST /api/v1/prompts HTTP/1.1" 201' in out  # uvicorn's access log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # the server let go of the file: the CLI works on it
    r = subprocess.run(
        [sys.executable, "-m", "promptver", "--db", str(db_path), "--json", "template", "list"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert [t["name"] for t in __import__("json").loads(r.stdout)] == ["qa"]


def test_serve_on_a_taken_port_is_one_error_line(run_cli):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = run_cli("serve", "--port", str(port))
    assert r.code == 1
    assert r.err.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1
    r = run_cli("serve", "--port", "70000")
    assert r.code == 2 and "--port" in r.err


def test_serve_warns_when_open_beyond_loopback_without_auth(cli, monkeypatch):
    from promptver.api import server
    from promptver.cli.commands.serve import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
    assert not is_loopback("example.org")

    class Idle:
        def run(self, sockets):
            self.sockets = sockets

    bound = []
    real_bind = server.bind
    # nothing really listens beyond loopback: the socket is a loopback one, the server idle
    monkeypatch.setattr(
        server, "bind", lambda host, port: bound.append(host) or real_bind("127.0.0.1", 0)
    )
    monkeypatch.setattr(server, "make_server", lambda ws, **kw: Idle())
    r = cli("serve", "--host", "0.0.0.0")
    assert r.code == 0 and bound == ["0.0.0.0"]
    assert "warning: listening on 0.0.0.0 without token auth" in r.err
    r = cli("serve")
    assert bound[-1] == "127.0.0.1" and "warning" not in r.err

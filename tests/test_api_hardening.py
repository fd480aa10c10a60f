"""Hostile HTTP clients (issue 23, items 2, 6 and 11): what the API refuses, and how early.

Each test reproduces one attack of the issue against a real server on loopback.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import httpx
import pytest

from promptver.api.server import BackgroundServer
from tests.api_helpers import (
    EXPERIMENT,
    TOKEN,
    TOKEN_HASH,
    api_fixture,  # noqa: F401 - fixture
    fields,
    open_ws,
    problem,
    seed,
    serve_fixture,  # noqa: F401 - fixture
)

ROOT = Path(__file__).resolve().parents[1]
VARS = {"question": "q", "context": "c"}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def lab(db_path):
    """A seeded workspace with qa-basic live in production and a running experiment whose salt
    is a secret (the default salt is the experiment's id, which every reader sees)."""
    ws = open_ws(db_path, server__token_hashes=[TOKEN_HASH])
    seed(ws)
    ws.deployments.deploy("qa-basic", "1.0.0", "production")
    exp = ws.experiments.create({**EXPERIMENT, "template": "qa-basic", "salt": "7bd1e0c5-s4lt"})
    ws.experiments.start(exp.id)
    try:
        yield ws, exp
    finally:
        ws.close()


def _address(client: httpx.Client) -> tuple[str, int]:
    url = urlsplit(str(client.base_url))
    return url.hostname or "127.0.0.1", url.port or 80


def _read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or 30 s pass)."""
    sock.settimeout(30)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return data


# ---- item 2: the token before the body; caps per route; parsing off the loop -----------------


def test_an_unauthenticated_write_is_refused_before_its_body_is_read(serve, lab):
    ws, _ = lab
    api = serve(ws)
    with socket.create_connection(_address(api)) as sock:
        # announces 100 MB and sends none of it: the answer cannot wait for the body
        sock.sendall(
            b"POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{"
        )
        answer = _read_answer(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 "), answer[:300]
    assert b"connection: close" in head.lower()
    assert json.loads(body)["type"] == "urn:promptver:problem:unauthorized"


def test_a_malformed_body_without_a_token_is_401_not_422(serve, lab):
    ws, _ = lab
    api = serve(ws)
    for path in ("/prompts", "/events", "/prompts/qa-basic/deploy"):
        r = api.post(path, content=b"{not json", headers={"content-type": "application/json"})
        problem(r, 401, "unauthorized")
    r = api.post(
        "/prompts", content=b"{not json", headers={**AUTH, "content-type": "application/json"}
    )
    problem(r, 422, "invalid-request")


def test_each_route_has_its_own_body_cap(serve, db_path):
    ws = open_ws(db_path, server__max_body_kb=64, server__max_events_mb=1)
    try:
        seed(ws)
        ws.deployments.deploy("qa-basic", "1.0.0", "production")
        api = serve(ws)
        big = {"variables": {"question": "x" * 70_000, "context": "c"}}
        body = problem(api.post("/prompts/qa-basic/render", json=big), 413, "payload-too-large")
        assert "64 KB" in body["detail"] and "server.max_body_kb" in body["detail"]
        deploy = {"version": "1.0.0", "env": "staging", "note": "n" * 70_000}
        problem(api.post("/prompts/qa-basic/deploy", json=deploy), 413, "payload-too-large")
        assert ws.deployments.history("qa-basic", "staging") == []
        # the same 70 KB is fine for a batch of events, whose cap is 1 MB
        events = [
            {
                "timestamp": "2026-01-01T00:00:00Z",
                "template": "qa-basic",
                "user_id": f"u{i}",
                "latency_ms": 1,
                "event_id": "e" * 60 + str(i),
            }
            for i in range(600)
        ]
        assert len(json.dumps({"events": events})) > 70_000
        r = api.post("/events", json={"events": events})
        assert r.status_code == 200 and r.json()["rows_imported"] == 600

        # a chunked body (no Content-Length) is counted as it arrives
        def chunks():
            data = json.dumps(big).encode()
            for i in range(0, len(data), 8192):
                yield data[i : i + 8192]

        with httpx.Client(base_url=str(api.base_url), timeout=60) as c:
            r = c.post(
                "/prompts/qa-basic/render",
                content=chunks(),
                headers={"content-type": "application/json"},
            )
        problem(r, 413, "payload-too-large")
        small = {"variables": VARS, "env": "production"}
        r = api.post("/prompts/qa-basic/render", json=small)
        assert r.status_code == 200 and r.json()["version"] == "1.0.0"
    finally:
        ws.close()


def test_a_chunked_body_over_the_cap_is_not_read_to_its_end(serve, db_path):
    ws = open_ws(db_path, server__max_events_mb=1)
    try:
        api = serve(ws)
        sent = 0
        with socket.create_connection(_address(api)) as sock:
            sock.sendall(
                b"POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            piece = b"[" * 65536
            frame = b"%x\r\n" % len(piece) + piece + b"\r\n"
            sock.settimeout(30)
            try:
                for _ in range(1600):  # up to 100 MB, unless the server stops it first
                    sock.sendall(frame)
                    sent += len(piece)
            except (BrokenPipeError, ConnectionResetError):
                pass
            answer = _read_answer(sock)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:300]
        # refused after the first MB, and the connection closed: the rest was never read
        assert sent < 50 * 1024 * 1024
    finally:
        ws.close()


def test_large_bodies_are_parsed_off_the_event_loop(api, ws, monkeypatch):
    from promptver.api import app as app_module

    threads: list[tuple[str, int]] = []
    real = app_module.parse_json

    def recording(body: bytes):
        threads.append((threading.current_thread().name, len(body)))
        return real(body)

    monkeypatch.setattr(app_module, "parse_json", recording)
    r = api.post("/prompts", json={"name": "small", "content": "Hi {x}."})
    assert r.status_code == 201
    # parsed, then refused by the service (a description that long): where it was parsed counts
    api.post("/prompts", json={"name": "large", "content": "Hi {x}.", "description": "d" * 50_000})
    (small_thread, _), (large_thread, size) = threads
    assert size > 50_000
    # a small body is parsed right away on the loop; a large one in a worker thread
    assert large_thread.startswith("AnyIO worker thread"), large_thread
    assert not small_thread.startswith("AnyIO worker thread"), small_thread


# ---- item 6: the Host header -----------------------------------------------------------------


def test_only_configured_host_names_are_answered(serve, db_path):
    ws = open_ws(db_path, server__allowed_hosts=["api.internal", "*.example.org"])
    try:
        api = serve(ws)
        port = _address(api)[1]
        for host in (
            "127.0.0.1",
            f"127.0.0.1:{port}",
            f"localhost:{port}",
            f"[::1]:{port}",
            "api.internal",
            "API.Internal:80",
            "svc.example.org",
        ):
            assert api.get("/health", headers={"Host": host}).status_code == 200, host
        for host in (
            "evil.example",
            f"evil.example:{port}",
            "example.org",
            "127.0.0.1.evil.io",
            "localhost.evil.io",
            "",
        ):
            r = api.get("/health", headers={"Host": host})
            body = problem(r, 400, "invalid-host")
            assert "evil" not in r.text, host
        # a DNS-rebound page can neither write nor read
        r = api.post(
            "/prompts", json={"name": "x", "content": "Hi {x}."}, headers={"Host": "evil.example"}
        )
        problem(r, 400, "invalid-host")
        assert ws.templates.list() == []
        assert "server.allowed_hosts" in body["detail"]
    finally:
        ws.close()


def test_the_bound_address_is_an_accepted_host(ws):
    with BackgroundServer(ws, host="127.0.0.2") as server, httpx.Client(base_url=server.url) as c:
        assert c.get("/api/v1/health").status_code == 200  # Host: 127.0.0.2:port
        assert c.get("/api/v1/health", headers={"Host": "127.0.0.3"}).status_code == 400


def test_a_trailing_slash_is_not_redirected_to_the_host_header(api):
    for path in ("/health/", "/prompts/qa-basic/deployments/"):
        r = api.get(path, headers={"Host": "localhost"})
        assert r.status_code == 404 and "location" not in r.headers, (path, r.headers)
        problem(r, 404, "not-found")


# ---- item 11: the smaller ones ----------------------------------------------------------------


def test_duplicate_keys_nan_infinity_and_utf16_bodies_are_refused(api, ws):
    seed(ws)
    ws.deployments.deploy("qa-basic", "1.0.0", "production")
    raw = b'{"version": "1.1.0", "env": "production", "env": "staging"}'
    body = problem(
        api.post(
            "/prompts/qa-basic/deploy", content=raw, headers={"content-type": "application/json"}
        ),
        422,
        "invalid-request",
    )
    assert fields(body) == ["env"] and body["problems"][0]["code"] == "duplicate_key"
    assert "'env' is given more than once" in body["detail"]
    assert ws.deployments.history("qa-basic", "staging") == []
    assert ws.deployments.history("qa-basic", "production")[0].version == "1.0.0"
    # nested, and in a list
    raw = b'{"variables": {"question": "a", "question": "b", "context": "c"}}'
    body = problem(
        api.post(
            "/prompts/qa-basic/render", content=raw, headers={"content-type": "application/json"}
        ),
        422,
        "invalid-request",
    )
    assert fields(body) == ["variables.question"]

    exp = {**EXPERIMENT, "name": "nan"}
    text = json.dumps(exp).replace('"weight": 50}', '"weight": NaN}', 1)
    text = text.replace('"weight": 50}', '"weight": Infinity}', 1)
    body = problem(
        api.post(
            "/prompts/qa-basic/experiments",
            content=text.encode(),
            headers={"content-type": "application/json"},
        ),
        422,
        "invalid-request",
    )
    assert fields(body) == ["variants[0].weight", "variants[1].weight"]
    assert ws.experiments.list() == []
    body = problem(
        api.post(
            "/prompts/qa-basic/render",
            content=b'{"variables": {"question": -1e999, "context": "c"}}',
            headers={"content-type": "application/json"},
        ),
        422,
        "invalid-request",
    )
    assert fields(body) == ["variables.question"]

    for encoding in ("utf-16", "utf-16-le", "utf-32"):
        data = json.dumps({"version": "1.1.0", "env": "staging"}).encode(encoding)
        body = problem(
            api.post(
                "/prompts/qa-basic/deploy",
                content=data,
                headers={"content-type": "application/json"},
            ),
            422,
            "invalid-request",
        )
        assert "UTF-8" in body["detail"] and body["problems"][0]["code"] == "not_utf8", encoding
    assert ws.deployments.history("qa-basic", "staging") == []
    # latin-1 bytes are not UTF-8 either
    body = problem(
        api.post(
            "/prompts",
            content='{"name": "caf\u00e9", "content": "x"}'.encode("latin-1"),
            headers={"content-type": "application/json"},
        ),
        422,
        "invalid-request",
    )
    assert "byte 0xe9" in body["detail"]


def test_head_and_options_are_answered(api, ws):
    seed(ws)
    for path in ("/health", "/prompts", "/prompts/qa-basic", "/experiments", "/openapi.json"):
        get = api.get(path)
        head = api.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]
        assert head.headers["content-length"] == get.headers["content-length"], path
    expected = {
        "/health": "GET, HEAD, OPTIONS",
        "/prompts": "GET, HEAD, OPTIONS, POST",
        "/prompts/qa-basic": "GET, HEAD, OPTIONS, PUT",
        "/prompts/qa-basic/render": "OPTIONS, POST",
        "/events": "OPTIONS, POST",
    }
    for path, allow in expected.items():
        r = api.options(path)
        assert (r.status_code, r.headers["allow"], r.content) == (204, allow, b""), path
        assert not any(h.startswith("access-control-") for h in r.headers), path
    problem(api.options("/nowhere"), 404, "not-found")
    r = api.delete("/health")
    problem(r, 405, "method-not-allowed")
    assert r.headers["allow"] == "GET, HEAD, OPTIONS"


def test_a_token_hashed_from_non_ascii_input_is_accepted(serve, db_path, tmp_path):
    token = "p\u00e4ssw\u00f6rt-\u2713-\u5bc6"
    r = subprocess.run(
        [sys.executable, "-m", "promptver", "--db", str(db_path), "serve", "--hash-token"],
        input=token.encode("utf-8") + b"\n",
        capture_output=True,
        env={
            "PYTHONPATH": str(ROOT),
            "PATH": "/usr/bin:/bin",
            "LC_ALL": "C",
            "HOME": str(tmp_path),
        },
        timeout=60,
    )
    digest = r.stdout.decode().strip()
    assert r.returncode == 0 and digest == hashlib.sha256(token.encode("utf-8")).hexdigest(), r
    ws = open_ws(db_path, server__token_hashes=[digest])
    try:
        api = serve(ws)
        headers = {"Authorization": b"Bearer " + token.encode("utf-8")}  # as curl sends it
        r = api.post("/prompts", json={"name": "t", "content": "Hi {x}."}, headers=headers)
        assert r.status_code == 201, r.text
        wrong = {"Authorization": b"Bearer " + token.encode("latin-1", "replace")}
        problem(
            api.post("/prompts", json={"name": "u", "content": "x"}, headers=wrong),
            401,
            "unauthorized",
        )
    finally:
        ws.close()


def test_a_client_sending_headers_slowly_is_cut_off(serve, db_path):
    ws = open_ws(db_path, server__header_timeout=1.0)
    try:
        api = serve(ws)
        started = time.monotonic()
        with socket.create_connection(_address(api)) as sock:
            sock.settimeout(30)
            sock.sendall(b"GET /api/v1/health HTTP/1.1\r\n")
            answer = b""
            try:
                for _ in range(300):  # one header byte every 0.1 s: 30 s unless cut off
                    sock.sendall(b"X")
                    time.sleep(0.1)  # the attacker's pace, not a wait for the server
                    sock.setblocking(False)
                    try:
                        answer += sock.recv(4096)
                    except BlockingIOError:
                        pass
                    finally:
                        sock.setblocking(True)
                        sock.settimeout(30)
                    if answer:
                        break
            except (BrokenPipeError, ConnectionResetError):
                pass
            answer += _read_answer(sock)
        took = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert took < 10, took
        # a connection that sends nothing at all is closed too
        with socket.create_connection(_address(api)) as sock:
            assert _read_answer(sock).startswith(b"HTTP/1.1 408 ")
        # an ordinary client is not affected
        assert api.get("/health").status_code == 200
    finally:
        ws.close()


def test_database_path_and_salt_are_for_authenticated_readers(serve, lab, db_path):
    ws, exp = lab
    api = serve(ws)
    anonymous = api.get("/health").json()
    assert anonymous["database"]["path"] is None and anonymous["database"]["size_bytes"] is None
    assert str(db_path) not in api.get("/health").text
    known = api.get("/health", headers=AUTH).json()
    assert known["database"]["path"] == str(db_path) and known["database"]["size_bytes"] > 0
    wrong = api.get("/health", headers={"Authorization": "Bearer nope"}).json()
    assert wrong["database"]["path"] is None
    for path in (f"/experiments/{exp.id}", "/experiments"):
        anonymous = api.get(path).json()
        known = api.get(path, headers=AUTH).json()
        one = anonymous if isinstance(anonymous, dict) else anonymous[0]
        theirs = known if isinstance(known, dict) else known[0]
        assert one["salt"] is None and theirs["salt"] == exp.salt, path
        assert exp.salt not in api.get(path).text
    # an unusable database: the reason (which names the file) only with a token
    db_path.rename(db_path.with_suffix(".moved"))
    r = api.get("/health")
    assert r.status_code == 503 and str(db_path) not in r.text
    assert str(db_path) in api.get("/health", headers=AUTH).json()["database"]["detail"]


def test_without_tokens_every_reader_sees_path_and_salt(serve, ws, db_path):
    seed(ws)
    exp = ws.experiments.create({**EXPERIMENT, "template": "qa-basic"})
    api = serve(ws)
    assert api.get("/health").json()["database"]["path"] == str(db_path)
    assert api.get(f"/experiments/{exp.id}").json()["salt"] == exp.salt


def test_a_write_race_is_409_with_retry_after_and_no_duckdb_text(api, ws, monkeypatch):
    def racing(*args, **kwargs):
        with ws.db.transaction():
            raise duckdb.ConstraintException(
                'Constraint Error: Duplicate key "name: t" violates unique constraint. If this '
                "is an unexpected constraint violation please double check with the known index "
                "limitations section in our documentation"
            )

    monkeypatch.setattr(ws.templates, "create", racing)
    r = api.post("/prompts", json={"name": "t", "content": "Hi {x}."})
    body = problem(r, 409, "conflict")
    assert r.headers["retry-after"] == "1"
    assert body["detail"] == (
        "another writer changed the same data at the same time; nothing was written, try again"
    )
    for word in ("Constraint", "Duplicate key", "violates", "index", "TransactionContext"):
        assert word not in r.text

    def moved(*args, **kwargs):
        from promptver.errors import Conflict

        raise Conflict("branch 'main' moved since you started editing")

    monkeypatch.setattr(ws.templates, "create", moved)
    r = api.post("/prompts", json={"name": "t", "content": "Hi {x}."})
    problem(r, 409, "conflict")
    assert "retry-after" not in r.headers  # retrying the same request would not help


def test_a_flood_of_health_checks_does_not_open_the_file_each_time(api, ws, monkeypatch):
    from promptver.api import routes

    opened = []
    real = routes.Database

    def counting(*args, **kwargs):
        opened.append(time.monotonic())
        return real(*args, **kwargs)

    monkeypatch.setattr(routes, "Database", counting)
    started = time.monotonic()
    for _ in range(40):
        r = api.get("/health")
        assert r.status_code == 200 and r.json()["database"]["migrations"] >= 4
    took = time.monotonic() - started
    # one probe, then at most one per PROBE_TTL (a fresh probe per request before)
    assert 1 <= len(opened) <= 2 + took / routes.PROBE_TTL, (len(opened), took)

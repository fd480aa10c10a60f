"""The OpenAPI document validates, and the API survives fuzzing from its own schema.

The fuzzing is schemathesis against a real server (auth on, a workspace with a template,
deployments and a running experiment, so generated refs sometimes hit real data). Bounded:
a few dozen examples per operation; no request may get a 500, and every response must match
what the document declares (status, media type, body schema, headers).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate

from promptver.api.server import BackgroundServer
from tests.api_helpers import (
    EXPERIMENT,
    TOKEN,
    TOKEN_HASH,
    api_fixture,  # noqa: F401 - fixture
    open_ws,
    seed,
    serve_fixture,  # noqa: F401 - fixture
)

OPERATIONS = {
    ("GET", "/api/v1/prompts"),
    ("POST", "/api/v1/prompts"),
    ("GET", "/api/v1/prompts/{ref}"),
    ("PUT", "/api/v1/prompts/{ref}"),
    ("POST", "/api/v1/prompts/{ref}/render"),
    ("GET", "/api/v1/prompts/{ref}/live"),
    ("POST", "/api/v1/prompts/{ref}/deploy"),
    ("POST", "/api/v1/prompts/{ref}/rollback"),
    ("GET", "/api/v1/prompts/{ref}/deployments"),
    ("POST", "/api/v1/prompts/{ref}/experiments"),
    ("GET", "/api/v1/experiments"),
    ("GET", "/api/v1/experiments/{experiment}"),
    ("POST", "/api/v1/experiments/{experiment}/start"),
    ("POST", "/api/v1/experiments/{experiment}/stop"),
    ("GET", "/api/v1/experiments/{experiment}/results"),
    ("POST", "/api/v1/events"),
    ("GET", "/api/v1/health"),
    ("POST", "/api/v1/evals"),
    ("GET", "/api/v1/evals"),
    ("GET", "/api/v1/evals/runs"),
    ("GET", "/api/v1/evals/items"),
    ("GET", "/api/v1/evals/compare"),
    ("GET", "/api/v1/webhooks"),
    ("POST", "/api/v1/webhooks"),
    ("DELETE", "/api/v1/webhooks/{webhook_id}"),
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"),
    ("POST", "/api/v1/webhooks/deliveries/{message_id}/redeliver"),
    ("POST", "/api/v1/webhooks/{webhook_id}/test"),
}
WRITES = {
    ("POST", "/api/v1/prompts"),
    ("PUT", "/api/v1/prompts/{ref}"),
    ("POST", "/api/v1/prompts/{ref}/deploy"),
    ("POST", "/api/v1/prompts/{ref}/rollback"),
    ("POST", "/api/v1/prompts/{ref}/experiments"),
    ("POST", "/api/v1/experiments/{experiment}/start"),
    ("POST", "/api/v1/experiments/{experiment}/stop"),
    ("POST", "/api/v1/events"),
    ("POST", "/api/v1/evals"),
    # every webhook endpoint, the reads too (subscription URLs are often credentials)
    ("GET", "/api/v1/webhooks"),
    ("POST", "/api/v1/webhooks"),
    ("DELETE", "/api/v1/webhooks/{webhook_id}"),
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"),
    ("POST", "/api/v1/webhooks/deliveries/{message_id}/redeliver"),
    ("POST", "/api/v1/webhooks/{webhook_id}/test"),
}


def test_openapi_document_is_valid_and_complete(api):
    r = api.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    validate(doc)  # raises on any violation of the OpenAPI 3.1 specification
    assert doc["info"]["title"] == "promptver"
    ops = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert ops == OPERATIONS
    for path, item in doc["paths"].items():
        for method, op in item.items():
            secured = "security" in op
            assert secured == ((method.upper(), path) in WRITES), (method, path)
            for status, response in op["responses"].items():
                content = response.get("content", {})
                if status.startswith(("4", "5")) and not path.endswith("/health"):
                    assert list(content) == ["application/problem+json"], (path, status)
            if secured:
                assert "401" in op["responses"]
                assert "WWW-Authenticate" in op["responses"]["401"]["headers"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


# ---- fuzzing ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("fuzz") / "pv.duckdb"
    ws = open_ws(path, server__token_hashes=[TOKEN_HASH])
    try:
        seed(ws)
        ws.deployments.deploy("qa-basic", "1.0.0", "staging")
        ws.deployments.deploy("qa-basic", "1.1.0", "production")
        exp = ws.experiments.create({**EXPERIMENT, "template": "qa-basic"})
        ws.experiments.start(exp.id)
        with BackgroundServer(ws) as server:
            yield server.url
    finally:
        ws.close()


@pytest.fixture(scope="module")
def api_schema(fuzz_server: str):
    # the document as a client downloads it; requests go to the server it came from
    return schemathesis.openapi.from_url(fuzz_server + "/api/v1/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_fuzz_no_server_errors_and_responses_match_the_schema(case):
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    case.validate_response(
        response,
        headers={"Authorization": f"Bearer {TOKEN}"},
        # requests that fit the schema may still break a rule the schema cannot say (a name
        # already taken, an unknown ref, fewer than two variants): those are 422 by design
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )


# ---- hostile bodies: deeply nested and oversized, on every operation that takes one ----------

#: a minimal valid body per operation, into which each hostile value is put
BASES = {
    "/api/v1/prompts": {"name": "fz-deep", "content": "Hi {x}."},
    "/api/v1/prompts/{ref}": {"content": "Answer {question} using {context}, deeply."},
    "/api/v1/prompts/{ref}/render": {"variables": {"question": "q", "context": "c"}},
    "/api/v1/prompts/{ref}/deploy": {"version": "1.0.0", "env": "development"},
    "/api/v1/prompts/{ref}/rollback": {"env": "development"},
    "/api/v1/prompts/{ref}/experiments": {**EXPERIMENT, "name": "fz-deep"},
    "/api/v1/experiments/{experiment}/start": {},
    "/api/v1/experiments/{experiment}/stop": {"reason": "fuzz"},
    "/api/v1/events": {
        "events": [{"timestamp": "2026-01-01T00:00:00Z", "template": "qa-basic", "user_id": "u"}]
    },
    "/api/v1/webhooks": {"url": "http://127.0.0.1:9/hook", "events": ["*"]},
}
#: nesting a parser must refuse, and nesting it can read (which the services then judge)
DEEP, MODERATE = 50_000, 100
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]


def _nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"1" + b"]" * depth
    return b'{"k":' * depth + b"1" + b"}" * depth


def _with(base: dict, key: str, raw: bytes) -> bytes:
    """``base`` as JSON with ``key`` set to the raw JSON text ``raw``."""
    marker = "\x00placeholder\x00"
    text = json.dumps({**base, key: marker}).encode()
    return text.replace(json.dumps(marker).encode(), raw)


def _properties(doc: dict, op: dict) -> list[str]:
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    for option in schema.get("anyOf", [schema]):
        if "$ref" in option:
            name = option["$ref"].rsplit("/", 1)[-1]
            return list(doc["components"]["schemas"][name]["properties"])
    return []


def _oversized(base: str, method: str, url: str, size: int, chunked: bool) -> httpx.Response:
    """Send ``size`` bytes of body (declared, or chunked) until the server stops reading;
    its answer as an httpx response."""
    target = urlsplit(base)
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % size
    with socket.create_connection((target.hostname, target.port)) as sock:
        sock.settimeout(60)
        sock.sendall(
            b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
            b"Content-Type: application/json\r\n%s\r\n\r\n"
            % (method.encode(), url.encode(), TOKEN.encode(), framing)
        )
        piece = b" " * 65536
        try:
            for _ in range(0, size, len(piece)):
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    head, _, content = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(line.split(": ", 1)) for line in lines[1:]]
    request = httpx.Request(method, base + url)
    status = int(lines[0].split()[1])
    response = httpx.Response(status, headers=headers, content=content, request=request)
    response.elapsed = timedelta(0)  # read whole above; schemathesis reports the time taken
    return response


def test_deeply_nested_and_oversized_bodies_on_every_operation(api_schema, fuzz_server):
    auth = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    with httpx.Client(base_url=fuzz_server, timeout=60, headers=auth) as client:
        doc = client.get("/api/v1/openapi.json").json()
        running = client.get("/api/v1/experiments", params={"status": "running"}).json()[0]["id"]
        params = {"ref": "qa-basic", "experiment": running}
        sent = 0
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if "requestBody" not in op:
                    continue
                operation = api_schema[path][method.upper()]
                url = path.format(**params)
                base = BASES[path]
                bodies = [_nested(DEEP, "list"), _nested(DEEP, "object")]
                for key in _properties(doc, op):
                    for depth in (DEEP, MODERATE):
                        for kind in ("list", "object"):
                            bodies.append(_with(base, key, _nested(depth, kind)))
                cap = (8 if path.endswith("/events") else 1) * 1024 * 1024
                oversized = b" " * (cap + 1)
                for body in [*bodies, oversized, None]:
                    if body is None or body is oversized:
                        # on a socket of its own: the server answers before the body has been
                        # sent, and closes; an HTTP client would report the broken pipe instead
                        r = _oversized(fuzz_server, method.upper(), url, cap + 1, body is None)
                    else:
                        r = client.request(method.upper(), url, content=body)
                    sent += 1
                    case = operation.Case(path_parameters=params, body=base)
                    case.validate_response(r, checks=CHECKS)
                    assert r.status_code < 500, (method, path, len(body or b""), r.text[:300])
                    if body is None or body is oversized:
                        assert r.status_code == 413, (method, path, r.text[:300])
                    elif body in bodies[:2] or b"[" * DEEP in body or b'{"k":' * DEEP in body:
                        assert r.status_code == 422, (method, path, r.text[:300])
                        assert r.json()["problems"][0]["code"] == "too_deep"
        assert sent > 100
        # whatever was stored, every read still works
        for read in ("/api/v1/prompts", "/api/v1/prompts/qa-basic", "/api/v1/experiments"):
            assert client.get(read).status_code == 200, read

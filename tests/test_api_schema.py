"""The OpenAPI document validates, and the API survives fuzzing from its own schema.

The fuzzing is schemathesis against a real server (auth on, a workspace with a template,
deployments and a running experiment, so generated refs sometimes hit real data). Bounded:
a few dozen examples per operation; no request may get a 500, and every response must match
what the document declares (status, media type, body schema, headers).
"""

from __future__ import annotations

from collections.abc import Iterator

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

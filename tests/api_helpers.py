"""Helpers for the HTTP API tests: a real uvicorn server on loopback, an httpx client.

Test modules import the fixtures by their function names (``api_fixture``, ``serve_fixture``)
and use them by their fixture names (``api``, ``serve``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from promptver import Settings, Workspace
from promptver.api.server import BackgroundServer

PROBLEM = "application/problem+json"
TOKEN = "s3cret-token"
TOKEN_HASH = hashlib.sha256(TOKEN.encode()).hexdigest()


def problem(r: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """Assert ``r`` is an RFC 9457 problem of ``kind`` with ``status``; return its body."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body = r.json()
    assert body["type"] == f"urn:promptver:problem:{kind}", body
    assert body["status"] == status
    assert body["title"] and isinstance(body["detail"], str) and body["detail"]
    assert body["instance"] == r.request.url.path
    return body


def fields(body: dict[str, Any]) -> list[str | None]:
    return [p["field"] for p in body.get("problems") or []]


@pytest.fixture(name="serve")
def serve_fixture() -> Iterator[Callable[..., httpx.Client]]:
    """``serve(ws)`` starts the API over ``ws`` on a free loopback port and returns an httpx
    client whose base URL is ``…/api/v1``; everything stops when the test ends."""
    with ExitStack() as stack:

        def start(ws: Workspace, *, headers: dict[str, str] | None = None) -> httpx.Client:
            server = stack.enter_context(BackgroundServer(ws))
            return stack.enter_context(
                httpx.Client(base_url=server.url + "/api/v1", timeout=60, headers=headers)
            )

        yield start


@pytest.fixture(name="api")
def api_fixture(ws: Workspace, serve: Callable[..., httpx.Client]) -> httpx.Client:
    """The API over the test's fresh workspace (the ``ws`` fixture)."""
    return serve(ws)


def open_ws(path: Any, **overrides: Any) -> Workspace:
    """A workspace on ``path`` with ``section__key=value`` setting overrides."""
    return Workspace.open(path, settings=Settings().with_overrides(**overrides))


def seed(ws: Workspace) -> None:
    """qa-basic 1.0.0 and 1.1.0, and a branch concise-tone."""
    from tests.experiments_helpers import seed_lab

    seed_lab(ws)


EXPERIMENT = {
    "name": "concise-vs-control",
    "environment": "production",
    "variants": [
        {"name": "control", "ref": "1.0.0", "weight": 50},
        {"name": "concise", "ref": "concise-tone", "weight": 50},
    ],
    "metrics": ["quality_score", "latency_ms"],
    "minimum_sample_size": 2,
}

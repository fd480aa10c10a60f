"""The ASGI application: routes, problem-details errors, the body limit, the OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promptver import __version__
from promptver.api import problems
from promptver.api.routes import add_routes
from promptver.errors import PromptverError
from promptver.workspace import Workspace

PREFIX = "/api/v1"

DESCRIPTION = """\
Prompt versioning, deployment and A/B testing over one promptver database: the same services as
the CLI and the dashboard. Errors are RFC 9457 problem details (`application/problem+json`) whose
`detail` is the message the CLI prints; refused input lists each problem by field in `problems`.
When the server has `server.token_hashes` set, write endpoints need `Authorization: Bearer TOKEN`.
See docs/http-api.md.
"""


def create_app(ws: Workspace, *, close_on_shutdown: bool = False) -> FastAPI:
    """The HTTP API over ``ws`` (one workspace shared by every request thread).

    Args:
        ws: an open workspace (``Workspace.open``).
        close_on_shutdown: close ``ws`` when the server stops (flushing tracked events).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_on_shutdown:
            ws.close()

    app = FastAPI(
        title="promptver",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=f"{PREFIX}/openapi.json",
        # the interactive docs pages load their scripts from a CDN: not offered
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        lifespan=lifespan,
    )
    add_routes(app, ws, PREFIX)
    app.add_exception_handler(PromptverError, problems.domain_error)
    app.add_exception_handler(RequestValidationError, problems.request_error)
    app.add_exception_handler(StarletteHTTPException, problems.http_error)
    app.add_middleware(problems.CatchBugs)
    app.add_middleware(BodyLimit, max_bytes=ws.settings.uploads.max_upload_mb * 1024 * 1024)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.state.workspace = ws
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with error responses typed ``application/problem+json``."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    for path in doc.get("paths", {}).values():
        for op in path.values():
            for response in op.get("responses", {}).values():
                content = response.get("content", {})
                ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
                if ref.endswith("/ProblemDetails"):
                    content[problems.MEDIA_TYPE] = content.pop("application/json")
    app.openapi_schema = doc
    return doc


class BodyLimit:
    """Refuse request bodies over ``uploads.max_upload_mb`` with a 413 problem.

    A declared ``Content-Length`` is checked before anything is read; a chunked body is counted
    as it arrives and refused once it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
                break
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        if declared is not None:
            await self.app(scope, receive, send)
            return
        # no length: read the body here (bounded), then replay it to the app
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.requests import Request

        mb = self.max_bytes // (1024 * 1024)
        response = problems.problem_response(
            413,
            "payload-too-large",
            "Payload Too Large",
            f"the request body is larger than {mb} MB (uploads.max_upload_mb); send smaller "
            "batches",
            Request(scope).url.path,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)

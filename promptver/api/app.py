"""The ASGI application: routes, problem-details errors, the body limit, the OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promptver import __version__
from promptver.api import problems
from promptver.api.routes import add_routes, single_query_values
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
        dependencies=[Depends(single_query_values)],
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
    app.router.route_class = IJsonRoute
    add_routes(app, ws, PREFIX)
    app.add_exception_handler(PromptverError, problems.domain_error)
    app.add_exception_handler(RequestValidationError, problems.request_error)
    app.add_exception_handler(StarletteHTTPException, problems.http_error)
    app.add_middleware(problems.CatchBugs)
    app.add_middleware(BodyLimit, max_bytes=ws.settings.uploads.max_upload_mb * 1024 * 1024)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.state.workspace = ws
    return app


class LoneSurrogate(json.JSONDecodeError):
    """FastAPI reports a ``JSONDecodeError`` as an invalid body (422); ``field`` says where."""

    def __init__(self, field: str, msg: str, doc: str, pos: int) -> None:
        super().__init__(msg, doc, pos)
        self.field = field


class IJsonRequest(Request):
    """A request whose JSON body must be I-JSON (RFC 7493): no lone surrogate escapes.

    JSON lets a string hold ``"\\ud800"`` alone; Python then holds a string that cannot be
    encoded as UTF-8, which would fail deep inside (a commit hash, the rendered answer). Such a
    body is refused here as invalid JSON, naming where the string is.
    """

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            data = json.loads(body)
            where = _lone_surrogate(data, "")
            if where is not None:
                raise LoneSurrogate(
                    where,
                    f"{where or 'the body'} holds a lone surrogate escape (\\ud800-\\udfff), "
                    "which is not valid Unicode text",
                    body.decode("utf-8", "replace"),
                    0,
                )
            self._json = data
        return self._json


def _lone_surrogate(value: Any, path: str) -> str | None:
    """Where (``events[0].user_id``) the first string holding a lone surrogate is, if any."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            where = _lone_surrogate(key, path) if isinstance(key, str) else None
            if where is not None:
                return where
            where = _lone_surrogate(item, f"{path}.{key}" if path else str(key))
            if where is not None:
                return where
    elif isinstance(value, list):
        for i, item in enumerate(value):
            where = _lone_surrogate(item, f"{path}[{i}]")
            if where is not None:
                return where
    return None


class IJsonRoute(APIRoute):
    """Routes whose handlers read JSON bodies through :class:`IJsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(IJsonRequest(request.scope, request.receive))

        return handle


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
            for param in op.get("parameters", []):
                # a query string has no null: an optional parameter is simply absent, so
                # "string or null" is documented as "string" (what is on the wire)
                schema = param.get("schema", {})
                kinds = [k for k in schema.get("anyOf", []) if k.get("type") != "null"]
                if len(kinds) == 1 and len(schema["anyOf"]) == 2:
                    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
                    param["schema"] = {**kinds[0], **rest}
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

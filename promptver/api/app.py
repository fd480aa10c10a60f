"""The ASGI application: routes, problem-details errors, I-JSON bodies, the OpenAPI document."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from promptver._version import __version__
from promptver.api import problems
from promptver.api.evals import add_eval_routes
from promptver.api.guard import Gate, HostRule, Policy
from promptver.api.routes import add_routes, single_query_values
from promptver.api.webhooks import add_webhook_routes
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


def create_app(
    ws: Workspace, *, close_on_shutdown: bool = False, host: str | None = None
) -> FastAPI:
    """The HTTP API over ``ws`` (one workspace shared by every request thread).

    Args:
        ws: an open workspace (``Workspace.open``).
        close_on_shutdown: close ``ws`` when the server stops (flushing tracked events).
        host: the address the server listens on: a ``Host`` header naming it is accepted,
            besides 127.0.0.1, localhost, ::1 and ``server.allowed_hosts``.
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
    # no redirect of '/prompts/' to '/prompts': Starlette builds its Location from the Host
    # header, which a client chooses
    app.router.redirect_slashes = False
    writes = add_routes(app, ws, PREFIX)
    writes += add_eval_routes(app, ws, PREFIX)
    writes += add_webhook_routes(app, ws, PREFIX)
    app.add_exception_handler(PromptverError, problems.domain_error)
    app.add_exception_handler(RequestValidationError, problems.request_error)
    app.add_exception_handler(StarletteHTTPException, problems.http_error)
    server = ws.settings.server
    body = Policy(False, server.max_body_kb * 1024, "server.max_body_kb")
    events = Policy(True, server.max_events_mb * 1024 * 1024, "server.max_events_mb")
    policies = [
        (
            route,
            events if kind == "events" else Policy(kind == "write", body.max_body, body.setting),
        )
        for route, kind in writes
    ]
    app.add_middleware(problems.CatchBugs)
    # added last, so it runs first: nothing of a refused request reaches the app
    app.add_middleware(
        Gate,
        routes=policies,
        all_routes=app.routes,
        token_hashes=server.token_hashes,
        hosts=HostRule(host, server.allowed_hosts),
        default=body,
    )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.state.workspace = ws
    return app


class NotIJson(json.JSONDecodeError):
    """A body FastAPI reports as invalid JSON (422), with each problem by field."""

    def __init__(self, found: list[dict[str, str]], doc: str) -> None:
        first = found[0]
        super().__init__(first["message"], doc, 0)
        #: ``[{"field", "message", "code"}]``, at most :data:`MAX_PROBLEMS`
        self.problems = found
        self.field = first["field"]


#: bodies larger than this are parsed in a worker thread, not on the event loop
OFF_LOOP_BYTES = 32 * 1024
MAX_PROBLEMS = 20


class IJsonRequest(Request):
    """A request whose JSON body must be I-JSON (RFC 7493), parsed off the event loop when
    large.

    Refused, each naming where it is: bytes that are not UTF-8 (a UTF-16 body, which Python's
    ``json`` would guess and accept), an object with the same key twice (``{"env": "production",
    "env": "staging"}`` must not deploy to either), ``NaN``/``Infinity`` and numbers too large
    for a double, and lone surrogate escapes (``"\\ud800"``, which Python holds as a string that
    cannot be encoded as UTF-8 and would fail deep inside).
    """

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            if len(body) > OFF_LOOP_BYTES:
                from starlette.concurrency import run_in_threadpool

                self._json = await run_in_threadpool(parse_json, body)
            else:
                self._json = parse_json(body)
        return self._json


class _Object(dict[str, Any]):
    """A JSON object in which some key appeared more than once."""

    repeated: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    repeated: list[str] = []
    for key, _ in pairs:
        if key in seen and key not in repeated:
            repeated.append(key)
        seen.add(key)
    marked = _Object(obj)
    marked.repeated = repeated
    return marked


def parse_json(body: bytes) -> Any:
    """``body`` as I-JSON (see :class:`IJsonRequest`).

    Raises:
        json.JSONDecodeError: not JSON at all, or :class:`NotIJson` naming each problem.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        what = "it looks like UTF-16 or UTF-32" if b"\x00" in body[:4] else "send UTF-8"
        raise NotIJson(
            [
                {
                    "field": "",
                    "message": f"the body is not UTF-8 text (byte 0x{body[exc.start]:02x} at "
                    f"offset {exc.start}); JSON must be sent as UTF-8 ({what})",
                    "code": "not_utf8",
                }
            ],
            "",
        ) from None
    if "\x00" in text[:4]:
        raise NotIJson(
            [
                {
                    "field": "",
                    "message": "the body holds NUL bytes: JSON must be sent as UTF-8 (it looks "
                    "like UTF-16 or UTF-32)",
                    "code": "not_utf8",
                }
            ],
            "",
        )
    try:
        data = json.loads(text, object_pairs_hook=_pairs)
    except RecursionError:
        raise NotIJson(
            [
                {
                    "field": "",
                    "message": "the body nests arrays or objects too deeply to be read",
                    "code": "too_deep",
                }
            ],
            "",
        ) from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise NotIJson(
            [{"field": "", "message": f"the body cannot be read: {exc}", "code": "json_invalid"}],
            "",
        ) from None
    found = _problems(data)
    if found:
        raise NotIJson(found, text[:200])
    return data


def _problems(data: Any) -> list[dict[str, str]]:
    """Repeated keys, non-finite numbers and lone surrogates in ``data``, by field (``events[0]
    .user_id``; ``""`` is the body itself), in document order, at most :data:`MAX_PROBLEMS`."""
    found: list[dict[str, str]] = []
    # an explicit stack: a deep document must not exhaust Python's recursion here
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack and len(found) < MAX_PROBLEMS:
        value, path = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                found.append(_surrogate(path))
        elif isinstance(value, float):
            if not math.isfinite(value):
                what = (
                    "NaN" if math.isnan(value) else "Infinity (or a number too large for a double)"
                )
                found.append(
                    {
                        "field": path,
                        "message": f"{what} is not a JSON number",
                        "code": "non_finite_number",
                    }
                )
        elif isinstance(value, dict):
            if isinstance(value, _Object):
                for key in value.repeated:
                    found.append(
                        {
                            "field": f"{path}.{key}" if path else key,
                            "message": f"the key '{key}' is given more than once in one object; "
                            "give it once",
                            "code": "duplicate_key",
                        }
                    )
            items = list(value.items())
            for key, item in reversed(items):
                if not _encodable(key):
                    stack.append(("\ud800", path))  # reported as this object's problem
                    continue
                stack.append((item, f"{path}.{key}" if path else key))
        elif isinstance(value, list):
            for i in range(len(value) - 1, -1, -1):
                stack.append((value[i], f"{path}[{i}]"))
    return found[:MAX_PROBLEMS]


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _surrogate(path: str) -> dict[str, str]:
    return {
        "field": path,
        "message": "a lone surrogate escape (\\ud800-\\udfff) is not valid Unicode text",
        "code": "lone_surrogate",
    }


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

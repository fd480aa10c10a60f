"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the API returns has the same shape: ``type`` (a URN naming the kind), ``title``,
``status``, ``detail`` (the message the CLI prints after ``error:``), ``instance`` (the request
path) and, for refused input, ``problems`` (each with its field, and item index or line).
Domain errors keep their status from :mod:`promptver.errors`; anything else is a bug (500).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promptver.errors import (
    Conflict,
    DatabaseBusy,
    DatabaseError,
    DeploymentRefused,
    MergeConflict,
    NotFound,
    PromptverError,
    RenderError,
    ValidationError,
    WriteRace,
)

log = logging.getLogger("promptver.api")

MEDIA_TYPE = "application/problem+json"
URN = "urn:promptver:problem:"

# most specific first: (class, kind, title, status or None for the class's own)
_KINDS: list[tuple[type[PromptverError], str, str, int | None]] = [
    (DeploymentRefused, "deployment-refused", "Deployment Refused", None),
    (ValidationError, "validation-error", "Validation Error", None),
    (RenderError, "render-error", "Render Error", None),
    (NotFound, "not-found", "Not Found", None),
    (MergeConflict, "merge-conflict", "Merge Conflict", None),
    (DatabaseBusy, "database-busy", "Database Busy", None),
    (Conflict, "conflict", "Conflict", None),
    # a damaged or unreadable file is not a bug of the server: the service is unavailable
    (DatabaseError, "database-unavailable", "Database Unavailable", 503),
]

_HTTP_KINDS = {
    401: ("unauthorized", "Unauthorized"),
    404: ("not-found", "Not Found"),
    405: ("method-not-allowed", "Method Not Allowed"),
    413: ("payload-too-large", "Payload Too Large"),
}


class Unauthorized(PromptverError):
    """A write endpoint was called without an accepted bearer token."""

    http_status = 401

    def __init__(self, message: str, *, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error


def problem_response(
    status: int,
    kind: str,
    title: str,
    detail: str,
    instance: str | None,
    problems: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": URN + kind,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if problems is not None:
        body["problems"] = problems
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _one_line(text: str) -> str:
    return " ".join(text.split("\n")).strip()


async def domain_error(request: Request, exc: Exception) -> JSONResponse:
    """A :class:`PromptverError` as problem details, with the CLI's message."""
    assert isinstance(exc, PromptverError)
    kind, title, status = "error", "Bad Request", exc.http_status
    for cls, k, t, s in _KINDS:
        if isinstance(exc, cls):
            kind, title, status = k, t, s or exc.http_status
            break
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        kind, title = _HTTP_KINDS[401]
        challenge = 'Bearer realm="promptver"'
        if exc.error:
            challenge += f', error="{exc.error}"'
        headers["WWW-Authenticate"] = challenge
    elif isinstance(exc, (DatabaseBusy, WriteRace)):
        # contention, not a wrong request: the same request may well succeed in a moment
        headers["Retry-After"] = "1"
    problems = None
    if isinstance(exc, ValidationError):
        problems = [p.as_dict() for p in exc.problems]
    elif isinstance(exc, MergeConflict):
        problems = [
            {"message": "conflicting change", "code": "conflict", **h.as_dict()} for h in exc.hunks
        ]
    return problem_response(
        status, kind, title, _one_line(exc.message), request.url.path, problems, headers or None
    )


def _field(loc: tuple[Any, ...]) -> tuple[str, str]:
    """(where, field) of a pydantic error location: ``("body", "events", 0, "user_id")`` is
    ``("body", "events[0].user_id")``."""
    where = str(loc[0]) if loc else "body"
    out = ""
    for part in loc[1:]:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return where, out


async def request_error(request: Request, exc: Exception) -> JSONResponse:
    """A request that does not match its schema: 422 listing each problem by field."""
    assert isinstance(exc, RequestValidationError)
    problems: list[dict[str, Any]] = []
    for err in exc.errors():
        where, field = _field(tuple(err.get("loc", ())))
        message = str(err.get("msg", "invalid value"))
        found = getattr(exc.__cause__, "problems", None)  # app.NotIJson: each by field
        if err.get("type") == "json_invalid" and found:
            for p in found:
                problems.append(
                    {
                        "message": p["message"],
                        "field": p["field"] or None,
                        "in": "body",
                        "code": p["code"],
                        "severity": "error",
                    }
                )
            continue
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            message = f"the body is not valid JSON ({ctx.get('error', 'syntax error')})"
        elif err.get("type") == "missing" and where == "body" and not field:
            message = "a JSON body is required (Content-Type: application/json)"
        problems.append(
            {
                "message": message,
                "field": field or None,
                "in": where,
                "code": str(err.get("type")),
                "severity": "error",
            }
        )
    shown = "; ".join(
        f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems[:20]
    )
    more = f"; … and {len(problems) - 20} more" if len(problems) > 20 else ""
    return problem_response(
        422,
        "invalid-request",
        "Invalid Request",
        f"invalid request: {shown}{more}",
        request.url.path,
        problems,
    )


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown path, wrong method) as problem details too."""
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "bad request"
    if exc.status_code == 400:
        # FastAPI's "error parsing the body" (e.g. bytes that are not UTF-8): the same kind of
        # problem, and the same status, as a body that is not valid JSON
        return problem_response(
            422,
            "invalid-request",
            "Invalid Request",
            f"invalid request: the body cannot be read as JSON ({detail})",
            request.url.path,
            [{"message": detail, "field": None, "in": "body", "code": "body", "severity": "error"}],
        )
    kind, title = _HTTP_KINDS.get(exc.status_code, ("http-error", "HTTP Error"))
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such endpoint: {request.method} {request.url.path} (see /api/v1/openapi.json)"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names the methods of the first route on the path only; a path served by
        # several routes (GET and POST /prompts) allows the methods of all of them
        allowed: set[str] = set()
        for route in request.app.routes:
            match, _ = route.matches(request.scope)
            if match != Match.NONE:
                allowed |= set(getattr(route, "methods", None) or ())
        if "GET" in allowed:
            allowed.add("HEAD")  # answered by guard.Gate, like OPTIONS
        if allowed:
            allowed.add("OPTIONS")
        detail = f"{request.method} is not allowed on {request.url.path}"
        if allowed:
            headers["Allow"] = ", ".join(sorted(allowed))
            detail += f" (allowed: {headers['Allow']})"
    return problem_response(
        exc.status_code, kind, title, detail, request.url.path, None, headers or None
    )


class CatchBugs:
    """Any other exception is a bug: logged with its traceback, answered with a 500 problem
    (without internals), and the connection stays usable.

    Starlette's own handler for ``Exception`` re-raises after answering, and uvicorn then
    closes the connection, which can reset it before the client has read the answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # too late for a problem document: let uvicorn close the connection
                raise
            request = Request(scope)
            log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
            response = problem_response(
                500,
                "internal-error",
                "Internal Server Error",
                f"internal error ({type(exc).__name__}); the server log has the details, "
                "please report it",
                request.url.path,
            )
            await response(scope, receive, send)

"""What the API checks before a request reaches its route: the Host, the token, the body's size.

:class:`Gate` is plain ASGI in front of FastAPI. FastAPI reads and parses a request's body
before it resolves dependencies, so a token checked by a dependency is checked too late: an
unauthenticated client could make the server read, and parse on its event loop, hundreds of
megabytes. Here, in order, before anything of the body is read:

1. the ``Host`` header must name this server (127.0.0.1, localhost, ::1, the bound address,
   ``server.allowed_hosts``): a web page that rebinds its own DNS name to 127.0.0.1 must not
   reach the API (400);
2. a write endpoint needs an accepted bearer token when ``server.token_hashes`` is set (401);
3. the body must fit the route's cap (``server.max_body_kb``; ``server.max_events_mb`` for
   ``POST /events``): a declared ``Content-Length`` over it is refused at once, a chunked body
   is counted as it arrives and refused as soon as it passes the cap (413).

``HEAD`` is answered as ``GET`` without the body, ``OPTIONS`` with the path's ``Allow`` list.
A response to a request whose body was not read to its end closes the connection, so that the
server never reads the rest of a body nobody wants.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promptver.api import problems

#: scope key: True when the request carries an accepted token, or when no token is configured
AUTHENTICATED = "promptver.authenticated"
#: methods whose requests may carry a body the gate must cap
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Policy:
    """What a route needs: a token (``write``) and at most ``max_body`` bytes of body."""

    write: bool
    max_body: int
    #: the setting that sets ``max_body`` (named in the 413 answer)
    setting: str


class BodyTooLarge(HTTPException):
    """A chunked body passed its route's cap while it was being read."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail, headers={"Connection": "close"})


def token_digest(credentials: bytes) -> bytes:
    """The hex SHA-256 of a token as the client sent it: the header's bytes, which
    ``serve --hash-token`` produces from the token's UTF-8 encoding."""
    return hashlib.sha256(credentials).hexdigest().encode("ascii")


def bearer_token(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The credentials of an ``Authorization: Bearer …`` header (raw bytes), if there is one."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.strip().partition(b" ")
            credentials = credentials.strip()
            if scheme.lower() == b"bearer" and credentials:
                return credentials
            return None
    return None


class HostRule:
    """Which ``Host`` header names the server answers to."""

    def __init__(self, bound: str | None, extra: list[str]) -> None:
        names = {*_LOCAL_HOSTS, *(n.lower() for n in extra)}
        if bound:
            names.add(bound.strip("[]").lower())
        self.any = "*" in names
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))
        self.names = frozenset(n for n in names if not n.startswith("*"))

    def allows(self, host: bytes | None) -> bool:
        if self.any:
            return True
        if not host:
            return False
        text = host.decode("latin-1").strip().lower()
        if text.startswith("["):  # [v6]:port
            name, sep, _ = text[1:].partition("]")
            if not sep:
                return False
        elif text.count(":") == 1:
            name = text.split(":", 1)[0]
        else:
            name = text
        name = name.rstrip(".")
        return name in self.names or (bool(name) and name.endswith(self.suffixes))


class Gate:
    """The checks of the module docstring, as ASGI middleware around the FastAPI app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: list[tuple[BaseRoute, Policy]],
        all_routes: list[BaseRoute],
        token_hashes: list[str],
        hosts: HostRule,
        default: Policy,
    ) -> None:
        self.app = app
        self.routes = routes
        self.all_routes = all_routes
        self.token_hashes = [h.lower().encode("ascii") for h in token_hashes]
        self.hosts = hosts
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
        host = next((v for k, v in headers if k == b"host"), None)
        if not self.hosts.allows(host):
            await self._refuse(
                scope,
                receive,
                send,
                400,
                "invalid-host",
                "Invalid Host",
                "the Host header does not name this server: requests must be addressed to "
                "127.0.0.1, localhost or a name listed in server.allowed_hosts",
            )
            return
        method = scope["method"]
        if method == "OPTIONS":
            await self._options(scope, receive, send)
            return
        policy = self._policy(scope) if method in _BODY_METHODS else self.default
        token = bearer_token(headers) if self.token_hashes else None
        if not self.token_hashes:
            scope[AUTHENTICATED] = True
        elif token is None:
            scope[AUTHENTICATED] = False
        else:
            scope[AUTHENTICATED] = self._accepted(token)
        if policy.write and not scope[AUTHENTICATED]:
            await self._unauthorized(scope, receive, send, token is not None)
            return
        declared = _content_length(headers)
        if declared is not None and declared > policy.max_body:
            await self._too_large(scope, receive, send, policy)
            return
        if method == "HEAD":
            scope = dict(scope, method="GET")
            send = _without_body(send)
        counted = _Counted(receive, policy, declared)
        started = False
        closing = _closing(send, scope, counted)

        async def tracking(message: Message) -> None:
            nonlocal started
            started = True
            await closing(message)

        try:
            await self.app(scope, counted, tracking)
        except BodyTooLarge:
            if started:
                raise
            await self._too_large(scope, receive, send, policy)

    # -- the checks -----------------------------------------------------------------------
    def _policy(self, scope: Scope) -> Policy:
        for route, policy in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return policy
        return self.default

    def _accepted(self, token: bytes) -> bool:
        given = token_digest(token)
        accepted = False
        for h in self.token_hashes:  # every hash is compared: the time taken tells nothing
            accepted |= hmac.compare_digest(given, h)
        return accepted

    def allowed_methods(self, scope: Scope) -> set[str]:
        """The methods some route serves on this path (with HEAD for GET, and OPTIONS)."""
        allowed: set[str] = set()
        probe = dict(scope, method="GET")
        for route in self.all_routes:
            match, _ = route.matches(probe)
            if match is not Match.NONE:
                allowed |= set(getattr(route, "methods", None) or ())
        if "GET" in allowed:
            allowed.add("HEAD")
        if allowed:
            allowed.add("OPTIONS")
        return allowed

    # -- answers --------------------------------------------------------------------------
    async def _options(self, scope: Scope, receive: Receive, send: Send) -> None:
        allowed = self.allowed_methods(scope)
        if not allowed:
            await self._refuse(
                scope,
                receive,
                send,
                404,
                "not-found",
                "Not Found",
                f"no such endpoint: {scope.get('path', '')} (see /api/v1/openapi.json)",
            )
            return
        # no Access-Control-* headers: cross-origin calls from browsers stay refused
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [(b"allow", ", ".join(sorted(allowed)).encode("ascii"))]
                + _close_unless_read(scope),
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _unauthorized(self, scope: Scope, receive: Receive, send: Send, given: bool) -> None:
        challenge = 'Bearer realm="promptver"'
        if given:
            challenge += ', error="invalid_token"'
            detail = "the bearer token is not accepted"
        else:
            detail = (
                "this endpoint needs a bearer token: send the header 'Authorization: Bearer "
                "TOKEN' with a token whose SHA-256 is in server.token_hashes"
            )
        await self._refuse(
            scope,
            receive,
            send,
            401,
            "unauthorized",
            "Unauthorized",
            detail,
            {"WWW-Authenticate": challenge},
        )

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, policy: Policy) -> None:
        await self._refuse(
            scope, receive, send, 413, "payload-too-large", "Payload Too Large", too_large(policy)
        )

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        kind: str,
        title: str,
        detail: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        extra = dict(headers or {})
        if _close_unless_read(scope):
            extra["Connection"] = "close"  # the body stays unread: never read the rest of it
        response = problems.problem_response(
            status, kind, title, detail, scope.get("path"), headers=extra or None
        )
        await response(scope, receive, send)


def too_large(policy: Policy) -> str:
    limit = policy.max_body
    size = f"{limit // (1024 * 1024)} MB" if limit % (1024 * 1024) == 0 else f"{limit // 1024} KB"
    return (
        f"the request body is larger than {size}, the most this endpoint accepts "
        f"({policy.setting}); send less at a time"
    )


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _close_unless_read(scope: Scope) -> list[tuple[bytes, bytes]]:
    """``Connection: close`` when the request announced a body (it will not be read)."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return [(b"connection", b"close")]
    return []


class _Counted:
    """``receive`` that counts the body's bytes against the route's cap, and remembers
    whether the body was read to its end."""

    __slots__ = ("done", "limit", "policy", "receive", "seen")

    def __init__(self, receive: Receive, policy: Policy, declared: int | None) -> None:
        self.receive = receive
        self.policy = policy
        self.limit = policy.max_body
        self.seen = 0
        # nothing to read: a request without a body is complete from the start
        self.done = declared == 0

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit:
                raise BodyTooLarge(too_large(self.policy))
            if not message.get("more_body", False):
                self.done = True
        return message


def _closing(send: Send, scope: Scope, counted: _Counted) -> Send:
    """``send`` that adds ``Connection: close`` to a response sent before the body was read."""
    if not _close_unless_read(scope):
        return send

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start" and not counted.done:
            headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await send(message)

    return wrapped


def _without_body(send: Send) -> Send:
    """A HEAD answer: the GET answer's status and headers, no body."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.body":
            if message.get("more_body", False):
                return
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(message)

    return wrapped

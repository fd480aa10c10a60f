"""``serve``: the HTTP API (docs/http-api.md); ``serve --hash-token``: a token's hash."""

from __future__ import annotations

import getpass
import hashlib
import ipaddress
import sys
from typing import Any

from promptver.cli.context import Context, UsageError, visible


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the HTTP API (/api/v1) over the database",
        description="Serve the HTTP API under /api/v1 (OpenAPI document: /api/v1/openapi.json). "
        "One process; requests run in threads. Ctrl+C stops it.",
    )
    p.add_argument("--host", help="address to listen on (default: server.host, 127.0.0.1)")
    p.add_argument(
        "--port", type=int, help="port to listen on (default: server.port, 8600; 0: any free one)"
    )
    p.add_argument("--no-access-log", action="store_true", help="do not log each request (faster)")
    p.add_argument(
        "--hash-token",
        action="store_true",
        help="print the SHA-256 of a token read from stdin (for server.token_hashes) and exit",
    )
    p.set_defaults(handler=cmd_serve)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(ctx: Context) -> None:
    a = ctx.args
    if a.hash_token:
        # the token's UTF-8 bytes: what a client sends in its header (the server hashes the
        # header's bytes as they arrive)
        digest = hashlib.sha256(_read_token()).hexdigest()
        ctx.emit({"sha256": digest}, digest)
        return
    settings = ctx.settings.server
    host = a.host if a.host is not None else settings.host
    port = a.port if a.port is not None else settings.port
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {port}")

    from promptver.api.server import address, bind, make_server

    sock = bind(host, port)  # before opening the database: a taken port fails at once
    try:
        ws = ctx.ws
        from promptver.webhooks import BackgroundDeliverer

        BackgroundDeliverer.start(ws)  # webhooks go out while the API runs
        # closed when the server shuts down, before uvicorn re-raises a SIGTERM it caught
        server = make_server(ws, access_log=not a.no_access_log, close_on_shutdown=True, host=host)
        auth = "bearer token required for writes" if settings.token_hashes else "no auth"
        sys.stderr.write(
            f"promptver API on {address(sock)}/api/v1 (database {visible(str(ws.path))}; {auth}); "
            "Ctrl+C stops it\n"
        )
        if host in ("0.0.0.0", "::") and not settings.allowed_hosts:
            sys.stderr.write(
                f"warning: listening on {host}, but only requests addressed to 127.0.0.1, "
                "localhost or ::1 are answered: list this machine's names in "
                "server.allowed_hosts\n"
            )
        if not is_loopback(host) and not settings.token_hashes:
            sys.stderr.write(
                f"warning: listening on {visible(host)} without token auth: anyone who can reach this "
                "address can create, deploy and roll back prompts (set server.token_hashes)\n"
            )
        sys.stderr.flush()
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # Ctrl+C is how a server is stopped: not an error
            sys.stderr.write("promptver API stopped\n")
    finally:
        sock.close()


def _read_token() -> bytes:
    """The token on stdin (one line), or asked for without echo on a terminal, as UTF-8."""
    if sys.stdin.isatty():
        token = getpass.getpass("token: ").encode("utf-8")
    else:
        raw = getattr(sys.stdin, "buffer", None)
        # the bytes as piped: not decoded with the locale's encoding, which may not be UTF-8
        line = raw.readline() if raw is not None else sys.stdin.readline().encode("utf-8")
        token = line.rstrip(b"\r\n")
    try:
        token.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(
            "the token on stdin is not UTF-8 text: tokens are hashed (and sent by clients) as UTF-8"
        ) from None
    if not token:
        raise UsageError(
            'no token on stdin: pipe one in, e.g. printf %s "$TOKEN" | promptver serve --hash-token'
        )
    return token

"""Running the API with uvicorn: one process, request handlers in threads.

One process only: DuckDB lets a single process hold the file for writing, so several worker
processes would lock each other (and the CLI) out. Threads share the Workspace instead, and
with it the ``get_prompt`` cache.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from promptver.errors import PromptverError
from promptver.workspace import Workspace


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port).

    Raises:
        PromptverError: the address cannot be used (taken, not local, no permission).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = exc.strerror or str(exc)
        hint = (
            " (is another server running there? choose another --port)" if exc.errno == 98 else ""
        )
        raise PromptverError(f"cannot listen on {host}:{port}: {why}{hint}") from None
    except (OverflowError, socket.gaierror) as exc:
        sock.close()
        raise PromptverError(f"cannot listen on {host}:{port}: {exc}") from None
    return sock


def address(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def make_server(
    ws: Workspace,
    *,
    access_log: bool = True,
    log_level: str = "info",
    close_on_shutdown: bool = False,
    host: str | None = None,
) -> Any:
    """A ``uvicorn.Server`` for the API over ``ws`` (started with ``.run(sockets=[sock])``).

    ``host`` is the address it listens on: requests whose ``Host`` header names it are served
    (besides 127.0.0.1, localhost, ::1 and ``server.allowed_hosts``).
    """
    import uvicorn

    from promptver.api import create_app

    config = uvicorn.Config(
        create_app(ws, close_on_shutdown=close_on_shutdown, host=host),
        access_log=access_log,
        log_level=log_level,
        # a "server: uvicorn" header tells clients nothing they need
        server_header=False,
        timeout_graceful_shutdown=10,
        http=header_deadline_protocol(ws.settings.server.header_timeout),
    )
    return uvicorn.Server(config)


def header_deadline_protocol(seconds: float) -> type:
    """uvicorn's HTTP protocol (httptools) with a deadline for a request's headers.

    uvicorn times out idle keep-alive connections, but not a client that connects and then
    sends its headers a byte at a time: each such client would hold a connection (and a file
    descriptor) for as long as it likes. Here a connection must deliver each request's headers
    within ``seconds`` of connecting or of the request's first byte; otherwise it gets a 408
    and is closed.
    """
    import asyncio

    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderDeadline(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._deadline is None:
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def _arm(self) -> None:
            self._deadline = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            if self.cycle is None or self.cycle.response_complete:
                # no answer under way on this connection: say why it ends
                msg = b"request headers not received in time"
                self.transport.write(
                    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8"
                    b"\r\nconnection: close\r\ncontent-length: "
                    + str(len(msg)).encode("ascii")
                    + b"\r\n\r\n"
                    + msg
                )
            self.transport.close()

    return HeaderDeadline


class BackgroundServer:
    """The API served from a thread of this process (tests, notebooks, benchmarks).

    Use as a context manager: the server listens on ``url`` inside the block.
    """

    def __init__(self, ws: Workspace, host: str = "127.0.0.1", port: int = 0, **options: Any):
        self.sock = bind(host, port)
        self.url = address(self.sock)
        self.server = make_server(ws, access_log=False, log_level="warning", host=host, **options)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the API server thread ended during startup")
            self.thread.join(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()

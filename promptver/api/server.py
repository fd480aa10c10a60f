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
) -> Any:
    """A ``uvicorn.Server`` for the API over ``ws`` (started with ``.run(sockets=[sock])``)."""
    import uvicorn

    from promptver.api import create_app

    config = uvicorn.Config(
        create_app(ws, close_on_shutdown=close_on_shutdown),
        access_log=access_log,
        log_level=log_level,
        # a "server: uvicorn" header tells clients nothing they need
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    return uvicorn.Server(config)


class BackgroundServer:
    """The API served from a thread of this process (tests, notebooks, benchmarks).

    Use as a context manager: the server listens on ``url`` inside the block.
    """

    def __init__(self, ws: Workspace, host: str = "127.0.0.1", port: int = 0, **options: Any):
        self.sock = bind(host, port)
        self.url = address(self.sock)
        self.server = make_server(ws, access_log=False, log_level="warning", **options)
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

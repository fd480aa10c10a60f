"""A real HTTP receiver on 127.0.0.1 (a thread) for the webhook tests."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    #: status codes to answer in turn; 200 once they run out
    statuses: list[int] = field(default_factory=list)
    response_body: str = "ok"
    #: set to block each request until it is set (a receiver that hangs)
    gate: threading.Event | None = None
    #: set when a request has arrived (before the gate holds it)
    arrived: threading.Event = field(default_factory=threading.Event)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, pred: Callable[[list[Received]], bool], timeout: float = 20.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: pred(self.requests), timeout)


@contextmanager
def receiver(port: int = 0) -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 (``port`` 0: any free one)."""
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

        def setup(self) -> None:
            super().setup()
            # the status line and the body go out in two writes: without this, Nagle's
            # algorithm holds the second until the client's delayed ACK (40 ms a request)
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            r = state["r"]
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode("utf-8")
            r.arrived.set()
            if r.gate is not None:
                r.gate.wait(30)
            with r.cond:
                status = r.statuses.pop(0) if r.statuses else 200
                r.requests.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                r.cond.notify_all()
            out = r.response_body.encode()
            self.send_response(status)
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    state["r"] = Receiver(url=f"http://127.0.0.1:{port}/hook")
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield state["r"]
    finally:
        if state["r"].gate is not None:
            state["r"].gate.set()
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Clock:
    """An injectable clock that moves only when told."""

    def __init__(self, start: Any) -> None:
        self.now = start

    def __call__(self) -> Any:
        return self.now

    def advance(self, delta: Any) -> None:
        self.now = self.now + delta

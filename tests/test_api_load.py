"""``/health`` stays fast while a client streams 100 MB bodies at the API (issue 23, item 2).

The real ``promptver serve`` runs in its own process on loopback; an attacker process streams
100 MB request bodies at it without a token, ten connections a second (one after another:
each is refused within milliseconds, so one body at a time would be over at once), for as
long as the measurement lasts; the main thread times ``GET /health`` on a keep-alive
connection. Three cases: a server with tokens, the body declared (``Content-Length``) or
chunked — refused from the headers; and one without tokens (the loopback default), where each
chunked body is read up to the 8 MB events cap, then refused.

Before the fix one 31 MB body held ``/health`` up for 15 s. The limit is a p99 of 100 ms, as
the issue asks; on a machine so busy that ``/health`` alone (no attacker) has a p99 over
33 ms, three times that figure. Timing on a shared machine is noisy, so each case gets up to
three rounds of 300 requests after a warm-up, and passes on the first round under the limit.
Bounded: 100 MB per attempt at most, each case stops with its measurement. ``-s`` prints the
figures.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api_helpers import TOKEN_HASH, open_ws, seed

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BODY_BYTES = 100 * 1024 * 1024
P99_LIMIT = 0.100
ROUNDS, WARMUP, REQUESTS = 3, 50, 300
ATTEMPTS_PER_SECOND = 10

# valid events JSON, so that a server which read the body would also have to parse it
_EVENT = b'{"timestamp":"2026-01-01T00:00:00Z","template":"qa-basic","user_id":"u","latency_ms":1},'
_CHUNK = _EVENT * (65536 // len(_EVENT))


class Attacker(multiprocessing.Process):
    """Streams 100 MB bodies without a token, connection after connection, until stopped.

    A process of its own: a thread would compete with the measuring client for this
    process's GIL and make the client, not the server, slow.
    """

    def __init__(self, address: tuple[str, int], path: bytes, chunked: bool) -> None:
        super().__init__(daemon=True)
        self.address, self.path, self.chunked = address, path, chunked
        self.stop = multiprocessing.Event()
        self.started_attempts = multiprocessing.Value("i", 0)
        self.results: multiprocessing.Queue = multiprocessing.Queue()
        self.attempts = 0
        self.sent = 0  # bytes of body the server's socket accepted, over all attempts
        self.statuses: dict[bytes, int] = {}

    def collect(self) -> None:
        """Stop, and take over the counts from the attacking process."""
        self.stop.set()
        self.attempts, self.sent, self.statuses = self.results.get(timeout=120)
        self.join(30)

    def run(self) -> None:
        try:
            self._attack()
        finally:
            self.results.put((self.attempts, self.sent, self.statuses))

    def _attack(self) -> None:
        t0 = time.monotonic()
        while not self.stop.is_set():
            # the attacker's pace, not a wait for the server
            time.sleep(max(0.0, self.attempts / ATTEMPTS_PER_SECOND - (time.monotonic() - t0)))
            self.attempts += 1
            self.started_attempts.value = self.attempts
            with socket.create_connection(self.address) as sock:
                sock.settimeout(30)
                framing = (
                    b"Transfer-Encoding: chunked\r\n"
                    if self.chunked
                    else b"Content-Length: %d\r\n" % BODY_BYTES
                )
                head = b"POST " + self.path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                sock.sendall(head + b"Content-Type: application/json\r\n" + framing + b"\r\n")
                status = b"none"
                try:
                    sock.sendall(b'%x\r\n{"events":[\r\n' % 11 if self.chunked else b'{"events":[')
                    sent = 0
                    while sent < BODY_BYTES and not self.stop.is_set():
                        piece = _CHUNK
                        if self.chunked:
                            piece = b"%x\r\n" % len(_CHUNK) + _CHUNK + b"\r\n"
                        sock.sendall(piece)
                        sent += len(_CHUNK)
                        self.sent += len(_CHUNK)
                except (BrokenPipeError, ConnectionResetError, TimeoutError):
                    pass
                try:
                    status = sock.recv(12)[9:12] or b"none"
                except (ConnectionResetError, TimeoutError, OSError):
                    pass
                self.statuses[status] = self.statuses.get(status, 0) + 1


def _start_server(db_path: Path, config: Path) -> tuple[subprocess.Popen, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PROMPTVER_CONFIG": str(config),
    }
    cmd = [
        sys.executable,
        "-m",
        "promptver",
        "--db",
        str(db_path),
        "serve",
        "--port",
        "0",
        "--no-access-log",
    ]
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    banner = proc.stderr.readline()
    m = re.search(r"promptver API on (http://127\.0\.0\.1:\d+)/api/v1", banner)
    assert m, banner
    return proc, m.group(1)


def _p99(client: httpx.Client) -> tuple[float, float]:
    for _ in range(WARMUP):
        assert client.get("/api/v1/health").status_code == 200
    times = []
    for _ in range(REQUESTS):
        t0 = time.perf_counter()
        r = client.get("/api/v1/health")
        times.append(time.perf_counter() - t0)
        assert r.status_code == 200
    times.sort()
    return times[int(len(times) * 0.99) - 1], times[len(times) // 2]


@pytest.mark.parametrize(
    "tokens, path, chunked",
    [
        (True, b"/api/v1/events", False),  # 100 MB declared: refused from the headers
        (True, b"/api/v1/prompts", True),  # 100 MB chunked: refused from the headers
        (False, b"/api/v1/events", True),  # no auth: read up to the 8 MB cap, then refused
    ],
    ids=["token-declared", "token-chunked", "no-auth-chunked"],
)
def test_health_stays_fast_while_a_client_streams_100_mb(tmp_path, tokens, path, chunked):
    db_path = tmp_path / "pv.duckdb"
    ws = open_ws(db_path)
    seed(ws)
    ws.close()
    config = tmp_path / "promptver.yaml"
    config.write_text(f"server:\n  token_hashes: [{TOKEN_HASH}]\n" if tokens else "{}\n")
    proc, url = _start_server(db_path, config)
    attacker = None
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(200):  # the banner comes just before uvicorn starts accepting
                try:
                    client.get("/api/v1/health")
                    break
                except httpx.ConnectError:
                    time.sleep(0.05)
            baseline, _ = _p99(client)
            limit = max(P99_LIMIT, 3 * baseline)
            host, port = url.removeprefix("http://").split(":")
            attacker = Attacker((host, int(port)), path, chunked)
            attacker.start()
            while attacker.started_attempts.value < 2:  # under way before timing starts
                time.sleep(0.01)
            results = []
            for _ in range(ROUNDS):
                p99, median = _p99(client)
                results.append((p99, median))
                if p99 < limit:
                    break
        attacker.collect()
        print(
            f"\n{'token' if tokens else 'no auth'} {path.decode()} "
            f"{'chunked' if chunked else 'Content-Length'}: health p99 {baseline * 1000:.1f} ms "
            f"without attack (limit {limit * 1000:.0f} ms); under attack p99/median per round "
            + ", ".join(f"{p * 1000:.1f}/{m * 1000:.1f} ms" for p, m in results)
            + f"; attacker: {attacker.attempts} bodies of 100 MB started, "
            f"{attacker.sent / 1e6:.0f} MB sent in all, answers {attacker.statuses}"
        )
        assert min(p for p, _ in results) < limit, (baseline, results)
        # refused (401 or 413; an answer may be lost to the reset of the unread rest), never taken
        assert not any(s.startswith(b"2") for s in attacker.statuses), attacker.statuses
        # no attempt got further than its cap: far less than 100 MB each reached the server
        assert attacker.sent / attacker.attempts < 20 * 1024 * 1024
    finally:
        if attacker is not None and attacker.is_alive():
            attacker.kill()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

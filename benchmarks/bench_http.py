"""Render of a deployed prompt over HTTP, beside the same call in-process.

    python benchmarks/bench_http.py [--seconds 5] [--connections 16] [--access-log]

How it is measured:

* a temporary database holds ``qa-basic`` (the demo's text, with a variable schema) deployed to
  production;
* the server is the real command, ``promptver serve --no-access-log`` (uvicorn with httptools
  and uvloop), in its own process on a free loopback port;
* the load generator is in this process: ``--connections`` keep-alive HTTP/1.1 connections
  driven by asyncio over raw sockets, each sending ``POST /api/v1/prompts/qa-basic/render``
  (env production, a user id from a rotating set of 1,000, two variables) and waiting for the
  answer before the next (closed loop). Latency is the time from writing a request to reading
  the last byte of its answer. One second of warm-up, then ``--seconds`` of measurement;
  every answer must be 200 with the expected text;
* the in-process baseline is ``ws.get_prompt(...)`` + ``p.text(...)``, the Python API an
  application would call, timed over the same users.

Target (issue 12): >= 2,000 requests/s with p99 <= 20 ms on this 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promptver import Workspace  # noqa: E402

CONTENT = (
    "You are a helpful support assistant for {product}.\n"
    "Answer the question using only the context below. If the answer is not in the context,"
    " say you do not know.\n\nContext:\n{context}\n\nQuestion: {question}\nAnswer:"
)
METADATA = {
    "variables": {
        "product": {"type": "str", "default": "Acme Cloud"},
        "context": {"type": "str", "required": True},
        "question": {"type": "str", "required": True},
    }
}
VARS = {"question": "How do I reset my password?", "context": "Open Settings > Security."}
USERS = [f"user-{i}" for i in range(1000)]


def make_database(path: Path) -> str:
    with Workspace.open(path) as ws:
        ws.templates.create("qa-basic", CONTENT, metadata=METADATA, author="bench")
        ws.deployments.deploy("qa-basic", "1.0.0", "production", author="bench")
        return ws.get_prompt("qa-basic", "production").text(**VARS)


def start_server(db: Path, access_log: bool) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "promptver", "--db", str(db), "serve", "--port", "0"]
    if not access_log:
        cmd.append("--no-access-log")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    assert proc.stderr is not None
    banner = proc.stderr.readline()
    m = re.search(r"on http://([\d.]+):(\d+)/api/v1", banner)
    if not m:
        proc.kill()
        raise SystemExit(f"the server did not start: {banner}{proc.stderr.read()}")
    return proc, f"{m.group(1)}:{m.group(2)}"


def requests_for(host: str) -> list[bytes]:
    out = []
    for user in USERS:
        body = json.dumps({"variables": VARS, "env": "production", "user_id": user}).encode()
        head = (
            f"POST /api/v1/prompts/qa-basic/render HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        out.append(head + body)
    return out


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


async def _client(
    addr: str,
    reqs: list[bytes],
    offset: int,
    start: float,
    stop: float,
    lat: list[float],
    bad: list[str],
    expected: str,
) -> None:
    host, port = addr.split(":")
    for _ in range(100):  # the banner is printed just before uvicorn accepts
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
            break
        except OSError:
            await asyncio.sleep(0.05)
    i = offset
    while True:
        t = time.perf_counter()
        if t >= stop:
            break
        writer.write(reqs[i % len(reqs)])
        status, body = await _read_response(reader)
        done = time.perf_counter()
        if status != 200 or json.loads(body)["text"] != expected:
            bad.append(f"{status} {body[:200]!r}")
        elif t >= start:
            lat.append(done - t)
        i += 1
    writer.close()


def load(addr: str, connections: int, seconds: float, expected: str) -> dict[str, float]:
    reqs = requests_for(addr)
    lat: list[float] = []
    bad: list[str] = []

    async def main() -> None:
        t0 = time.perf_counter()
        start, stop = t0 + 1.0, t0 + 1.0 + seconds
        await asyncio.gather(
            *(
                _client(addr, reqs, k * 37, start, stop, lat, bad, expected)
                for k in range(connections)
            )
        )

    asyncio.run(main())
    if bad:
        raise SystemExit(f"{len(bad)} bad answers, e.g. {bad[0]}")
    lat.sort()
    q = statistics.quantiles(lat, n=1000)
    return {
        "requests": len(lat),
        "rps": len(lat) / seconds,
        "p50_ms": q[499] * 1e3,
        "p90_ms": q[899] * 1e3,
        "p99_ms": q[989] * 1e3,
        "max_ms": lat[-1] * 1e3,
    }


def in_process(db: Path, n: int = 50_000) -> float:
    """Seconds per ``get_prompt`` + ``text`` call, in this process."""
    with Workspace.open(db) as ws:
        ws.get_prompt("qa-basic", "production", USERS[0]).text(**VARS)  # fill the cache
        t = time.perf_counter()
        for i in range(n):
            ws.get_prompt("qa-basic", "production", USERS[i % 1000]).text(**VARS)
        return (time.perf_counter() - t) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--access-log", action="store_true", help="keep uvicorn's access log on")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        expected = make_database(db)
        per_call = in_process(db)
        proc, addr = start_server(db, a.access_log)
        try:
            r = load(addr, a.connections, a.seconds, expected)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    ok = r["rps"] >= 2000 and r["p99_ms"] <= 20
    print(
        f"HTTP render (POST /api/v1/prompts/qa-basic/render, {a.connections} keep-alive "
        f"connections, {a.seconds:g} s, access log {'on' if a.access_log else 'off'}):"
    )
    print(
        f"  {r['rps']:,.0f} requests/s   p50 {r['p50_ms']:.2f} ms   p90 {r['p90_ms']:.2f} ms   "
        f"p99 {r['p99_ms']:.2f} ms   max {r['max_ms']:.1f} ms   ({r['requests']:,} requests)"
    )
    print(
        f"in-process get_prompt + text: {per_call * 1e6:.1f} µs per call "
        f"({1 / per_call:,.0f} calls/s on one thread)"
    )
    print(
        f"ratio: one HTTP request at p50 costs {r['p50_ms'] / 1e3 / per_call:,.0f}x the "
        f"in-process call; throughput {1 / per_call / r['rps']:,.1f}x lower over HTTP"
    )
    print(
        "target >= 2,000 requests/s and p99 <= 20 ms: " + ("met" if ok else "NOT met on this run")
    )


if __name__ == "__main__":
    main()

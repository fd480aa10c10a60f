"""The remote client (``promptver.client.Client``): cached and uncached ``get_prompt``, beside
``httpx`` alone.

    python benchmarks/bench_client.py [--requests 2000] [--cached 200000]

How it is measured:

* a temporary database holds ``qa-basic`` deployed to production (the same as
  ``bench_http.py``); the server is the real ``promptver serve --no-access-log`` in its own
  process on a free loopback port;
* **cached**: one ``Client`` with a long TTL, one warm call, then ``--cached`` calls of
  ``client.get_prompt("qa-basic", "production", user)`` over 1,000 users that are all cached:
  the time per call (target, issue 17: <= 10 µs);
* **uncached**: every call names a user the client has not seen, so each one is a request
  (``GET /api/v1/prompts/qa-basic/live``), the answer's JSON parsed into a ``Prompt`` and cached;
  beside it, the baseline: the same ``GET`` with one ``httpx.Client`` (keep-alive) and
  ``response.json()``, interleaved in rounds of 100 so a busy machine slows both alike. p50 and
  p99 of each, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import httpx  # noqa: E402
from bench_http import make_database, start_server  # noqa: E402

from promptver.client import Client  # noqa: E402


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def cached(base: str, n: int) -> float:
    """Seconds per cached ``get_prompt``."""
    users = [f"user-{i}" for i in range(1000)]
    with Client(base, ttl=3600) as client:
        for u in users:
            client.get_prompt("qa-basic", "production", u)
        t = time.perf_counter()
        for i in range(n):
            client.get_prompt("qa-basic", "production", users[i % 1000])
        return (time.perf_counter() - t) / n


def uncached(base: str, n: int) -> tuple[list[float], list[float]]:
    """Latencies (s) of uncached ``Client.get_prompt`` and of the bare ``httpx`` request."""
    ours: list[float] = []
    bare: list[float] = []
    url = f"{base}/prompts/qa-basic/live"
    with Client(base, ttl=3600, max_cached=n + 10) as client, httpx.Client() as http:
        http.get(url, params={"env": "production"}).json()  # warm both connections
        client.get_prompt("qa-basic", "production")
        for start in range(0, n, 100):
            for i in range(start, min(n, start + 100)):
                t = time.perf_counter()
                client.get_prompt("qa-basic", "production", f"new-{i}")
                ours.append(time.perf_counter() - t)
            for i in range(start, min(n, start + 100)):
                t = time.perf_counter()
                r = http.get(url, params={"env": "production", "user_id": f"bare-{i}"})
                r.raise_for_status()
                r.json()
                bare.append(time.perf_counter() - t)
    return ours, bare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000, help="uncached calls of each kind")
    ap.add_argument("--cached", type=int, default=200_000, help="cached calls")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        make_database(db)
        proc, addr = start_server(db, access_log=False)
        try:
            base = f"http://{addr}/api/v1"
            per_call = cached(base, a.cached)
            ours, bare = uncached(base, a.requests)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"Client.get_prompt, cached: {per_call * 1e6:.2f} µs per call (target <= 10 µs)")
    print(f"uncached, {a.requests:,} calls each, interleaved in rounds of 100:")
    for name, lat in (("Client.get_prompt", ours), ("httpx.get + .json()", bare)):
        print(
            f"  {name:<22} p50 {pct(lat, 0.5) * 1e3:6.2f} ms   p99 {pct(lat, 0.99) * 1e3:6.2f} ms"
        )
    print(f"  ratio of medians: {statistics.median(ours) / statistics.median(bare):.2f}x")


if __name__ == "__main__":
    main()

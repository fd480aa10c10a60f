"""Webhook delivery throughput to a local receiver, beside plain POSTs of the same bodies.

Run: ``python benchmarks/bench_webhooks.py [--events N]``

Target (issue #21): ≥ 500 events/s. N commits are made with one subscription, then one
``deliver()`` pass is timed (lease, sign with standardwebhooks, POST over a kept-alive
connection, record every attempt). The baseline POSTs the same number of bodies with
``http.client`` on one kept-alive connection and does nothing else. Both hit the same receiver
(``http.server`` on 127.0.0.1, HTTP/1.1), in this process.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout, not an installed promptver

from promptver import Workspace  # noqa: E402
from promptver.webhooks import WebhookService  # noqa: E402
from tests.webhook_helpers import receiver  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2000)
    n = ap.parse_args().events
    tmp = Path(tempfile.mkdtemp(prefix="pv-bench-wh-"))
    try:
        with receiver() as r:
            ws = Workspace.open(tmp / "b.duckdb")
            svc = WebhookService.for_workspace(ws)
            svc.add(r.url, ["commit.created"])
            ws.templates.create("t", "Hello {x} 0")
            with ws.session():
                for i in range(1, n):
                    ws.templates.update("t", f"Hello {{x}} {i}")
            t0 = time.perf_counter()
            s = svc.deliver(limit=n)
            t_ours = time.perf_counter() - t0
            assert s["delivered"] == n, s
            body = r.requests[0].body.encode()
            host, port = r.url.split("//")[1].split("/")[0].split(":")
            conn = http.client.HTTPConnection(host, int(port))
            t0 = time.perf_counter()
            for _ in range(n):
                conn.request(
                    "POST", "/hook", body=body, headers={"content-type": "application/json"}
                )
                resp = conn.getresponse()
                resp.read()
            t_base = time.perf_counter() - t0
            conn.close()
            ws.close()
        print(f"{n} events to a local receiver")
        print(f"baseline plain POSTs : {t_base:6.2f} s  {n / t_base:8.0f} /s")
        print(
            f"promptver deliver()  : {t_ours:6.2f} s  {n / t_ours:8.0f} /s  ({t_ours / t_base:.2f}x)"
        )
        print(f"target ≥ 500 events/s -> {'ok' if n / t_ours >= 500 else 'MISSED'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

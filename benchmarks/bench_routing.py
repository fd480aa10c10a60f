"""Routing speed, each beside a plain-Python baseline in the same run.

1. One ``route`` call (target: median ≤ 5 µs). promptver's :class:`Router` precomputes the salt
   bytes and the cumulative bounds; the baseline is the formula written out plainly (normalise
   the weights, build the f-string, hash, scan the intervals) on every call.
2. Assigning a table of 1,000,000 user ids in DuckDB SQL (target: ≥ 5 M ids/s). The baseline is
   a plain Python loop over the same ids with ``hashlib``.

Run: ``python benchmarks/bench_routing.py [--ids N] [--threads T]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb

from promptver.models import Experiment, MetricSpec, VariantSpec
from promptver.routing import Router, assign_table, route

VARIANTS = [("control", 50.0), ("concise", 30.0), ("friendly", 20.0)]
SALT = "bench-experiment"
ROUTE_TARGET_US = 5.0
SQL_TARGET_IDS_PER_S = 5_000_000


def baseline_route(salt: str, variants: list[tuple[str, float]], user_id: str) -> tuple[str, float]:
    """The contract's formula, written the obvious way."""
    digest = hashlib.md5(f"{salt}:{user_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") / 2**64
    total = sum(w for _, w in variants)
    acc = 0.0
    for name, w in variants:
        acc += w / total
        if bucket < acc:
            return name, bucket
    return variants[-1][0], bucket


def _experiment() -> Experiment:
    """An Experiment model as the service returns it (its router is built once and reused)."""
    return Experiment(
        id="bench",
        name="bench",
        template_id="t",
        salt=SALT,
        created_at=datetime.now(UTC),
        variants=[VariantSpec(name=n, ref="1.0.0", weight=w) for n, w in VARIANTS],
        metrics=[MetricSpec(name="quality_score", direction="higher", role="primary")],
    )


def per_call_median(fn, ids: list[str], batches: int = 200, batch: int = 1000) -> float:
    """Median over batches of the time per call, in microseconds."""
    times = []
    n = len(ids)
    for b in range(batches):
        chunk = [ids[(b * batch + i) % n] for i in range(batch)]
        t0 = time.perf_counter()
        for u in chunk:
            fn(u)
        times.append((time.perf_counter() - t0) / batch * 1e6)
    return statistics.median(times)


def bench_single_route() -> tuple[float, float]:
    router = Router.build(SALT, VARIANTS)
    ids = [f"user-{i}" for i in range(10_000)]
    assert all(router.route(u) == baseline_route(SALT, VARIANTS, u) for u in ids[:2000])
    # warm up both
    per_call_median(router.route, ids, batches=20)
    per_call_median(lambda u: baseline_route(SALT, VARIANTS, u), ids, batches=20)
    ours = per_call_median(router.route, ids)
    generic = per_call_median(lambda u: route(router, u), ids)
    exp = _experiment()
    by_experiment = per_call_median(lambda u: route(exp, u), ids)
    base = per_call_median(lambda u: baseline_route(SALT, VARIANTS, u), ids)
    print("1. one route() call (median of 200 batches of 1,000 calls)")
    print(f"   promptver Router.route           {ours:8.3f} µs")
    print(f"   promptver route(router, user)    {generic:8.3f} µs")
    print(f"   promptver route(experiment, user){by_experiment:8.3f} µs")
    print(f"   plain-Python baseline            {base:8.3f} µs")
    print(f"   ratio baseline / promptver       {base / ours:8.2f}x")
    verdict = "met" if ours <= ROUTE_TARGET_US else "MISSED"
    print(f"   target ≤ {ROUTE_TARGET_US:g} µs: {verdict}\n")
    return ours, base


def bench_sql(n: int, threads: int | None) -> tuple[float, float]:
    con = duckdb.connect(":memory:")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute(
        "CREATE TABLE users AS SELECT 'user-' || CAST(i AS VARCHAR) AS user_id FROM range(?) t(i)",
        [n],
    )
    router = Router.build(SALT, VARIANTS)
    assign_table(con, router, "users", into="assigned")  # warm-up
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        assigned = assign_table(con, router, "users", into="assigned")
        runs.append(time.perf_counter() - t0)
    ours = statistics.median(runs)
    assert assigned == n

    ids = [r[0] for r in con.execute("SELECT user_id FROM users").fetchall()]
    t0 = time.perf_counter()
    plain = [(u, *baseline_route(SALT, VARIANTS, u)) for u in ids]
    base = time.perf_counter() - t0

    sample = dict(
        con.execute("SELECT user_id, variant FROM assigned USING SAMPLE 10000 ROWS").fetchall()
    )
    expected = {u: v for u, v, _ in plain if u in sample}
    assert sample == expected, "SQL and Python disagree"

    rate, base_rate = n / ours, n / base
    print(
        f"2. assign a table of {n:,} user ids (median of 5 runs; "
        f"DuckDB threads: {con.execute('SELECT current_setting(?)', ['threads']).fetchone()[0]})"
    )
    print(f"   promptver SQL (assign_table)     {ours * 1000:8.1f} ms  {rate / 1e6:6.2f} M ids/s")
    print(
        f"   plain-Python baseline loop       {base * 1000:8.1f} ms  {base_rate / 1e6:6.2f} M ids/s"
    )
    print(f"   ratio baseline / promptver       {base / ours:8.2f}x")
    verdict = "met" if rate >= SQL_TARGET_IDS_PER_S else "MISSED"
    print(f"   target ≥ {SQL_TARGET_IDS_PER_S / 1e6:g} M ids/s: {verdict}\n")

    covered = Router.build(SALT, VARIANTS, coverage=0.5)
    t0 = time.perf_counter()
    assign_table(con, covered, "users", into="assigned")
    cov_time = time.perf_counter() - t0
    print(f"   (with coverage 0.5, two hashes per id: {n / cov_time / 1e6:.2f} M ids/s)")
    con.close()
    return rate, base_rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ids", type=int, default=1_000_000, help="ids to assign in SQL")
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: all cores)")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"promptver routing benchmark (Python {sys.version.split()[0]}, "
        f"DuckDB {duckdb.__version__}, {os.cpu_count()} cores, load average {load:.1f})\n"
    )
    if load > (os.cpu_count() or 1):
        print("note: the machine is busy (load above the core count); timings are pessimistic\n")
    ours, _ = bench_single_route()
    rate, _ = bench_sql(args.ids, args.threads)
    ok = ours <= ROUTE_TARGET_US and rate >= SQL_TARGET_IDS_PER_S
    print(f"\nall targets {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

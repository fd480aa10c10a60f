"""Benchmark of the trend analysis on 1,000,000 events, beside two baselines in one run.

The data: one template, 1,000,000 calls over 30 days from 50,000 users in production, three
versions deployed 30, 20 and 10 days ago, every built-in metric. The analysis is the Trends
screen's heaviest ordinary question: every metric (8), one series per version, daily buckets,
the deployments' change points.

1. ``ws.trends.analyse`` (per-bucket means with delta-method CIs, p95 with its CI, 24 robust
   trend lines, change points, recommendations) against the bare DuckDB aggregation of the same
   buckets (event-level means and p95, nothing else): the least any analysis pays to read the
   data once. Goals: within 5× of it, and under 0.5 s.
2. The same analysis with every user its own unit (the path below 100,000 events, and the
   first implementation at every size): a GROUP BY over every user and bucket, against the
   hashed clusters of users used above that size (goal: ≥ 1.5× faster).

Run: ``python benchmarks/bench_trends.py`` (``--events N`` to change the size; the database is
built once under ``benchmarks/.data/``).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promptver import Settings, Workspace
from promptver.versioning import demo_clock, utcnow

DATA = Path(__file__).resolve().parent / ".data"

BARE_SQL = """
SELECT version, date_trunc('day', ts) AS day, count(*) AS events,
       avg(latency_ms), quantile_cont(latency_ms, 0.95), avg(error::INT), avg(success::INT),
       avg(quality_score), avg(cost_usd), avg(tokens_in), avg(tokens_out)
FROM metric_events
WHERE template_id = ? AND environment = 'production' AND ts >= ?
GROUP BY ALL
"""


def build(path: Path, events: int) -> None:
    """The benchmark database (kept between runs; rebuilt when the size changes)."""
    now = utcnow()
    ws = Workspace.open(path, settings=Settings())
    t = [now - timedelta(days=31)]
    with demo_clock(lambda: t[0]):
        ws.templates.create("bench", "Answer {q}.", author="bench")
        for days, version, text in (
            (30, "1.0.0", None),
            (20, "1.1.0", "Answer {q} briefly."),
            (10, "1.2.0", "Answer {q} very briefly."),
        ):
            t[0] = now - timedelta(days=days)
            if text:
                ws.templates.update("bench", text, author="bench")
            ws.deployments.deploy("bench", version, "production", author="bench")
    tid = ws.templates.get("bench").id
    start_us = int((now - timedelta(days=30)).timestamp() * 1e6)
    span_us = int(timedelta(days=30).total_seconds() * 1e6) - 1
    with ws.db.transaction() as con:
        con.execute(
            """
            INSERT INTO metric_events (ts, template_id, user_id, version, environment,
                latency_ms, success, error, quality_score, cost_usd, tokens_in, tokens_out)
            SELECT make_timestamptz($start + i * $span // $n) AS ts, $tid,
                   'u' || (hash(i, 'user') % 50000)::VARCHAR,
                   CASE WHEN i * 3 < $n THEN '1.0.0' WHEN i * 3 < 2 * $n THEN '1.1.0'
                        ELSE '1.2.0' END,
                   'production',
                   round(exp(6.4 + 0.45 * sqrt(-2 * ln(random())) * cos(6.283185 * random())), 1),
                   random() > 0.05, random() < 0.05,
                   round(random(), 3), round(random() * 0.002, 6),
                   (200 + random() * 1600)::BIGINT, (40 + random() * 360)::BIGINT
            FROM range($n) r(i)
            """,
            {"start": start_us, "span": span_us, "n": events, "tid": tid},
        )
    ws.mark("bench_events", str(events))
    ws.close()


def interleaved(a, b, repeat: int) -> tuple[float, float]:
    """Best times of ``a`` and ``b`` run alternately, so that a busy machine slows both alike."""
    ta, tb = [], []
    for _ in range(repeat):
        for fn, out in ((a, ta), (b, tb)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return min(ta), min(tb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    path = DATA / f"trends-{args.events}.duckdb"
    if path.exists() and Workspace.open(path).info("bench_events") != str(args.events):
        path.unlink()
    if not path.exists():
        t = time.perf_counter()
        build(path, args.events)
        print(f"built {path.name} in {time.perf_counter() - t:.1f} s")
    ws = Workspace.open(path, settings=Settings())
    tid = ws.templates.get("bench").id
    end = utcnow()
    start = end - timedelta(days=30)

    def ours():
        return ws.trends.analyse(
            "bench", period="30d", by="version", environment="production", end=end
        )

    def bare():
        with ws.db.read() as con:
            return con.execute(BARE_SQL, [tid, start]).fetchall()

    import promptver.trends as trends_module

    def per_user():
        saved = trends_module.EXACT_USERS_LIMIT
        trends_module.EXACT_USERS_LIMIT = 10**15
        try:
            return ours()
        finally:
            trends_module.EXACT_USERS_LIMIT = saved

    report = ours()  # warm: imports, the t table, the file's pages
    assert report.clusters is not None and per_user().clusters is None
    bare()
    with ws.session():  # one open file for the timed runs, as a dashboard run has
        t_ours, t_bare = interleaved(ours, bare, args.repeat)
        t_ours2, t_user = interleaved(ours, per_user, args.repeat)
    t_ours = min(t_ours, t_ours2)
    n = ws.metrics.count()
    ratio = t_ours / t_bare
    speedup = t_user / t_ours
    print(
        f"trend analysis of {n:,} events: {len(report.series)} series, "
        f"{len(report.change_points)} change points"
    )
    print(
        f"  ours (analyse, all metrics)   {t_ours * 1000:8.0f} ms   (goal: <= 500 ms)  "
        f"{'OK' if t_ours <= 0.5 else 'MISSED'}"
    )
    print(f"  bare DuckDB GROUP BY          {t_bare * 1000:8.0f} ms")
    print(f"  every user its own unit       {t_user * 1000:8.0f} ms")
    print(
        f"  ratio ours / bare SQL         {ratio:8.2f}x   (goal: <= 5x)  "
        f"{'OK' if ratio <= 5 else 'MISSED'}"
    )
    print(
        f"  speed-up vs per-user units    {speedup:8.2f}x   (goal: >= 1.5x)  "
        f"{'OK' if speedup >= 1.5 else 'MISSED'}"
    )
    print(
        f"summary: {t_ours * 1000:.0f} ms; {ratio:.2f}x bare SQL; {speedup:.2f}x faster than per-user units"
    )
    ws.close()


if __name__ == "__main__":
    main()

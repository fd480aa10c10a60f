"""Benchmark of the statistics engine, each figure beside its baseline in one run.

1. ``experiment_results`` for 2,000,000 events / 500,000 users against the bare DuckDB per-user
   GROUP BY over the same table (goal: within 3×).
2. The bootstrap (2,000 resamples, 2 × 100,000 users) against
   ``scipy.stats.bootstrap(..., method="percentile", vectorized=True)`` on the same data
   (goal: ≥ 30× faster, interval widths within 10 %).

3. ``experiment_results`` with CUPED (a pre-period of the same size) against the same bare
   per-user GROUP BY (goal: within 4×).
4. ``segment_results`` over 10 segment values against the unsegmented ``experiment_results``
   (goal: within 2×).

Run: ``python benchmarks/bench_stats.py`` (add ``--events N --users N`` to change the size;
``--only more`` runs 3 and 4 alone).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import scipy.stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promptver import Settings, Workspace
from promptver.analysis import DEFAULT_BUCKETS, experiment_results
from promptver.models import Experiment, MetricSpec, VariantSpec
from promptver.stats import ArmUnits, bootstrap_difference, bucket_units

T0 = datetime(2026, 3, 1, tzinfo=UTC)
BARE_SQL = (
    "CREATE OR REPLACE TEMP TABLE per_user AS SELECT variant, user_id, count(*) AS events,"
    " sum(quality_score) AS quality, sum(latency_ms) AS latency FROM metric_events"
    " WHERE experiment_id = 'bench' GROUP BY variant, user_id"
)


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def interleaved(a, b, repeat: int) -> tuple[float, float]:
    """Best times of ``a`` and ``b`` run alternately, so that a busy machine slows both alike."""
    ta, tb = [], []
    for _ in range(repeat):
        for fn, out in ((a, ta), (b, tb)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return min(ta), min(tb)


def fill(ws: Workspace, events: int, users: int) -> None:
    """Synthetic events: users split 50/50, a few events each, clustered quality and latency."""
    with ws.db.transaction() as con:
        con.execute(
            """
            INSERT INTO metric_events (event_id, import_id, ts, template_id, user_id,
                experiment_id, variant, version, commit_id, environment, latency_ms, success,
                error, quality_score, cost_usd, tokens_in, tokens_out, custom)
            SELECT NULL, NULL, $t0 + to_seconds(i % 2592000), 'tpl-1', 'user-' || (i % $users),
                   'bench', CASE WHEN hash('user-' || (i % $users)) % 2 = 0 THEN 'control'
                                 ELSE 'treatment' END,
                   '1.0.0', NULL, 'production',
                   exp(6 + 0.5 * sqrt(-2 * ln(random())) * cos(2 * pi() * random())),
                   random() < 0.93, random() < 0.02,
                   least(1, greatest(0, 0.7 + 0.01 * ((hash('user-' || (i % $users)) % 2)::INT)
                                        + 0.15 * (random() - 0.5))),
                   0.002 * random(), 400, 120, NULL
            FROM range($events) r(i)
            """,
            {"t0": T0, "users": users, "events": events},
        )


def bench_results(events: int, users: int, repeat: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.open(Path(tmp) / "bench.duckdb", settings=Settings())
        fill(ws, events, users)
        exp = Experiment(
            id="bench",
            name="bench",
            template_id="tpl-1",
            status="running",
            variants=[
                VariantSpec(name="control", ref="1.0.0", weight=50),
                VariantSpec(name="treatment", ref="1.1.0", weight=50),
            ],
            metrics=[
                MetricSpec(name="quality_score", direction="higher", role="primary"),
                MetricSpec(name="latency_ms", direction="lower", role="guardrail"),
            ],
            salt="bench",
            created_at=T0,
            started_at=T0,
        )

        def bare() -> None:
            # the minimal per-user GROUP BY for this experiment: each user's events and sums of
            # the two metrics, materialised in DuckDB (no squares, no buckets, no statistics)
            with ws.db.read() as con:
                con.execute(BARE_SQL)

        def ours() -> None:
            experiment_results(ws, exp)

        ours()  # warm-up: first open of the file, imports
        bare()
        t_bare, t_ours = interleaved(bare, ours, repeat)
        r = experiment_results(ws, exp)
        ws.close()
    ratio = t_ours / t_bare
    print(
        f"results, {events:,} events / {users:,} users "
        f"(metrics quality_score + latency_ms guardrail, bootstrap {r.bootstrap.resamples:,} "
        f"resamples over {r.bootstrap.unit}s, p95 latency CI):"
    )
    print(
        f"  bare per-user GROUP BY     {t_bare * 1000:8.1f} ms   ({BARE_SQL.split(' AS ', 1)[1]})"
    )
    print(f"  experiment_results         {t_ours * 1000:8.1f} ms")
    print(
        f"  ratio                      {ratio:8.2f}x   (goal: <= 3x)  "
        f"{'OK' if ratio <= 3 else 'MISSED'}"
    )
    return ratio


def fill_more(ws: Workspace, events: int, users: int) -> None:
    """A pre-period of ``events`` events by the same users in the 14 days before T0 (no
    experiment), and a 10-valued segment dimension on the experiment's events."""
    with ws.db.transaction() as con:
        con.execute(
            """
            INSERT INTO metric_events (ts, template_id, user_id, environment, latency_ms,
                quality_score)
            SELECT $t0 - to_seconds(1 + i % 1209000), 'tpl-1', 'user-' || (i % $users),
                   'production', exp(6 + 0.5 * random()),
                   least(1, greatest(0, 0.7 + 0.15 * (random() - 0.5)))
            FROM range($events) r(i)
            """,
            {"t0": T0, "users": users, "events": events},
        )
        # a lasting user effect on quality in both periods, so that the pre-period predicts
        con.execute(
            "UPDATE metric_events SET quality_score = least(1, greatest(0, quality_score"
            " + 0.3 * ((hash(user_id, 'effect') % 1000) / 1000.0 - 0.5)))"
        )
        con.execute(
            "UPDATE metric_events SET dims = MAP(['dim_country'], ['c' || (hash(user_id) % 10)])"
            " WHERE experiment_id = 'bench'"
        )


def bench_more(events: int, users: int, repeat: int) -> tuple[float, float]:
    from promptver.segments import segment_results

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.open(Path(tmp) / "bench.duckdb", settings=Settings())
        fill(ws, events, users)
        fill_more(ws, events, users)
        exp = Experiment(
            id="bench",
            name="bench",
            template_id="tpl-1",
            status="running",
            variants=[
                VariantSpec(name="control", ref="1.0.0", weight=50),
                VariantSpec(name="treatment", ref="1.1.0", weight=50),
            ],
            metrics=[
                MetricSpec(name="quality_score", direction="higher", role="primary"),
                MetricSpec(name="latency_ms", direction="lower", role="guardrail"),
            ],
            salt="bench",
            created_at=T0,
            started_at=T0,
        )
        cuped = exp.model_copy(update={"cuped_lookback_days": 14})

        def bare() -> None:
            with ws.db.read() as con:
                con.execute(BARE_SQL)

        def with_cuped() -> None:
            experiment_results(ws, cuped)

        def plain() -> None:
            experiment_results(ws, exp)

        def segmented() -> None:
            segment_results(ws, exp, "dim_country")

        with_cuped()
        segmented()
        bare()
        t_bare, t_cuped = interleaved(bare, with_cuped, repeat)
        t_plain, t_seg = interleaved(plain, segmented, max(3, repeat // 3))
        r = experiment_results(ws, cuped)
        ws.close()
    c = r.comparisons[0].cuped
    r3, r4 = t_cuped / t_bare, t_seg / t_plain
    print(f"CUPED, {events:,} events / {users:,} users + a pre-period of {events:,} events:")
    print(f"  bare per-user GROUP BY     {t_bare * 1000:8.1f} ms")
    print(
        f"  results with CUPED         {t_cuped * 1000:8.1f} ms   (theta {c.theta:.3g}, "
        f"variance reduction {c.variance_reduction:.1%})"
    )
    print(
        f"  ratio                      {r3:8.2f}x   (goal: <= 4x)  {'OK' if r3 <= 4 else 'MISSED'}"
    )
    print("segments (10 values of dim_country):")
    print(f"  results                    {t_plain * 1000:8.1f} ms")
    print(f"  results --by dim_country   {t_seg * 1000:8.1f} ms")
    print(
        f"  ratio                      {r4:8.2f}x   (goal: <= 2x)  {'OK' if r4 <= 2 else 'MISSED'}"
    )
    return r3, r4


def bench_bootstrap(users: int, repeat: int) -> float:
    rng = np.random.default_rng(7)
    a = rng.lognormal(0, 1, users)
    b = rng.lognormal(0.01, 1, users)
    buckets = DEFAULT_BUCKETS

    def ours() -> tuple[float, float]:
        # hashed user buckets (in the database SQL does this: hash(user_id, salt) % buckets)
        ids = np.arange(users, dtype=np.uint64)
        bucket = ((ids * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) % np.uint64(buckets)
        bucket = bucket.astype(np.int64)
        ones = np.ones(users)
        c = bucket_units(bucket, a, ones, buckets)
        t = bucket_units(bucket, b, ones, buckets)
        r = bootstrap_difference(c, t, resamples=2000, alpha=0.05, seed=11)
        return float(r.diff_low[0]), float(r.diff_high[0])

    def baseline() -> tuple[float, float]:
        res = scipy.stats.bootstrap(
            (a, b),
            lambda x, y, axis=-1: y.mean(axis=axis) - x.mean(axis=axis),
            n_resamples=2000,
            method="percentile",
            vectorized=True,
            rng=np.random.default_rng(11),
        )
        return float(res.confidence_interval.low), float(res.confidence_interval.high)

    def every_user() -> tuple[float, float]:
        # for reference: the same bootstrap resampling every user (what small arms do)
        ones = np.ones((users, 1))
        r = bootstrap_difference(
            ArmUnits(a[:, None], ones),
            ArmUnits(b[:, None], ones),
            resamples=2000,
            alpha=0.05,
            seed=11,
        )
        return float(r.diff_low[0]), float(r.diff_high[0])

    t_ours = best_of(ours, repeat)
    t_base = best_of(baseline, 1)
    lo, hi = ours()
    blo, bhi = baseline()
    t_users = best_of(every_user, 1)
    ulo, uhi = every_user()
    width_diff = abs((hi - lo) / (bhi - blo) - 1)
    ratio = t_base / t_ours
    print(f"bootstrap, 2,000 resamples, 2 x {users:,} users (difference of means):")
    print(f"  scipy.stats.bootstrap      {t_base * 1000:8.1f} ms   CI [{blo:.5f}, {bhi:.5f}]")
    print(f"  promptver (hashed buckets) {t_ours * 1000:8.1f} ms   CI [{lo:.5f}, {hi:.5f}]")
    print(
        f"  (promptver, every user     {t_users * 1000:8.1f} ms   CI [{ulo:.5f}, {uhi:.5f}]: "
        f"for reference, not the large-n path)"
    )
    print(
        f"  speed-up                   {ratio:8.1f}x   (goal: >= 30x)  "
        f"{'OK' if ratio >= 30 else 'MISSED'}"
    )
    print(
        f"  width difference           {width_diff:8.1%}    (goal: <= 10 %)  "
        f"{'OK' if width_diff <= 0.10 else 'MISSED'}"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--boot-users", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--only", choices=["more"], help="run only the CUPED and segment figures")
    args = parser.parse_args()
    if args.only == "more":
        r3, r4 = bench_more(args.events, args.users, args.repeat)
        print(f"summary: CUPED/bare GROUP BY = {r3:.2f}x; segments/unsegmented = {r4:.2f}x")
        return
    r1 = bench_results(args.events, args.users, args.repeat)
    r2 = bench_bootstrap(args.boot_users, args.repeat)
    r3, r4 = bench_more(args.events, args.users, args.repeat)
    print(
        f"summary: results/bare GROUP BY = {r1:.2f}x; bootstrap speed-up vs scipy = {r2:.1f}x; "
        f"CUPED/bare GROUP BY = {r3:.2f}x; segments/unsegmented = {r4:.2f}x"
    )


if __name__ == "__main__":
    main()

"""Experiment results from hive-partitioned Parquet beside a bare DuckDB per-user GROUP BY.

Run: ``python benchmarks/bench_sources.py [--sizes 5e6,20e6,50e6] [--runs 3] [--pass-mib 256]
[--postgres 2e6] [--spark 5e6]`` (``--postgres`` starts a throwaway server as the tests do: run
it from the checkout's root; ``--pass-mib`` overrides ParquetEngine.user_pass_bytes)

Targets (issue 18): with events as hive-partitioned Parquet (generated once, cached under
``/tmp/pv-bench-sources``), ``experiment results`` ≤ 3× a bare DuckDB per-user GROUP BY over the
same files, and promptver's peak RSS ≤ 1.5 GiB and flat as events grow. ``--postgres N`` /
``--spark N`` time the results on PostgreSQL (a throwaway server, as the tests start it) and
Spark local mode beside the same aggregation written directly for that engine (≤ 1.5×):
:data:`SAME_SUMS_SQL` (per user each metric's sum and count, per variant the delta method's
moments) then :data:`SAME_P95_SQL` (the exact p95 per variant, the engine's own percentile);
the ratio to the bare one-metric GROUP BY (:data:`BASELINE_SQL`) is printed too, and the time
of promptver's own statements of one analysis sent to the engine by hand (what promptver adds
around its SQL).

Each Parquet size and side runs in a fresh child process (so that promptver's peak RSS is its
own): ``--runs`` analyses one after the other in that process, the best time, and the process'
peak RSS (VmHWM) after each analysis, so that memory kept from one analysis to the next shows.

Last runs (2 cores, load below 1; timings on a shared machine vary by 10–20 %, memory does not):

``--sizes 5e6,20e6,50e6 --runs 2``

      events  bare GROUP BY  promptver  ratio   peak RSS   after 1   after 2
   5,000,000          0.21s      1.00s   4.7x    349 MiB   402 MiB
  20,000,000          0.99s      2.24s   2.3x    680 MiB   725 MiB
  50,000,000          2.80s      7.88s   2.8x    783 MiB   837 MiB

``--sizes "" --postgres 2e6``, two runs: promptver 2.59 / 2.80 s; the same aggregation 2.43 /
2.56 s (1.07x / 1.09x); the bare GROUP BY 1.15 / 1.19 s (2.25x / 2.35x); promptver's own
statements sent by hand 2.62 s (promptver 1.07x that). ``--sizes "" --spark 5e6``, eight runs:
4.54–5.86 s; 3.32–3.83 s (1.27x–1.67x, median 1.44x); 2.00–2.65 s (2.00–2.38x); its own
statements by hand 4.22–4.77 s (0.95–1.25x).

How the Parquet figures came down (50M events): 21.49 s (6.6x) with every statement on one
thread; 16.78 s once the small-state statements ran on every core; 10.62 s (3.7x) with the pass
slice written into its statement; 10.15 s with the plain user hash as the slice; 7.88 s (2.8x)
with the p95's statements on a second DuckDB beside the passes (docs/warehouse.md).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout, not an installed promptver

CACHE = Path("/tmp/pv-bench-sources")
T0 = datetime(2026, 6, 1, tzinfo=UTC)
DAYS = 20


def generate(n: int) -> Path:
    """``n`` events of one experiment (two arms, ~n/8 users), partitioned by day; cached."""
    import duckdb

    out = CACHE / f"events-{n}"
    if (out / "done").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    users = max(1000, n // 8)
    con.execute(
        f"""
        COPY (
            SELECT TIMESTAMPTZ '2026-06-01 00:00:00+00'
                       + to_microseconds(CAST(i * 1000003 % ({DAYS} * 86400000000) AS BIGINT))
                       AS timestamp,
                   'qa-basic' AS template,
                   'u' || CAST(i * 7919 % {users} AS VARCHAR) AS user_id,
                   'bench' AS experiment,
                   CASE WHEN hash(i * 7919 % {users}) % 2 = 0 THEN 'control' ELSE 'treatment'
                   END AS variant,
                   'production' AS environment,
                   300 + (hash(i) % 2000) * 1.0 AS latency_ms,
                   hash(i, 'q') % 1000 / 1000.0 AS quality_score,
                   hash(i, 's') % 10 > 0 AS success,
                   strftime(TIMESTAMPTZ '2026-06-01 00:00:00+00'
                       + to_microseconds(CAST(i * 1000003 % ({DAYS} * 86400000000) AS BIGINT)),
                       '%Y-%m-%d') AS day
            FROM range({n}) t(i)
        ) TO '{out}' (FORMAT parquet, PARTITION_BY (day), OVERWRITE_OR_IGNORE)
        """
    )
    (out / "done").write_text("ok")
    return out


def workspace_file(folder: Path) -> tuple[Path, str]:
    """A promptver file with the template and the experiment the events name."""
    from promptver import Settings, Workspace

    db = folder / f"bench-{uuid.uuid4().hex[:6]}.duckdb"
    ws = Workspace.open(db, settings=Settings())
    ws.templates.create("qa-basic", "Answer {question}.", author="bench")
    ws.templates.update("qa-basic", "Answer {question} briefly.", author="bench")
    row = ws.templates.row("qa-basic")
    metrics = [
        {"name": "quality_score", "direction": "higher", "role": "primary"},
        {"name": "latency_ms", "direction": "lower", "role": "guardrail"},
    ]
    with ws.db.transaction() as con:
        con.execute(
            "INSERT INTO experiments (id, name, template_id, environment, status, metrics, alpha,"
            " minimum_sample_size, salt, created_at, created_by, started_at, start_at, end_at)"
            " VALUES ('bench', 'bench', ?, 'production', 'running', ?, 0.05, 100, 'bench', ?,"
            " 'bench', ?, ?, ?)",
            [row["id"], json.dumps(metrics), T0, T0, T0, T0 + timedelta(days=DAYS)],
        )
        for i, (name, ref) in enumerate((("control", "1.0.0"), ("treatment", "1.1.0"))):
            commit = ws.versions.resolve(row["id"], ref).id
            con.execute(
                "INSERT INTO experiment_variants VALUES ('bench', ?, ?, ?, ?, 50)",
                [i, name, ref, commit],
            )
    ws.close()
    return db, "bench"


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def peak_rss_mib() -> float:
    """This process' peak resident memory so far (VmHWM; ru_maxrss where /proc has none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_parquet(n: int, which: str, runs: int) -> dict:
    """One size, one side (``baseline`` or ``promptver``) in this process: ``runs`` analyses
    one after the other, the best time, and this process' peak RSS after each (so that
    promptver's footprint is its own, and growth from one analysis to the next shows)."""
    import duckdb

    from promptver import Settings, Workspace

    lake = generate(n)
    glob = f"{lake}/**/*.parquet"
    if which == "baseline":
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")

        def run() -> None:
            con.execute(
                "SELECT variant, count(*), sum(x), sum(x * x) FROM (SELECT variant, user_id,"
                " sum(quality_score) AS x, count(quality_score) AS y, sum(latency_ms) AS l"
                " FROM read_parquet(?, hive_partitioning = true) WHERE experiment = 'bench'"
                " AND timestamp >= ? AND timestamp <= ? GROUP BY variant, user_id)"
                " GROUP BY variant",
                [glob, T0, T0 + timedelta(days=DAYS)],
            ).fetchall()
    else:
        db, exp = workspace_file(CACHE)
        settings = Settings.from_dict({"events": {"source": "parquet", "path": str(lake)}})
        ws = Workspace.open(db, settings=settings)
        ws.source.relation()  # connect and read the schema once

        def run() -> None:
            ws.experiment_results(exp, resamples=2000, seed=1)

    times, peaks = [], []
    for _ in range(runs):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
        peaks.append(peak_rss_mib())
    return {"seconds": min(times), "peaks": peaks}


BASELINE_SQL = (
    "SELECT variant, count(*) AS users, sum(x) AS sx, sum(x * x) AS sxx FROM (SELECT variant,"
    " user_id, sum(quality_score) AS x, count(quality_score) AS y, sum(latency_ms) AS l"
    " FROM {table} WHERE experiment = 'bench' AND {ts} >= {start} AND {ts} <= {end}"
    " GROUP BY variant, user_id) AS u GROUP BY variant"
)

#: What the results rest on, written by hand (the "same aggregation" of issue 18): per user,
#: each analysed metric's sum and count; per variant, the moments the delta method needs
#: (users, Σx, Σx², Σy, Σy², Σxy for quality_score and latency_ms) ...
SAME_SUMS_SQL = (
    "SELECT variant, count(*) AS users,"
    " sum(x0), sum(x0 * x0), sum(y0), sum(y0 * y0), sum(x0 * y0),"
    " sum(x1), sum(x1 * x1), sum(y1), sum(y1 * y1), sum(x1 * y1)"
    " FROM (SELECT variant, user_id, sum(quality_score) AS x0, count(quality_score) AS y0,"
    " sum(latency_ms) AS x1, count(latency_ms) AS y1"
    " FROM {table} WHERE experiment = 'bench' AND {ts} >= {start} AND {ts} <= {end}"
    " GROUP BY variant, user_id) AS u GROUP BY variant"
)
#: ... and each variant's exact p95 latency, with the engine's own exact percentile
SAME_P95_SQL = (
    "SELECT variant, {p95} AS p95 FROM {table}"
    " WHERE experiment = 'bench' AND {ts} >= {start} AND {ts} <= {end} GROUP BY variant"
)
P95 = {
    "postgres": "percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)",
    "spark": "percentile(latency_ms, 0.95)",
}


def engine_side(kind: str, n: int) -> tuple[float, float, float]:
    """(promptver's results, the bare per-user GROUP BY, the same aggregation written directly:
    :data:`SAME_SUMS_SQL` then :data:`SAME_P95_SQL`) on PostgreSQL or Spark local mode, on the
    ``n`` events of the cached Parquet files."""
    import duckdb

    from promptver import Settings, Workspace

    lake = generate(n)
    db, exp = workspace_file(CACHE)
    if kind == "postgres":
        import psycopg

        from tests.sources_helpers import postgres_cluster

        csv = CACHE / f"events-{n}.csv"
        if not csv.exists():
            duckdb.execute(
                f"COPY (SELECT * EXCLUDE (day) FROM read_parquet('{lake}/**/*.parquet',"
                f" hive_partitioning = true)) TO '{csv}' (HEADER, DELIMITER ',')"
            )
        with postgres_cluster() as dsn:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(
                    "CREATE TABLE llm_events (timestamp timestamptz, template text, user_id text,"
                    " experiment text, variant text, environment text, latency_ms float8,"
                    " quality_score float8, success boolean)"
                )
                with (
                    conn.cursor().copy(
                        "COPY llm_events FROM STDIN WITH (FORMAT csv, HEADER true)"
                    ) as cp,
                    open(csv, "rb") as fh,
                ):
                    while chunk := fh.read(1 << 20):
                        cp.write(chunk)
                conn.execute("ANALYZE llm_events")
                fmt = {"table": "llm_events", "ts": "timestamp", "start": "%(s)s", "end": "%(e)s"}
                bare, sums, p95 = (
                    q.format(**fmt, p95=P95[kind])
                    for q in (BASELINE_SQL, SAME_SUMS_SQL, SAME_P95_SQL)
                )
                params = {"s": T0, "e": T0 + timedelta(days=DAYS)}
                base = best(lambda: conn.execute(bare, params).fetchall(), 3)
                same = best(
                    lambda: (
                        conn.execute(sums, params).fetchall(),
                        conn.execute(p95, params).fetchall(),
                    ),
                    3,
                )
            cfg = {"source": "postgres", "dsn": dsn, "table": "llm_events"}
            ws = Workspace.open(db, settings=Settings.from_dict({"events": cfg}))
            ws.source.relation()
            ours = best(lambda: ws.experiment_results(exp, seed=1), 3)
            statements = own_statements(ws, exp)
            with psycopg.connect(dsn, autocommit=True) as conn:
                own = best(lambda: [conn.execute(q, p).fetchall() for q, p in statements], 3)
            ws.close()
        print_own(kind, ours, own, len(statements))
        return ours, base, same
    cfg = {"source": "spark", "path": str(lake)}
    ws = Workspace.open(db, settings=Settings.from_dict({"events": cfg}))
    ws.source.relation()
    spark = ws.source.engine._connect()
    fmt = {"table": "pv_events_source", "ts": "`timestamp`", "start": ":s", "end": ":e"}
    bare, sums, p95 = (
        q.format(**fmt, p95=P95[kind]) for q in (BASELINE_SQL, SAME_SUMS_SQL, SAME_P95_SQL)
    )
    params = {"s": T0, "e": T0 + timedelta(days=DAYS)}
    sides = {
        "bare": lambda: spark.sql(bare, args=params).collect(),
        "sql": lambda: (
            spark.sql(sums, args=params).collect(),
            spark.sql(p95, args=params).collect(),
        ),
        "df": lambda: same_in_pyspark(spark, params),
        "ours": lambda: ws.experiment_results(exp, seed=1),
    }
    statements = own_statements(ws, exp)
    sides["own"] = lambda: [spark.sql(q, args=p).collect() for q, p in statements]
    for run in sides.values():  # each side once untimed: the JVM's compilation of its plans
        run()
    base, same_sql, same_df, ours, own = (best(run, 2) for run in sides.values())
    print_own(kind, ours, own, len(statements))
    print(
        f"spark: the same aggregation in Spark SQL {same_sql:.2f}s, in PySpark's DataFrame API"
        f" {same_df:.2f}s (the ratio takes the faster)",
        flush=True,
    )
    return ours, base, min(same_sql, same_df)


def own_statements(ws: Any, exp: str) -> list[tuple[str, dict[str, Any]]]:
    """The statements (translated, with their parameters) that one analysis sends the engine."""
    engine = ws.source.engine
    seen: list[tuple[str, dict[str, Any]]] = []
    run = engine.run

    def spy(sql: str, params: dict[str, Any]) -> Any:
        seen.append((sql, dict(params)))
        return run(sql, params)

    engine.run = spy
    try:
        ws.experiment_results(exp, seed=1)
    finally:
        del engine.run
    return seen


def print_own(kind: str, ours: float, own: float, n: int) -> None:
    """promptver's results beside its own statements sent to the engine by hand."""
    print(
        f"{kind}: promptver's own {n} statements run directly {own:.2f}s: promptver's results"
        f" take {ours / own:.2f}x that (translation, the round trips, the statistics in Python)",
        flush=True,
    )


def same_in_pyspark(spark: Any, params: dict[str, datetime]) -> None:
    """:data:`SAME_SUMS_SQL` and :data:`SAME_P95_SQL` written with PySpark's DataFrame API."""
    from pyspark.sql import functions as sf

    ev = spark.table("pv_events_source").where(
        (sf.col("experiment") == "bench")
        & (sf.col("timestamp") >= sf.lit(params["s"]))
        & (sf.col("timestamp") <= sf.lit(params["e"]))
    )
    users = ev.groupBy("variant", "user_id").agg(
        sf.sum("quality_score").alias("x0"),
        sf.count("quality_score").alias("y0"),
        sf.sum("latency_ms").alias("x1"),
        sf.count("latency_ms").alias("y1"),
    )
    moments = [sf.count(sf.lit(1)).alias("users")]
    for i in (0, 1):
        x, y = sf.col(f"x{i}"), sf.col(f"y{i}")
        moments += [sf.sum(x), sf.sum(x * x), sf.sum(y), sf.sum(y * y), sf.sum(x * y)]
    users.groupBy("variant").agg(*moments).collect()
    ev.groupBy("variant").agg(sf.percentile("latency_ms", 0.95).alias("p95")).collect()


#: issue 18: promptver's peak RSS over an analysis (and over repeated ones)
RSS_TARGET_MIB = 1536


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1e6,5e6")
    ap.add_argument("--runs", type=int, default=3, help="analyses in one process (best time)")
    ap.add_argument(
        "--pass-mib", type=int, help="the per-user pass budget (ParquetEngine.user_pass_bytes)"
    )
    ap.add_argument("--child", type=float)
    ap.add_argument("--side")
    ap.add_argument("--postgres", type=float, help="also PostgreSQL on N events")
    ap.add_argument("--spark", type=float, help="also Spark local mode on N events")
    args = ap.parse_args()
    if args.pass_mib:
        from promptver.store.engines import ParquetEngine

        ParquetEngine.user_pass_bytes = args.pass_mib << 20
    if args.child:
        print(json.dumps(child_parquet(int(args.child), args.side, args.runs)))
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    after = " ".join(f"{'after ' + str(i + 1):>9}" for i in range(args.runs))
    print(f"{'events':>12} {'bare GROUP BY':>14} {'promptver':>10} {'ratio':>6}   peak RSS {after}")
    peaks: dict[int, float] = {}
    for size in filter(None, args.sizes.split(",")):  # --sizes "": engines only
        n = int(float(size))
        generate(n)
        got = {}
        for side in ("baseline", "promptver"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(n), "--side", side]
                + ["--runs", str(args.runs)]
                + (["--pass-mib", str(args.pass_mib)] if args.pass_mib else []),
                capture_output=True,
                text=True,
                check=True,
            )
            got[side] = json.loads(out.stdout.strip().splitlines()[-1])
        base, ours = got["baseline"]["seconds"], got["promptver"]["seconds"]
        series = got["promptver"]["peaks"]
        peaks[n] = max(series)
        print(
            f"{n:>12,} {base:>13.2f}s {ours:>9.2f}s {ours / base:>5.1f}x  "
            + " ".join(f"{p:>5.0f} MiB" for p in series),
            flush=True,
        )
    if peaks:
        top, low = max(peaks.values()), min(peaks.values())
        side = " / ".join(f"{n / 1e6:g}M {p:.0f} MiB" for n, p in peaks.items())
        verdict = "met" if top <= RSS_TARGET_MIB else "MISSED"
        print(
            f"peak RSS (over {args.runs} analyses in one process): {side}; target"
            f" <= {RSS_TARGET_MIB} MiB and flat: {verdict}, largest/smallest {top / low:.2f}"
        )
    for kind in ("postgres", "spark"):
        n = getattr(args, kind)
        if n:
            ours, base, same = engine_side(kind, int(n))
            print(
                f"{kind}: {int(n):,} events: promptver {ours:.2f}s; the same aggregation written"
                f" directly {same:.2f}s, ratio {ours / same:.2f}x; a bare one-metric GROUP BY"
                f" {base:.2f}s, ratio {ours / base:.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()

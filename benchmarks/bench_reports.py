"""Benchmark of the experiment reports, each figure beside its baseline in one run.

1. Each report format, made from results already computed, against computing those results
   (``experiment_results``, what any report of a running experiment must do anyway): the report's
   own cost as a fraction of the analysis (goal: JSON, CSV and Markdown ≤ 0.1×; HTML, whose
   eight charts dominate, under a second).
2. Rendering a chart with :func:`promptver.charts.to_svg` (vl-convert plus the SVG allow-list
   check and id prefixing) against what an Altair user writes, ``vl_convert.vegalite_to_svg(
   chart.to_dict())`` (goal: within 1.2×: the check must cost little).
3. The first HTML report in a fresh process (vl-convert starts its JavaScript engine) against
   the later ones.

Run: ``python benchmarks/bench_reports.py`` (``--users N`` to change the size).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promptver import Settings, Workspace  # noqa: E402
from promptver.analysis import experiment_results  # noqa: E402
from promptver.charts import forest_chart, forest_frame, to_svg  # noqa: E402
from promptver.reports import render_report  # noqa: E402
from promptver.versioning import utcnow  # noqa: E402


def interleaved(a, b, repeat: int) -> tuple[float, float]:
    """Best times of ``a`` and ``b`` run alternately, so that a busy machine slows both alike."""
    ta, tb = [], []
    for _ in range(repeat):
        for fn, out in ((a, ta), (b, tb)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return min(ta), min(tb)


def build(ws: Workspace, users: int, folder: Path) -> str:
    """A template with two versions and a branch, deployments, and a running experiment with
    ``users`` users (three events each on average) imported from a CSV file."""
    ws.templates.create("qa-basic", "Answer {question} using {context}.", author="ana")
    ws.templates.update("qa-basic", "Answer {question} briefly using {context}.", author="ben")
    for env in ("development", "staging", "production"):
        ws.deployments.deploy("qa-basic", "1.1.0", env, author="ops")
    exp = ws.experiments.create(
        {
            "name": "bench",
            "template": "qa-basic",
            "variants": [
                {"name": "control", "ref": "1.0.0", "weight": 50},
                {"name": "brief", "ref": "1.1.0", "weight": 50},
            ],
            "metrics": ["quality_score", "latency_ms", {"name": "cost_usd", "guardrail": True}],
            "minimum_sample_size": 100,
        }
    )
    ws.experiments.start(exp.id)
    exp = ws.experiments.get(exp.id)
    rng = np.random.default_rng(7)
    per_user = 1 + rng.poisson(2, users)
    n = int(per_user.sum())
    user = np.repeat(np.arange(users), per_user)
    treated = user % 2 == 1
    start = exp.started_at
    span = max(1.0, (utcnow() - start).total_seconds())
    path = folder / "events.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "timestamp",
                "template",
                "user_id",
                "experiment",
                "variant",
                "quality_score",
                "latency_ms",
                "cost_usd",
            ]
        )
        offsets = rng.uniform(0, span, n)
        quality = np.clip(rng.normal(0.6 + 0.02 * treated, 0.15), 0, 1)
        latency = rng.lognormal(6.4, 0.4, n)
        cost = rng.gamma(2, 0.001, n)
        for i in range(n):
            w.writerow(
                [
                    (start + timedelta(seconds=float(offsets[i]))).isoformat(),
                    "qa-basic",
                    f"u{user[i]}",
                    exp.id,
                    "brief" if treated[i] else "control",
                    f"{quality[i]:.4f}",
                    f"{latency[i]:.1f}",
                    f"{cost[i]:.6f}",
                ]
            )
    ws.metrics.import_csv(path)
    return exp.id


FIRST = """
import sys, time
sys.path.insert(0, {root!r})
from promptver import Settings, Workspace
from promptver.reports import render_report
ws = Workspace.open({db!r}, settings=Settings())
r = ws.experiment_results({eid!r})
for _ in range(2):
    t = time.perf_counter(); render_report(ws, {eid!r}, "html", results=r)
    print(time.perf_counter() - t)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        ws = Workspace.open(db, settings=Settings())
        t = time.perf_counter()
        eid = build(ws, args.users, Path(tmp))
        exp = ws.experiments.get(eid)
        built = time.perf_counter() - t
        with ws.session():
            results = experiment_results(ws, exp)
            users = sum(v.users for v in results.variants)
            events = sum(v.events for v in results.variants)
            print(f"built {users:,} users, {events:,} events in {built:.1f} s")
            render_report(ws, exp, "html", results=results)  # start the chart engine
            print(f"\n1. reports from computed results vs computing them ({args.users:,} users)")
            for fmt in ("json", "csv", "md", "html"):
                t_report, t_results = interleaved(
                    lambda fmt=fmt: render_report(ws, exp, fmt, results=results),
                    lambda: experiment_results(ws, exp),
                    args.repeat,
                )
                print(
                    f"   {fmt:<5} report {t_report * 1000:8.1f} ms   results "
                    f"{t_results * 1000:8.1f} ms   ratio {t_report / t_results:.3f}×"
                )
            import vl_convert as vlc

            chart = forest_chart(forest_frame(results.for_metric("quality_score")), "diff")
            ours, bare = interleaved(
                lambda: to_svg(chart),
                lambda: vlc.vegalite_to_svg(chart.to_dict(), allowed_base_urls=[]),
                10 * args.repeat,
            )
            print("\n2. one forest plot to SVG: to_svg (checked) vs Altair + bare vl-convert")
            print(
                f"   to_svg {ours * 1000:.1f} ms   vl-convert {bare * 1000:.1f} ms   "
                f"ratio {ours / bare:.2f}×"
            )
        ws.close()
        out = subprocess.run(
            [sys.executable, "-c", FIRST.format(root=str(ROOT), db=str(db), eid=eid)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        first, second = float(out[0]), float(out[1])
        print("\n3. HTML report in a fresh process: first (engine start) vs second")
        print(
            f"   first {first * 1000:.0f} ms   second {second * 1000:.0f} ms   "
            f"ratio {first / second:.1f}×"
        )


if __name__ == "__main__":
    main()

"""Evaluation benchmarks: CSV import against DuckDB's own ``read_csv``, and ``eval compare``.

Run: ``python benchmarks/bench_evals.py [--items 10000] [--versions 5] [--samples 20] [--repeat 3]``

1. An eval CSV of items × versions × samples rows (default 10,000 × 5 × 20 = 1,000,000; columns
   dataset, item_id, template, version, output, quality, quality_human on 2 % of the rows,
   latency_ms) is generated once under ``benchmarks/.data/``.
2. Import, side by side in this process, best of ``--repeat`` each:
   - baseline: ``CREATE TABLE t AS SELECT * FROM read_csv(file)`` into a new DuckDB file;
   - ours: ``Workspace.evals.import_csv(file)`` into a new workspace holding the template and
     its versions: header checks, parsing, every row rule, reference resolution, SHA-256, the
     insert of rows, runs and the import record, in one transaction.
   Target: ours ≤ 2 × baseline.
3. ``eval compare`` of two versions on the imported dataset (all metrics, calibrated scores
   included), best of ``--repeat``. Target: ≤ 0.5 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout, not an installed promptver
DATA = Path(__file__).resolve().parent / ".data"


def generate(items: int, versions: int, samples: int) -> Path:
    import duckdb

    DATA.mkdir(exist_ok=True)
    path = DATA / f"evals_{items}_{versions}_{samples}.csv"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    con = duckdb.connect()
    con.execute(
        f"""
        COPY (
          SELECT 'bench' AS dataset, 'item-' || it AS item_id, 'bench-qa' AS template,
                 '1.' || v || '.0' AS version, 'answer ' || it || ' of version ' || v AS output,
                 round(0.5 + v * 0.01 + ((hash(it * 31 + v * 7 + s) % 1000)::INTEGER - 500) / 5000.0, 4)
                   AS quality,
                 CASE WHEN it % 50 = 0 AND s = 0 THEN
                   round(0.45 + v * 0.01 + ((hash(it * 17 + v) % 1000)::INTEGER - 500) / 5000.0, 4)
                 END AS quality_human,
                 round(800 + (hash(it * 13 + v * 3 + s) % 400), 1) AS latency_ms
          FROM range({items}) a(it), range({versions}) b(v), range({samples}) c(s)
          ORDER BY v, it, s
        ) TO '{tmp}' (HEADER, DELIMITER ',')
        """
    )
    con.close()
    tmp.rename(path)
    return path


def baseline(path: Path) -> float:
    import duckdb

    with tempfile.TemporaryDirectory() as d:
        con = duckdb.connect(str(Path(d) / "b.duckdb"))
        t = time.perf_counter()
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{path}')")
        con.execute("CHECKPOINT")
        took = time.perf_counter() - t
        con.close()
    return took


def ours(path: Path, versions: int, compare_repeat: int) -> tuple[float, float]:
    from promptver import Workspace

    with tempfile.TemporaryDirectory() as d:
        ws = Workspace.open(Path(d) / "w.duckdb")
        ws.templates.create("bench-qa", "Answer {q}.", author="bench")
        for v in range(1, versions):
            ws.templates.update("bench-qa", f"Answer {{q}} ({v}).", author="bench")
        t = time.perf_counter()
        ws.evals.import_csv(path, author="bench")
        with ws.db.connect() as con:
            con.execute("CHECKPOINT")
        took = time.perf_counter() - t
        best = float("inf")
        ws.evals.compare("bench", "1.0.0", "1.1.0")  # warm: scipy/statsmodels imports
        for _ in range(compare_repeat):
            t = time.perf_counter()
            ws.evals.compare("bench", "1.0.0", "1.1.0")
            best = min(best, time.perf_counter() - t)
        ws.close()
    return took, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--versions", type=int, default=5)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    path = generate(args.items, args.versions, args.samples)
    rows = args.items * args.versions * args.samples
    print(f"file: {path.name}, {rows:,} rows, {path.stat().st_size / 1e6:.0f} MB")
    base = min(baseline(path) for _ in range(args.repeat))
    runs = [ours(path, args.versions, args.repeat) for _ in range(args.repeat)]
    imp = min(r[0] for r in runs)
    cmp = min(r[1] for r in runs)
    print(f"read_csv (DuckDB CTAS)  {base:7.3f} s")
    print(f"eval import (promptver) {imp:7.3f} s   ratio {imp / base:.2f}x  (target <= 2x)")
    print(f"eval compare            {cmp:7.3f} s   (target <= 0.5 s)")


if __name__ == "__main__":
    main()

"""Version control benchmarks: ours next to a baseline, in one process, with the ratio.

1. ahead/behind for every branch of a template with a long history: ``VersionControl
   .list_branches`` (one query for the graph, reachability in Python) against the same answer
   computed entirely in DuckDB with recursive CTEs (one per branch and for ``main``).
2. diff of a long template: ``diff_texts`` (unified diff, line changes with word-level changes,
   variables, metadata) against ``difflib.unified_diff`` alone (what any diff must do).
3. three-way merge: ``merge_texts`` against the two ``SequenceMatcher`` passes any diff3 needs.

Run: ``python benchmarks/bench_versioning.py [--commits N] [--branches B]``.
"""

from __future__ import annotations

import argparse
import difflib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promptver import Workspace
from promptver.diffing import diff_texts
from promptver.merging import merge_texts


def timeit(fn: Callable[[], object], repeat: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report(name: str, ours: float, base: float, base_name: str) -> None:
    print(
        f"{name:<38} ours {ours * 1000:9.2f} ms   {base_name} {base * 1000:9.2f} ms   "
        f"ratio ours/baseline = {ours / base:5.2f}"
    )


def build_history(ws: Workspace, commits: int, branches: int, seed: int) -> str:
    """A template with ``commits`` commits on main and ``branches`` branches (with merges)."""
    rng = random.Random(seed)
    t = ws.templates.create("bench", "Answer {question}.\n")
    tid = t.id
    main = [t.commit]
    rows = []
    at = datetime(2026, 1, 1, tzinfo=UTC)
    heads: dict[str, str] = {}
    for i in range(commits):
        at += timedelta(seconds=1)
        cid = f"{rng.getrandbits(256):064x}"
        parents = [main[-1]]
        if heads and rng.random() < 0.05:  # merge a branch now and then
            parents.append(rng.choice(list(heads.values())))
        rows.append(
            (cid, tid, parents, f"text {i} {{question}}", ["question"], "{}", "m", "bench", at)
        )
        main.append(cid)
        if len(heads) < branches and rng.random() < 0.02:
            heads[f"b{len(heads)}"] = cid
        for name in list(heads):  # branches grow too
            if rng.random() < 0.01:
                at += timedelta(seconds=1)
                bid = f"{rng.getrandbits(256):064x}"
                rows.append((bid, tid, [heads[name]], f"branch {i}", [], "{}", "m", "bench", at))
                heads[name] = bid
    with ws.db.transaction() as con:
        con.executemany("INSERT INTO commits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        con.execute(
            "UPDATE branches SET head = ? WHERE template_id = ? AND name = 'main'", [main[-1], tid]
        )
        for name, head in heads.items():
            con.execute("INSERT INTO branches VALUES (?, ?, ?, ?, 'bench')", [tid, name, head, at])
    return tid


_REACH = """
WITH RECURSIVE anc(id) AS (
    SELECT ?::VARCHAR
    UNION
    SELECT unnest(c.parents) FROM commits c JOIN anc ON c.id = anc.id
)
SELECT id FROM anc
"""


def sql_ahead_behind(ws: Workspace, tid: str) -> dict[str, tuple[int, int]]:
    with ws.db.read() as con:
        heads = con.execute(
            "SELECT name, head FROM branches WHERE template_id = ?", [tid]
        ).fetchall()
        main = dict(heads)["main"]
        con.execute("CREATE OR REPLACE TEMP TABLE main_anc AS " + _REACH, [main])
        out = {}
        for name, head in heads:
            ahead, behind = con.execute(
                f"WITH b AS ({_REACH}) SELECT"
                " (SELECT count(*) FROM b WHERE id NOT IN (SELECT id FROM main_anc)),"
                " (SELECT count(*) FROM main_anc WHERE id NOT IN (SELECT id FROM b))",
                [head],
            ).fetchone()
            out[name] = (ahead, behind)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=3000)
    ap.add_argument("--branches", type=int, default=8)
    ap.add_argument("--lines", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.open(Path(tmp) / "bench.duckdb")
        tid = build_history(ws, args.commits, args.branches, args.seed)
        with ws.session():
            ours_result = {b.name: (b.ahead, b.behind) for b in ws.versions.list_branches(tid)}
            base_result = sql_ahead_behind(ws, tid)
            assert ours_result == base_result, (ours_result, base_result)
            ours = timeit(lambda: ws.versions.list_branches(tid))
            base = timeit(lambda: sql_ahead_behind(ws, tid))
        report(
            f"ahead/behind, {args.commits} commits, {len(ours_result)} br.",
            ours,
            base,
            "DuckDB recursive CTE",
        )
        ws.close()

    rng = random.Random(args.seed)
    words = ["answer", "the", "question", "{context}", "briefly", "using", "only", "sources"]
    old_lines = [" ".join(rng.choices(words, k=8)) for _ in range(args.lines)]
    new_lines = list(old_lines)
    for i in rng.sample(range(args.lines), args.lines // 20):
        new_lines[i] = " ".join(rng.choices(words, k=8))
    old, new = "\n".join(old_lines) + "\n", "\n".join(new_lines) + "\n"
    # as ws.versions.diff calls it: the variables come stored with each commit
    ours = timeit(
        lambda: diff_texts(old, new, old_variables=["context"], new_variables=["context"])
    )
    base = timeit(lambda: list(difflib.unified_diff(old.splitlines(True), new.splitlines(True))))
    report(f"diff, {args.lines} lines, 5% changed", ours, base, "difflib.unified_diff")

    theirs_lines = list(old_lines)
    for i in rng.sample(range(args.lines), args.lines // 20):
        theirs_lines[i] = "theirs " + theirs_lines[i]
    theirs = "\n".join(theirs_lines) + "\n"

    def two_passes() -> None:
        for side in (new, theirs):
            difflib.SequenceMatcher(
                None, old.split("\n"), side.split("\n"), autojunk=False
            ).get_matching_blocks()

    ours = timeit(lambda: merge_texts(old, new, theirs))
    base = timeit(two_passes)
    report(f"3-way merge, {args.lines} lines", ours, base, "2 SequenceMatcher passes")


if __name__ == "__main__":
    main()

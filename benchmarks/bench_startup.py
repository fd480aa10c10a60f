"""Start-up cost: cold processes of the CLI and of an application, beside Python's own baseline.

Run: ``python benchmarks/bench_startup.py [--runs N]``

Each case is a fresh interpreter (``python -c …`` or ``python -m promptver …``), run ``--runs``
times (at least 5), interleaved with the baseline ``python -c "import duckdb, pydantic, yaml"`` so
that a busy machine slows both alike. Printed: the median wall time of each, its ratio to the
baseline's median, and the peak resident memory of the case (``ru_maxrss`` of the finished child).

Targets (issue 17): ``promptver --help`` and ``promptver --db X template list`` ≤ 1.5× the
baseline; ``Workspace.open(X).get_prompt(...).text(...)`` ≤ 2× the baseline and ≤ 90 MiB.

Last runs (``--runs 9``, 2 cores, load below 1; three runs a few minutes apart, wall ratios):
``--help`` 0.48× / 0.61× / 0.58× (met); ``template list`` 1.05× / 1.16× / 1.23× (met; 1.75–1.90×
before it read plain records with nothing to validate); ``get_prompt`` 1.69× / 1.81× / 2.02×
(met in two of three, 81 MiB, met). Instruction counts (``valgrind --tool=callgrind``, which a
busy machine does not change): the baseline 691 M, ``template list`` 748 M (1.08×; 1,251 M
before), ``get_prompt`` 1,192 M (1.72×; 1,288 M before).

``template list`` loads no pydantic when there is nothing to validate (no settings file, no
override but ``PROMPTVER_DB``: what ``promptver init`` leaves): the workspace builds its settings
on first use and the listing prints plain records (``promptver/template_list.py``). ``get_prompt``
still imports pydantic's ``BaseModel`` for the served ``Prompt`` (+194 M instructions) and opens
the file twice (``Workspace.open`` checks the schema, the lookup reads the live row: +100 M),
because holding the file between calls would keep other processes out of it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # wait4 reports this child's own resource usage (RUSAGE_CHILDREN would be the maximum
    # over every child so far)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {err[-500:]}")
    # ru_maxrss is in KiB on Linux, bytes on macOS
    rss = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return elapsed, usage.ru_utime + usage.ru_stime, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="cold processes per case (>= 5)")
    args = parser.parse_args()
    runs = max(5, args.runs)
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "startup.duckdb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTVER_")}
        env["PYTHONPATH"] = str(ROOT)  # this checkout, not an installed promptver
        setup = (
            "from promptver import Workspace\n"
            f"ws = Workspace.open({db!r})\n"
            "ws.templates.create('qa-basic', 'Answer {question} using {context}.', author='b')\n"
            "ws.deployments.deploy('qa-basic', '1.0.0', 'production', author='b')\n"
            "ws.close()\n"
        )
        subprocess.run([py, "-c", setup], env=env, check=True, cwd=tmp)
        get_prompt = (
            "from promptver import Workspace\n"
            f"ws = Workspace.open({db!r})\n"
            "print(ws.get_prompt('qa-basic', 'production').text(question='q', context='c'))\n"
        )
        cases = {
            'baseline: python -c "import duckdb, pydantic, yaml"': (
                [py, "-c", "import duckdb, pydantic, yaml"],
                None,
            ),
            "promptver --help": ([py, "-m", "promptver", "--help"], 1.5),
            "promptver --db X template list": (
                [py, "-m", "promptver", "--db", db, "template", "list"],
                1.5,
            ),
            "Workspace.open(X).get_prompt(...).text(...)": ([py, "-c", get_prompt], 2.0),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        rss: dict[str, list[float]] = {name: [] for name in cases}
        for argv, _ in cases.values():  # warm the file cache once, unmeasured
            run_once(argv, env)
        for _ in range(runs):
            for name, (argv, _) in cases.items():
                t, c, m = run_once(argv, env)
                times[name].append(t)
                cpu[name].append(c)
                rss[name].append(m)
    base = statistics.median(next(iter(times.values())))
    base_cpu = statistics.median(next(iter(cpu.values())))
    print(f"{runs} cold processes per case, interleaved; medians (CPU: user + system, which a")
    print("busy machine inflates less than wall time)\n")
    print(f"{'case':<48} {'wall':>8} {'ratio':>6} {'CPU':>8} {'ratio':>6} {'peak RSS':>9}  target")
    for name, (_, target) in cases.items():
        med = statistics.median(times[name])
        ratio = med / base
        med_cpu = statistics.median(cpu[name])
        peak = max(rss[name])
        if target is None:
            verdict = ""
        else:
            ok = ratio <= target and (not name.startswith("Workspace") or peak <= 90)
            limit = f"<= {target}x" + (", <= 90 MiB" if name.startswith("Workspace") else "")
            verdict = f"{limit}: {'OK' if ok else 'MISSED'}"
        print(
            f"{name:<48} {med * 1000:>6.0f}ms {ratio:>5.2f}x {med_cpu * 1000:>6.0f}ms "
            f"{med_cpu / base_cpu:>5.2f}x {peak:>6.1f}MiB  {verdict}"
        )


if __name__ == "__main__":
    main()

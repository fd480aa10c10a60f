"""Page speed at scale: every screen's script run on the demo plus 1,000,000 events.

Each screen runs under Streamlit's AppTest in this process, as the server would run it:

- **cold**: the data caches emptied first (what the first visitor after a write waits for;
  the workspace itself stays cached, as it does for the server's lifetime);
- **warm**: the same session running the script again, as after any click or keystroke, several
  times; the median and the worst are printed (target: ≤ 1 s each).

The baseline beside each warm figure is the cold run of the same screen, so the ratio says what
the caches (keyed by the database's data version, see ``ui/common.py::cached``) buy.

The database is built once under ``benchmarks/.data/`` (``promptver demo --events N``: the demo
workspace and N more events) and reused; ``--rebuild`` makes it again.

Run: ``python benchmarks/bench_pages.py`` (``--events N``, ``--runs K``, ``--rebuild``,
``--only home,trends``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)

SCREENS = [
    ("Home", "pages/home.py"),
    ("Templates", "pages/templates.py"),
    ("History & Diff", "pages/history.py"),
    ("Deployments", "pages/deployments.py"),
    ("Experiments", "pages/experiments.py"),
    ("Metrics", "pages/metrics.py"),
    ("Trends", "pages/trends.py"),
    ("Alerts", "pages/alerts.py"),
]
TARGET = 1.0


def database(events: int, rebuild: bool) -> Path:
    """The benchmark database: the demo and ``events`` more, built once and reused while it is
    fresh (its newest event less than a day old, so windows like "last 24 hours" hold data)."""
    from promptver import Workspace
    from promptver.demo import build_demo
    from promptver.metrics.demo import add_bulk_events
    from promptver.versioning import utcnow

    folder = ROOT / "benchmarks" / ".data"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"pages_{events}.duckdb"
    if path.exists() and not rebuild:
        ws = Workspace.open(path)
        summary = ws.metrics.summary()
        ws.close()
        if summary.events >= events and summary.last and utcnow() - summary.last < timedelta(1):
            print(f"reusing {path} ({summary.events:,} events)")
            return path
    for p in (path, Path(f"{path}.wal")):
        p.unlink(missing_ok=True)
    t = time.perf_counter()
    ws = Workspace.open(path)
    build_demo(ws)
    built = time.perf_counter() - t
    add_bulk_events(ws, events)
    total = ws.metrics.summary().events
    ws.close()
    print(
        f"built {path}: the demo in {built:.1f} s, then {events:,} events "
        f"({total:,} in all) in {time.perf_counter() - t - built:.1f} s"
    )
    return path


def run_like_the_server() -> None:
    """AppTest resets Streamlit's "pages folder" flag before every run and would then rerun the
    page alone, skipping app.py; the server does not (tests/conftest.py does the same)."""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init  # type: ignore[method-assign]


def timed(at) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - t
    if at.exception:
        raise SystemExit(f"the screen raised: {at.exception[0].value}")
    return elapsed


def measure(page: str, runs: int) -> tuple[float, list[float]]:
    import streamlit as st
    from streamlit.logger import set_log_level
    from streamlit.testing.v1 import AppTest

    set_log_level("error")  # AppTest's bare-mode warnings, once per screen, hide the table
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()  # the default screen, so that the page below runs as a navigation would
    st.cache_data.clear()
    at.switch_page(page)
    cold = timed(at)
    warm = [timed(at) for _ in range(runs)]
    return cold, warm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="events beyond the demo's")
    ap.add_argument("--runs", type=int, default=5, help="warm runs per screen")
    ap.add_argument("--rebuild", action="store_true", help="build the database again")
    ap.add_argument("--only", default="", help="comma-separated screen files, e.g. home,trends")
    args = ap.parse_args()
    path = database(args.events, args.rebuild)
    os.environ["PROMPTVER_DB"] = str(path)
    run_like_the_server()
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    screens = [s for s in SCREENS if not only or Path(s[1]).stem in only]
    measure(screens[0][1], 0)  # imports and the workspace, paid once by the server
    print(f"\n{'screen':<16}{'cold':>9}{'warm median':>14}{'warm worst':>13}{'cold/warm':>11}")
    worst_median = 0.0
    slow: list[str] = []
    for title, page in screens:
        cold, warm = measure(page, args.runs)
        median, worst = statistics.median(warm), max(warm)
        worst_median = max(worst_median, median)
        if worst > TARGET:
            slow.append(title)
        print(
            f"{title:<16}{cold:>8.3f}s{median:>13.3f}s{worst:>12.3f}s"
            f"{cold / median if median else float('inf'):>10.1f}×"
        )
    print(
        f"\nslowest warm median {worst_median:.3f} s; target ≤ {TARGET:g} s per screen: "
        + ("met" if not slow else f"missed by {', '.join(slow)}")
    )


if __name__ == "__main__":
    main()

"""Worker processes for the reliability tests (crash and concurrency).

Run as ``python -m tests.reliability_helpers ROLE …`` from the repository root. Every worker
prints one line per step on stdout (``ready``, ``begin K``, ``done K …``) and flushes it, so the
test that started it knows what had finished when it killed it, and writes the outcome of every
operation it tried (``ok`` with what was written, or the error's type and message) as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: rows per CSV in the crash test of imports (about 0.2 s of import each)
CRASH_IMPORT_ROWS = 100_000
#: events per tracking batch in the crash test of flushes
CRASH_TRACK_ROWS = 5_000


# ---- data -----------------------------------------------------------------------------------


def events_csv(template: str, prefix: str, n: int, *, users: int = 200) -> str:
    """A valid metric-events CSV whose event ids all start with ``prefix-``."""
    lines = ["timestamp,template,user_id,event_id,latency_ms,success,quality_score"]
    for i in range(n):
        lines.append(
            f"2026-01-0{1 + i % 9}T{i % 24:02d}:{i % 60:02d}:00Z,{template},u{i % users},"
            f"{prefix}-{i},{100 + i % 900},{i % 2},{(i % 10) / 10}"
        )
    return "\n".join(lines) + "\n"


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _arm(point: str | None) -> None:
    """Arm the crash-test hook of ``promptver.store.db`` for the operations that follow."""
    if point:
        from promptver.store import db as dbmod

        dbmod.CRASH_POINT = point


# ---- crash workers --------------------------------------------------------------------------


def crash_import(ws: Any, start: int, point: str | None) -> None:
    files = []
    for k in range(start, start + 4):
        path = Path(f"{ws.path}.crash-{k}.csv")
        path.write_text(events_csv("crash", f"imp{k}", CRASH_IMPORT_ROWS))
        files.append((k, path))
    _arm(point)
    _say("ready")
    for k, path in files:
        _say(f"begin {k}")
        r = ws.metrics.import_csv(path, file_name=f"crash-{k}.csv", author="crash")
        _say(f"done {k} {r.import_id}")


def crash_merge(ws: Any, start: int, point: str | None) -> None:
    """Each round: a branch, a commit on it and one on main, then a three-way merge (the hook,
    when armed, stops the merge's own transaction)."""
    if not point:
        _say("ready")
    for k in range(start, start + 200):
        _say(f"begin {k}")
        head = ws.templates.get("crash")
        lines = head.content.split("\n")
        ws.versions.create_branch("crash", f"b{k}", author="crash")
        ws.templates.update(
            "crash", "\n".join([f"first {k}", *lines[1:]]), branch=f"b{k}", author="crash"
        )
        ws.templates.update("crash", "\n".join([*lines[:-1], f"last {k}"]), author="crash")
        if point:
            _arm(point)
            _say("ready")
        r = ws.versions.merge("crash", f"b{k}", message=f"merge {k}", author="crash")
        _say(f"done {k} {r.commit} {r.version}")


def crash_deploy(ws: Any, start: int, point: str | None) -> None:
    _arm(point)
    _say("ready")
    for k in range(start, start + 2000):
        live = ws.deployments.history("crash", "production", limit=1)[0].version
        _say(f"begin {k}")
        d = ws.deployments.deploy(
            "crash", "1.0.0" if live == "1.1.0" else "1.1.0", "production", note=f"n{k}"
        )
        _say(f"done {k} {d.id} {d.version}")


def crash_track(ws: Any, start: int, point: str | None) -> None:
    p = ws.get_prompt("crash", "production")
    _arm(point)
    _say("ready")
    for k in range(start, start + 200):
        for i in range(CRASH_TRACK_ROWS):
            ws.track(p, user_id=f"u{i % 50}", event_id=f"trk{k}-{i}", latency_ms=i % 700)
        _say(f"begin {k}")
        ws.metrics.flush()
        _say(f"done {k}")


CRASH_WORKERS: dict[str, Callable[[Any, int, str | None], None]] = {
    "import": crash_import,
    "merge": crash_merge,
    "deploy": crash_deploy,
    "track": crash_track,
}


def run_crash(kind: str, db: str, start: int, point: str | None) -> None:
    from promptver import Settings, Workspace

    # explicit flushes only: one flush is one batch, one transaction
    settings = Settings().with_overrides(
        performance_tracking__batch_size=10_000_000, performance_tracking__flush_interval=3600
    )
    ws = Workspace.open(db, settings=settings)
    CRASH_WORKERS[kind](ws, start, point)
    _say("finished")
    os._exit(0)  # never reached in a crash round: the test kills the process first


# ---- concurrency stress: outcomes -----------------------------------------------------------

STRESS_TEMPLATES = ("shared", "api-t", "cli-t", "dash-t")
#: refusals that are fine under contention (and the only ones): the type names of the errors
EXPECTED_REFUSALS = ("DatabaseBusy", "Conflict")


class Recorder:
    """Appends one JSON line per operation to ``OUT/<actor>.jsonl`` (thread-safe)."""

    def __init__(self, out: Path, actor: str) -> None:
        self.path = out / f"{actor}.jsonl"
        self.actor = actor
        self._lock = threading.Lock()
        #: set by the first successful write (the test checks that every actor got one through)
        self.wrote = threading.Event()

    def write(self, op: str, ok: bool, **fields: Any) -> None:
        rec = {"actor": self.actor, "op": op, "ok": ok, "at": time.time(), **fields}
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        if ok and op not in ("tracked", "finished"):
            self.wrote.set()

    def attempt(self, op: str, fn: Callable[[], dict[str, Any]], **fields: Any) -> bool:
        """Run ``fn``; record what it wrote, or the promptver error that refused it.

        Anything else (a bug) is recorded with its traceback and fails the test later.
        """
        from promptver.errors import PromptverError

        fields["started"] = time.time()
        try:
            result = fn()
        except PromptverError as exc:
            self.write(op, False, error_type=type(exc).__name__, message=str(exc), **fields)
            return False
        except Exception as exc:  # recorded, never swallowed: the test fails on it
            self.write(
                op,
                False,
                error_type=type(exc).__name__,
                message=str(exc),
                traceback=traceback.format_exc(),
                **fields,
            )
            return False
        self.write(op, True, **fields, **result)
        return True


#: how long an actor may go on past the deadline until its first write gets through (a loaded
#: machine can keep three dashboard sessions from saving anything in the planned seconds)
GRACE = 120.0


def _loop(
    deadline: float,
    rng: random.Random,
    pause: tuple[float, float],
    wrote: threading.Event | None = None,
) -> Any:
    """Iterations until ``deadline``, and on (at most :data:`GRACE` s) until ``wrote`` is set."""
    i = 0
    while time.monotonic() < deadline or (
        wrote is not None and not wrote.is_set() and time.monotonic() < deadline + GRACE
    ):
        yield i
        i += 1
        time.sleep(rng.uniform(*pause))


# ---- concurrency stress: an application using the Python API --------------------------------


def api_actor(db: str, out: Path, seconds: float) -> None:
    """Several threads of one application: serving and tracking, edits, deployments, imports."""
    from promptver import Settings, Workspace

    settings = Settings.load().with_overrides(
        performance_tracking__batch_size=200,
        performance_tracking__flush_interval=1.0,
        cache__ttl_seconds=2.0,
    )
    ws = Workspace.open(db, settings=settings)
    rec = Recorder(out, "api")
    deadline = time.monotonic() + seconds
    tracked: list[str] = []

    def serve() -> None:
        rng = random.Random(1)
        for i in _loop(deadline, rng, (0.005, 0.02)):

            def one(i: int = i) -> dict[str, Any]:
                p = ws.get_prompt("shared", "production", user_id=f"u{i % 97}")
                p.text(q="?")
                ws.track(p, event_id=f"api-ev-{i}", latency_ms=i % 500, success=i % 3 > 0)
                tracked.append(f"api-ev-{i}")
                return {"version": p.version}

            if i % 10 == 0:  # one record in ten: the rest only feed ``tracked``
                rec.attempt("get_prompt_track", one)
            else:
                try:
                    one()
                except Exception as exc:
                    rec.write(
                        "get_prompt_track", False, error_type=type(exc).__name__, message=str(exc)
                    )

    def edit() -> None:
        rng = random.Random(2)
        for i in _loop(deadline, rng, (0.3, 0.8)):
            name = "shared" if i % 3 == 0 else "api-t"
            content = f"API edit {i} of {name}: answer {{q}}"

            def one(name: str = name, content: str = content) -> dict[str, Any]:
                t = ws.templates.update(name, content, author="api", message="api edit")
                return {"commit": t.commit, "version": t.version}

            rec.attempt("template_update", one, template=name, content=content)

    def deploy() -> None:
        rng = random.Random(3)
        for _ in _loop(deadline, rng, (0.3, 0.8)):

            def one() -> dict[str, Any]:
                live = ws.deployments.history("api-t", "development", limit=1)
                versions = [c.version for c in ws.deployments.versions_of("api-t")]
                choice = next(v for v in versions if not live or v != live[0].version)
                d = ws.deployments.deploy("api-t", choice, "development", author="api")
                return {"deployment_id": d.id, "version": d.version}

            rec.attempt("deploy", one, template="api-t", environment="development")

    def imports() -> None:
        rng = random.Random(4)
        for i in _loop(deadline, rng, (0.5, 1.0)):
            path = Path(f"{db}.api-{i}.csv")
            path.write_text(events_csv("api-t", f"api-imp{i}", 300))

            def one(path: Path = path) -> dict[str, Any]:
                r = ws.metrics.import_csv(path, file_name=path.name, author="api")
                return {"import_id": r.import_id, "rows": r.rows_imported}

            rec.attempt("import", one, file=path.name)

    threads = [threading.Thread(target=f, name=f.__name__) for f in (serve, edit, deploy, imports)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.attempt("close", lambda: ws.close() or {})
    rec.write("tracked", True, event_ids=tracked)


# ---- concurrency stress: the dashboard (AppTest sessions in one process) --------------------


def _plain(text: str) -> str:
    """Markdown-escaped text back to plain text."""
    return re.sub(r"\\(.)", r"\1", text)


def _page_outcome(at: Any) -> tuple[list[str], list[str]]:
    if at.exception:
        raise RuntimeError("exception box: " + "; ".join(str(e.value) for e in at.exception))
    return [_plain(s.value) for s in at.success], [_plain(e.value) for e in at.error]


class DashboardRefused(Exception):
    """The page showed an error box instead of doing the write."""


def _ready(at: Any) -> Any:
    """After a step: an exception box is a bug; a "database busy" box (the file was held by
    another process for longer than the wait) refuses the whole operation."""
    _ok, errors = _page_outcome(at)
    busy = [e for e in errors if "database busy" in e]
    if busy:
        raise DashboardRefused(busy[0])
    return at


def _refusal(errors: list[str]) -> dict[str, Any]:
    raise DashboardRefused(" | ".join(errors))


def dashboard_actor(db: str, out: Path, seconds: float, sessions: int = 3) -> None:
    """Three browser sessions of one dashboard server, each a user clicking through a screen."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    original = PagesManager.__init__

    def init(self, *args, **kwargs):  # type: ignore[no-untyped-def]  # as tests/conftest.py
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init  # type: ignore[method-assign]
    # AppTest installs a mock Streamlit runtime as a process-wide singleton for each run and
    # removes it afterwards, so two runs at the same moment break each other: the sessions take
    # turns running scripts (and interleave between runs, sharing the cached Workspace as on a
    # real server). Threads writing at the same moment are the application actor's part.
    run_lock = threading.Lock()
    original_run = AppTest._run

    def serialized_run(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        with run_lock:
            return original_run(self, *args, **kwargs)

    AppTest._run = serialized_run  # type: ignore[method-assign]
    os.environ["PROMPTVER_DB"] = db
    rec = Recorder(out, "dashboard")
    deadline = time.monotonic() + seconds
    app = str(ROOT / "app.py")

    def attempt(op: str, fn: Callable[[], dict[str, Any]], **fields: Any) -> None:
        fields["started"] = time.time()
        try:
            result = fn()
        except DashboardRefused as exc:
            rec.write(op, False, error_type="page_error", message=str(exc), **fields)
        except Exception as exc:
            rec.write(
                op,
                False,
                error_type=type(exc).__name__,
                message=str(exc),
                traceback=traceback.format_exc(),
                **fields,
            )
        else:
            rec.write(op, True, **fields, **result)

    def editor() -> None:
        rng = random.Random(11)
        at = AppTest.from_file(app, default_timeout=120)
        at.switch_page("pages/templates.py").run()
        for i in _loop(deadline, rng, (0.1, 0.4), rec.wrote):
            name = "shared" if i % 2 else "dash-t"
            content = f"Dashboard edit {i} of {name}: answer {{q}}"

            def one(name: str = name, content: str = content) -> dict[str, Any]:
                _ready(at.run())  # the page as the user finds it after the pause
                _ready(at.selectbox(key="tpl_pick").select(name).run())
                if any(b.key == "tpl_reload" for b in at.button):  # changed elsewhere meanwhile
                    _ready(at.button(key="tpl_reload").click().run())
                area = next(a for a in at.text_area if str(a.key).startswith("tpl_content_"))
                _ready(area.input(content).run())
                at.button(key="tpl_save").click().run()
                ok, errors = _page_outcome(at)
                saved = [m for m in ok if m.startswith(f"Saved {name} ")]
                if not saved:
                    _refusal(errors or ["no confirmation shown"])
                m = re.search(r"\(commit ([0-9a-f]{10})\)", saved[0])
                assert m, saved
                return {"commit_prefix": m.group(1)}

            attempt("template_update", one, template=name, content=content)

    def deployer() -> None:
        rng = random.Random(12)
        at = AppTest.from_file(app, default_timeout=120)
        at.switch_page("pages/deployments.py").run()
        for _ in _loop(deadline, rng, (0.1, 0.4), rec.wrote):

            def one() -> dict[str, Any]:
                _ready(at.run())
                _ready(at.selectbox(key="dep_template").select("dash-t").run())
                box = at.selectbox(key="dep_version_dash-t")
                for version in list(box.options)[:2]:
                    _ready(at.selectbox(key="dep_version_dash-t").select(version).run())
                    button = [b for b in at.button if b.key == "dep_deploy"]
                    if button and not button[0].disabled:
                        break
                else:
                    _refusal([e for e in _page_outcome(at)[1]] or ["nothing to deploy"])
                at.button(key="dep_deploy").click().run()
                ok, errors = _page_outcome(at)
                done = [m for m in ok if m.startswith("Deployed dash-t ")]
                if not done:
                    _refusal(errors or ["no confirmation shown"])
                m = re.search(r"Deployed dash-t (\S+) to (\S+) \(#(\d+)\)", done[0])
                assert m, done
                return {
                    "version": m.group(1),
                    "environment": m.group(2),
                    "deployment_id": int(m.group(3)),
                }

            attempt("deploy", one, template="dash-t")

    def importer() -> None:
        rng = random.Random(13)
        at = AppTest.from_file(app, default_timeout=120)
        at.switch_page("pages/metrics.py").run()
        for i in _loop(deadline, rng, (0.2, 0.5), rec.wrote):
            name = f"dash-{i}.csv"
            data = events_csv("dash-t", f"dash-imp{i}", 200).encode()

            def one(name: str = name, data: bytes = data) -> dict[str, Any]:
                _ready(at.run())
                _ready(at.file_uploader(key="met_upload").set_value((name, data, "text/csv")).run())
                buttons = [b for b in at.button if b.key == "met_import"]
                if not buttons:
                    _refusal(_page_outcome(at)[1] or ["the check did not finish"])
                buttons[0].click().run()
                ok, errors = _page_outcome(at)
                captions = [_plain(c.value) for c in at.caption if "import id" in c.value]
                if not captions:
                    _refusal(errors or ["no confirmation shown"])
                m = re.search(r"import id `([^`]+)`", captions[0])
                assert m, captions
                return {"import_id": m.group(1).strip(), "rows": 200}

            attempt("import", one, file=name)

    roles = [editor, deployer, importer][:sessions]
    threads = [threading.Thread(target=f, name=f.__name__) for f in roles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.write("finished", True)


# ---- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability_helpers")
    sub = parser.add_subparsers(dest="role", required=True)
    c = sub.add_parser("crash")
    c.add_argument("kind", choices=sorted(CRASH_WORKERS))
    c.add_argument("db")
    c.add_argument("--start", type=int, default=0)
    c.add_argument("--point", choices=["before-commit", "after-commit"])
    for role in ("api", "dashboard"):
        a = sub.add_parser(role)
        a.add_argument("db")
        a.add_argument("out", type=Path)
        a.add_argument("seconds", type=float)
    args = parser.parse_args(argv)
    if args.role == "crash":
        run_crash(args.kind, args.db, args.start, args.point)
    elif args.role == "api":
        api_actor(args.db, args.out, args.seconds)
    else:
        dashboard_actor(args.db, args.out, args.seconds)


if __name__ == "__main__":
    main()


# ---- hostile input: a workspace whose every free-text field carries XSS payloads -------------

#: markers inside the payloads: a marker seen in the page must keep its Markdown around it
XSS_MARKERS = {"XSSRED": ":red[XSSRED]", "XSSLINK": "[XSSLINK]", "XSSBOLD": "**XSSBOLD**"}
XSS_PIECES = [
    '<img src=x onerror="window.__xss=1">',
    "<script>window.__xss=2</script>",
    "[XSSLINK](javascript:window.__xss=3)",
    "![XSSIMG](http://xss.invalid/i.png)",
    ":red[XSSRED]",
    "$\\LaTeX XSSTEX$",
    '<a href="javascript:window.__xss=4">XSSA</a>',
    "**XSSBOLD**",
    "<iframe src=javascript:window.__xss=6></iframe>",
]
#: every payload at once, for fields that take up to 1000 characters
XSS_LONG = " ".join(XSS_PIECES)
#: the most dangerous ones within 100 characters (names), and within 50 (categories, tags)
XSS_100 = "<img src=x onerror=window.__xss=1>[XSSLINK](javascript:window.__xss=3):red[XSSRED]"
XSS_50 = "<img src=x onerror=window.__xss=1>:red[XSSRED]"
XSS_IMAGE_100 = "![XSSIMG](http://xss.invalid/v.png)<script>window.__xss=2</script>**XSSBOLD**"
#: payload fields this seeding fills (RELIABILITY.md counts them)
XSS_FIELDS = [
    "template description",
    "template category",
    "template tags",
    "template content",
    "variable schema description and default",
    "commit messages (main and a branch)",
    "commit author",
    "deployment notes",
    "forced-deployment reason",
    "evidence-override reason",
    "deployment author",
    "experiment names",
    "experiment descriptions",
    "experiment hypotheses",
    "variant names",
    "experiment salt",
    "stop reason",
    "experiment author",
    "import file name",
    "import author",
    "event user ids",
]


def xss_settings_yaml() -> str:
    """Settings for the hostile workspace: rules that make deployments carry reasons."""
    return (
        "deployment:\n"
        "  rules:\n"
        "    staging: {require_previous: true}\n"
        "    production: {require_experiment_win: true}\n"
    )


def seed_hostile_workspace(db: Path, settings_file: Path) -> dict[str, str]:
    """Fill ``db`` with payloads in every user-written field; returns the ids pages need."""
    import csv
    import io

    from promptver import Settings, Workspace

    settings_file.write_text(xss_settings_yaml())
    settings = Settings.load(settings_file)
    ws = Workspace.open(db, settings=settings)
    who = XSS_100
    meta = {"variables": {"q": {"description": XSS_LONG, "default": XSS_100}}}
    ws.templates.create(
        "xss-template",
        f"{XSS_LONG}\nQuestion: {{q}}",
        description=XSS_LONG,
        category=XSS_50,
        tags=[XSS_50, "[XSSLINK](javascript:x)", "![i](http://xss.invalid/t.png)"],
        metadata=meta,
        author=who,
        message=XSS_LONG,
    )
    ws.templates.update(
        "xss-template", f"{XSS_LONG}\nQuestion, shorter: {{q}}", author=who, message=XSS_LONG
    )
    ws.versions.create_branch("xss-template", "xss-branch", from_ref="1.0.0", author=who)
    ws.templates.update(
        "xss-template",
        f"{XSS_LONG}\nBranch question: {{q}} {XSS_100}",
        branch="xss-branch",
        author=who,
        message=XSS_LONG,
    )
    ws.deployments.deploy("xss-template", "1.0.0", "development", note=XSS_LONG, author=who)
    ws.deployments.deploy("xss-template", "1.1.0", "development", note=XSS_LONG, author=who)
    ws.deployments.deploy(
        "xss-template", "1.0.0", "staging", note=XSS_LONG, author=who, force=True, reason=XSS_LONG
    )
    ws.deployments.deploy("xss-template", "1.0.0", "production", note=XSS_LONG, author=who)
    ws.deployments.deploy(
        "xss-template", "1.1.0", "production", note=XSS_LONG, author=who, reason=XSS_LONG
    )

    def spec(name: str, environment: str) -> dict[str, Any]:
        return {
            "name": name,
            "template": "xss-template",
            "environment": environment,
            "description": XSS_LONG,
            "hypothesis": XSS_LONG,
            "salt": XSS_100,
            "variants": [
                {"name": XSS_100, "ref": "1.0.0", "weight": 50},
                {"name": XSS_IMAGE_100, "ref": "xss-branch", "weight": 50},
            ],
            "metrics": ["quality_score", "latency_ms"],
            "minimum_sample_size": 10,
        }

    stopped = ws.experiments.create(spec(XSS_IMAGE_100, "staging"), author=who)
    ws.experiments.start(stopped.id, author=who)
    running = ws.experiments.create(spec(XSS_100, "production"), author=who)
    ws.experiments.start(running.id, author=who)
    draft = ws.experiments.create(spec(XSS_50 + " draft", "development"), author=who)

    from promptver.versioning import utcnow

    now = utcnow().isoformat()  # inside both experiments' windows (they started just now)
    rows = io.StringIO()
    w = csv.writer(rows)
    w.writerow(
        ["timestamp", "template", "user_id", "experiment", "variant", "quality_score", "latency_ms"]
    )
    for exp in (stopped, running):
        for i in range(60):
            variant = exp.variants[i % 2].name
            w.writerow(
                [
                    now,
                    "xss-template",
                    f"{XSS_50}-{i}",
                    exp.id,
                    variant,
                    (i % 10) / 10,
                    100 + i,
                ]
            )
    path = Path(f"{db}.events.csv")
    path.write_text(rows.getvalue(), encoding="utf-8")
    ws.metrics.import_csv(path, file_name=XSS_LONG[:200], author=who)
    ws.experiments.stop(stopped.id, reason=XSS_LONG[:500], author=who)
    # an offline evaluation: hostile dataset, item ids and outputs, with human labels
    evals = io.StringIO()
    w = csv.writer(evals)
    w.writerow(["dataset", "item_id", "template", "version", "output", "quality", "quality_human"])
    for i in range(20):
        for version, shift in (("1.0.0", 0.0), ("xss-branch", 0.05 if i % 3 else -0.1)):
            q = 0.3 + (i % 5) / 10 + shift
            w.writerow(
                [
                    XSS_50,
                    f"{XSS_100}-{i}",
                    "xss-template",
                    version,
                    f"{XSS_LONG} {version} {i}",
                    round(q, 3),
                    round(q - 0.1, 3) if i < 12 else "",
                ]
            )
    path = Path(f"{db}.evals.csv")
    path.write_text(evals.getvalue(), encoding="utf-8")
    ws.evals.import_csv(path, file_name=XSS_LONG[:200], author=who)
    ws.mark("seeded", "xss")
    ws.close()
    return {"running": running.id, "stopped": stopped.id, "draft": draft.id}

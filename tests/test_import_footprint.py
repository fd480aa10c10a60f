"""What the light paths import: module names in ``sys.modules``, never timings.

An application that only serves prompts (``import promptver``, ``Workspace.open``,
``get_prompt(...).text()``, ``track`` and its flush) and the CLI's parsing, ``--help`` and its
everyday commands must not load the statistics stack, the charts, the reports or the web server
(issue 17: they cost seconds and a hundred MiB per process). Each case runs in a fresh
interpreter on a copy of one prepared database and reports which of the heavy modules ended up
in ``sys.modules``. The heavy work itself (results, trends, reports, serve) imports them inside
the functions that need them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: modules (and their submodules) the light paths must not load
HEAVY = (
    "scipy",
    "statsmodels",
    "pandas",
    "numpy",
    "altair",
    "vl_convert",
    "fastapi",
    "uvicorn",
    "httpx",
    "streamlit",
    "promptver.reports",
    "promptver.charts",
    "promptver.analysis",
    "promptver.stats",
    "promptver.trends",
    "promptver.api",
)

#: runs a case (``sys.argv[1]``) and prints what it returned and which heavy modules it loaded
PROBE = textwrap.dedent(
    """
    import contextlib, io, json, sys
    HEAVY = {heavy!r}
    code = sys.argv[1]
    out = io.StringIO()
    scope = {{}}
    with contextlib.redirect_stdout(out):
        exec(code, scope)
    loaded = sorted(
        m for m in list(sys.modules)
        if any(m == h or m.startswith(h + ".") for h in HEAVY)
    )
    print(json.dumps({{"result": scope.get("result"), "stdout": out.getvalue(), "loaded": loaded}}))
    """
).format(heavy=HEAVY)


def cli(*args: str) -> str:
    """A case that runs the CLI in-process (as ``promptver ARGS`` does) and returns its exit code."""
    return textwrap.dedent(
        f"""
        from promptver.cli import main
        try:
            result = main({list(args)!r})
        except SystemExit as exc:  # --help
            result = exc.code
        """
    )


def run_case(code: str, db: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTVER_")}
    env.update(PYTHONPATH=str(ROOT), PROMPTVER_DB=str(db), PROMPTVER_AUTHOR="tester")
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=db.parent,  # no promptver.yaml of the repository
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


EXPERIMENT = """\
name: concise-vs-control
template: qa-basic
environment: production
variants:
  - {name: control, ref: "1.0.0", weight: 50}
  - {name: concise, ref: concise-tone, weight: 50}
metrics: [quality_score]
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with two versions, a branch, deployments, a running experiment, an alert rule."""
    from promptver.cli import main

    base = tmp_path_factory.mktemp("footprint")
    db = base / "base.duckdb"
    (base / "experiment.yaml").write_text(EXPERIMENT)
    steps = [
        ["init"],
        ["template", "create", "qa-basic", "--content", "Answer {question} using {context}."],
        ["template", "update", "qa-basic", "--content", "Answer {question} from {context}."],
        ["branch", "create", "qa-basic", "concise-tone", "--from", "1.0.0"],
        [
            "template",
            "update",
            "qa-basic",
            "--branch",
            "concise-tone",
            "--content",
            "Brief: {question}",
        ],
        ["deploy", "qa-basic", "1.0.0", "--env", "staging"],
        ["deploy", "qa-basic", "1.0.0", "--env", "production"],
        ["deploy", "qa-basic", "1.1.0", "--env", "staging"],
        ["deploy", "qa-basic", "1.1.0", "--env", "production"],
        ["experiment", "create", "--file", str(base / "experiment.yaml")],
        ["experiment", "start", "concise-vs-control"],
        ["alerts", "add", "latency_avg", "gt", "1", "--window", "24h", "--min-events", "1"],
    ]
    for step in steps:
        assert main(["--db", str(db), *step]) == 0, step
    return db


@pytest.fixture
def db(prepared: Path, tmp_path: Path) -> Path:
    """A private copy of the prepared database (cases that write do not see each other)."""
    return Path(shutil.copy(prepared, tmp_path / "pv.duckdb"))


OPEN = "from promptver import Workspace\nws = Workspace.open()\n"

CASES = {
    "import promptver": ("import promptver\nresult = promptver.__version__", None),
    "Workspace.open": (OPEN + "result = ws.is_new", False),
    "get_prompt().text()": (
        OPEN + "result = ws.get_prompt('qa-basic', 'production').text(question='q', context='c')",
        "Answer q from c.",
    ),
    "get_prompt(user_id) in an experiment": (
        OPEN + "p = ws.get_prompt('qa-basic', 'production', user_id='u42')\n"
        "result = [p.variant, p.experiment_id is not None]",
        None,
    ),
    "track and flush (an alert rule listens)": (
        OPEN + "p = ws.get_prompt('qa-basic', 'production', user_id='u1')\n"
        "ws.track(p, latency_ms=820.0, success=True, quality_score=0.8, thumbs_up=1)\n"
        "written = ws.metrics.flush()\n"
        "fired = [a.value for a in ws.alerts.alerts()]\n"
        "ws.close()\n"
        "result = [written, fired]",
        [1, [820.0]],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_applications_import_only_what_they_use(name: str, db: Path) -> None:
    code, expected = CASES[name]
    got = run_case(code, db)
    assert got["loaded"] == [], f"{name} loaded {got['loaded']}"
    if expected is not None:
        assert got["result"] == expected
    if name.startswith("get_prompt(user_id)"):
        assert got["result"][0] in ("control", "concise") and got["result"][1] is True


CLI_CASES = [
    (["--help"], "template"),
    (["template", "list"], "qa-basic"),
    (["template", "show", "qa-basic", "--version", "1.0.0"], "using {context}"),
    (["template", "create", "other", "--content", "Hi {name}."], "created other 1.0.0"),
    (["template", "update", "qa-basic", "--content", "New {question} {context}"], "1.2.0"),
    (["template", "validate", "--content", "Hi {name"], None),
    (["render", "qa-basic", "--var", "question=q", "--var", "context=c"], "Answer q from c."),
    (
        [
            "render",
            "qa-basic",
            "--env",
            "production",
            "--user-id",
            "u42",
            "--var",
            "question=q",
            "--var",
            "context=c",
            # u42 lands in either arm (the salt is the experiment's random id) and the concise
            # arm has no {context}: not strict, so both arms render
            "--no-strict",
        ],
        None,
    ),
    (["log", "qa-basic"], "1.1.0"),
    (["--json", "log", "qa-basic"], '"version"'),
    (["branch", "create", "qa-basic", "other-tone", "--from", "1.1.0"], "other-tone"),
    (["branch", "list", "qa-basic"], "concise-tone"),
    (["diff", "qa-basic", "main", "concise-tone"], "Brief"),
    (["merge", "qa-basic", "concise-tone"], None),
    (["deploy", "qa-basic", "1.0.0", "--env", "staging", "--note", "back"], "deployed"),
    (["rollback", "qa-basic", "--env", "staging"], "1.0.0"),
    (["deployments", "qa-basic", "--env", "production"], "1.1.0"),
    (["route", "concise-vs-control", "u42"], "bucket"),
]


@pytest.mark.parametrize(("args", "shows"), CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
def test_cli_commands_import_only_what_they_use(
    args: list[str], shows: str | None, db: Path
) -> None:
    got = run_case(cli(*args), db)
    assert got["loaded"] == [], f"promptver {' '.join(args)} loaded {got['loaded']}"
    if args[0] == "template" and args[1] == "validate":
        assert got["result"] == 1  # an unclosed placeholder is an error
    elif args[0] == "merge":
        assert got["result"] in (0, 1)  # merged, or a conflict with its hunks
    else:
        assert got["result"] == 0
    if shows is not None:
        assert shows in got["stdout"]


def test_every_command_parses_and_shows_help_without_heavy_imports(db: Path) -> None:
    """``COMMAND --help`` and ``COMMAND ACTION --help`` for every command in one process: parsing
    the heavy commands (report, results, trends, serve …) loads nothing either."""
    code = textwrap.dedent(
        """
        import argparse
        from promptver.cli.main import build_parser
        parser = build_parser()
        lines = []
        def walk(p, prefix):
            for action in p._actions:
                if isinstance(action, argparse._SubParsersAction):
                    for name, sub in action.choices.items():
                        lines.append(sub.format_help())
                        walk(sub, prefix + [name])
        walk(parser, [])
        parser.parse_args(["report", "x", "--format", "html", "--output", "r.html"])
        parser.parse_args(["experiment", "results", "x", "--metric", "quality_score"])
        result = len(lines)
        """
    )
    got = run_case(code, db)
    assert got["loaded"] == []
    assert got["result"] > 30  # every command and action was formatted


def test_heavy_work_still_loads_its_modules_when_asked(db: Path) -> None:
    """The probe sees imports (the absence above is not an artefact of how it looks)."""
    got = run_case(OPEN + "ws.trends\nresult = 1", db)
    assert "numpy" in got["loaded"] and "promptver.trends" in got["loaded"]


# ---- the tracking write without pandas -----------------------------------------------------


def _tracked_rows(path: Path, monkeypatch: pytest.MonkeyPatch, way: str) -> list[tuple]:
    """Track one batch with duplicate ids, custom metrics and missing values, written ``way``."""
    from promptver import Settings, Workspace
    from promptver.store import metrics as msql

    if way != "one list statement":
        monkeypatch.setattr(msql, "LIST_BATCH", 3)  # 8 events: more than one statement's worth
    if way == "list statements of 3":
        monkeypatch.delitem(sys.modules, "pandas", raising=False)  # as in an application
    else:
        import pandas  # noqa: F401  (loaded, as in the dashboard)
    settings = Settings().with_overrides(
        performance_tracking__batch_size=1000, performance_tracking__flush_interval=3600
    )
    with Workspace.open(path, settings=settings) as ws:
        ws.templates.create("qa-basic", "Answer {question}.", author="ana")
        ws.deployments.deploy("qa-basic", "1.0.0", "staging", author="ana")
        p = ws.get_prompt("qa-basic", "staging", user_id="u1")
        ws.track(p, latency_ms=1, event_id="a", thumbs_up=1)
        ws.track(p, latency_ms=2, event_id="b", tokens_in=7, tokens_out=3)
        ws.track(p, latency_ms=3, success=False, error=True)
        ws.track(p, latency_ms=4, event_id="a")  # the same id again, in the next statement
        ws.track(p, quality_score=0.5, cost_usd=0.25, user_id="u2", event_id="c")
        ws.track(p, latency_ms=6, event_id="c", nps=9.5)  # again, in the same statement
        ws.track(p, latency_ms=7, event_id="d")
        ws.track(p, latency_ms=8)
        assert ws.metrics.flush() == 6
        ws.track(p, latency_ms=9, event_id="b")  # already stored
        assert ws.metrics.flush() == 0
        with ws.db.read() as con:
            return con.execute(
                "SELECT event_id, user_id, latency_ms, success, error, quality_score, cost_usd,"
                " tokens_in, tokens_out, custom, version FROM metric_events"
                " ORDER BY latency_ms NULLS FIRST"
            ).fetchall()


def test_tracked_events_are_written_alike_by_list_parameters_and_by_pandas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ways = ["one list statement", "list statements of 3", "pandas frame"]
    got = {}
    for i, way in enumerate(ways):
        with monkeypatch.context() as m:
            got[way] = _tracked_rows(tmp_path / f"{i}.duckdb", m, way)
    expected = [
        ("c", "u2", None, None, None, 0.5, 0.25, None, None, None, "1.0.0"),
        ("a", "u1", 1.0, None, None, None, None, None, None, {"thumbs_up": 1.0}, "1.0.0"),
        ("b", "u1", 2.0, None, None, None, None, 7, 3, None, "1.0.0"),
        (None, "u1", 3.0, False, True, None, None, None, None, None, "1.0.0"),
        ("d", "u1", 7.0, None, None, None, None, None, None, None, "1.0.0"),
        (None, "u1", 8.0, None, None, None, None, None, None, None, "1.0.0"),
    ]
    for way in ways:
        assert got[way] == expected, way


EXIT_TRACKER = textwrap.dedent(
    """
    import atexit, sys
    from promptver import Settings, Workspace
    from promptver.store.metrics import LIST_BATCH
    # registered first, so it runs after the workspace's own exit flush (last in, first out)
    atexit.register(lambda: print("pandas at exit:", "pandas" in sys.modules, flush=True))
    n = LIST_BATCH + 5
    settings = Settings().with_overrides(
        performance_tracking__batch_size=10 * n, performance_tracking__flush_interval=3600
    )
    ws = Workspace.open(sys.argv[1], settings=settings)
    p = ws.get_prompt("qa-basic", "production", user_id="u1")
    for i in range(n):
        ws.track(p, latency_ms=float(i), event_id=f"e{i % (n - 2)}")  # two ids come twice
    print(n, flush=True)
    """
)


def test_a_backlog_bigger_than_one_statement_is_written_at_exit_without_pandas(db: Path) -> None:
    """At interpreter exit pandas cannot be imported (it registers an exit hook, refused once
    shutdown began): the last flush of an application must not need it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTVER_")}
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_TRACKER, str(db)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=db.parent,
        env={**env, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    n = int(proc.stdout.split()[0])
    assert "pandas at exit: False" in proc.stdout
    assert (
        "could not be written" not in proc.stderr and not (db.parent / "pv.duckdb.pending").exists()
    )
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        events, ids, total = con.execute(
            "SELECT count(*), count(DISTINCT event_id), sum(latency_ms) FROM metric_events"
        ).fetchone()
    assert events == ids == n - 2  # the repeated ids were skipped
    assert total == sum(range(n - 2))  # the first of each id won


#: what parsing and ``--help`` must not need: validation, the database, YAML, the domain models
PARSING_LIGHT = ("pydantic", "duckdb", "yaml", "promptver.models", "promptver.config")


def test_help_and_parsing_need_neither_pydantic_nor_duckdb(db: Path) -> None:
    """``promptver --help``, every ``COMMAND --help`` and plain argument parsing build argparse
    and the command registry only; handlers import the domain when they run."""
    code = textwrap.dedent(
        f"""
        import argparse, contextlib, io, sys
        from promptver.cli import main
        from promptver.cli.main import build_parser
        seen = {{}}
        def light():
            return sorted(m for m in sys.modules if any(
                m == h or m.startswith(h + ".") for h in {PARSING_LIGHT!r}))
        with contextlib.redirect_stdout(io.StringIO()) as out:
            try:
                main(["--help"])
            except SystemExit as exc:
                seen["exit"] = exc.code
        seen["--help"] = light()
        seen["shows"] = "template" in out.getvalue()
        parser = build_parser()
        def walk(p):
            for action in p._actions:
                if isinstance(action, argparse._SubParsersAction):
                    for sub in action.choices.values():
                        sub.format_help()
                        walk(sub)
        walk(parser)
        parser.parse_args(["template", "list"])
        parser.parse_args(["experiment", "list", "--status", "running"])
        parser.parse_args(["metrics", "figures", "--by", "template"])
        seen["parsing"] = light()
        result = seen
        """
    )
    got = run_case(code, db)["result"]
    assert got == {"exit": 0, "--help": [], "shows": True, "parsing": []}


#: promptver's own modules that only metrics, alerts and the Home screen need
SERVING_SKIPS = ("promptver.alerts", "promptver.metrics", "promptver.overview")


@pytest.mark.parametrize(
    "code",
    [
        cli("template", "list"),
        OPEN + "result = ws.get_prompt('qa-basic', 'production').text(question='q', context='c')",
    ],
    ids=["template list", "get_prompt().text()"],
)
def test_serving_builds_no_metrics_alerts_or_overview(code: str, db: Path) -> None:
    """The workspace builds those services on first use (issue 17: a command that lists
    templates and an application that only serves prompts pay for neither)."""
    probe = code + textwrap.dedent(
        f"""
        import sys
        result = sorted(
            m for m in sys.modules if any(m == s or m.startswith(s + ".") for s in {SERVING_SKIPS!r})
        )
        """
    )
    assert run_case(probe, db)["result"] == []


#: what each light path must not load of promptver's own (services built on first use, the
#: models package loading only the submodule a name lives in, one CLI command module)
OWN_SKIPS = {
    "template list": (
        # listing reads plain records: with nothing to validate (no settings file, no override
        # but PROMPTVER_DB, as here) no pydantic, no settings models, no template models
        "pydantic.main",
        "pydantic_core",
        "promptver.config",
        "promptver.models.core",
        "promptver.templates",
        # no version control (built on first use) and no chat checks
        "promptver.versioning",
        "promptver.branch_merge",
        "promptver.commit_graph",
        "promptver.chat",
        "promptver.chat_checks",
        "promptver.serving",
        "promptver.deployments",
        "promptver.experiments",
        "promptver.routing",
        "promptver.models.results",
        "promptver.models.metrics",
        "promptver.models.trends",
        "promptver.cli.commands.deployments",
        "promptver.cli.commands.metrics",
        "promptver.merging",
        "promptver.diffing",
    ),
    "get_prompt().text()": (
        # serving is its own module: not the deployment log, its gates, the templates'
        # service, version control or the migrations (a current file needs one read)
        "promptver.deployments",
        "promptver.deployment_gates",
        "promptver.models.deployments",
        "promptver.store.deployments",
        "promptver.templates",
        "promptver.versioning",
        "promptver.branch_merge",
        "promptver.store.templates",
        "promptver.store.migrations",
        "promptver.chat",  # a text prompt renders without the chat module
        "promptver.chat_checks",
        "promptver.chat_render",
        "promptver.experiments",
        "promptver.routing",
        "promptver.models.results",
        "promptver.models.metrics",
        "promptver.models.trends",
        "promptver.models.overview",
        "promptver.merging",
        "promptver.diffing",
    ),
}


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("template list", cli("template", "list")),
        (
            "get_prompt().text()",
            OPEN
            + "result = ws.get_prompt('qa-basic', 'production').text(question='q', context='c')",
        ),
    ],
    ids=["template list", "get_prompt().text()"],
)
def test_light_paths_load_only_their_own_parts(name: str, code: str, db: Path) -> None:
    skips = OWN_SKIPS[name]
    probe = code + textwrap.dedent(
        f"""
        import sys
        result = sorted(m for m in sys.modules if m in {skips!r})
        """
    )
    assert run_case(probe, db)["result"] == []

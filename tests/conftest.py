"""Shared fixtures: a fresh workspace per test, the CLI in-process, sample templates."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that share a module-scoped fixture (a demo database, a prepared workspace) run on
    one xdist worker: spread over two, each worker built the fixture again, and some of those
    take longer to build than all of their tests take to run. Browser tests have their lane."""
    for item in items:
        if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
            continue
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        for name in info.names_closure:
            defs = info.name2fixturedefs.get(name)
            if defs and defs[-1].scope == "module":
                item.add_marker(pytest.mark.xdist_group(f"module-{item.module.__name__}"))
                break


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's settings, database or login name."""
    for var in (
        "PROMPTVER_DB",
        "PROMPTVER_CONFIG",
        "PROMPTVER_BUSY_TIMEOUT",
        "PROMPTVER_CACHE_TTL",
        "PROMPTVER_DEBUG",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PROMPTVER_AUTHOR", "tester")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "pv.duckdb"


@pytest.fixture
def ws(db_path: Path) -> Iterator:
    from promptver import Workspace

    w = Workspace.open(db_path)
    yield w
    w.close()


@pytest.fixture
def qa(ws):
    """A template with two versions on main (1.0.0, 1.1.0)."""
    ws.templates.create(
        "qa-basic",
        "Answer {question} using {context}.",
        category="qa",
        tags=["support"],
        author="ana",
    )
    return ws.templates.update(
        "qa-basic", "Answer {question} briefly using {context}.", author="ben", message="Be brief"
    )


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


#: commands that may run on a missing database file: init and demo create one, restore writes
#: one from a backup (the others refuse a missing file: see _ensure_db)
_CREATING_COMMANDS = {"init", "demo", "restore"}


def _ensure_db(path: Path, args: tuple[str, ...]) -> None:
    """Create the database first, as ``promptver init`` would, unless the command creates it.

    Only ``init`` and ``demo`` create a missing database; tests that start with another command
    get one made here (``auto_init=False`` tests the refusal itself)."""
    command = next((a for a in args if not a.startswith("-")), None)
    if command not in _CREATING_COMMANDS and not path.exists():
        from promptver import Workspace

        Workspace.open(path).close()


@pytest.fixture
def cli(db_path: Path) -> Callable[..., CliResult]:
    """Run the CLI in-process against the test database: ``cli("template", "list", json=True)``."""
    from promptver.cli import main

    def run(
        *args: str,
        json: bool = False,
        db: Path | None = None,
        stdin: str | None = None,
        auto_init: bool = True,
    ) -> CliResult:
        if auto_init:
            _ensure_db(Path(db or db_path), args)
        argv = ["--db", str(db or db_path)] + (["--json"] if json else []) + list(args)
        out, err = io.StringIO(), io.StringIO()
        old_stdin = sys.stdin
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        try:
            with redirect_stdout(out), redirect_stderr(err):
                try:
                    code = main(argv)
                except SystemExit as exc:  # argparse usage errors and --help
                    code = int(exc.code or 0)
        finally:
            sys.stdin = old_stdin
        return CliResult(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def run_cli(db_path: Path) -> Callable[..., CliResult]:
    """Run the real ``promptver`` console entry in a subprocess (exit codes, no traceback)."""
    import subprocess

    def run(
        *args: str,
        db: Path | None = None,
        env: dict | None = None,
        timeout: float = 60,
        auto_init: bool = True,
    ) -> CliResult:
        if auto_init:
            _ensure_db(Path(db or db_path), args)
        cmd = [sys.executable, "-m", "promptver", "--db", str(db or db_path), *args]
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        p = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout)
        return CliResult(p.returncode, p.stdout, p.stderr)

    return run


@pytest.fixture(autouse=True)
def _apptest_runs_app_py_like_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make AppTest run ``app.py`` on every rerun, as the real server does.

    Streamlit treats a project with a ``pages/`` folder as a v1 multipage app until ``app.py``
    calls ``st.navigation``; the server remembers that after the first run, but AppTest resets
    the flag before every run and would then rerun the page script alone, skipping ``app.py``
    (its workspace session, sidebar and flash messages).
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover
        return
    original = PagesManager.__init__

    def init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)

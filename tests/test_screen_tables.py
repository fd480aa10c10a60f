"""Tables on the Templates, History & Diff and Deployments screens (issue 22, item 13): every
column is configured (a label; long text gets a width, the rest is sized to its content), a missing value
reads "—" (never "None"), and a short table is as tall as its rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from promptver import Workspace

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory) -> Path:
    from promptver import Settings
    from promptver.demo import build_demo

    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    ws = Workspace.open(path, settings=Settings())
    build_demo(ws)
    ws.close()
    return path


def open_screen(page: str, db_path: Path, demo_file: Path, monkeypatch, **params) -> AppTest:
    shutil.copy(demo_file, db_path)
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page(page)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def check_tables(at: AppTest, at_least: int) -> list:
    tables = list(at.dataframe)
    assert len(tables) >= at_least
    for t in tables:
        assert t.proto.placeholder == "—", list(t.value.columns)
        config = json.loads(t.proto.columns or "{}")
        for column in t.value.columns:
            spec = config.get(f"col:name:{column}") or config.get(column)
            assert spec and spec.get("label"), f"column {column!r} is not configured"
    return tables


def test_templates_list_is_configured(db_path, demo_file, monkeypatch):
    at = open_screen("pages/templates.py", db_path, demo_file, monkeypatch)
    check_tables(at, 1)


def test_history_tables_are_configured_and_a_branch_commit_has_no_none(
    db_path, demo_file, monkeypatch
):
    at = open_screen("pages/history.py", db_path, demo_file, monkeypatch, template="qa-basic")
    tables = check_tables(at, 2)  # the history as a table, the branches
    history = tables[0].value
    branch_commit = history[history["lane"] == "concise-tone"]
    assert len(branch_commit) and branch_commit["version"].isna().all()  # shown as "—"


def test_deployments_tables_are_configured(db_path, demo_file, monkeypatch):
    at = open_screen("pages/deployments.py", db_path, demo_file, monkeypatch)
    check_tables(at, 1)

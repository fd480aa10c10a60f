"""The Experiments screen's report downloads under AppTest.

The buttons get callables (Streamlit builds the file when one is clicked), so AppTest sees no
bytes; the test records the callables Streamlit registers and runs them, as a click would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from tests.reports_helpers import NAME, build_hostile

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/experiments.py"


@pytest.fixture(scope="module")
def _built(tmp_path_factory):
    from promptver import Settings, Workspace

    path = tmp_path_factory.mktemp("page") / "built.duckdb"
    with Workspace.open(path, settings=Settings()) as ws:
        e = build_hostile(ws, n=60)
    return path, e


@pytest.fixture
def exp(_built, db_path, monkeypatch):
    path, e = _built
    shutil.copyfile(path, db_path)
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    return e


@pytest.fixture
def downloads(monkeypatch):
    """file name → (mime type, the callable Streamlit would run on a click)."""
    seen: dict[str, tuple[str, object]] = {}
    original = MediaFileManager.add_deferred

    def record(self, data, mimetype, coordinates, file_name=None, **kw):
        seen[file_name] = (mimetype, data)
        return original(self, data, mimetype, coordinates, file_name=file_name, **kw)

    monkeypatch.setattr(MediaFileManager, "add_deferred", record)
    return seen


def open_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_results_tab_offers_the_four_reports_built_on_click(exp, downloads, db_path):
    at = open_page()
    buttons = at.get("download_button")
    assert [b.proto.label for b in buttons] == ["HTML", "Markdown", "CSV", "JSON"]
    assert all(b.proto.deferred_file_id and b.proto.ignore_rerun for b in buttons)
    stem = "report-HYPERLINK-http-evil.example-script-alert-1-script"
    assert {name: mime for name, (mime, _) in downloads.items()} == {
        f"{stem}.html": "text/html",
        f"{stem}.md": "text/markdown",
        f"{stem}.csv": "text/csv",
        f"{stem}.json": "application/json",
    }
    html = downloads[f"{stem}.html"][1]()
    assert html.startswith(b"<!DOCTYPE html>") and b"Content-Security-Policy" in html
    assert b"<script>" not in html and b"<svg" in html
    doc = json.loads(downloads[f"{stem}.json"][1]())
    from promptver import Workspace

    with Workspace.open(db_path) as ws:
        frozen = ws.experiment_results(exp.id)
    assert doc["experiment"]["name"] == NAME
    assert doc["results"] == frozen.model_dump(mode="json") and doc["results_frozen"] is True
    assert downloads[f"{stem}.md"][1]().startswith(b"# Experiment report")


def test_the_report_follows_the_options_on_screen(exp, downloads):
    at = open_page()
    at.toggle(key=f"res_{exp.id}_seq").set_value(True).run()
    assert not at.exception
    doc = json.loads(next(f for n, (_, f) in downloads.items() if n.endswith(".json"))())
    assert doc["results"]["method"] == "sequential" and doc["results_frozen"] is False


def test_a_draft_has_no_report_buttons(db_path, monkeypatch):
    from promptver import Workspace
    from tests.experiments_helpers import seed_lab, spec

    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    with Workspace.open(db_path) as ws:
        seed_lab(ws)
        ws.experiments.create(spec())
    at = open_page()
    assert not at.get("download_button")

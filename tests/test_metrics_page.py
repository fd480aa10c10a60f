"""The Metrics screen under AppTest: upload, preview, validation report, import, history."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from promptver import Settings, Workspace
from promptver.metrics import example_csv
from tests.metrics_helpers import count

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def at(db_path, monkeypatch):
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    app.switch_page("pages/metrics.py").run()
    assert not app.exception, app.exception
    return app


def texts(elements) -> list[str]:
    """The text as shown: user text in the Markdown source is escaped (``example\\.csv``)."""
    return [re.sub(r"\\(.)", r"\1", e.value) for e in elements]


def frame_with(app, *columns: str):
    """The first table on the screen that has all these columns (tables carry no key)."""
    for df in app.dataframe:
        value = df.value
        if all(c in value.columns for c in columns):
            return value
    raise AssertionError(f"no table with columns {columns}")


def test_demo_workspace_shows_figures_per_version(at):
    perf = frame_with(at, "requests", "latency_p50", "version")
    assert len(perf) > 5 and perf["requests"].sum() > 100
    assert any("No CSV has been imported yet" in t for t in texts(at.info))
    assert at.file_uploader(key="met_upload") is not None


def test_empty_screen_explains_what_to_do(db_path, monkeypatch):
    ws = Workspace.open(db_path, settings=Settings())
    ws.templates.create("qa-basic", "Answer {question}.", author="ana")  # not new: no demo
    ws.close()
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    app.switch_page("pages/metrics.py").run()
    assert not app.exception, app.exception
    assert any("No events in this window" in t for t in texts(app.info))
    assert any("No events match these filters" in t for t in texts(app.info))


def test_upload_preview_validate_and_import(at, db_path):
    at.file_uploader(key="met_upload").set_value(("example.csv", example_csv(), "text/csv"))
    at.run()
    assert not at.exception, at.exception
    columns = frame_with(at, "name", "role")
    roles = dict(zip(columns["name"], columns["role"], strict=True))
    assert roles["timestamp"] == "required" and roles["latency_ms"] == "metric"
    assert roles["thumbs_up"] == "custom metric" and roles["event_id"] == "key"
    first = frame_with(at, "event_id", "thumbs_up")
    assert len(first) == 10 and first.iloc[0]["event_id"] == "example-0001"
    assert any("All 24 rows are valid: 24 new events" in t for t in texts(at.success))

    at.button(key="met_import").click().run()
    assert not at.exception, at.exception
    assert any("Imported 24 events from example.csv" in t for t in texts(at.success))
    ws = Workspace.open(db_path, settings=Settings())
    try:
        assert count(ws) >= 24
        (rec,) = [r for r in ws.metrics.imports() if r.file_name == "example.csv"]
        assert rec.rows_imported == 24 and rec.created_by == "tester"
    finally:
        ws.close()
    history = frame_with(at, "file", "imported")
    assert "example.csv" in list(history["file"])


def test_invalid_upload_shows_the_problems_as_a_table_and_imports_nothing(at, db_path):
    bad = (
        b"timestamp,template,user_id,latency_ms,success\n"
        b"2026-01-05T10:00:00Z,qa-basic,u1,-4,true\n"
        b"2026-01-05T10:00:00Z,no-such-template,u2,5,maybe\n"
    )
    ws = Workspace.open(db_path, settings=Settings())
    before = count(ws)
    ws.close()
    at.file_uploader(key="met_upload").set_value(("bad.csv", bad, "text/csv"))
    at.run()
    assert not at.exception, at.exception
    assert any("bad.csv cannot be imported: 3 problems" in t for t in texts(at.error))
    problems = frame_with(at, "line", "problem")
    assert list(problems["line"]) == [2, 3, 3]
    assert list(problems["column"]) == ["latency_ms", "template", "success"]
    assert "must be ≥ 0" in problems.iloc[0]["problem"]
    assert not [b for b in at.button if b.key == "met_import"]
    ws = Workspace.open(db_path, settings=Settings())
    try:
        assert count(ws) == before
    finally:
        ws.close()


def test_upload_above_the_size_limit_is_refused_with_a_clear_error(db_path, monkeypatch, tmp_path):
    config = tmp_path / "promptver.yaml"
    config.write_text("uploads:\n  max_upload_mb: 1\n")
    monkeypatch.setenv("PROMPTVER_CONFIG", str(config))
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    app.switch_page("pages/metrics.py").run()
    big = example_csv() + b"x" * (1024 * 1024)
    app.file_uploader(key="met_upload").set_value(("big.csv", big, "text/csv"))
    app.run()
    assert not app.exception, app.exception
    assert any("more than the 1 MB allowed" in t for t in texts(app.error))


def test_performance_and_events_tabs_show_tracked_events(db_path, monkeypatch):
    from tests.test_metrics_tracking import prompt_for

    ws = Workspace.open(db_path, settings=Settings())
    ws.templates.create("qa-basic", "Answer {question}.", author="ana")
    p = prompt_for(ws)
    for i in range(20):
        ws.track(p, latency_ms=100 + i, success=i % 4 != 0, quality_score=0.5)
    ws.close()
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    app.switch_page("pages/metrics.py").run()
    assert not app.exception, app.exception
    perf = frame_with(app, "requests", "latency_p50")
    row = perf[perf["template"] == "qa-basic"].iloc[0]
    assert row["requests"] == 20 and row["success_rate"] == pytest.approx(0.75)
    assert row["latency_p50"] == pytest.approx(109.5)
    events = frame_with(app, "user_id", "import_id")
    assert len(events) == 20
    app.selectbox(key="met_template").set_value("qa-basic").run()
    assert not app.exception, app.exception

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


# ---- issue 22: warnings, marked cells, the problem list, refused files, table layout ---------


def tables_with(app, *columns: str) -> list:
    """Every table element that has all these columns, in page order."""
    return [d for d in app.dataframe if all(c in d.value.columns for c in columns)]


def test_refused_upload_marks_bad_cells_offers_the_problem_list_and_is_logged(at, db_path):
    bad = (
        b"timestamp,template,user_id,latency_ms\n"
        b"2026-01-05T10:00:00Z,qa-basic,u1,-4\n"
        b"2026-01-05T10:00:00Z,qa-basc,u2,5\n"
    )
    at.file_uploader(key="met_upload").set_value(("typo.csv", bad, "text/csv"))
    at.run()
    assert not at.exception, at.exception
    problems = frame_with(at, "line", "problem")
    assert problems.iloc[1]["problem"] == "unknown template 'qa-basc' (did you mean 'qa-basic'?)"
    # the rows the problems name, with exactly the named cells marked (line, then the columns)
    first_rows, rows = tables_with(at, "line", "timestamp", "latency_ms")
    assert list(rows.value["line"]) == [2, 3]
    styles = rows.proto.arrow_data.styler.styles
    uuid = rows.proto.arrow_data.styler.uuid
    marked = set(re.findall(rf"#T_{uuid}_(row\d+_col\d+)", styles))
    assert marked == {"row0_col4", "row1_col2"}  # latency_ms of line 2, template of line 3
    assert "background-color" in styles
    # the same cells are marked in the first rows of the preview
    first = first_rows.proto.arrow_data.styler
    assert set(re.findall(rf"#T_{first.uuid}_(row\d+_col\d+)", first.styles)) == marked
    # the problem list downloads as CSV
    (download,) = [b for b in at.get("download_button") if b.key == "met_problems_csv"]
    assert download.label == "Download the problem list (CSV)"
    # the refused file is listed in the import history, with who and why
    attempts = frame_with(at, "file", "reason")
    assert list(attempts["file"]) == ["typo.csv"] and list(attempts["who"]) == ["tester"]
    assert attempts.iloc[0]["reason"].startswith("2 problems, the first: line 2, column latency_ms")
    ws = Workspace.open(db_path, settings=Settings())
    try:
        (attempt,) = ws.metrics.attempts()
        assert attempt.file_name == "typo.csv" and attempt.total_problems == 2
    finally:
        ws.close()
    # a rerun (any widget) does not log the same upload again
    at.run()
    assert len(frame_with(at, "file", "reason")) == 1


def test_old_events_are_warned_about_and_can_still_be_imported(at):
    at.file_uploader(key="met_upload").set_value(("example.csv", example_csv(), "text/csv"))
    at.run()
    assert not at.exception, at.exception
    warned = texts(at.warning)
    assert any("24 of the 24 events are older than 7 days" in t for t in warned), warned
    # the demo deployed its versions after June 2026: one box lists each version's early events
    (early,) = [t for t in warned if "before their version was deployed" in t]
    assert "of qa-basic 1.0.0 in production predate its first deployment to production" in early
    assert at.button(key="met_import").label == "Import 24 events"
    at.button(key="met_import").click().run()
    assert not at.exception, at.exception
    assert any("Imported 24 events" in t for t in texts(at.success))
    assert any("older than 7 days" in t for t in texts(at.warning))


def test_tables_have_labelled_columns_and_show_missing_values_as_a_dash(at):
    (events,) = tables_with(at, "user_id", "import_id")
    assert events.proto.placeholder == "–"
    assert list(events.proto.column_order) == [
        "timestamp",
        "template",
        "version",
        "environment",
        "user_id",
        "latency_ms",
        "success",
        "error",
        "quality_score",
        "cost_usd",
    ]
    assert '"label": "Latency (ms)"' in events.proto.columns
    at.multiselect(key="met_ev_more").set_value(["Experiment", "Ids"]).run()
    order = list(tables_with(at, "user_id", "import_id")[0].proto.column_order)
    assert order[-4:] == ["experiment_id", "variant", "event_id", "import_id"]
    (figures,) = tables_with(at, "requests", "latency_p95")
    assert figures.proto.placeholder == "–" and '"label": "p95 ms"' in figures.proto.columns
    assert figures.value["variant"].isna().any()  # shown as "–", not "None"


def test_table_helper_sizes_tables_to_their_rows(monkeypatch):
    import pandas as pd

    import ui.common

    calls = []
    monkeypatch.setattr(ui.common.st, "dataframe", lambda data, **kw: calls.append(kw))
    ui.common.table(pd.DataFrame({"a": range(3)}))
    ui.common.table(pd.DataFrame({"a": range(25)}))
    ui.common.table(pd.DataFrame({"a": range(26)}))
    ui.common.table(pd.DataFrame({"a": range(3)}).style)
    assert [c["height"] for c in calls] == ["content", "content", 35 * 26 + 3, "content"]
    assert {c["placeholder"] for c in calls} == {"–"}
    assert {c["hide_index"] for c in calls} == {True}

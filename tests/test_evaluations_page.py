"""The Evaluations screen under AppTest: upload, problems, import, the comparison."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from promptver import Settings, Workspace

ROOT = Path(__file__).resolve().parents[1]
H = "dataset,item_id,template,version,output,quality,quality_human"


def texts(elements) -> list[str]:
    return [re.sub(r"\\(.)", r"\1", e.value) for e in elements]


def frame_with(app, *columns: str):
    for df in app.dataframe:
        if all(c in df.value.columns for c in columns):
            return df.value
    raise AssertionError(f"no table with columns {columns}")


def _csv() -> bytes:
    lines = [H]
    for i in range(24):
        b = 0.4 + (i % 6) / 10
        c = b + (0.05 if i % 4 else -0.03)
        hb = f"{b - 0.1:.3f}" if i < 12 else ""
        hc = f"{c - 0.1:.3f}" if i < 12 else ""
        lines.append(f"golden,item-{i},qa,1.0.0,the answer is {i},{b:.3f},{hb}")
        lines.append(f"golden,item-{i},qa,1.1.0,the answer is {i + 1},{c:.3f},{hc}")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def at(db_path, monkeypatch):
    ws = Workspace.open(db_path, settings=Settings())
    ws.templates.create("qa", "Answer {q}.", author="ana")
    ws.templates.update("qa", "Answer {q} briefly.", author="ana")
    ws.close()
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    app.switch_page("pages/evaluations.py").run()
    assert not app.exception, app.exception
    return app


def test_empty_screen_says_how_to_start(at):
    assert any("No evaluations yet" in t for t in texts(at.info))


def test_upload_import_and_compare(at, db_path):
    at.file_uploader(key="ev_upload").set_value(("golden.csv", _csv(), "text/csv"))
    at.run()
    assert not at.exception, at.exception
    assert any("All 48 rows are valid" in t for t in texts(at.success))
    at.button(key="ev_import").click().run()
    assert not at.exception, at.exception
    assert any("Imported 48 rows from golden.csv" in t for t in texts(at.success))
    ws = Workspace.open(db_path, settings=Settings())
    try:
        expected = ws.evals.compare("golden", "1.0.0", "1.1.0")
    finally:
        ws.close()
    comparison = frame_with(at, "metric", "p_adjusted", "wtl")
    row = comparison.iloc[0]
    assert row["metric"] == "quality" and row["items"] == 24
    assert row["diff"] == pytest.approx(expected.metrics[0].diff)
    assert row["wtl"] == f"{expected.metrics[0].wins} / 0 / {expected.metrics[0].losses}"
    cal = frame_with(at, "calibrated (baseline)", "judge − human")
    assert cal.iloc[0]["calibrated (candidate)"] == pytest.approx(
        expected.metrics[0].calibrated.candidate_mean
    )
    regs = frame_with(at, "item", "metric", "diff")
    assert len(regs) == len(expected.regressions) == 6
    items = frame_with(at, "baseline output", "candidate output")
    assert len(items) == 24
    assert len(at.get("vega_lite_chart")) == 2  # the paired scatter and the histogram
    assert len(at.get("download_button")) == 4
    power = [t for t in texts(at.markdown) if "paired items** detect" in t]
    assert power and "the 24 items here" in power[0]


def test_invalid_upload_lists_problems_and_imports_nothing(at, db_path):
    bad = f"{H}\ngolden,a,qa,1.0.0,x,oops,\ngolden,b,qa,9.9.9,y,0.5,\n".encode()
    at.file_uploader(key="ev_upload").set_value(("bad.csv", bad, "text/csv"))
    at.run()
    assert not at.exception, at.exception
    assert any("bad.csv cannot be imported: 2 problems" in t for t in texts(at.error))
    problems = frame_with(at, "line", "problem")
    assert list(problems["line"]) == [2, 3]
    assert list(problems["column"]) == ["quality", "version"]
    assert not [b for b in at.button if b.key == "ev_import"]
    ws = Workspace.open(db_path, settings=Settings())
    try:
        assert ws.evals.datasets() == []
    finally:
        ws.close()


def test_deployments_screen_shows_the_eval_gate_and_links_here(db_path, monkeypatch, tmp_path):
    config = tmp_path / "promptver.yaml"
    config.write_text(
        "deployment:\n  gates:\n    production:\n"
        "      eval: {dataset: golden, metric: quality, margin: 0.0}\n"
    )
    monkeypatch.setenv("PROMPTVER_CONFIG", str(config))
    ws = Workspace.open(db_path, settings=Settings.load(config))
    ws.templates.create("qa", "Answer {q}.", author="ana")
    ws.templates.update("qa", "Answer {q} briefly.", author="ana")
    f = tmp_path / "golden.csv"
    f.write_bytes(_csv())
    ws.evals.import_csv(f)
    ws.deployments.deploy("qa", "1.0.0", "production")
    d = ws.deployments.deploy("qa", "1.1.0", "production", force=True, reason="ship it")
    assert d.gate_report["gates"][-1]["gate"] == "eval"
    status = d.gate_report["gates"][-1]["status"]
    ws.close()
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.query_params["template"] = "qa"
    app.run()
    app.switch_page("pages/deployments.py").run()
    assert not app.exception, app.exception
    shown = texts(app.markdown)
    assert any(f"Offline evaluation ({status})" in t for t in shown), shown
    links = [link for link in app.get("page_link") if "evaluations" in str(link.proto.page)]
    assert links

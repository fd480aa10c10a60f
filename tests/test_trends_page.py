"""The Trends screen under AppTest, on the demo workspace: charts, recommendations, deep links."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from promptver import Settings, Workspace

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/trends.py"


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory) -> Path:
    from promptver.demo import build_demo

    path = tmp_path_factory.mktemp("trends-demo") / "demo.duckdb"
    ws = Workspace.open(path, settings=Settings())
    build_demo(ws)
    ws.close()
    return path


def open_page(db_path, demo_file, monkeypatch, **params) -> AppTest:
    shutil.copy(demo_file, db_path)
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    for k, v in params.items():
        at.query_params[k] = v
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def frame_with(at, *columns: str):
    """The first table on the screen with all these columns (tables carry no key)."""
    for df in at.dataframe:
        if all(c in df.value.columns for c in columns):
            return df.value
    raise AssertionError(f"no table with columns {columns}")


def charts(at) -> list:
    return at.get("vega_lite_chart")


def test_demo_opens_on_the_regressed_template_with_charts_and_recommendations(
    db_path, demo_file, monkeypatch
):
    at = open_page(db_path, demo_file, monkeypatch)
    assert at.multiselect(key="trd_templates").value == ["qa-basic"]
    assert at.multiselect(key="trd_metrics").value == [
        "latency_p95",
        "error_rate",
        "quality_score",
    ]
    assert (at.selectbox(key="trd_by").value, at.selectbox(key="trd_env").value) == (
        "version",
        "production",
    )
    assert len(charts(at)) == 3
    texts = [m.value for m in at.markdown]
    # the regression of the demo's qa-basic release leads the recommendations
    first = next(t for t in texts if t.startswith("- "))
    assert "p95 latency up" in first and "production" in first
    fits = frame_with(at, "series", "metric", "per day", "p", "trend", "since")
    assert "worse" in set(fits["trend"])
    assert any("Around deployments" in s.value for s in at.subheader)
    # one per production deployment of qa-basic in the period: the release and its rollback
    assert len(at.expander) >= 2
    assert not at.error


def test_chart_has_bands_trend_lines_and_deployment_rules(db_path, demo_file, monkeypatch):
    at = open_page(db_path, demo_file, monkeypatch, metric="latency_p95")
    (chart,) = charts(at)
    spec = chart.proto.spec
    assert '"mark": {"type": "area"' in spec or '"type": "area"' in spec
    assert '"rule"' in spec and '"strokeDash"' in spec
    assert '"version"' in spec and '"environment"' in spec  # hover of the deployment rules


def test_deep_link_preselects_and_the_address_follows_the_widgets(db_path, demo_file, monkeypatch):
    at = open_page(
        db_path,
        demo_file,
        monkeypatch,
        template=["summarize-article", "qa-citations"],
        metric=["error_rate"],
        period="7d",
        by="environment",
        env="any",
        bucket="day",
    )
    assert at.multiselect(key="trd_templates").value == ["summarize-article", "qa-citations"]
    assert at.multiselect(key="trd_metrics").value == ["error_rate"]
    assert at.selectbox(key="trd_period").value == "7d"
    assert at.selectbox(key="trd_by").value == "environment"
    assert at.selectbox(key="trd_env").value == "any"
    assert at.selectbox(key="trd_bucket").value == "day"
    assert len(charts(at)) == 1
    at.multiselect(key="trd_metrics").select("latency_avg").run()
    assert not at.exception
    assert at.query_params["metric"] == ["error_rate", "latency_avg"]
    assert len(charts(at)) == 2
    at.selectbox(key="trd_period").set_value("30d").run()
    assert at.query_params["period"] == "30d"


def test_an_alert_link_with_an_unlisted_period_and_bad_values(db_path, demo_file, monkeypatch):
    at = open_page(
        db_path,
        demo_file,
        monkeypatch,
        template=["no-such-template"],
        metric=["nonsense", "latency_avg"],
        period="11d",
        by="colour",
    )
    assert at.multiselect(key="trd_templates").value == ["qa-basic"]
    assert at.multiselect(key="trd_metrics").value == ["latency_avg"]
    assert at.selectbox(key="trd_period").value == "11d"  # added to the choices
    assert at.selectbox(key="trd_by").value == "version"
    assert not at.error


def test_empty_selection_says_what_to_do(db_path, demo_file, monkeypatch):
    at = open_page(db_path, demo_file, monkeypatch)
    at.multiselect(key="trd_metrics").set_value([]).run()
    assert any("Pick at least one template and one metric" in i.value for i in at.info)
    assert not charts(at)


def test_a_workspace_without_events_explains_it(db_path, monkeypatch):
    ws = Workspace.open(db_path, settings=Settings())
    ws.templates.create("solo", "Hello {name}.", author="ana")  # not new: no demo
    ws.close()
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert any("No events in this period" in m.value for m in at.markdown)
    assert any("No events with" in i.value for i in at.info)


def _layers(spec: dict) -> list[dict]:
    return spec.get("layer", [])


def test_lines_break_where_there_is_no_data_and_deployments_are_labelled(
    db_path, demo_file, monkeypatch
):
    """Issue 22 item 10 on the demo: 1.1.0 had no production traffic while 1.1.1 was live, so
    its line breaks there (a row without a value per empty bucket, and marks that break at
    them); deployment rules carry their label; the branch in the experiment is named; the
    quality axis starts where the data is."""
    from datetime import timedelta

    from ui.trends import chart

    shutil.copy(demo_file, db_path)
    ws = Workspace.open(db_path)
    report = ws.trends.analyse(
        "qa-basic", "quality_score", period="30d", by="version", environment="production"
    )
    spec = chart(report, "quality_score", "quality score").to_dict()
    rows = [r for rows in spec.get("datasets", {}).values() for r in rows]
    old = next(s for s in report.series if s.group == "1.1.0")
    days = [p.bucket for p in old.points]
    gaps = [
        a + timedelta(days=1)
        for a, b in zip(days, days[1:], strict=False)
        if b - a > timedelta(days=1)
    ]
    assert gaps  # the demo's 1.1.0 was off production for days
    empty = [
        r
        for r in rows
        if r.get("series") == "qa-basic 1.1.0" and "value" in r and r["value"] is None
    ]
    assert len(empty) == len(gaps)
    marks = [layer.get("mark") for layer in _layers(spec)]
    paths = [m for m in marks if isinstance(m, dict) and m.get("type") in ("line", "area")]
    assert paths and all(m.get("invalid") == "break-paths-show-domains" for m in paths[:2])
    # deployment labels
    labels = {r.get("label") for r in rows if "label" in r}
    back = ws.deployments.history("qa-basic", "production")[0]
    assert f"rollback to {back.version}" in labels
    assert "deploy 1.1.1" in labels
    assert any(isinstance(m, dict) and m.get("type") == "text" for m in marks)
    # the branch variant is named, not "(no version)"
    names = {r.get("series") for r in rows}
    assert "qa-basic branch concise-tone" in names
    assert not [n for n in names if n and "(no version)" in n]
    # the quality axis does not start at zero
    y = [
        layer["encoding"]["y"]
        for layer in _layers(spec)
        if "encoding" in layer and layer["encoding"].get("y", {}).get("field") == "value"
    ]
    assert y and y[0]["scale"]["zero"] is False
    ws.close()


def test_the_deployment_headline_counts_the_tested_p95_rise(db_path, demo_file, monkeypatch):
    """Issue 22 item 3 on the screen: the regressed release's expander reads 1 worse."""
    at = open_page(db_path, demo_file, monkeypatch, period="30d")
    titles = [e.label.replace("\\", "") for e in at.expander]
    deploy = next(t for t in titles if "deploy 1.1.1 to production" in t)
    assert "1 worse" in deploy and "0 worse" not in deploy

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

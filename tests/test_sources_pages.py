"""The screens with an external event source (AppTest): the sidebar names it, the Metrics upload
tab says where events live, figures come from it, and a broken source is a banner, not a crash."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.sources_helpers import build_world, source_config, write_parquet

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world")
    w = build_world(folder, big_users=200)
    write_parquet(w, folder / "lake")
    return w


def _open(world, tmp_path, monkeypatch, events: dict, page: str) -> AppTest:
    db = tmp_path / "pv.duckdb"  # a copy per test: the dashboard caches one workspace per file
    shutil.copy(world.db, db)
    monkeypatch.setenv("PROMPTVER_DB", str(db))
    monkeypatch.setenv("PROMPTVER_CONFIG", str(source_config(tmp_path, events)))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    app.run()
    app.switch_page(page).run()
    assert not app.exception, app.exception
    return app


def _texts(elements) -> list[str]:
    return [re.sub(r"\\(.)", r"\1", e.value) for e in elements]


def test_metrics_screen_reads_the_parquet_source(world, tmp_path, monkeypatch):
    lake = str(world.db.parent / "lake")
    app = _open(
        world, tmp_path, monkeypatch, {"source": "parquet", "path": lake}, "pages/metrics.py"
    )
    assert any(f"Events: parquet '{lake}'" in t for t in _texts(app.sidebar.caption))
    info = " ".join(_texts(app.info))
    assert "Events live in the parquet" in info and "events.source: parquet" in info
    assert not app.get("file_uploader")  # no upload while events live elsewhere
    # the figures come from the source: the window picker at "all" shows every generated event
    app.selectbox(key="met_window").set_value("all").run()
    assert not app.exception, app.exception
    frames = [df.value for df in app.dataframe if "requests" in df.value.columns]
    assert frames and int(frames[0]["requests"].sum()) == len(world.rows)


@pytest.mark.parametrize("page", ["pages/metrics.py", "pages/experiments.py"])
def test_a_broken_source_is_a_banner(world, tmp_path, monkeypatch, page):
    missing = str(tmp_path / "nowhere" / "*.parquet")
    app = _open(world, tmp_path, monkeypatch, {"source": "parquet", "path": missing}, page)
    errors = " ".join(_texts(app.error))
    assert f"parquet source '{missing}': no Parquet files match the path" in errors

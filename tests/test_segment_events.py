"""Segment dimensions on the way in: ``dim_*`` CSV columns, ``track(p, dim_model=…)``, the API,
and the 1,000-value cap."""

from __future__ import annotations

import pytest

from promptver import ValidationError
from promptver.errors import ImportError_
from tests.metrics_helpers import count, rows, write
from tests.test_metrics_tracking import open_ws, prompt_for


@pytest.fixture
def tws(db_path):
    """A workspace whose buffer flushes only when asked."""
    ws = open_ws(
        db_path,
        performance_tracking__batch_size=1_000_000,
        performance_tracking__flush_interval=3600,
    )
    ws.templates.create("qa-basic", "Answer {question}.", author="ana")
    yield ws
    ws.close()


@pytest.fixture
def tpl(ws):
    ws.templates.create("qa-basic", "Answer {question}.", author="ana")
    return ws


def test_csv_dimensions_are_stored_as_text(tpl, tmp_path):
    path = write(
        tmp_path / "e.csv",
        "timestamp,template,user_id,latency_ms,dim_country,dim_model\n"
        "2026-01-01T00:00:00Z,qa-basic,u1,100,DE,gpt-4o\n"
        "2026-01-01T00:00:01Z,qa-basic,u2,120,,gpt-4o-mini\n"
        "2026-01-01T00:00:02Z,qa-basic,u3,130,,\n",
    )
    res = tpl.metrics.import_csv(path)
    assert res.rows_imported == 3
    assert "dim_country" not in res.custom_metrics
    got = {r["user_id"]: r["dims"] for r in rows(tpl, "ORDER BY user_id")}
    assert got == {
        "u1": {"dim_country": "DE", "dim_model": "gpt-4o"},
        "u2": {"dim_model": "gpt-4o-mini"},
        "u3": None,
    }
    assert rows(tpl, "ORDER BY user_id")[0]["custom"] is None


def test_csv_dimension_value_too_long_names_line_and_column(tpl, tmp_path):
    path = write(
        tmp_path / "e.csv",
        "timestamp,template,user_id,latency_ms,dim_country\n"
        f"2026-01-01T00:00:00Z,qa-basic,u1,100,DE\n2026-01-01T00:00:00Z,qa-basic,u2,1,{'x' * 201}\n",
    )
    with pytest.raises(ImportError_) as err:
        tpl.metrics.import_csv(path)
    (p,) = err.value.problems
    assert p.line == 3 and p.field == "dim_country" and "200 characters" in p.message
    assert count(tpl) == 0


def test_csv_with_only_dimensions_has_no_metric(tpl, tmp_path):
    path = write(
        tmp_path / "e.csv", "timestamp,template,user_id,dim_country\n2026-01-01,qa-basic,u1,DE\n"
    )
    with pytest.raises(ImportError_, match="no metric column"):
        tpl.metrics.import_csv(path)


def test_csv_cap_of_1000_values_per_dimension(tpl, tmp_path):
    lines = ["timestamp,template,user_id,latency_ms,dim_city"]
    lines += [f"2026-01-01T00:00:00Z,qa-basic,u{i},1,city-{i}" for i in range(1000)]
    assert tpl.metrics.import_csv(write(tmp_path / "a.csv", "\n".join(lines) + "\n"))
    more = ["timestamp,template,user_id,latency_ms,dim_city"]
    more += [f"2026-01-02T00:00:00Z,qa-basic,v{i},1,town-{i}" for i in range(5)]
    with pytest.raises(ImportError_) as err:
        tpl.metrics.import_csv(write(tmp_path / "b.csv", "\n".join(more) + "\n"))
    (p,) = err.value.problems
    assert p.field == "dim_city" and "1,005" in p.message and "at most 1,000" in p.message
    assert count(tpl) == 1000  # nothing of the second file


def test_track_dimensions(tws):
    p = prompt_for(tws)
    tws.track(p, latency_ms=10, dim_model="gpt-4o", dim_country=" DE ")
    tws.track(p, latency_ms=11)
    assert tws.metrics.flush() == 2
    got = [r["dims"] for r in rows(tws, "ORDER BY latency_ms")]
    assert got == [{"dim_model": "gpt-4o", "dim_country": "DE"}, None]


@pytest.mark.parametrize("value", [3, "", "x" * 201, None])
def test_track_bad_dimension_values(tws, value):
    p = prompt_for(tws)
    if value is None:  # None means "not given", as for metrics
        tws.track(p, latency_ms=1, dim_model=None)
        return
    with pytest.raises(ValidationError, match="dim_model"):
        tws.track(p, latency_ms=1, dim_model=value)


def test_track_needs_a_metric_besides_dimensions(tws):
    with pytest.raises(ValidationError, match="at least one metric"):
        tws.track(prompt_for(tws), dim_model="gpt-4o")

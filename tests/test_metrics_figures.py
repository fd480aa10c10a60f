"""Figures, summary, recent events and retention, checked against pandas computed independently;
and the ``metrics`` CLI commands with their contract shapes."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from promptver import ValidationError
from promptver.metrics import parse_window
from tests.metrics_helpers import add_experiment, count, write

NOW = datetime.now(UTC).replace(microsecond=0)


def make_events(ws, n: int = 3000, seed: int = 11) -> pd.DataFrame:
    """Random events over 40 days (never within 20 minutes of a window boundary)."""
    rng = np.random.default_rng(seed)
    exp = add_experiment(ws, "qa-basic", "tone", [("control", "1.0.0"), ("concise", "1.1.0")])
    hours = rng.integers(0, 40 * 24, n) + 0.5 + rng.uniform(-0.15, 0.15, n)
    ts = [NOW - timedelta(hours=float(h)) for h in hours]
    template = rng.choice(["qa-basic", "summarize"], n, p=[0.7, 0.3])
    version = np.where(template == "qa-basic", rng.choice(["1.0.0", "1.1.0", ""], n), "1.0.0")
    in_exp = (template == "qa-basic") & (version != "") & (rng.random(n) < 0.4)
    variant = np.where(in_exp, np.where(version == "1.0.0", "control", "concise"), "")
    env = rng.choice(["production", "staging", ""], n, p=[0.6, 0.3, 0.1])

    def sometimes(values, p_missing):
        return [("" if rng.random() < p_missing else v) for v in values]

    df = pd.DataFrame(
        {
            "event_id": [f"ev{i}" for i in range(n)],
            "timestamp": [t.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for t in ts],
            "template": template,
            "version": version,
            "experiment": np.where(in_exp, "tone", ""),
            "variant": variant,
            "environment": env,
            "user_id": [f"user{u}" for u in rng.integers(0, 400, n)],
            "latency_ms": sometimes(np.round(rng.lognormal(6, 0.6, n), 3), 0.05),
            "success": sometimes(rng.choice(["true", "false"], n, p=[0.9, 0.1]), 0.1),
            "error": sometimes(rng.choice(["1", "0"], n, p=[0.05, 0.95]), 0.3),
            "quality_score": sometimes(np.round(rng.beta(5, 2, n), 4), 0.4),
            "cost_usd": sometimes(np.round(rng.gamma(2, 0.001, n), 6), 0.1),
            "tokens_in": sometimes(rng.integers(50, 2000, n), 0.1),
            "tokens_out": sometimes(rng.integers(10, 500, n), 0.1),
            "thumbs_up": sometimes(rng.integers(0, 2, n), 0.7),
        }
    )
    path = ws.path.parent / "figures.csv"
    df.to_csv(path, index=False)
    ws.metrics.import_csv(path)
    # the independent reference: parse what we wrote with pandas
    ref = pd.read_csv(path, keep_default_na=False, dtype=str)
    out = pd.DataFrame(
        {
            "ts": pd.to_datetime(ref["timestamp"], utc=True),
            "template": ref["template"],
            "user_id": ref["user_id"],
            "version": ref["version"].replace("", None),
            "variant": ref["variant"].replace("", None),
            "experiment_id": np.where(ref["experiment"] == "tone", exp, None),
            "environment": ref["environment"].replace("", None),
        }
    )
    for col in ("latency_ms", "quality_score", "cost_usd", "tokens_in", "tokens_out", "thumbs_up"):
        out[col] = pd.to_numeric(ref[col].replace("", None))
    out["success"] = ref["success"].map({"true": 1.0, "false": 0.0, "": np.nan})
    out["error"] = ref["error"].map({"1": 1.0, "0": 0.0, "": np.nan})
    return out


@pytest.fixture
def events(ws, qa):
    ws.templates.create("summarize", "Summarise {text}.", author="ana")
    return make_events(ws)


def reference(df: pd.DataFrame, by: list[str]) -> dict:
    keys = [("template" if b == "template" else b) for b in by]
    if "variant" in by:
        keys.insert(keys.index("variant"), "experiment_id")
    out = {}
    groups = df.groupby(keys, dropna=False) if keys else [((), df)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        key = tuple(
            None if (isinstance(k, float) and math.isnan(k)) or k is None else k for k in key
        )
        lat = g["latency_ms"].dropna()
        out[key] = {
            "requests": len(g),
            "users": g["user_id"].nunique(),
            "latency_avg": lat.mean() if len(lat) else None,
            "latency_p50": lat.quantile(0.5) if len(lat) else None,
            "latency_p95": lat.quantile(0.95) if len(lat) else None,
            "success_rate": g["success"].mean(),
            "error_rate": g["error"].mean(),
            "quality_mean": g["quality_score"].mean(),
            "cost_per_request": g["cost_usd"].mean(),
            "cost_total": g["cost_usd"].sum(min_count=1),
            "tokens_in_avg": g["tokens_in"].mean(),
            "tokens_out_avg": g["tokens_out"].mean(),
            "tokens_in_total": g["tokens_in"].sum(min_count=1),
            "first": g["ts"].min(),
            "last": g["ts"].max(),
        }
    return out


def same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    if isinstance(a, pd.Timestamp):
        return a.to_pydatetime() == b
    return b is not None and math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("window,days", [("24h", 1), ("7d", 7), ("30d", 30), ("all", None)])
@pytest.mark.parametrize(
    "by",
    [
        ["template", "version", "variant", "environment"],
        ["template"],
        ["version", "environment"],
        [],
    ],
)
def test_figures_match_pandas(ws, events, window, days, by):
    df = events if days is None else events[events["ts"] >= NOW - timedelta(days=days)]
    expected = reference(df, by)
    got = ws.metrics.figures(window, by=by)
    assert len(got) == len(expected) > 0
    for f in got:
        key = []
        for b in by:
            if b == "variant":
                key += [f.experiment_id, f.variant]
            else:
                key.append(getattr(f, b))
        ref = expected[tuple(key)]
        for name, value in ref.items():
            assert same(value, getattr(f, name)), (key, name, value, getattr(f, name))


def test_figures_filters_and_custom_window(ws, events):
    start, end = NOW - timedelta(days=12), NOW - timedelta(days=3)
    df = events[
        (events["ts"] >= start)
        & (events["ts"] <= end)
        & (events["template"] == "qa-basic")
        & (events["environment"] == "staging")
    ]
    (f,) = ws.metrics.figures(
        start=start, end=end, template="qa-basic", environment="staging", by=["template"]
    )
    (ref,) = reference(df, ["template"]).values()
    for name, value in ref.items():
        assert same(value, getattr(f, name)), name


def test_summary_matches_pandas_and_the_contract_shape(ws, events):
    data = ws.metrics.summary().contract()
    assert set(data) == {"events", "users", "first", "last", "metrics"}
    assert data["events"] == len(events)
    assert data["users"] == events["user_id"].nunique()
    assert datetime.fromisoformat(data["first"]) == events["ts"].min().to_pydatetime()
    assert datetime.fromisoformat(data["last"]) == events["ts"].max().to_pydatetime()
    assert data["first"].endswith("+00:00")
    names = [
        "latency_ms",
        "success",
        "error",
        "quality_score",
        "cost_usd",
        "tokens_in",
        "tokens_out",
        "thumbs_up",
    ]
    assert list(data["metrics"]) == names
    for name in names:
        col = events[name].dropna()
        assert data["metrics"][name]["count"] == len(col)
        assert math.isclose(data["metrics"][name]["mean"], col.mean(), rel_tol=1e-9)
        assert set(data["metrics"][name]) == {"count", "mean"}
    one = ws.metrics.summary("summarize").contract()
    assert one["events"] == int((events["template"] == "summarize").sum())


def test_summary_of_an_empty_workspace(ws, qa):
    data = ws.metrics.summary().contract()
    assert data["events"] == 0 and data["users"] == 0
    assert data["first"] is None and data["last"] is None
    assert data["metrics"]["latency_ms"] == {"count": 0, "mean": None}


def test_recent_events_newest_first_with_filters(ws, events):
    got = ws.metrics.events(5, template="qa-basic", environment="production")
    df = events[(events["template"] == "qa-basic") & (events["environment"] == "production")]
    expected = df.sort_values("ts", ascending=False).head(5)
    assert [e.timestamp for e in got] == [t.to_pydatetime() for t in expected["ts"]]
    assert all(e.template == "qa-basic" for e in got)
    assert ws.metrics.distinct("environment") == ["production", "staging"]
    assert ws.metrics.custom_metrics() == ["thumbs_up"]


def test_windows_and_bad_arguments(ws, qa):
    now = datetime(2026, 5, 1, tzinfo=UTC)
    assert parse_window("24h", now=now) == now - timedelta(hours=24)
    assert parse_window("7d", now=now) == now - timedelta(days=7)
    assert parse_window("90d", now=now) == now - timedelta(days=90)
    assert parse_window("all", now=now) is None
    for bad in ("week", "0d", "-1d", "7x"):
        with pytest.raises(ValidationError, match="unknown window"):
            parse_window(bad)
    with pytest.raises(ValidationError, match="cannot group by"):
        ws.metrics.figures(by=["user"])
    with pytest.raises(ValidationError, match="start is after its end"):
        ws.metrics.figures(start=now, end=now - timedelta(days=1))
    from promptver import NotFound

    with pytest.raises(NotFound, match="unknown template 'nope'"):
        ws.metrics.figures(template="nope")


def test_timeseries_buckets_sum_to_the_figures(ws, events):
    series = ws.metrics.timeseries("7d", bucket="day", split="version", template="qa-basic")
    total = sum(s["requests"] for s in series)
    (f,) = ws.metrics.figures("7d", template="qa-basic", by=["template"])
    assert total == f.requests
    assert {s["series"] for s in series} <= {"1.0.0", "1.1.0", None}


def test_purge_is_a_dry_run_unless_asked_and_keeps_imports(ws, events):
    old = int((events["ts"] < NOW - timedelta(days=20)).sum())
    before = count(ws)
    dry = ws.metrics.purge(20)
    assert dry.dry_run and dry.events == old and dry.deleted == 0
    assert count(ws) == before
    done = ws.metrics.purge(20, dry_run=False)
    assert done.deleted == old and count(ws) == before - old
    (rec,) = ws.metrics.imports()
    assert rec.rows_imported == before and rec.events_present == before - old
    assert (
        ws.metrics.purge().older_than_days
        == ws.settings.performance_tracking.metrics_retention_days
    )
    with pytest.raises(ValidationError):
        ws.metrics.purge(0)


# ---- CLI -------------------------------------------------------------------------------------


def test_cli_import_summary_imports_and_purge(cli, ws, qa, tmp_path):
    path = write(
        tmp_path / "e.csv",
        "event_id,timestamp,template,user_id,latency_ms,nps\n"
        f"a,{(NOW - timedelta(days=100)).isoformat()},qa-basic,u1,10,5\n"
        f"b,{(NOW - timedelta(days=1)).isoformat()},qa-basic,u2,30,\n",
    )
    ws.close()
    r = cli("metrics", "import", str(path), json=True)
    assert r.code == 0, r.err
    data = r.json()
    assert set(data) == {"import_id", "rows_imported", "rows_skipped_duplicate"}
    assert (data["rows_imported"], data["rows_skipped_duplicate"]) == (2, 0)
    again = cli("metrics", "import", str(path), json=True).json()
    assert (again["rows_imported"], again["rows_skipped_duplicate"]) == (0, 2)
    human = cli("metrics", "import", str(path))
    assert human.code == 0 and "skipped" in human.out

    s = cli("metrics", "summary", "--template", "qa-basic", json=True).json()
    assert s["events"] == 2 and s["users"] == 2
    assert s["metrics"]["latency_ms"] == {"count": 2, "mean": 20.0}
    assert s["metrics"]["nps"] == {"count": 1, "mean": 5.0}
    assert datetime.fromisoformat(s["first"]).utcoffset() == timedelta(0)

    hist = cli("metrics", "imports", json=True).json()
    assert [h["rows_imported"] for h in hist] == [0, 0, 2]

    dry = cli("metrics", "purge", json=True).json()
    assert dry["dry_run"] is True and dry["events"] == 1 and dry["older_than_days"] == 90
    assert cli("metrics", "summary", json=True).json()["events"] == 2
    done = cli("metrics", "purge", "--older-than-days", "30", "--yes", json=True).json()
    assert done["deleted"] == 1
    assert cli("metrics", "summary", json=True).json()["events"] == 1
    assert len(cli("metrics", "imports", json=True).json()) == 3  # imports stay recorded

    figs = cli("metrics", "figures", "--window", "7d", "--by", "template", json=True).json()
    assert figs[0]["template"] == "qa-basic" and figs[0]["requests"] == 1


def test_cli_errors_are_one_line_with_line_and_column(cli, ws, qa, tmp_path):
    ws.close()
    path = write(
        tmp_path / "bad.csv",
        "timestamp,template,user_id,latency_ms\n2026-01-05T10:00:00Z,qa-basic,u1,-3\n",
    )
    r = cli("metrics", "import", str(path))
    assert r.code == 1
    assert r.err.startswith("error: ") and r.err.count("\n") == 1
    assert "line 2, column latency_ms: must be ≥ 0" in r.err
    assert cli("metrics", "import", str(tmp_path / "missing.csv")).code == 1
    assert cli("metrics", "summary", "--template", "nope").code == 1
    assert cli("metrics", "figures", "--window", "fortnight").code == 1
    assert cli("metrics", "import").code == 2  # usage error
    assert cli("metrics", "purge", "--older-than-days", "x").code == 2


def test_cli_subprocess_never_prints_a_traceback(run_cli, ws, qa, tmp_path):
    ws.close()
    path = write(tmp_path / "bad.csv", b"\xff\xfet\x00i\x00")
    r = run_cli("metrics", "import", str(path))
    assert r.code == 1 and "UTF-16" in r.err and "Traceback" not in r.err

"""Events in Parquet files: the same results as the file, filters pushed into the scan, errors.

The world (tests/sources_helpers.py) holds three experiments — one large enough for the hashed
bucket bootstrap, one that the events name by its name, one on a custom metric whose window
leaves events out — imported into the promptver file and written as hive-partitioned Parquet.
``experiment results --json`` and ``metrics summary --json`` must agree field by field (to
1e-9); DuckDB over Parquet hashes users into the file's buckets, so here even the bootstrap
fields agree where the units are users (small experiments); with hashed buckets the buckets are
the same but DuckDB returns them in another order, so the resamples differ and the bootstrap
fields agree within their sampling error.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from promptver import Settings, Workspace
from promptver.errors import ConfigError, SourceError
from promptver.sources.external import ExternalSource
from tests.sources_helpers import (
    T0,
    assert_cuped_agrees,
    assert_results_agree,
    assert_same,
    assert_segments_agree,
    build_world,
    cli_json,
    source_config,
    write_parquet,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world")
    w = build_world(folder)
    write_parquet(w, folder / "lake")
    return w


@pytest.fixture
def parquet_cfg(world, tmp_path):
    return source_config(
        tmp_path, {"source": "parquet", "path": str(world.db.parent / "lake" / "**" / "*.parquet")}
    )


def _results(capsys, world, exp_id, config=None):
    args = ["--db", str(world.db)]
    if config is not None:
        args += ["--config", str(config)]
    # --seed forces a fresh analysis (the stored results of a stopped experiment are frozen)
    return cli_json(capsys, *args, "experiment", "results", exp_id, "--seed", "7")


@pytest.mark.parametrize("name", ["big", "small", "custom"])
def test_experiment_results_equal_the_files(capsys, world, parquet_cfg, name):
    exp_id = world.experiments[name]
    file = _results(capsys, world, exp_id)
    lake = _results(capsys, world, exp_id, parquet_cfg)
    assert file["variants"][0]["users"] > 0
    assert_results_agree(file, lake, exact_bootstrap=file["bootstrap"]["unit"] == "user")


def test_cuped_results_equal_the_files(capsys, world, parquet_cfg):
    assert_cuped_agrees(capsys, world, parquet_cfg)


@pytest.mark.parametrize("name", ["big", "small"])
def test_segments_equal_the_files(capsys, world, parquet_cfg, name):
    assert_segments_agree(capsys, world, parquet_cfg, name)


def test_the_large_experiment_uses_hashed_buckets(capsys, world, parquet_cfg):
    lake = _results(capsys, world, world.experiments["big"], parquet_cfg)
    assert lake["bootstrap"]["unit"] == "bucket"
    small = _results(capsys, world, world.experiments["small"], parquet_cfg)
    assert small["bootstrap"]["unit"] == "user"


def test_window_leaves_events_out(capsys, world, parquet_cfg):
    lake = _results(capsys, world, world.experiments["custom"], parquet_cfg)
    start = T0 + timedelta(days=3)
    end = T0 + timedelta(days=7)
    inside = {
        r["user_id"]
        for r in world.rows
        if r.get("experiment") == world.experiments["custom"]
        and start.strftime("%Y-%m-%dT%H:%M:%S")
        <= r["timestamp"]
        <= end.strftime("%Y-%m-%dT%H:%M:%S")
    }
    assert sum(v["users"] for v in lake["variants"]) == len(inside)


def test_winsorised_results_equal_the_files(capsys, world, parquet_cfg):
    exp_id = world.experiments["big"]
    args = ["experiment", "results", exp_id, "--metric", "latency_ms", "--winsorize"]
    file = cli_json(capsys, "--db", str(world.db), *args)
    lake = cli_json(capsys, "--db", str(world.db), "--config", str(parquet_cfg), *args)
    latency = next(m for m in file["metrics"] if m["metric"] == "latency_ms")
    assert latency["winsorized"]["cap"] is not None
    assert_results_agree(file, lake, exact_bootstrap=False)


def test_metrics_summary_equals_the_files(capsys, world, parquet_cfg):
    file = cli_json(capsys, "--db", str(world.db), "metrics", "summary")
    lake = cli_json(
        capsys, "--db", str(world.db), "--config", str(parquet_cfg), "metrics", "summary"
    )
    assert file["events"] == len(world.rows)
    assert_same(file, lake)


def test_figures_and_pickers_equal_the_files(world, parquet_cfg):
    base = Workspace.open(world.db, settings=Settings())
    lake = Workspace.open(world.db, settings=Settings.load(parquet_cfg))
    try:
        assert lake.source.external and not base.source.external
        for by in (("template", "version"), ("variant",), ("environment",), ()):
            a = [f.model_dump() for f in base.metrics.figures("all", by=by)]
            b = [f.model_dump() for f in lake.metrics.figures("all", by=by)]
            assert_same(a, b)
        for col in ("environment", "version", "variant", "experiment_id"):
            assert base.metrics.distinct(col) == lake.metrics.distinct(col)
        assert lake.metrics.custom_metrics() == base.metrics.custom_metrics() == ["thumbs_up"]
        a = base.metrics.timeseries("all", bucket="day", split="environment")
        b = lake.metrics.timeseries("all", bucket="day", split="environment")
        assert_same(a, b)
    finally:
        base.close()
        lake.close()


def test_time_window_and_template_filters_reach_the_parquet_scan(world, tmp_path):
    """Partitioned by template (hive), with a second template's copy of every event: a template
    filter reads the one partition, and the time window skips row groups by their statistics."""
    import duckdb

    lake = world.db.parent / "lake"
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * EXCLUDE (day, template), template AS tpl FROM read_parquet("
        f"'{lake}/**/*.parquet') UNION ALL SELECT * EXCLUDE (day, template), 'other' AS tpl"
        f" FROM read_parquet('{lake}/**/*.parquet') ORDER BY timestamp)"
        f" TO '{tmp_path / 'by_tpl'}' (FORMAT parquet, PARTITION_BY (tpl), ROW_GROUP_SIZE 2048)"
    )
    con.close()
    settings = Settings.from_dict(
        {
            "events": {
                "source": "parquet",
                "path": str(tmp_path / "by_tpl"),
                "columns": {"template": "tpl"},
            }
        }
    )
    ws = Workspace.open(world.db, settings=settings)
    try:
        ws.source.relation()  # connect before the spy
        engine = ws.source.engine
        calls = []
        real = engine.run
        engine.run = lambda sql, params: calls.append((sql, params)) or real(sql, params)
        figures = ws.metrics.figures(
            start=T0 + timedelta(days=3),
            end=T0 + timedelta(days=3, hours=5),
            template="qa-basic",
            by=(),
        )
        engine.run = real
        assert figures[0].requests == sum(
            1
            for r in world.rows
            if "2026-06-04T00:00:00.000000Z" <= r["timestamp"] <= "2026-06-04T05:00:00.000000Z"
        )
        plan = engine.explain(*calls[-1], analyze=True)
        # (other boxes of the plan may share the scan box's lines: allow text in between)
        assert re.search(r"File Filters:.{0,300}?tpl IN \(", plan, re.S), plan
        assert re.search(r"Total Files Read: 1\b", plan), plan
        scanned = re.search(r"Row Groups Scanned: (\d+) / (\d+)", plan)
        assert scanned and int(scanned[1]) < int(scanned[2]), plan
        assert re.search(r"Filters:.{0,300}?\(timestamp >= ", plan, re.S), plan
    finally:
        ws.close()


def test_renamed_columns(capsys, world, tmp_path):
    renames = {"user_id": "uid", "timestamp": "ts", "latency_ms": "lat"}
    write_parquet(world, tmp_path / "renamed", renames)
    cfg = source_config(
        tmp_path,
        {"source": "parquet", "path": str(tmp_path / "renamed"), "columns": renames},
    )
    exp_id = world.experiments["small"]
    assert_same(_results(capsys, world, exp_id), _results(capsys, world, exp_id, cfg))


def test_segments_read_the_source(capsys, world, tmp_path):
    # the lake names the dimension otherwise: no event of the source carries dim_country (the
    # file's events do, so a breakdown that read the file would succeed)
    write_parquet(world, tmp_path / "nodim", {"dim_country": "country"})
    cfg = source_config(tmp_path, {"source": "parquet", "path": str(tmp_path / "nodim")})
    from promptver.cli import main

    capsys.readouterr()
    args = ["--db", str(world.db), "--config", str(cfg), "experiment", "results"]
    code = main([*args, world.experiments["small"], "--by", "dim_country"])
    assert code != 0
    assert "no event of experiment 'small' in its window carries dim_country" in (
        capsys.readouterr().err
    )


def _error(capsys, world, cfg) -> str:
    from promptver.cli import main

    capsys.readouterr()
    code = main(
        [
            "--db",
            str(world.db),
            "--config",
            str(cfg),
            "experiment",
            "results",
            world.experiments["small"],
            "--seed",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    return err


def test_bandit_experiments_are_refused_naming_the_source(capsys, world, tmp_path, parquet_cfg):
    # a bandit's period-weighted comparisons need each user's assignment period, which lives in
    # the promptver file beside, not in, the source's events: refused rather than approximated
    import json
    import shutil

    from promptver.cli import main

    db = tmp_path / "bandit.duckdb"
    shutil.copy(world.db, db)
    ws = Workspace.open(db, settings=Settings())
    with ws.db.transaction() as con:
        con.execute(
            "UPDATE experiments SET options = ? WHERE id = ?",
            [json.dumps({"allocation": "bandit"}), world.experiments["small"]],
        )
    ws.close()
    capsys.readouterr()
    args = ["--db", str(db), "--config", str(parquet_cfg), "experiment", "results"]
    code = main([*args, world.experiments["small"], "--seed", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "bandit experiments are analysed from the promptver file's events only" in err


def test_missing_files_name_the_source(capsys, world, tmp_path):
    cfg = source_config(
        tmp_path, {"source": "parquet", "path": str(tmp_path / "nowhere/*.parquet")}
    )
    err = _error(capsys, world, cfg)
    assert err.startswith("error: parquet source") and "no Parquet files" in err


def test_missing_required_column_is_named(capsys, world, tmp_path):
    write_parquet(world, tmp_path / "renamed", {"user_id": "uid"})
    cfg = source_config(tmp_path, {"source": "parquet", "path": str(tmp_path / "renamed")})
    err = _error(capsys, world, cfg)
    assert "required column 'user_id' is missing" in err and "parquet source" in err


def test_wrong_type_is_named(capsys, world, tmp_path):
    import duckdb

    path = tmp_path / "bad.parquet"
    duckdb.execute(
        f"COPY (SELECT 'yesterday' AS timestamp, 'qa-basic' AS template, 'u1' AS user_id,"
        f" 'slow' AS latency_ms) TO '{path}' (FORMAT parquet)"
    )
    cfg = source_config(tmp_path, {"source": "parquet", "path": str(path)})
    err = _error(capsys, world, cfg)
    assert "column 'timestamp' (timestamp) is VARCHAR, expected a timestamp" in err
    duckdb.execute(
        f"COPY (SELECT TIMESTAMPTZ '2026-06-01 00:00:00+00' AS timestamp, 'qa-basic' AS template,"
        f" 'u1' AS user_id, 'slow' AS latency_ms) TO '{path}' (FORMAT parquet)"
    )
    err = _error(capsys, world, cfg)
    assert "column 'latency_ms' (latency_ms) is VARCHAR, expected a number" in err


def test_import_is_refused_naming_the_source(capsys, world, parquet_cfg):
    from promptver.cli import main

    capsys.readouterr()
    code = main(
        ["--db", str(world.db), "--config", str(parquet_cfg), "metrics", "import", str(world.csv)]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "events live in the parquet" in err and "events.source: parquet" in err


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ({"source": "parquet"}, "needs path"),
        ({"source": "postgres", "dsn": "postgresql://x/y"}, "needs table"),
        ({"source": "spark"}, "needs table"),
        ({"source": "bigquery"}, "events.source"),
        ({"source": "parquet", "path": "x", "columns": {"userid": "uid"}}, "unknown event column"),
        ({"source": "parquet", "path": "x", "colums": {}}, "did you mean 'columns'"),
    ],
)
def test_bad_settings_are_named(events, message):
    with pytest.raises(ConfigError) as info:
        Settings.from_dict({"events": events})
    text = str(info.value) + " ".join(str(p) for p in info.value.problems)
    assert message in text


def test_source_connects_only_when_read(world, tmp_path):
    cfg = Settings.from_dict({"events": {"source": "parquet", "path": str(tmp_path / "none")}})
    src = ExternalSource(cfg.events, None)
    assert src.describe() == f"parquet {str(tmp_path / 'none')!r}"
    with pytest.raises(SourceError), src.reader():
        pass


def _trend_parity(base, ext, tid, *, same_clusters: bool = True) -> None:
    """Trends and the before/after sums of deployments agree with the file's."""
    import numpy as np

    from promptver.metric_defs import METRICS, metric_def
    from promptver.store.trends import Span

    for by, bucket in ((None, "day"), ("version", "hour"), ("environment", "week")):
        kw = {"start": T0, "end": T0 + timedelta(days=10), "by": by, "bucket": bucket}
        a = base.trends.analyse("qa-basic", None, now=T0 + timedelta(days=11), **kw)
        b = ext.trends.analyse("qa-basic", None, now=T0 + timedelta(days=11), **kw)
        assert a.series and all(s.points for s in a.series)
        assert_same(a.model_dump(mode="json"), b.model_dump(mode="json"))
    spans = [
        Span(tid, "production", T0, T0 + timedelta(days=4), T0 + timedelta(days=8)),
        Span(
            tid, "staging", T0 + timedelta(days=1), T0 + timedelta(days=2), T0 + timedelta(days=9)
        ),
    ]
    measures = [metric_def(k).measure for k in METRICS]
    p95 = next(m for m in measures if m.p95)
    with base.source.reader() as r1, ext.source.reader() as r2:
        assert_same(
            [list(x) for x in r1.change_sums(spans, measures)],
            [list(x) for x in r2.change_sums(spans, measures)],
        )
        # with hashed clusters the sums are the same; users are exact here, HLL in the file
        a = r1.change_sums(spans, measures, 64)
        b = r2.change_sums(spans, measures, 64)
        for (ab, aa), (bb, ba) in zip(a, b):
            for x, y in ((ab, bb), (aa, ba)):
                assert abs(x["users"] - y["users"]) <= 0.05 * x["users"]
                if same_clusters:
                    assert_same({**x, "users": 0}, {**y, "users": 0})
                else:  # other clusters: the sums over events agree, those over clusters not
                    keep = [k for k in x if k[:2] in ("sx", "sy", "sq", "p") or k[:1] == "k"]
                    keep = [k for k in keep if not k.startswith(("sxx", "syy", "sxy"))]
                    assert keep
                    assert_same({k: x[k] for k in keep}, {k: y[k] for k in keep})
        for x, y in zip(r1.change_values(spans, p95), r2.change_values(spans, p95)):
            for side in (0, 1):
                order_a = np.lexsort((x[side][1], x[side][0].astype(str)))
                order_b = np.lexsort((y[side][1], y[side][0].astype(str)))
                assert list(x[side][0][order_a]) == list(y[side][0][order_b])
                assert np.array_equal(x[side][1][order_a], y[side][1][order_b])
        # pooled into clusters (large periods): the same values (cluster keys are per engine)
        for x, y in zip(r1.change_values(spans, p95, 64), r2.change_values(spans, p95, 64)):
            for side in (0, 1):
                assert len(x[side][1]) > 0
                assert np.array_equal(np.sort(x[side][1]), np.sort(y[side][1]))


def test_trends_equal_the_files(world, parquet_cfg):
    base = Workspace.open(world.db, settings=Settings())
    lake = Workspace.open(world.db, settings=Settings.load(parquet_cfg))
    try:
        _trend_parity(base, lake, base.templates.row("qa-basic")["id"])
    finally:
        base.close()
        lake.close()


def test_the_schema_can_be_read_from_several_threads_at_once(tmp_path):
    """The engine's one DuckDB connection refuses a second thread's call (duckdb 2.0): reading
    the schema goes through a cursor, as every query does (it raised ResourceInUseException)."""
    import threading

    import duckdb

    from promptver.store.engines import ParquetEngine

    duckdb.execute(
        f"COPY (SELECT range AS x, 'u' || range AS user_id FROM range(100))"
        f" TO '{tmp_path / 'a.parquet'}' (FORMAT parquet)"
    )
    engine = ParquetEngine(str(tmp_path))
    errors: list[str] = []

    def read() -> None:
        try:
            for _ in range(100):
                assert ("x", "BIGINT") in engine.schema()
        except Exception as exc:  # every failure is reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.close()
    assert errors == []

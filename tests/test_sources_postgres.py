"""Events in PostgreSQL: a real server started by the test (Debian's ``postgresql`` package).

The same generated events as in the file (tests/sources_helpers.py) are copied into a typed
table; ``experiment results --json`` and ``metrics summary --json`` read through psycopg must
equal the file's analytic fields to 1e-9. The server hashes users into other buckets than
DuckDB, so the bootstrap fields of the large experiment agree within their sampling error (the
small experiments resample users: those agree exactly). Errors name the source and what failed.
"""

from __future__ import annotations

import pytest

from tests.sources_helpers import (
    assert_cuped_agrees,
    assert_results_agree,
    assert_same,
    assert_segments_agree,
    build_world,
    cli_json,
    find_pg_bin,
    free_port,
    load_postgres,
    postgres_cluster,
    source_config,
)

pytestmark = [pytest.mark.engine, pytest.mark.slow, pytest.mark.xdist_group("postgres")]

if find_pg_bin() is None:
    pytest.skip("PostgreSQL's server (initdb, pg_ctl) is not installed", allow_module_level=True)
psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (the dev extra)")


@pytest.fixture(scope="module")
def server():
    with postgres_cluster() as dsn:
        yield dsn


@pytest.fixture(scope="module")
def world(tmp_path_factory, server):
    w = build_world(tmp_path_factory.mktemp("world"))
    load_postgres(server, w)
    return w


@pytest.fixture
def pg_cfg(server, tmp_path):
    return source_config(tmp_path, {"source": "postgres", "dsn": server, "table": "llm_events"})


@pytest.mark.parametrize("name", ["big", "small", "custom"])
def test_experiment_results_equal_the_files(capsys, world, pg_cfg, name):
    exp_id = world.experiments[name]
    args = ["experiment", "results", exp_id, "--seed", "7"]
    file = cli_json(capsys, "--db", str(world.db), *args)
    pg = cli_json(capsys, "--db", str(world.db), "--config", str(pg_cfg), *args)
    assert sum(v["users"] for v in file["variants"]) > 0
    assert_results_agree(file, pg, exact_bootstrap=file["bootstrap"]["unit"] == "user")


def test_winsorised_latency_equals_the_files(capsys, world, pg_cfg):
    args = ["experiment", "results", world.experiments["big"], "--metric", "latency_ms"]
    args += ["--winsorize"]
    file = cli_json(capsys, "--db", str(world.db), *args)
    pg = cli_json(capsys, "--db", str(world.db), "--config", str(pg_cfg), *args)
    # percentile_cont is exact: the caps and the p95 points are the file's
    assert_results_agree(file, pg, exact_bootstrap=False)


def test_cuped_results_equal_the_files(capsys, world, pg_cfg):
    assert_cuped_agrees(capsys, world, pg_cfg)


@pytest.mark.parametrize("name", ["big", "small"])
def test_segments_equal_the_files(capsys, world, pg_cfg, name):
    assert_segments_agree(capsys, world, pg_cfg, name)


def test_summary_and_figures_equal_the_files(capsys, world, pg_cfg):
    from promptver import Settings, Workspace

    file = cli_json(capsys, "--db", str(world.db), "metrics", "summary")
    pg = cli_json(capsys, "--db", str(world.db), "--config", str(pg_cfg), "metrics", "summary")
    assert_same(file, pg)
    base = Workspace.open(world.db, settings=Settings())
    ext = Workspace.open(world.db, settings=Settings.load(pg_cfg))
    try:
        for by in (("template", "version"), ("variant",), ("environment",)):
            assert_same(
                [f.model_dump() for f in base.metrics.figures("all", by=by)],
                [f.model_dump() for f in ext.metrics.figures("all", by=by)],
            )
        assert_same(
            base.metrics.timeseries("all", bucket="hour", split="version"),
            ext.metrics.timeseries("all", bucket="hour", split="version"),
        )
        assert base.metrics.distinct("experiment_id") == ext.metrics.distinct("experiment_id")
    finally:
        base.close()
        ext.close()


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
    assert code == 1 and "Traceback" not in err, err
    return err


def test_cannot_connect_names_the_source(capsys, world, tmp_path):
    dsn = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/postgres"
    cfg = source_config(tmp_path, {"source": "postgres", "dsn": dsn, "table": "llm_events"})
    err = _error(capsys, world, cfg)
    assert err.startswith("error: postgres source 'llm_events'") and "cannot connect" in err
    assert "secret" not in err  # the password is not printed


def test_missing_table_is_named(capsys, world, server, tmp_path):
    cfg = source_config(tmp_path, {"source": "postgres", "dsn": server, "table": "nope"})
    assert "table 'nope' does not exist" in _error(capsys, world, cfg)


def test_missing_and_mistyped_columns_are_named(capsys, world, server, tmp_path):
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bad_events")
        conn.execute(
            "CREATE TABLE bad_events (ts timestamptz, template text, uid text, latency_ms text)"
        )
    cfg = source_config(tmp_path, {"source": "postgres", "dsn": server, "table": "bad_events"})
    assert "required column 'timestamp' is missing" in _error(capsys, world, cfg)
    cfg = source_config(
        tmp_path,
        {
            "source": "postgres",
            "dsn": server,
            "table": "bad_events",
            "columns": {"timestamp": "ts", "user_id": "uid"},
        },
    )
    assert "column 'latency_ms' (latency_ms) is text, expected a number" in _error(
        capsys, world, cfg
    )


def test_trends_equal_the_files(world, pg_cfg):
    from promptver import Settings, Workspace
    from tests.test_sources_parquet import _trend_parity

    base = Workspace.open(world.db, settings=Settings())
    ext = Workspace.open(world.db, settings=Settings.load(pg_cfg))
    try:
        # PostgreSQL hashes users into other clusters than DuckDB
        _trend_parity(base, ext, base.templates.row("qa-basic")["id"], same_clusters=False)
    finally:
        base.close()
        ext.close()


def test_p95_quantiles_and_histogram_share_one_statement(world, pg_cfg):
    """The results of a large experiment take two statements on a server: the sums, then the
    p95 quantiles with the histogram of the bootstrap (the histogram equals its own query's)."""
    import numpy as np

    from promptver import Settings, Workspace
    from promptver.analysis_quantile import QUANTILE_BINS
    from promptver.store import warehouse_stats as wstats
    from promptver.store.stats import EventFilter, MetricColumn

    assert wstats.HISTOGRAM_BINS == QUANTILE_BINS
    ws = Workspace.open(world.db, settings=Settings.load(pg_cfg))
    try:
        engine = ws.source.engine
        statements: list[str] = []
        run = engine.run
        engine.run = lambda sql, params: statements.append(sql) or run(sql, params)
        exp = ws.experiments.get(world.experiments["big"])
        ws.source.relation()
        statements.clear()
        ws.experiment_results(exp.id, seed=7)
        assert len(statements) == 2, statements
        flt = EventFilter(exp.id, tuple(v.name for v in exp.variants), *exp.window())
        with ws.source.reader() as rd:
            sums = rd.experiment_sums(
                flt, [MetricColumn("latency_ms", "latency_ms")], buckets=2000, user_limit=2000
            )
            assert sums.unit_kind == "bucket"
            qs = rd.variant_quantiles(flt, "latency_ms", [0.93, 0.95, 0.97])
            aliases = rd._exp_aliases(exp.id)
            assert qs == wstats.variant_quantiles(
                rd.rel, flt, aliases, "latency_ms", [0.93, 0.95, 0.97]
            )
            windows = {v: (q[0], q[2]) for v, (_, q) in qs.items()}
            before = len(statements)
            got = rd.metric_histograms(flt, "latency_ms", windows, QUANTILE_BINS, "bucket", 2000)
            assert len(statements) == before  # answered by the quantiles' statement
            direct = wstats.metric_histograms(
                rd.rel, flt, aliases, "latency_ms", windows, QUANTILE_BINS, "bucket", 2000
            )
        assert set(got) == set(direct) == {v.name for v in exp.variants}
        for v in got:
            a = sorted(zip(*(x.tolist() for x in got[v])))
            b = sorted(zip(*(x.tolist() for x in direct[v])))
            assert a == b and len(a) > 100
            assert np.sum(got[v][2]) > 0
    finally:
        ws.close()

"""Events in Spark (local mode; Debian's openjdk-17-jre-headless): the same results as the file.

One SparkSession serves the whole test session (pyspark's ``getOrCreate``), with two cores, a
1 GiB driver and two shuffle partitions; the data is small. The generated events
(tests/sources_helpers.py) are read as hive-partitioned Parquet (``path:``) and as a catalog
table (``table:``). Spark hashes users with ``xxhash64``, so the large experiment's bootstrap
fields agree within their sampling error; everything analytic agrees to 1e-9 (``percentile`` is
Spark's exact percentile).
"""

from __future__ import annotations

import shutil

import pytest

from tests.sources_helpers import (
    assert_cuped_agrees,
    assert_results_agree,
    assert_same,
    assert_segments_agree,
    build_world,
    cli_json,
    source_config,
    write_parquet,
)

pytestmark = [pytest.mark.engine, pytest.mark.slow, pytest.mark.xdist_group("spark")]

if shutil.which("java") is None:
    pytest.skip("Java is not installed (Debian: openjdk-17-jre-headless)", allow_module_level=True)
pytest.importorskip("pyspark", reason="pyspark is not installed (the dev extra)")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world")
    w = build_world(folder)
    write_parquet(w, folder / "lake")
    return w


@pytest.fixture(scope="module")
def spark_cfg(world, tmp_path_factory):
    return source_config(
        tmp_path_factory.mktemp("cfg"),
        {"source": "spark", "path": str(world.db.parent / "lake")},
    )


@pytest.mark.parametrize("name", ["big", "small"])
def test_experiment_results_equal_the_files(capsys, world, spark_cfg, name):
    exp_id = world.experiments[name]
    args = ["experiment", "results", exp_id, "--seed", "7"]
    file = cli_json(capsys, "--db", str(world.db), *args)
    spark = cli_json(capsys, "--db", str(world.db), "--config", str(spark_cfg), *args)
    assert sum(v["users"] for v in file["variants"]) > 0
    assert_results_agree(file, spark, exact_bootstrap=file["bootstrap"]["unit"] == "user")


def test_cuped_results_equal_the_files(capsys, world, spark_cfg):
    assert_cuped_agrees(capsys, world, spark_cfg)


@pytest.mark.parametrize("name", ["big", "small"])
def test_segments_equal_the_files(capsys, world, spark_cfg, name):
    assert_segments_agree(capsys, world, spark_cfg, name)


def test_summary_equals_the_files(capsys, world, spark_cfg):
    file = cli_json(capsys, "--db", str(world.db), "metrics", "summary")
    spark = cli_json(
        capsys, "--db", str(world.db), "--config", str(spark_cfg), "metrics", "summary"
    )
    assert_same(file, spark)


def test_a_catalog_table_and_a_missing_one(capsys, world, tmp_path):
    from pyspark.sql import SparkSession

    from promptver.cli import main
    from promptver.store.engines import SparkEngine

    SparkEngine(None, str(world.db.parent / "lake"), None).schema()  # starts the local session
    spark = SparkSession.builder.getOrCreate()  # ... which this returns
    flat = tmp_path / "flat.parquet"
    import duckdb

    duckdb.execute(
        f"COPY (SELECT * EXCLUDE (day) FROM read_parquet('{world.db.parent / 'lake'}/**/*.parquet',"
        f" hive_partitioning = true)) TO '{flat}' (FORMAT parquet)"
    )
    spark.sql(f"CREATE TABLE IF NOT EXISTS llm_events USING parquet LOCATION '{flat}'")
    cfg = source_config(tmp_path, {"source": "spark", "table": "llm_events"})
    args = ["experiment", "results", world.experiments["small"], "--seed", "7"]
    file = cli_json(capsys, "--db", str(world.db), *args)
    table = cli_json(capsys, "--db", str(world.db), "--config", str(cfg), *args)
    assert_results_agree(file, table, exact_bootstrap=True)

    cfg = source_config(tmp_path, {"source": "spark", "table": "no_such_table"})
    capsys.readouterr()
    code = main(["--db", str(world.db), "--config", str(cfg), *args])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.startswith("error: spark source table 'no_such_table' (local mode): table")
    assert "does not exist" in err


def test_trends_equal_the_files(world, spark_cfg):
    from promptver import Settings, Workspace
    from tests.test_sources_parquet import _trend_parity

    base = Workspace.open(world.db, settings=Settings())
    ext = Workspace.open(world.db, settings=Settings.load(spark_cfg))
    try:
        # Spark hashes users into other clusters (xxhash64) than DuckDB
        _trend_parity(base, ext, base.templates.row("qa-basic")["id"], same_clusters=False)
    finally:
        base.close()
        ext.close()

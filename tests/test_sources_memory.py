"""Parquet sources in memory that does not grow with the events.

The per-user reduction runs in passes over slices of the users (``Relation.run_by_users``) and
the p95's order statistics come from refined histograms (``warehouse.exact_quantiles``); both
must give what one pass and DuckDB's ``quantile_cont`` give. Here the thresholds are made tiny
so that small data goes through several passes: the results must equal the promptver file's
(the same equivalence as tests/test_sources_parquet.py), and the quantiles numpy's linear ones
and DuckDB's own aggregate.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from promptver.store import warehouse
from promptver.store.engines import ParquetEngine
from promptver.store.warehouse import Relation, exact_quantiles, user_row_bytes
from tests.sources_helpers import (
    assert_results_agree,
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
    return cli_json(capsys, *args, "experiment", "results", exp_id, "--seed", "7")


@pytest.mark.parametrize("name", ["big", "small"])
def test_results_in_several_user_passes_equal_the_files(
    capsys, monkeypatch, world, parquet_cfg, name
):
    exp_id = world.experiments[name]
    named = {exp_id, name}  # the small experiment's events name it by its name
    users = len({(r["variant"], r["user_id"]) for r in world.rows if r.get("experiment") in named})
    assert users > 0
    # room for about a quarter of the users per pass (two metrics or more: at least 4 passes)
    monkeypatch.setattr(ParquetEngine, "user_pass_bytes", users * user_row_bytes(1) // 4)
    # and the quantile refinement with a few bins, reading at most 20 values at a time
    monkeypatch.setattr(warehouse, "QUANTILE_BINS", 4)
    monkeypatch.setattr(warehouse, "QUANTILE_FETCH", 20)
    passes: list[int] = []
    run = Relation.run

    def spy(self, sql, params, **kw):
        # the slice is written into the statement: "hash(user_id) % K = k"
        sliced = re.search(r"hash\(user_id\) % (\d+) = (\d+)\)", sql)
        if sliced:
            passes.append(int(sliced.group(2)))
        return run(self, sql, params, **kw)

    monkeypatch.setattr(Relation, "run", spy)
    file = _results(capsys, world, exp_id)
    lake = _results(capsys, world, exp_id, parquet_cfg)
    assert max(passes) >= 3  # the reduction did run in passes
    assert_results_agree(file, lake, exact_bootstrap=file["bootstrap"]["unit"] == "user")


def test_per_user_reductions_run_on_one_thread_and_small_statements_on_every_core(
    world, parquet_cfg, monkeypatch
):
    """Each thread of a per-user GROUP BY builds its own hash table, so the passes run on one
    thread (their memory is the pass budget); the statements whose state is small whatever the
    events (the user estimate, the quantiles' ranges and bins, the p95 histogram) use every
    core."""
    from promptver import Settings, Workspace

    # more events than the exact p95 method takes, so the refinement and histogram run
    monkeypatch.setattr("promptver.analysis_quantile.EXACT_QUANTILE_EVENTS", 10)
    ws = Workspace.open(world.db, settings=Settings.load(parquet_cfg))
    try:
        engine = ws.source.engine
        seen: list[tuple[str, int]] = []
        run = engine.run

        def spy(sql, params):
            seen.append((sql, engine.threads()))
            return run(sql, params)

        engine.run = spy
        ws.experiment_results(world.experiments["big"], seed=7)
        cores = engine._cores  # DuckDB's default, read when the engine connected
        after = engine.threads()
    finally:
        ws.close()
    per_user = [t for sql, t in seen if "GROUP BY variant, user_id" in sql]
    small = [t for sql, t in seen if "approx_count_distinct" in sql or "AS bin" in sql]
    assert per_user and set(per_user) == {1}
    assert small and set(small) == {cores}
    if cores > 1:  # the machine has the cores to show it
        assert max(small) > 1
    assert after == 1  # back to one thread after each small statement


def _lake(tmp_path, values: dict[str, list[float | None]]):
    """A Parquet file of one event per value, ``variant`` → values."""
    import duckdb

    rows = [(v, x) for v, xs in values.items() for x in xs]
    path = tmp_path / "q.parquet"
    con = duckdb.connect()
    con.execute("CREATE TABLE t (variant VARCHAR, latency_ms DOUBLE)")
    con.executemany("INSERT INTO t VALUES (?, ?)", rows)
    con.execute(
        "COPY (SELECT TIMESTAMPTZ '2026-06-01 00:00:00+00' AS timestamp, 'tpl' AS template,"
        " 'u' || CAST(row_number() OVER () AS VARCHAR) AS user_id, 'e' AS experiment, variant,"
        f" latency_ms FROM t) TO '{path}' (FORMAT parquet)"
    )
    con.close()
    return Relation(ParquetEngine(str(path)), {})


LEVELS = [0.0, 0.05, 0.5, 0.9427, 0.95, 0.9573, 1.0]


@pytest.mark.parametrize("bins,fetch", [(4, 3), (2048, 50_000)])
def test_exact_quantiles_equal_numpy_and_duckdb(tmp_path, monkeypatch, bins, fetch):
    monkeypatch.setattr(warehouse, "QUANTILE_BINS", bins)
    monkeypatch.setattr(warehouse, "QUANTILE_FETCH", fetch)
    rng = np.random.default_rng(5)
    values: dict[str, list[float | None]] = {
        "continuous": list(rng.lognormal(6, 1, 3001)),
        "ties": list(rng.integers(300, 310, 2500).astype(float)),
        # one far outlier: equal bins put nearly everything in the first one, many times over
        "outlier": [*rng.normal(0, 1, 1500), 1e12, -3.5],
        "one": [42.0],
        "constant": [7.5] * 40,
        "with_nulls": [None, 3.0, None, 1.0, 2.0, None],
        "all_null": [None, None],
    }
    rel = _lake(tmp_path, values)
    try:
        got = exact_quantiles(rel, "latency_ms", "TRUE", {}, LEVELS)
        _, rows = rel.run(
            "SELECT variant, count(latency_ms), quantile_cont(latency_ms, $lv) FROM {EV} AS ev"
            " GROUP BY variant",
            {"lv": LEVELS},
        )
    finally:
        rel.engine.close()
    duck = {r[0]: (r[1], [float(x) for x in (r[2] or [])]) for r in rows}
    assert set(got) == set(values)
    for name, xs in values.items():
        present = np.asarray([x for x in xs if x is not None], dtype=float)
        n, qs = got[name]
        assert n == len(present)
        if not n:
            assert qs == []
            continue
        assert qs == pytest.approx(list(np.quantile(present, LEVELS)), rel=1e-12, abs=1e-12)
        assert (n, qs) == duck[name]  # DuckDB's own interpolation, to the last bit


def test_infinite_values_fall_back_to_the_aggregate(tmp_path):
    rel = _lake(tmp_path, {"a": [1.0, 2.0, float("inf")], "b": [1.0, 4.0]})
    try:
        got = exact_quantiles(rel, "latency_ms", "TRUE", {}, [0.5])
    finally:
        rel.engine.close()
    assert got == {"a": (3, [2.0]), "b": (2, [2.5])}


def test_the_parquet_connection_bounds_its_memory(tmp_path):
    rel = _lake(tmp_path, {"a": [1.0]})
    try:
        con = rel.engine._connect()
        limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
        assert threads == 1
        assert limit.endswith("MiB") and float(limit.split()[0]) <= 1024
        assert ParquetEngine.user_pass_bytes and ParquetEngine.user_pass_bytes <= 512 << 20
    finally:
        rel.engine.close()


def test_a_second_analysis_counts_users_from_the_first(monkeypatch, world, parquet_cfg):
    """The first reduction estimates the users (approx_count_distinct); the next one of the
    same events scales the exact count the first returned by the events, a plain count."""
    from promptver import Settings, Workspace

    sqls: list[str] = []
    run = Relation.run

    def spy(self, sql, params, **kw):
        sqls.append(sql)
        return run(self, sql, params, **kw)

    monkeypatch.setattr(Relation, "run", spy)
    ws = Workspace.open(world.db, settings=Settings.load(parquet_cfg))
    try:
        exp_id = world.experiments["big"]
        first = ws.experiment_results(exp_id, seed=3).model_dump()
        assert sum("approx_count_distinct" in s for s in sqls) == 1
        rel = ws.source.relation()
        ((events, users),) = rel._users.values()
        assert users == sum(v["users"] for v in first["variants"])
        second = ws.experiment_results(exp_id, seed=3).model_dump()
        assert sum("ev_n" in s for s in sqls) == 2  # the reduction ran again
        assert sum("approx_count_distinct" in s for s in sqls) == 1
    finally:
        ws.close()
    assert second["variants"] == first["variants"]


def _p95(results: dict) -> list:
    """The p95 latency of each variant (events, value) in a results' JSON."""
    (q,) = [m["quantile"] for m in results["metrics"] if m["quantile"] is not None]
    assert q["method"] == "binned" and all(v["value"] is not None for v in q["variants"])
    return [(v["name"], v["events"], v["value"]) for v in q["variants"]]


def _same_lake_results(capsys, monkeypatch, world, parquet_cfg, exp_id) -> dict:
    """The source's results, checked equal to those of an analysis that started nothing
    beside the sums (the same units resampled in the same order: equal to the last digit)."""
    with monkeypatch.context() as m:
        m.setattr("promptver.analysis_quantile.MIN_DELTA_USERS", 10**12)
        plain = _results(capsys, world, exp_id, parquet_cfg)
    lake = _results(capsys, world, exp_id, parquet_cfg)
    assert {**lake, "computed_at": None} == {**plain, "computed_at": None}
    return lake


def _p95_statement(sql: str) -> bool:
    """The p95's statements: the quantiles' range, bins and values, and the histogram."""
    return "min(latency_ms) AS lo" in sql or "AS bin" in sql or "AS s, latency_ms AS v" in sql


def _spy_relations(monkeypatch) -> list[tuple[bool, str]]:
    """(ran on a sidecar engine, statement) of every statement of every relation."""
    seen: list[tuple[bool, str]] = []
    run = Relation.run

    def spy(self, sql, params, **kw):
        seen.append((bool(getattr(self.engine, "_solo", False)), sql))
        return run(self, sql, params, **kw)

    monkeypatch.setattr(Relation, "run", spy)
    return seen


@pytest.fixture
def binned_p95(monkeypatch):
    """The small world's arms take the binned p95 (as arms of over 20,000 events do) and count
    as large enough for the analysis to start the p95's statements beside the sums."""
    monkeypatch.setattr("promptver.analysis_quantile.EXACT_QUANTILE_EVENTS", 10)
    monkeypatch.setattr("promptver.analysis_quantile.MIN_DELTA_USERS", 1)


def test_the_p95_statements_run_beside_the_sums_and_answer_the_analysis(
    capsys, monkeypatch, world, parquet_cfg, binned_p95
):
    """On a Parquet source the p95's quantiles and histogram run on a second DuckDB (one
    thread, the other core) while the per-user reduction holds the first; when the analysis
    then asks for that window, it is answered from them and nothing of the p95 runs again —
    and the results are the file's."""
    from promptver import analysis_quantile

    # every arm gets the window the statements were started with
    monkeypatch.setattr(analysis_quantile, "MIN_DELTA", analysis_quantile.MAX_DELTA)
    exp_id = world.experiments["big"]
    file = _results(capsys, world, exp_id)
    seen = _spy_relations(monkeypatch)
    lake = _same_lake_results(capsys, monkeypatch, world, parquet_cfg, exp_id)
    seen[:] = []
    _results(capsys, world, exp_id, parquet_cfg)
    assert file["bootstrap"]["unit"] == "bucket"  # the histogram's units are the buckets
    assert_results_agree(file, lake, exact_bootstrap=False)
    assert _p95(file) == _p95(lake)
    side = [sql for solo, sql in seen if solo]
    main = [sql for solo, sql in seen if not solo]
    assert any("AS bin" in sql for sql in side) and all(_p95_statement(s) for s in side)
    assert not any(_p95_statement(sql) for sql in main)
    assert any("GROUP BY variant, user_id" in sql for sql in main)


def test_a_started_p95_for_another_window_is_not_used(
    capsys, monkeypatch, world, parquet_cfg, binned_p95
):
    """The statements start with the narrowest window; arms with fewer users get a wider one
    from the sums, which the analysis then fetches as usual: the results are the file's."""
    exp_id = world.experiments["big"]
    file = _results(capsys, world, exp_id)
    seen = _spy_relations(monkeypatch)
    lake = _same_lake_results(capsys, monkeypatch, world, parquet_cfg, exp_id)
    assert_results_agree(file, lake, exact_bootstrap=False)
    assert _p95(file) == _p95(lake)
    assert any(_p95_statement(sql) for solo, sql in seen if solo)  # started beside the sums
    assert any("AS bin" in sql for solo, sql in seen if not solo)  # and asked again


def test_a_failed_p95_beside_the_sums_is_asked_again(
    capsys, monkeypatch, world, parquet_cfg, binned_p95
):
    """When the sidecar's statements fail (the files changed under it, say), the analysis asks
    the main connection, which reports what fails: nothing is lost."""
    from promptver import analysis_quantile

    monkeypatch.setattr(analysis_quantile, "MIN_DELTA", analysis_quantile.MAX_DELTA)
    run = Relation.run

    def failing(self, sql, params, **kw):
        if getattr(self.engine, "_solo", False):
            raise RuntimeError("the sidecar failed")
        return run(self, sql, params, **kw)

    monkeypatch.setattr(Relation, "run", failing)
    exp_id = world.experiments["big"]
    file = _results(capsys, world, exp_id)
    lake = _same_lake_results(capsys, monkeypatch, world, parquet_cfg, exp_id)
    assert_results_agree(file, lake, exact_bootstrap=False)
    assert _p95(file) == _p95(lake)


def test_the_file_and_small_experiments_start_nothing_beside_the_sums(
    monkeypatch, world, parquet_cfg
):
    """Below the users that the narrowest window takes (about 338,000 an arm), or with events
    in the promptver file, no statement runs on a second connection."""
    from promptver import Settings, Workspace

    seen = _spy_relations(monkeypatch)
    monkeypatch.setattr("promptver.analysis_quantile.EXACT_QUANTILE_EVENTS", 10)
    ws = Workspace.open(world.db, settings=Settings.load(parquet_cfg))
    try:
        ws.experiment_results(world.experiments["big"], seed=7)
        assert ws.source.engine._side is None  # never built
    finally:
        ws.close()
    assert seen and not any(solo for solo, _ in seen)

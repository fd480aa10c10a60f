"""promptver.store.stats: the SQL reductions against pandas on the raw events."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from promptver.store import stats as sql
from tests.stats_helpers import T0, insert_events

VARIANTS = ("control", "treatment")


@pytest.fixture
def events(ws) -> pd.DataFrame:
    """Clustered events of one experiment, plus noise the reduction must ignore."""
    rng = np.random.default_rng(5)
    users = 120
    uid = rng.integers(0, users, 1500)
    variant = np.where(uid % 2 == 0, "control", "treatment")
    n = len(uid)
    df = pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in uid],
            "variant": variant,
            "ts": T0 + pd.to_timedelta(rng.integers(0, 10 * 86400, n), unit="s"),
            "quality_score": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
            "latency_ms": rng.lognormal(6, 0.6, n),
            "success": rng.random(n) < 0.9,
            "tokens_out": rng.integers(10, 500, n),
        }
    )
    df["custom"] = [{"thumbs": float(rng.random() < 0.3)} if i % 3 else None for i in range(n)]
    insert_events(ws, df)
    # noise: another experiment, a variant that is not configured, and events without a variant
    noise = df.head(40).copy()
    insert_events(ws, noise, experiment_id="other-exp")
    ghost = df.head(25).copy()
    ghost["variant"] = "ghost"
    insert_events(ws, ghost)
    nov = df.head(5).copy()
    nov["variant"] = None
    insert_events(ws, nov)
    return df


def _reference(df: pd.DataFrame, column: pd.Series) -> dict[str, dict[str, float]]:
    """Per-variant sums computed the long way: per user, then per variant."""
    d = df.assign(v=column.astype(float))
    out = {}
    for variant, g in d.groupby("variant"):
        per_user = g.groupby("user_id").agg(
            x=("v", "sum"), y=("v", "count"), q=("v", lambda s: (s**2).sum())
        )
        has = per_user[per_user.y > 0]
        out[variant] = {
            "n": len(has),
            "sum_x": per_user.x.sum(),
            "sum_x2": (per_user.x**2).sum(),
            "sum_y": per_user.y.sum(),
            "sum_y2": (per_user.y**2).sum(),
            "sum_xy": (per_user.x * per_user.y).sum(),
            "event_sum_x2": per_user.q.sum(),
            "users": g.user_id.nunique(),
            "events": len(g),
        }
    return out


COLUMNS = [
    sql.MetricColumn("quality_score", "quality_score"),
    sql.MetricColumn("success", "success"),
    sql.MetricColumn("tokens_out", "tokens_out"),
    sql.MetricColumn("thumbs", "thumbs"),
]


def _series(df: pd.DataFrame, key: str) -> pd.Series:
    if key == "thumbs":
        return df["custom"].map(lambda m: m["thumbs"] if m else np.nan)
    return df[key]


@pytest.mark.parametrize("user_limit", [10_000, 0])
def test_sufficient_statistics_equal_pandas(ws, events, user_limit):
    flt = sql.EventFilter("exp-1", VARIANTS)
    with ws.db.read() as con:
        sums = sql.experiment_sums(con, flt, COLUMNS, buckets=16, user_limit=user_limit)
    assert sums.unit_kind == ("user" if user_limit else "bucket")
    for col in COLUMNS:
        ref = _reference(events, _series(events, col.key))
        for v in VARIANTS:
            got = sums.stats[col.key][v]
            for name in ("n", "sum_x", "sum_x2", "sum_y", "sum_y2", "sum_xy", "event_sum_x2"):
                assert getattr(got, name) == pytest.approx(ref[v][name], rel=1e-10), (col, v, name)
            assert sums.users[v] == ref[v]["users"]
            assert sums.events[v] == ref[v]["events"]
            # the bootstrap units add up to the same totals
            j = COLUMNS.index(col)
            assert sums.units[v].x[:, j].sum() == pytest.approx(ref[v]["sum_x"], rel=1e-10)
            assert sums.units[v].y[:, j].sum() == pytest.approx(ref[v]["sum_y"], rel=1e-10)
    assert sums.unknown_events == 30
    assert sums.unknown_variants == ["(none)", "ghost"]
    for v in VARIANTS:
        if user_limit:
            assert sums.units[v].n_units == sums.users[v]
            assert list(sums.unit_keys[v]) == sorted(events[events.variant == v].user_id.unique())
        else:
            assert sums.units[v].n_units <= 16


def test_window_limits_the_events(ws, events):
    start, end = T0 + timedelta(days=2), T0 + timedelta(days=5)
    flt = sql.EventFilter("exp-1", VARIANTS, start, end)
    with ws.db.read() as con:
        sums = sql.experiment_sums(con, flt, COLUMNS[:1])
    inside = events[(events.ts >= start) & (events.ts <= end)]
    ref = _reference(inside, inside.quality_score)
    for v in VARIANTS:
        assert sums.stats["quality_score"][v].sum_x == pytest.approx(ref[v]["sum_x"], rel=1e-10)
        assert sums.users[v] == ref[v]["users"]
    only_start = sql.EventFilter("exp-1", VARIANTS, start, None)
    with ws.db.read() as con:
        assert sql.experiment_sums(con, only_start, []).events["control"] == int(
            ((events.ts >= start) & (events.variant == "control")).sum()
        )


def test_capped_column_is_winsorised_at_the_given_value(ws, events):
    cap = float(np.quantile(events.latency_ms, 0.9))
    cols = [
        sql.MetricColumn("latency_ms", "latency_ms", cap),
        sql.MetricColumn("raw", "latency_ms"),
    ]
    with ws.db.read() as con:
        sums = sql.experiment_sums(con, sql.EventFilter("exp-1", VARIANTS), cols)
    capped = _reference(events, np.minimum(events.latency_ms, cap))
    raw = _reference(events, events.latency_ms)
    for v in VARIANTS:
        assert sums.stats["latency_ms"][v].sum_x == pytest.approx(capped[v]["sum_x"], rel=1e-10)
        assert sums.stats["latency_ms"][v].event_sum_x2 == pytest.approx(
            capped[v]["event_sum_x2"], rel=1e-10
        )
        assert sums.stats["raw"][v].sum_x == pytest.approx(raw[v]["sum_x"], rel=1e-10)


def test_quantiles_match_numpy(ws, events):
    flt = sql.EventFilter("exp-1", VARIANTS)
    with ws.db.read() as con:
        pooled = sql.pooled_quantiles(con, flt, ["latency_ms", "quality_score"], 0.999)
        per_variant = sql.variant_quantiles(con, flt, "latency_ms", [0.5, 0.95])
    assert pooled["latency_ms"] == pytest.approx(np.quantile(events.latency_ms, 0.999))
    assert pooled["quality_score"] == pytest.approx(
        np.quantile(events.quality_score.dropna(), 0.999)
    )
    for v in VARIANTS:
        lat = events[events.variant == v].latency_ms
        n, qs = per_variant[v]
        assert n == len(lat)
        assert qs == pytest.approx(list(np.quantile(lat, [0.5, 0.95])))
    assert set(per_variant) == set(VARIANTS)


def test_event_values_and_histograms_match_numpy(ws, events):
    flt = sql.EventFilter("exp-1", VARIANTS)
    windows = {
        v: tuple(np.quantile(events[events.variant == v].latency_ms, [0.9, 0.97])) for v in VARIANTS
    }
    with ws.db.read() as con:
        values = sql.metric_event_values(con, flt, "latency_ms", "user", 16)
        hists = sql.metric_histograms(con, flt, "latency_ms", windows, 8, "user", 16)
    for v in VARIANTS:
        g = events[events.variant == v]
        keys, vals = values[v]
        assert sorted(vals) == pytest.approx(sorted(g.latency_ms))
        lo, hi = windows[v]
        sel = g[g.latency_ms >= lo]
        b = np.where(
            sel.latency_ms >= hi,
            8,
            np.minimum(((sel.latency_ms - lo) / (hi - lo) * 8).astype(int), 7),
        )
        ref = pd.DataFrame({"u": sel.user_id, "b": b}).value_counts().sort_index()
        k, bins, n = hists[v]
        got = pd.Series(n, index=pd.MultiIndex.from_arrays([k, bins], names=["u", "b"]))
        got = got.sort_index()
        assert list(got.index) == list(ref.index)
        assert list(got.values) == list(ref.values)


def test_custom_metric_names_are_parameters_not_sql(ws, events):
    nasty = "x') OR 1=1; DROP TABLE metric_events; --"
    with ws.db.read() as con:
        sums = sql.experiment_sums(
            con, sql.EventFilter("exp-1", VARIANTS), [sql.MetricColumn("nasty", nasty)]
        )
        assert sums.stats["nasty"]["control"].events == 0
        assert con.execute("SELECT count(*) FROM metric_events").fetchone()[0] > 0


def test_fingerprint_changes_when_events_arrive(ws, events):
    with ws.db.read() as con:
        before = sql.events_fingerprint(con, "exp-1")
    insert_events(ws, events.head(1))
    with ws.db.read() as con:
        assert sql.events_fingerprint(con, "exp-1") != before


def test_buckets_are_independent_of_an_assignment_by_the_same_hash(ws):
    """Variants assigned by hash(user_id) parity must still fill every bucket of each arm."""
    with ws.db.transaction() as con:
        con.execute(
            "INSERT INTO metric_events (ts, template_id, user_id, experiment_id, variant,"
            " quality_score) SELECT $t0, 'tpl-1', 'u' || i, 'exp-1',"
            " CASE WHEN hash('u' || i) % 2 = 0 THEN 'control' ELSE 'treatment' END, random()"
            " FROM range(20000) r(i)",
            {"t0": T0},
        )
    with ws.db.read() as con:
        sums = sql.experiment_sums(
            con,
            sql.EventFilter("exp-1", VARIANTS),
            [sql.MetricColumn("quality_score", "quality_score")],
            buckets=64,
            user_limit=0,
        )
    for v in VARIANTS:
        assert sums.units[v].n_units == 64
        sizes = sums.units[v].y[:, 0]
        assert sizes.min() > 0.5 * sizes.mean()  # roughly even buckets

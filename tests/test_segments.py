"""Segment breakdowns: ``dim_*`` columns, results per segment, Holm across all segments,
Cochran's Q, SRM per segment, the 1,000-value cap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as ss
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests

from promptver import ValidationError
from promptver.analysis import experiment_results
from promptver.segments import segment_results
from tests.api_helpers import api_fixture, serve_fixture  # noqa: F401 - fixtures
from tests.stats_helpers import insert_events, make_experiment


def _set_dims(ws, frame: pd.DataFrame, dim: str = "dim_country") -> None:
    """Give each stored event of ``frame``'s users the frame's segment value."""
    users = frame[["user_id", "seg"]].drop_duplicates()
    with ws.db.transaction() as con:
        con.register("seg_users", users)
        try:
            con.execute(
                "UPDATE metric_events SET dims = MAP([$d], [s.seg]) FROM seg_users s"
                " WHERE metric_events.user_id = s.user_id AND s.seg IS NOT NULL",
                {"d": dim},
            )
        finally:
            con.unregister("seg_users")


def _data(rng, per_segment: dict[str, tuple[int, int, float]]) -> pd.DataFrame:
    """One event per user; per segment: (control users, treatment users, effect)."""
    parts = []
    for seg, (n_c, n_t, effect) in per_segment.items():
        parts.append(
            pd.DataFrame(
                {
                    "user_id": [f"{seg}-c{i}" for i in range(n_c)]
                    + [f"{seg}-t{i}" for i in range(n_t)],
                    "variant": ["control"] * n_c + ["treatment"] * n_t,
                    "quality_score": np.r_[
                        rng.normal(0.6, 0.1, n_c), rng.normal(0.6 + effect, 0.1, n_t)
                    ],
                    "seg": seg,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


@pytest.fixture
def segmented(ws):
    rng = np.random.default_rng(17)
    frame = _data(rng, {"DE": (300, 310, 0.04), "FR": (250, 240, 0.0), "US": (400, 260, 0.01)})
    insert_events(ws, frame.drop(columns="seg"))
    _set_dims(ws, frame)
    return frame


def test_each_segment_equals_the_results_on_its_events_alone(ws, segmented):
    exp = make_experiment()
    out = segment_results(ws, exp, "dim_country", resamples=300)
    assert out.by == "dim_country" and [s.value for s in out.segments] == ["DE", "FR", "US"]
    for seg in out.segments:
        alone_id = f"alone-{seg.value}"
        part = segmented[segmented.seg == seg.value].drop(columns="seg")
        insert_events(ws, part, experiment_id=alone_id)
        ref = experiment_results(ws, make_experiment(alone_id), resamples=300)
        # equal up to the order of floating-point sums
        for v, rv in zip(seg.variants, ref.variants, strict=True):
            assert v.model_dump() == pytest.approx(rv.model_dump(), rel=1e-9)
        c, rc = seg.comparisons[0], ref.comparisons[0]
        for f in ("diff", "ci_low", "ci_high", "p_value", "effect_size", "bootstrap_ci_low"):
            assert getattr(c, f) == pytest.approx(getattr(rc, f), rel=1e-9), f
        assert seg.srm.observed == ref.srm.observed
        assert seg.srm.p_value == pytest.approx(ref.srm.p_value, rel=1e-9)
        assert c.bayesian.model_dump() == pytest.approx(rc.bayesian.model_dump(), rel=1e-9)
    dumped = out.model_dump(mode="json")
    assert set(dumped) >= {"by", "segments"} and "value" in dumped["segments"][0]


def test_holm_runs_across_all_segments(ws, segmented):
    out = segment_results(ws, make_experiment(), "dim_country", resamples=200)
    p = [s.comparisons[0].p_value for s in out.segments]
    ref = multipletests(p, method="holm")[1]
    assert [s.comparisons[0].p_value_adjusted for s in out.segments] == pytest.approx(list(ref))
    assert out.adjusted_over == 3
    # Welch per segment, as scipy computes it on that segment's values
    de = segmented[segmented.seg == "DE"]
    w = ss.ttest_ind(
        de[de.variant == "treatment"].quality_score,
        de[de.variant == "control"].quality_score,
        equal_var=False,
    )
    assert out.segments[0].comparisons[0].p_value == pytest.approx(w.pvalue, rel=1e-9)


def test_heterogeneity_is_cochrans_q(ws, segmented):
    out = segment_results(ws, make_experiment(), "dim_country", resamples=200)
    (h,) = out.heterogeneity
    d = np.array([s.comparisons[0].diff for s in out.segments])
    var = np.array([s.comparisons[0].se for s in out.segments]) ** 2
    ref = combine_effects(d, var)
    assert h.q == pytest.approx(ref.q, rel=1e-9)
    assert h.p_value == pytest.approx(ss.chi2.sf(ref.q, 2), rel=1e-9)
    assert h.df == 2 and h.segments == 3
    assert h.i2 == pytest.approx(max(0.0, (ref.q - 2) / ref.q))
    # DE (+0.04) and FR (0) differ far beyond chance
    assert h.p_value < 0.01


def test_srm_per_segment(ws):
    rng = np.random.default_rng(5)
    # balanced overall-ish, but FR is badly unbalanced
    frame = _data(rng, {"DE": (300, 300, 0.0), "FR": (300, 150, 0.0)})
    insert_events(ws, frame.drop(columns="seg"))
    _set_dims(ws, frame)
    out = segment_results(ws, make_experiment(), "dim_country", resamples=200)
    srm = {s.value: s.srm for s in out.segments}
    assert srm["DE"].ok and not srm["FR"].ok
    ref = ss.chisquare([300, 150], [225, 225])
    assert srm["FR"].p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert out.segments[1].winner is None


def test_events_without_the_dimension_form_a_null_segment(ws):
    rng = np.random.default_rng(6)
    frame = _data(rng, {"DE": (50, 50, 0.0), "XX": (40, 40, 0.0)})
    frame.loc[frame.seg == "XX", "seg"] = None
    insert_events(ws, frame.drop(columns="seg"))
    _set_dims(ws, frame)
    out = segment_results(ws, make_experiment(), "dim_country", resamples=200)
    assert [s.value for s in out.segments] == ["DE", None]
    assert out.segments[1].variants[0].users == 40


@pytest.mark.parametrize(
    ("by", "text"),
    [("country", "dim_"), ("dim_model", "no event"), ("dim_x; DROP", "dim_")],
)
def test_bad_dimension_is_refused_naming_by(ws, segmented, by, text):
    with pytest.raises(ValidationError) as err:
        segment_results(ws, make_experiment(), by)
    assert text in err.value.message and err.value.problems[0].field == "by"


def test_more_than_1000_values_is_a_clear_error(ws):
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(1002)],
            "variant": ["control", "treatment"] * 501,
            "quality_score": 0.5,
            "seg": [f"city-{i}" for i in range(1002)],
        }
    )
    insert_events(ws, frame.drop(columns="seg"))
    _set_dims(ws, frame)
    with pytest.raises(ValidationError, match="1,002 distinct values"):
        segment_results(ws, make_experiment(), "dim_country")


def _stored(ws):
    from promptver.store import experiments as esql

    exp = make_experiment()
    with ws.db.transaction() as con:
        esql.insert(con, exp)
    return exp


def test_cli_results_by(ws, segmented, cli):
    import json

    exp = _stored(ws)
    out = cli(
        "--json", "experiment", "results", exp.id, "--by", "dim_country", "--resamples", "200"
    )
    assert out.code == 0, out.err
    data = json.loads(out.out)
    assert data["by"] == "dim_country"
    assert [s["value"] for s in data["segments"]] == ["DE", "FR", "US"]
    first = data["segments"][0]
    assert {"variants", "comparisons", "srm", "winner"} <= set(first)
    text = cli("experiment", "results", exp.id, "--by", "dim_country", "--resamples", "200")
    assert text.code == 0 and "Cochran's Q" in text.out and "DE" in text.out
    bad = cli("experiment", "results", exp.id, "--by", "country")
    assert bad.code == 1 and bad.err.startswith("error:") and "dim_" in bad.err


def test_api_results_by(ws, segmented, api):
    exp = _stored(ws)
    r = api.get(f"/experiments/{exp.id}/results", params={"by": "dim_country"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["by"] == "dim_country" and len(body["segments"]) == 3
    assert "heterogeneity" in body
    bad = api.get(f"/experiments/{exp.id}/results", params={"by": "nope"})
    assert bad.status_code == 422 and "dim_" in bad.text

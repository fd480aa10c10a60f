"""Paired comparison, calibrated (prediction-powered) means and power, pinned to independent
references: scipy (ttest_rel, its CI, wilcoxon), statsmodels (Holm, TTestPower), a direct numpy
computation of the contract's PPI formula from the CSV cells, and simulation."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from promptver.errors import NotFound, ValidationError
from promptver.evals.stats import agreement, paired_test, ppi_mean


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_paired_test_equals_scipy(seed, alpha):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    b = rng.normal(0.6, 0.2, n)
    c = b + rng.normal(0.03, 0.1, n)
    t = paired_test(b, c, alpha)
    ref = sps.ttest_rel(c, b)
    ci = ref.confidence_interval(1 - alpha)
    assert t.n == n
    assert t.diff == pytest.approx(float(np.mean(c - b)), abs=1e-12)
    assert t.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)
    assert t.ci_low == pytest.approx(ci.low, abs=1e-9)
    assert t.ci_high == pytest.approx(ci.high, abs=1e-9)
    assert t.wilcoxon_p_value == pytest.approx(sps.wilcoxon(c - b).pvalue, rel=1e-9, abs=1e-12)
    assert t.sd_diff == pytest.approx(np.std(c - b, ddof=1), rel=1e-12)


def test_wilcoxon_drops_zero_differences():
    b = np.array([1.0, 2, 3, 4, 5, 6, 7, 8])
    c = np.array([1.0, 2, 3.5, 4.7, 5.1, 7, 6.2, 9.9])
    d = c - b
    t = paired_test(b, c, 0.05)
    assert t.wilcoxon_p_value == pytest.approx(sps.wilcoxon(d[d != 0]).pvalue, rel=1e-9)


@pytest.mark.parametrize(
    "b,c,words",
    [
        ([], [], "no item"),
        ([0.5], [0.7], "only 1 item"),
        ([0.5, 0.6, 0.7], [0.5, 0.6, 0.7], "all differences are zero"),
        ([0.5, 0.6, 0.7], [0.6, 0.7, 0.8], "every difference equals 0.1"),
    ],
)
def test_degenerate_cases_give_a_message_not_an_exception(b, c, words):
    t = paired_test(np.array(b), np.array(c), 0.05)
    assert words in t.message
    assert t.p_value is None and t.wilcoxon_p_value is None


def test_ppi_mean_equals_the_contract_formula():
    rng = np.random.default_rng(7)
    judge = rng.uniform(0, 1, 300)
    human = np.full(300, np.nan)
    idx = rng.choice(300, 40, replace=False)
    human[idx] = np.clip(judge[idx] - 0.1 + rng.normal(0, 0.1, 40), 0, 1)
    got = ppi_mean(judge, human, 0.05)
    rect = human[idx] - judge[idx]
    mean = judge.mean() + rect.mean()
    se = np.sqrt(judge.var(ddof=1) / 300 + rect.var(ddof=1) / 40)
    z = sps.norm.ppf(0.975)
    assert got.mean == pytest.approx(mean, abs=1e-12)
    assert got.ci_low == pytest.approx(mean - z * se, abs=1e-12)
    assert got.ci_high == pytest.approx(mean + z * se, abs=1e-12)
    assert got.labelled == 40
    # below 10 labels there is no estimate
    few = np.full(300, np.nan)
    few[:9] = 0.5
    assert ppi_mean(judge, few, 0.05).mean is None
    n, bias, corr = agreement(judge, human)
    assert n == 40
    assert bias == pytest.approx((judge[idx] - human[idx]).mean())
    assert corr == pytest.approx(np.corrcoef(judge[idx], human[idx])[0, 1])


def test_ppi_covers_the_human_mean_where_the_biased_judge_misses_it():
    """A judge biased by +0.1: the naive judge interval almost never holds the human mean,
    the prediction-powered one does at about the nominal 95 %.

    The judge is 0.22 + 0.8 × human + noise (mean 0.7 where people average 0.6), with the noise
    chosen so that judge and rectifier (human − judge) are uncorrelated: the contract's
    standard error, which counts the labelled items inside all N, is then exact, and coverage
    sits at the nominal rate rather than slightly above it."""
    rng = np.random.default_rng(20261202)
    reps, big_n, n, truth = 3000, 500, 60, 0.6
    z = sps.norm.ppf(0.975)
    ppi_hits = naive_hits = 0
    for _ in range(reps):
        y = rng.normal(truth, 0.15, big_n)  # the human-scale score of each item
        j = 0.22 + 0.8 * y + rng.normal(0, 0.06, big_n)  # the judge: biased by +0.1
        h = np.full(big_n, np.nan)
        lab = rng.choice(big_n, n, replace=False)
        h[lab] = y[lab]
        p = ppi_mean(j, h, 0.05)
        ppi_hits += p.ci_low <= truth <= p.ci_high
        half = z * j.std(ddof=1) / np.sqrt(big_n)
        naive_hits += j.mean() - half <= truth <= j.mean() + half
    assert 0.93 <= ppi_hits / reps <= 0.97
    assert naive_hits / reps < 0.5


# ---- through the service --------------------------------------------------------------------


def _write_eval(path: Path, rng: np.random.Generator, items: int = 80) -> Path:
    """Two versions; 1 to 3 samples per item; human labels on 25 items of each version;
    one item scored only for the baseline; a lower-is-better latency."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "dataset",
                "item_id",
                "template",
                "version",
                "output",
                "quality",
                "quality_human",
                "latency_ms",
            ]
        )
        for v, shift in (("1.0.0", 0.0), ("1.1.0", 0.04)):
            for i in range(items):
                base = 0.5 + 0.3 * np.sin(i)
                for s in range(int(rng.integers(1, 4))):
                    q = base + shift + rng.normal(0, 0.08)
                    human = q - 0.08 + rng.normal(0, 0.03) if i < 25 and s == 0 else ""
                    lat = 100 + 10 * np.cos(i) + (5 if v == "1.1.0" else 0) + rng.normal(0, 3)
                    w.writerow(["ds", f"i{i:03d}", "qa", v, f"{v} says {i}", q, human, lat])
            if v == "1.0.0":
                w.writerow(["ds", "only-base", "qa", v, "", 0.1, "", 50])
    return path


def _item_means(path: Path) -> dict:
    acc: dict = defaultdict(lambda: defaultdict(list))
    with path.open() as f:
        for row in csv.DictReader(f):
            key = (row["version"], row["item_id"])
            for col in ("quality", "quality_human", "latency_ms"):
                if row[col] != "":
                    acc[key][col].append(float(row[col]))
    return {k: {c: float(np.mean(v)) for c, v in cols.items()} for k, cols in acc.items()}


@pytest.fixture
def compared(ws, tmp_path):
    ws.templates.create("qa", "Answer {q}.", author="ana")
    ws.templates.update("qa", "Answer {q} briefly.", author="ana")
    path = _write_eval(tmp_path / "e.csv", np.random.default_rng(11))
    ws.evals.import_csv(path)
    return ws, path, ws.evals.compare("ds", "1.0.0", "1.1.0")


def test_compare_through_the_service_equals_references(compared):
    from statsmodels.stats.multitest import multipletests

    ws, path, cmp = compared
    means = _item_means(path)
    items = sorted(i for (v, i) in means if v == "1.1.0")
    out = cmp.contract()
    assert list(out) == [
        "dataset",
        "template",
        "baseline",
        "candidate",
        "alpha",
        "metrics",
        "regressions",
    ]
    assert (out["dataset"], out["template"], out["baseline"], out["candidate"]) == (
        "ds",
        "qa",
        "1.0.0",
        "1.1.0",
    )
    assert out["alpha"] == 0.05
    by = {m["name"]: m for m in out["metrics"]}
    assert set(by) == {"quality", "latency_ms"}
    for name in ("quality", "latency_ms"):
        b = np.array([means[("1.0.0", i)][name] for i in items])
        c = np.array([means[("1.1.0", i)][name] for i in items])
        m = by[name]
        ref = sps.ttest_rel(c, b)
        ci = ref.confidence_interval(0.95)
        assert m["items"] == len(items) == 80  # only-base is not paired
        assert m["baseline_mean"] == pytest.approx(b.mean(), abs=1e-9)
        assert m["candidate_mean"] == pytest.approx(c.mean(), abs=1e-9)
        assert m["diff"] == pytest.approx((c - b).mean(), abs=1e-9)
        assert m["p_value"] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
        assert (m["ci_low"], m["ci_high"]) == pytest.approx((ci.low, ci.high), abs=1e-9)
        assert m["wilcoxon_p_value"] == pytest.approx(sps.wilcoxon(c - b).pvalue, rel=1e-9)
        better = (c < b) if name == "latency_ms" else (c > b)
        worse = (c > b) if name == "latency_ms" else (c < b)
        assert (m["wins"], m["losses"], m["ties"]) == (
            int(better.sum()),
            int(worse.sum()),
            int(80 - better.sum() - worse.sum()),
        )
    holm = multipletests([by["quality"]["p_value"], by["latency_ms"]["p_value"]], method="holm")[1]
    assert by["quality"]["p_value_adjusted"] == pytest.approx(holm[0], rel=1e-9)
    assert by["latency_ms"]["p_value_adjusted"] == pytest.approx(holm[1], rel=1e-9)
    assert by["quality"]["significant"] is bool(holm[0] < 0.05)


def test_calibrated_means_equal_the_contract_formula_from_the_cells(compared):
    ws, path, cmp = compared
    means = _item_means(path)
    items = sorted(i for (v, i) in means if v == "1.1.0")
    cal = cmp.contract()["metrics"][0]["calibrated"]
    z = sps.norm.ppf(0.975)
    for side, v in (("baseline", "1.0.0"), ("candidate", "1.1.0")):
        j = np.array([means[(v, i)]["quality"] for i in items])
        lab = [i for i in items if "quality_human" in means[(v, i)]]
        rect = np.array([means[(v, i)]["quality_human"] - means[(v, i)]["quality"] for i in lab])
        mean = j.mean() + rect.mean()
        se = np.sqrt(j.var(ddof=1) / len(j) + rect.var(ddof=1) / len(rect))
        assert cal[f"{side}_mean"] == pytest.approx(mean, abs=1e-9)
        assert cal[f"{side}_ci_low"] == pytest.approx(mean - z * se, abs=1e-9)
        assert cal[f"{side}_ci_high"] == pytest.approx(mean + z * se, abs=1e-9)
    assert cal["labelled_items"] == 25
    assert cal["agreement"]["mean_bias"] > 0.05  # the judge scores higher than people
    assert cmp.contract()["metrics"][1]["calibrated"] is None  # no latency_ms_human


def test_regressions_worst_first_at_most_50(compared):
    ws, path, cmp = compared
    regs = cmp.regressions
    assert 0 < len(regs) <= 50
    sd = {m.name: m.sd_diff for m in cmp.metrics}
    for r in regs:
        bad = r.diff < 0 if r.metric == "quality" else r.diff > 0
        assert bad
        assert r.diff == pytest.approx(r.candidate - r.baseline)
    sizes = [abs(r.diff) / sd[r.metric] for r in regs]
    assert sizes == sorted(sizes, reverse=True)
    assert regs[0].candidate_output.startswith("1.1.0 says")


def test_compare_errors_are_clear(compared):
    ws, _, _ = compared
    with pytest.raises(NotFound, match="no evaluation on dataset 'dss' \\(did you mean 'ds'\\?\\)"):
        ws.evals.compare("dss", "1.0.0", "1.1.0")
    with pytest.raises(ValidationError, match="same commit"):
        ws.evals.compare("ds", "1.1.0", "1.1.0")
    with pytest.raises(NotFound, match="metric 'nope'"):
        ws.evals.compare("ds", "1.0.0", "1.1.0", metric="nope")
    ws.templates.update("qa", "Answer {q} v3.", author="ana")
    with pytest.raises(NotFound, match="1.2.0 \\(candidate\\) has no evaluation"):
        ws.evals.compare("ds", "1.0.0", "1.2.0")
    one = ws.evals.compare("ds", "1.0.0", "1.1.0", metric="latency_ms")
    assert [m.name for m in one.metrics] == ["latency_ms"]


def test_compare_with_one_shared_item_has_a_message(ws, tmp_path):
    ws.templates.create("qa", "Answer {q}.", author="ana")
    ws.templates.update("qa", "Answer {q} briefly.", author="ana")
    f = tmp_path / "e.csv"
    f.write_text(
        "dataset,item_id,template,version,quality\nds,a,qa,1.0.0,0.5\nds,a,qa,1.1.0,0.7\n"
        "ds,b,qa,1.0.0,0.5\n"
    )
    ws.evals.import_csv(f)
    m = ws.evals.compare("ds", "1.0.0", "1.1.0").metrics[0]
    assert m.items == 1 and m.p_value is None and "only 1 item" in m.message
    assert m.diff == pytest.approx(0.2)


def test_power_equals_statsmodels(compared):
    from statsmodels.stats.power import TTestPower

    ws, _, cmp = compared
    sd = cmp.metric("quality").sd_diff
    p = ws.evals.power("ds", "1.0.0", "1.1.0", metric="quality", difference=0.01, power=0.9)
    n = TTestPower().solve_power(effect_size=0.01 / sd, alpha=0.05, power=0.9)
    assert p.items_needed == int(np.ceil(n))
    assert p.power_now == pytest.approx(
        TTestPower().power(effect_size=0.01 / sd, nobs=80, alpha=0.05), rel=1e-9
    )
    with pytest.raises(ValidationError, match="power"):
        ws.evals.power("ds", "1.0.0", "1.1.0", metric="quality", difference=0.01, power=1.5)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_holm_equals_statsmodels(seed):
    from statsmodels.stats.multitest import multipletests

    from promptver.evals.stats import holm

    rng = np.random.default_rng(seed)
    p = list(rng.uniform(0, 0.2, int(rng.integers(1, 8))))
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]), rel=1e-12)
    assert holm([None, p[0], None]) == [None, pytest.approx(p[0]), None]


def test_paired_items_needed_for_a_large_difference_is_the_smallest_n_with_the_power():
    """statsmodels' solve_power answers 2 here (whose power is 0.73) or NaN for larger
    differences (an internal error before), and its power() is NaN at n = 3: the answer is
    checked against the noncentral t directly."""
    import math

    import scipy.stats as ss
    from statsmodels.stats.power import TTestPower

    from promptver.evals.stats import paired_items_needed

    n = paired_items_needed(0.5, 5.0, 0.05, 0.8)  # standardised difference 10
    assert n == 3

    def power(k: int) -> float:
        c = ss.t.isf(0.025, k - 1)
        return float(ss.nct.sf(c, k - 1, 10 * math.sqrt(k)))  # the lower tail is ~0 here

    assert power(2) < 0.8 <= power(3)
    assert TTestPower().power(10, 2, 0.05) == pytest.approx(power(2), abs=1e-9)
    assert paired_items_needed(0.5, 50.0, 0.05, 0.8) == 2

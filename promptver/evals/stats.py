"""Statistics of paired evaluations: paired t, Wilcoxon, prediction-powered means, power.

Both versions answered the same items, so each item gives one difference (candidate −
baseline) and the tests run on those differences: the between-item spread, usually much larger
than the effect, cancels. Repeated samples of an item are averaged first (the item is the unit).

Prediction-powered inference (PPI; Angelopoulos, Bates, Fannjiang, Jordan, Zrnic, *Science*
2023): a judge scores all N items, people label n of them. The judge's mean is biased by
whatever the judge gets wrong on average; the labelled items measure that bias (the "rectifier",
mean of human − judge), so ``mean(judge over N) + mean(human − judge over n)`` is unbiased for
the human-scale mean, with variance ``var(judge)/N + var(human − judge)/n``. A good judge makes
the second variance small, and the interval is much narrower than one from the n labels alone.

Degenerate inputs (fewer than 2 items, differences without variation) give results with a
message, never an exception.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from promptver.stats import holm as holm  # re-exported: evals.compare and its tests


@dataclass(frozen=True)
class PairedTest:
    n: int
    baseline_mean: float | None
    candidate_mean: float | None
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    wilcoxon_p_value: float | None
    sd_diff: float | None
    message: str | None = None


def _f(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def paired_test(baseline: np.ndarray, candidate: np.ndarray, alpha: float) -> PairedTest:
    """Paired t-test (``scipy.stats.ttest_rel`` and its 1 − alpha interval of the mean
    difference) and the two-sided Wilcoxon signed-rank test (zero differences dropped)."""
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(candidate, dtype=float)
    n = int(b.size)
    if n == 0:
        return PairedTest(
            0,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            "no item was scored for both versions",
        )
    d = c - b
    bm, cm, dm = _f(b.mean()), _f(c.mean()), _f(d.mean())
    if n < 2:
        return PairedTest(
            n,
            bm,
            cm,
            dm,
            None,
            None,
            None,
            None,
            None,
            "only 1 item was scored for both versions: a paired test needs at least 2",
        )
    sd = float(d.std(ddof=1))
    if not sd > 1e-12 * max(1.0, float(np.abs(d).max())):
        what = "all differences are zero" if not np.any(d) else f"every difference equals {dm:g}"
        return PairedTest(
            n,
            bm,
            cm,
            dm,
            dm,
            dm,
            None,
            None,
            0.0,
            f"{what}: the differences do not vary, so there is no test",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sps.ttest_rel(c, b)
        ci = res.confidence_interval(confidence_level=1 - alpha)
        wp: float | None = None
        if np.count_nonzero(d) > 0:
            try:
                wp = _f(sps.wilcoxon(d).pvalue)
            except ValueError:
                wp = None
    return PairedTest(n, bm, cm, dm, _f(ci.low), _f(ci.high), _f(res.pvalue), wp, sd)


@dataclass(frozen=True)
class PPIMean:
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    labelled: int


def ppi_mean(judge: np.ndarray, human: np.ndarray, alpha: float, min_labels: int = 10) -> PPIMean:
    """The prediction-powered mean of the human-scale score and its normal 1 − alpha interval.

    Args:
        judge: the judge's score of each of the N items (no NaN).
        human: the human label of each item, NaN where unlabelled.
        min_labels: below this many labelled items, no estimate (``mean`` is None).
    """
    j = np.asarray(judge, dtype=float)
    h = np.asarray(human, dtype=float)
    lab = ~np.isnan(h)
    n = int(lab.sum())
    big_n = int(j.size)
    if n < max(min_labels, 2) or big_n < 2:
        return PPIMean(None, None, None, n)
    rect = h[lab] - j[lab]
    mean = float(j.mean() + rect.mean())
    se = math.sqrt(float(j.var(ddof=1)) / big_n + float(rect.var(ddof=1)) / n)
    z = float(sps.norm.ppf(1 - alpha / 2))
    return PPIMean(mean, mean - z * se, mean + z * se, n)


def agreement(judge: np.ndarray, human: np.ndarray) -> tuple[int, float | None, float | None]:
    """(labelled pairs, mean judge − human, Pearson correlation) over the labelled items."""
    j = np.asarray(judge, dtype=float)
    h = np.asarray(human, dtype=float)
    lab = ~np.isnan(h) & ~np.isnan(j)
    n = int(lab.sum())
    if n == 0:
        return 0, None, None
    bias = float((j[lab] - h[lab]).mean())
    corr = None
    if n >= 3 and j[lab].std() > 0 and h[lab].std() > 0:
        corr = _f(np.corrcoef(j[lab], h[lab])[0, 1])
    return n, bias, corr


def paired_items_needed(
    sd_diff: float | None, difference: float, alpha: float, power: float
) -> int | None:
    """Items a paired t-test needs to detect ``difference`` with ``power`` (two-sided),
    from the standard deviation of the item differences (statsmodels ``TTestPower``)."""
    from statsmodels.stats.power import TTestPower

    if sd_diff is None or not sd_diff > 0 or difference == 0:
        return None
    from promptver.stats import users_needed

    n = users_needed(
        TTestPower(),
        abs(difference) / sd_diff,
        alpha=alpha,
        power=power,
        alternative="two-sided",
    )
    return None if n is None else max(2, math.ceil(n))


def paired_power_now(
    sd_diff: float | None, difference: float, n: int, alpha: float
) -> float | None:
    """The power a paired t-test on ``n`` items has for ``difference``."""
    from statsmodels.stats.power import TTestPower

    if sd_diff is None or not sd_diff > 0 or n < 2:
        return None
    return _f(
        TTestPower().power(
            effect_size=abs(difference) / sd_diff, nobs=n, alpha=alpha, alternative="two-sided"
        )
    )

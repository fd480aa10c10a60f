"""promptver's CUPED and Bayesian readout against GrowthBook's gbstats, on 50 random data sets.

Not part of the test suite: gbstats (0.8.0 on PyPI) pins pandas < 2 and numpy 1.26, so it is
loaded from an unpacked wheel instead of being installed::

    pip download gbstats==0.8.0 --no-deps -d /tmp/gbs
    python -c "import zipfile,glob; zipfile.ZipFile(glob.glob('/tmp/gbs/*.whl')[0]).extractall('/tmp/gbs/pkg')"
    PYTHONPATH=$PWD python benchmarks/check_gbstats.py /tmp/gbs/pkg

Prints the largest absolute difference of θ, the CUPED difference, CI and p-value (gbstats'
``RegressionAdjustedStatistic`` + ``TwoSidedTTest``, absolute) and of the chance to win, credible
interval and posterior mean (``EffectBayesianABTest``, relative, flat prior).
"""

import sys

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else "/tmp/gbs/pkg")
import numpy as np
from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig, GaussianPrior
from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest
from gbstats.models.statistics import (
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
    compute_theta,
)

from promptver import stats_more as sm
from promptver.stats import MetricStats, compare

worst = {"cuped": 0.0, "bayes": 0.0}
for seed in range(50):
    rng = np.random.default_rng(seed)
    na, nb = rng.integers(50, 3000, 2)
    xa, xb = rng.normal(1, 1, na), rng.normal(1, 1, nb)
    ya = 0.7 * xa + rng.normal(5, 1, na)
    yb = 0.7 * xb + rng.normal(5.05, 1.2, nb)

    def gb(y, x):
        return RegressionAdjustedStatistic(
            n=len(y),
            post_statistic=SampleMeanStatistic(n=len(y), sum=y.sum(), sum_squares=(y * y).sum()),
            pre_statistic=SampleMeanStatistic(n=len(y), sum=x.sum(), sum_squares=(x * x).sum()),
            post_pre_sum_of_products=(x * y).sum(),
            theta=0,
        )

    a, b = gb(ya, xa), gb(yb, xb)
    th = compute_theta(a, b)
    a.theta = b.theta = th
    r = TwoSidedTTest(
        a, b, FrequentistConfig(difference_type="absolute", alpha=0.05)
    ).compute_result()
    ones_a, ones_b = np.ones(na), np.ones(nb)
    ours = sm.cuped_test(
        MetricStats.from_users(ya, ones_a, ya * ya),
        sm.CovariateSums.from_users(ya, ones_a, xa),
        MetricStats.from_users(yb, ones_b, yb * yb),
        sm.CovariateSums.from_users(yb, ones_b, xb),
        alpha=0.05,
    )
    for mine, theirs in [
        (ours.theta, th),
        (ours.diff, r.expected),
        (ours.ci_low, r.ci[0]),
        (ours.ci_high, r.ci[1]),
        (ours.p_value, r.p_value),
    ]:
        worst["cuped"] = max(worst["cuped"], abs(mine - theirs))
    # Bayesian, relative, flat prior, one event per user
    sa = SampleMeanStatistic(n=int(na), sum=ya.sum(), sum_squares=(ya * ya).sum())
    sb = SampleMeanStatistic(n=int(nb), sum=yb.sum(), sum_squares=(yb * yb).sum())
    br = EffectBayesianABTest(
        sa,
        sb,
        EffectBayesianConfig(difference_type="relative", prior_effect=GaussianPrior(proper=False)),
    ).compute_result()
    c = compare(MetricStats.from_values(ya), MetricStats.from_values(yb))
    mine = sm.bayesian_readout(c.relative_lift, c.relative_lift_se, "higher", 0.05)
    for m, t in [
        (mine.chance_to_win, br.chance_to_win),
        (mine.credible_low, br.ci[0]),
        (mine.credible_high, br.ci[1]),
        (mine.mean, br.expected),
    ]:
        worst["bayes"] = max(worst["bayes"], abs(m - t))
print("largest absolute difference over 50 random data sets:", worst)

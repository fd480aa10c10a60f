"""Power and sample size of a comparison: the minimum detectable effect now, users needed.

Works from the delta-method standard error of the difference (statsmodels' ``TTestIndPower`` on
the standardised effect). :mod:`promptver.analysis_power` turns it into the results' figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from promptver.stats_base import Alternative


@dataclass(frozen=True)
class Power:
    """Power figures of one comparison (absolute effects in the metric's unit).

    ``sigma`` is the per-user standard deviation implied by the delta-method standard error,
    ``se / √(1/n_control + 1/n_treatment)``; it turns absolute effects into the standardised effect
    sizes that statsmodels' ``TTestIndPower`` works with.
    """

    alpha: float
    power: float
    sigma: float | None
    mde: float | None
    mde_relative: float | None
    target_lift: float | None
    users_needed_control: int | None
    users_needed_treatment: int | None
    message: str | None = None


def _power_alternative(alternative: Alternative) -> str:
    return "two-sided" if alternative == "two-sided" else "larger"


def power_analysis(
    se: float | None,
    n_control: int,
    n_treatment: int,
    control_mean: float | None,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    target_lift: float | None = None,
    weight_ratio: float = 1.0,
    alternative: Alternative = "two-sided",
) -> Power:
    """Minimum detectable effect now, and users needed for ``target_lift`` (a relative lift).

    Args:
        se: the standard error of the difference at the current sample.
        n_control, n_treatment: users with the metric in each arm now.
        control_mean: the control's mean per event (turns relative lifts into absolute ones).
        alpha: the significance level of the test (already divided for multiplicity if needed).
        power: the wanted probability of detecting the effect.
        target_lift: the relative lift to plan for (0.05 = 5 %).
        weight_ratio: treatment users per control user in the configured split.
        alternative: the test's alternative; one-sided tests need fewer users.
    """
    from statsmodels.stats.power import TTestIndPower

    solver = TTestIndPower()
    alt = _power_alternative(alternative)
    base = Power(alpha, power, None, None, None, target_lift, None, None)
    if se is None or not se > 0 or n_control < 2 or n_treatment < 2:
        return _power_replace(
            base, message="power needs at least 2 users per variant and a non-zero variance"
        )
    sigma = se / math.sqrt(1 / n_control + 1 / n_treatment)
    d = solver.solve_power(
        effect_size=None,
        nobs1=n_control,
        ratio=n_treatment / n_control,
        alpha=alpha,
        power=power,
        alternative=alt,
    )
    mde = float(np.asarray(d).item()) * sigma
    mde_rel = mde / abs(control_mean) if control_mean else None
    need_c = need_t = None
    message = None
    if target_lift is not None and control_mean:
        effect = abs(target_lift * control_mean) / sigma
        if effect > 0:
            n1 = users_needed(
                solver, effect, alpha=alpha, power=power, alternative=alt, ratio=weight_ratio
            )
            if n1 is None:
                message = (
                    f"no sample size reaches {power:.0%} power for a {target_lift:.1%} lift "
                    "(the solver did not converge)"
                )
            else:
                need_c = max(2, math.ceil(n1))
                need_t = max(2, math.ceil(n1 * weight_ratio))
    elif target_lift is not None:
        message = "the control mean is 0, so a relative target cannot be planned"
    return Power(alpha, power, sigma, mde, mde_rel, target_lift, need_c, need_t, message)


def users_needed(
    solver: Any,
    effect: float,
    *,
    alpha: float,
    power: float,
    alternative: str,
    ratio: float | None = None,
) -> float | None:
    """Units for ``power`` at standardised ``effect`` with a statsmodels power ``solver``
    (``TTestIndPower``: control users, ``ratio`` treatment per control; ``TTestPower``: paired
    items), as a real number (callers round up); at least 2.

    The root of the solver's own ``power`` function, bracketed by doubling and found with
    ``brentq``: statsmodels' ``solve_power`` returns NaN when the answer lies near its starting
    bracket (a large effect, e.g. a 100 % lift, needs 2 or 3 users). None only for an answer
    above 10^12 units.
    """
    from scipy.optimize import brentq

    size = "nobs1" if ratio is not None else "nobs"
    extra = {"ratio": ratio} if ratio is not None else {}

    def achieved(n: float, alt: str, a: float) -> float:
        got = solver.power(effect_size=effect, alpha=a, alternative=alt, **{size: n}, **extra)
        return float(np.asarray(got).item())

    def short(n: float) -> float:
        got = achieved(n, alternative, alpha)
        if math.isnan(got) and alternative == "two-sided":
            # the noncentral t's far lower tail underflows to NaN (scipy's nct too) when the
            # effect is large: the upper tail alone, P(T > t_{alpha/2}), is the power but for
            # that vanishing term
            got = achieved(n, "larger", alpha / 2)
        return got - power

    first = short(2.0)
    if math.isnan(first):
        return None
    if first >= 0:
        return 2.0
    lo, hi = 2.0, 4.0
    while (gap := short(hi)) < 0:
        lo, hi = hi, hi * 2
        if hi > 1e12:
            return None
    if math.isnan(gap):
        return None
    return float(brentq(short, lo, hi, xtol=1e-10, rtol=1e-12))


def _power_replace(p: Power, **changes: Any) -> Power:
    from dataclasses import replace

    return replace(p, **changes)

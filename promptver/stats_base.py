"""What the statistics modules share: the ``Alternative`` of a test, values that are a float or
a numpy array, and the element-wise helpers that keep scalars plain and divisions quiet.

A leaf: :mod:`promptver.stats`, :mod:`promptver.stats_power`, :mod:`promptver.stats_bootstrap`
and :mod:`promptver.stats_more` import it.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

Alternative = Literal["two-sided", "greater", "less"]
"""``greater``: the alternative is *treatment > control*; ``less``: *treatment < control*."""

ArrayLike = Any  # a float or a numpy array: the numeric functions work element-wise


def _out(value: Any) -> Any:
    """0-d arrays back to Python floats so scalar callers get plain numbers."""
    arr = np.asarray(value)
    return float(arr) if arr.ndim == 0 else arr


def _div(a: ArrayLike, b: ArrayLike) -> Any:
    """``a / b`` with ``nan`` where ``b`` is zero (no warnings)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.true_divide(a, b)
    return np.where(b == 0, np.nan, r)

"""The metrics of trends and alerts: what each is, its names, and how its values are written.

A leaf of the import graph (it needs only :mod:`promptver.errors`), so that models, the alert
service, the CLI and the screens can name, validate and format metrics without loading the trend
analysis (numpy, scipy, statsmodels). :mod:`promptver.trends` re-exports every name here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from promptver.errors import Problem, ValidationError


@dataclass(frozen=True)
class Measure:
    """One metric to reduce: ``column`` (a key of :data:`promptver.store.trends.COLUMNS`) or a
    ``custom`` metric, as a mean (ratio of user sums) or as the 95th percentile."""

    column: str | None
    custom: str | None = None
    p95: bool = False


#: what performance figures can be grouped by (``promptver metrics figures --by``)
FIGURE_DIMENSIONS = ("template", "version", "variant", "environment")

CUSTOM_PREFIX = "custom:"
CUSTOM_NAME_RE = re.compile(r"\A[a-z][a-z0-9_]*\Z")


@dataclass(frozen=True)
class MetricDef:
    """A metric of trends and alerts: how it is computed from the events and how to show it."""

    key: str
    label: str
    unit: Literal["ms", "rate", "usd", "score", "tokens", "value"]
    direction: Literal["higher", "lower"]
    column: str | None
    custom: str | None = None
    p95: bool = False
    #: the range of possible values: CI bounds are clipped to it (a rate's normal-approximation
    #: interval can otherwise reach below 0 % when errors are rare)
    low: float | None = 0.0
    high: float | None = None

    @property
    def measure(self) -> Measure:
        return Measure(self.column, self.custom, self.p95)

    def clip(self, v: float | None) -> float | None:
        if v is None:
            return None
        if self.low is not None and v < self.low:
            return self.low
        if self.high is not None and v > self.high:
            return self.high
        return v


METRICS: dict[str, MetricDef] = {
    m.key: m
    for m in (
        MetricDef("latency_avg", "mean latency", "ms", "lower", "latency_ms"),
        MetricDef("latency_p95", "p95 latency", "ms", "lower", "latency_ms", p95=True),
        MetricDef("error_rate", "error rate", "rate", "lower", "error", high=1.0),
        MetricDef("success_rate", "success rate", "rate", "higher", "success", high=1.0),
        MetricDef("quality_score", "quality score", "score", "higher", "quality_score", high=1.0),
        MetricDef("cost_per_request", "cost per request", "usd", "lower", "cost_usd"),
        MetricDef("tokens_in", "input tokens per request", "tokens", "lower", "tokens_in"),
        MetricDef("tokens_out", "output tokens per request", "tokens", "lower", "tokens_out"),
    )
}
"""The built-in metrics, in display order."""

ALIASES = {
    "latency": "latency_avg",
    "latency_ms": "latency_avg",
    "latency_mean": "latency_avg",
    "p95": "latency_p95",
    "error": "error_rate",
    "errors": "error_rate",
    "success": "success_rate",
    "quality": "quality_score",
    "cost": "cost_per_request",
    "cost_usd": "cost_per_request",
}
"""Other names accepted for the built-in metrics (the event columns among them)."""

DURATION_RE = re.compile(r"\A\s*(\d+)\s*(m|min|h|d|w)\s*\Z")
_UNIT_SECONDS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: the longest duration accepted (100 years): longer ones overflow the date arithmetic
MAX_DURATION_DAYS = 36_500


def parse_duration(text: str | timedelta, field: str = "period") -> timedelta:
    """``30m``, ``1h``, ``24h``, ``7d``, ``2w`` (a whole number and a unit) as a timedelta.

    Raises:
        ValidationError: naming ``field``.
    """
    if isinstance(text, timedelta):
        if text.total_seconds() <= 0:
            raise ValidationError("invalid input:", [Problem("must be positive", field=field)])
        return text
    m = DURATION_RE.match(str(text)) if isinstance(text, str) else None
    if not m or not m.group(1).strip("0"):  # no int(): 5,000 digits are a ValueError
        raise ValidationError(
            "invalid input:",
            [
                Problem(
                    f"'{text}' is not a duration: write a whole number and a unit, m (minutes), "
                    "h, d or w, such as 30m, 24h, 7d or 2w",
                    field=field,
                )
            ],
        )
    digits = m.group(1).lstrip("0")
    seconds = int(digits) * _UNIT_SECONDS[m.group(2)] if len(digits) <= 15 else None
    if seconds is None or seconds > MAX_DURATION_DAYS * 86400:
        raise ValidationError(
            "invalid input:",
            [
                Problem(
                    f"'{_clip(text.strip())}' is too long: at most {MAX_DURATION_DAYS:,} days "
                    "(100 years)",
                    field=field,
                    code="range",
                )
            ],
        )
    return timedelta(seconds=seconds)


def _clip(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else f"{text[: limit - 4]}…{text[-3:]}"


def duration_text(value: str | timedelta) -> str:
    """A duration as shown: what was written, tidied (``24h``, ``7d``, ``30m``), or for a
    timedelta the largest whole unit (``7d``, ``36h``, ``90m``)."""
    if isinstance(value, str):
        m = DURATION_RE.match(value)
        if m:
            unit = "m" if m.group(2) == "min" else m.group(2)
            return f"{int(m.group(1))}{unit}"
    s = int(parse_duration(value).total_seconds())
    if s % 86400 == 0:
        return f"{s // 86400}d"
    if s % 3600 == 0:
        return f"{s // 3600}h"
    return f"{s // 60}m"


def metric_def(key: str) -> MetricDef:
    """The definition of a canonical metric key (a built-in or ``custom:NAME``)."""
    if key in METRICS:
        return METRICS[key]
    if key.startswith(CUSTOM_PREFIX):
        name = key[len(CUSTOM_PREFIX) :]
        return MetricDef(key, name, "value", "higher", None, custom=name, low=None)
    raise KeyError(key)


def metric_label(key: str) -> str:
    """``p95 latency``, ``error rate``, or a custom metric's name."""
    try:
        return metric_def(key).label
    except KeyError:
        return key


def canonical_metric(name: str, custom: Iterable[str] | None = None, field: str = "metric") -> str:
    """The canonical key of a metric name: a built-in key or alias, ``custom:NAME``, or the bare
    name of a custom metric found in ``custom`` (built-in names win over custom ones).

    Raises:
        ValidationError: an unknown metric (the message lists the valid ones).
    """
    text = str(name).strip()
    low = text.lower()
    if low in METRICS:
        return low
    if low in ALIASES:
        return ALIASES[low]
    if low.startswith(CUSTOM_PREFIX):
        bare = text[len(CUSTOM_PREFIX) :].strip()
        if CUSTOM_NAME_RE.match(bare):
            return CUSTOM_PREFIX + bare
        raise ValidationError(
            "invalid input:",
            [
                Problem(
                    f"'{bare}' is not a custom metric name (lower-case letters, digits and _)",
                    field=field,
                )
            ],
        )
    known = sorted(custom or [])
    if text in known:
        return CUSTOM_PREFIX + text
    custom_hint = (
        f"; custom metrics in the events: {', '.join(known)}" if known else ""
    ) + " (or custom:NAME for one not seen yet)"
    raise ValidationError(
        "invalid input:",
        [
            Problem(
                f"unknown metric '{text}': use {', '.join(METRICS)}{custom_hint}",
                field=field,
            )
        ],
    )


# ---- formatting (recommendations, the CLI and the screens share it) --------------------------


def p_text(p: float | None) -> str:
    """``p < 0.001``, ``p < 0.01`` or ``p = 0.034``."""
    if p is None:
        return "p undefined"
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return "p < 0.01"
    return f"p = {p:.2g}"


def pct_text(x: float) -> str:
    """A percentage without its sign: ``14``, ``3.2``, ``0.41``."""
    a = abs(x)
    if a >= 10:
        return f"{a:.0f}"
    if a >= 1:
        return f"{a:.1f}"
    return f"{a:.2g}"


def signed_pct_text(x: float | None) -> str:
    """``+14 %``, ``−3.2 %``, ``+0.41 %`` (``–`` when undefined)."""
    if x is None or not math.isfinite(x):
        return "–"
    return f"{'+' if x >= 0 else '−'}{pct_text(x)} %"


#: the digits a value of each unit is written with, unless more are needed
UNIT_DIGITS = {"ms": 0, "rate": 1, "tokens": 0, "usd": 4, "score": 3, "value": 3}


def unit_text(unit: str, v: float, digits: int) -> str:
    """``v`` in its unit with ``digits`` digits: decimals for ms, rates (as %) and tokens,
    significant digits for money and plain values."""
    if unit == "ms":
        return f"{v:,.{digits}f} ms"
    if unit == "rate":
        return f"{v * 100:.{digits}f} %"
    if unit == "tokens":
        return f"{v:,.{digits}f}"
    if unit == "usd":
        return f"${v:.{digits}g}"
    return f"{v:.{digits}g}"


def value_text(metric: str, v: float | None) -> str:
    """A metric's value with its unit: ``1,240 ms``, ``5.2 %``, ``$0.0023``, ``0.712``."""
    if v is None or not math.isfinite(v):
        return "–"
    unit = metric_def(metric).unit if _known(metric) else "value"
    return unit_text(unit, v, UNIT_DIGITS[unit])


def _known(metric: str) -> bool:
    try:
        metric_def(metric)
    except KeyError:
        return False
    return True


WINDOW_RE = re.compile(r"\A\s*(\d+)\s*([hd])\s*\Z")
WINDOWS = ("24h", "7d", "30d", "all")
#: the longest window (100 years): longer ones overflow the date arithmetic
MAX_WINDOW_DAYS = 36_500


def parse_window(window: str | timedelta | None, *, now: datetime | None = None) -> datetime | None:
    """Start of a window ending now: ``24h``, ``7d``, ``30d`` (any ``N h``/``N d``), ``all``.

    Raises:
        ValidationError: an unknown window.
    """
    if window is None or window == "all":
        return None
    if now is None:  # the metrics service passes its own clock (the demo's, while it builds)
        from datetime import UTC

        now = datetime.now(UTC)
    if isinstance(window, timedelta):
        return now - window
    m = WINDOW_RE.match(str(window))
    if not m or not m.group(1).strip("0"):  # no int(): 5,000 digits are a ValueError
        raise ValidationError(
            f"unknown window '{window}': use 24h, 7d, 30d, all, or a number of hours or days "
            "such as 12h or 90d"
        )
    digits = m.group(1).lstrip("0")
    days = int(digits) / (24 if m.group(2) == "h" else 1) if len(digits) <= 15 else None
    if days is None or days > MAX_WINDOW_DAYS:
        raise ValidationError(
            f"window '{_clip(window.strip())}' is too long: at most {MAX_WINDOW_DAYS:,} days "
            "(100 years), or 'all'",
            [Problem("too long", field="window", code="range")],
        )
    n = int(digits)
    return now - (timedelta(hours=n) if m.group(2) == "h" else timedelta(days=n))

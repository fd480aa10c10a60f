"""Results per segment: ``experiment results ID --by dim_country``.

Events may carry segment dimensions (``dim_*`` columns of the CSV, ``track(p, dim_model=…)``).
One SQL pass groups the experiment's events by segment value as well as by variant and user
(:func:`promptver.store.stats.segment_sums` on the promptver file,
:func:`promptver.store.warehouse_stats.segment_sums` on an external source); each segment is then analysed exactly like a whole
experiment on that segment's events alone (SRM, tests, bootstrap, CUPED, the Bayesian readout,
guardrails, the winner rule), except for the p95 latency bootstrap, which is left out.

Across segments:

- **Holm** adjusts each metric's p-values over all comparisons of all segments (segments ×
  treatments), so looking at ten segments does not give ten chances of a false winner; a
  segment's winner must stay significant after that adjustment.
- **Heterogeneity**: for each metric and treatment, Cochran's Q tests whether the effect differs
  across segments: ``Q = Σ wᵢ(dᵢ − d̄)²`` with ``wᵢ = 1/seᵢ²`` and ``d̄`` the inverse-variance
  weighted mean, against χ² with k − 1 degrees of freedom; ``I² = max(0, (Q − df)/Q)``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np

from promptver import analysis as an
from promptver import stats as st
from promptver.clock import utcnow
from promptver.errors import Problem, ValidationError
from promptver.metrics.csv_columns import DIMENSION_RE
from promptver.models.experiments import Experiment
from promptver.models.results import (
    ComparisonResult,
    HeterogeneityResult,
    SegmentedResults,
    SegmentResult,
)
from promptver.store.metric_csv import MAX_DIMENSION_VALUES


def segment_results(
    ws: an.WorkspaceLike,
    experiment: Experiment,
    by: str,
    metric: str | None = None,
    *,
    now: datetime | None = None,
    **options: Any,
) -> SegmentedResults:
    """The experiment's results for each value of the dimension ``by``.

    Args:
        ws: the workspace holding the events.
        experiment: the experiment.
        by: a segment dimension, ``dim_…``.
        metric: the metric the contract fields describe (default: the primary metric).
        now: the current time (tests).
        options: the analysis options of :func:`promptver.analysis.experiment_results`.

    Raises:
        ValidationError: ``by`` is not a dimension name, no event carries it, it has more than
            1,000 distinct values, or ``metric`` is unknown.
    """
    if not isinstance(by, str) or not DIMENSION_RE.match(by):
        raise ValidationError(
            f"--by needs a segment dimension named dim_… (e.g. dim_country), not {by!r:.60}",
            [Problem("must be a dim_* column name", field="by")],
        )
    opts = an.make_options(ws, **options)
    an.check_metric(experiment, metric)
    selected = metric or experiment.primary_metric.name
    now = now or utcnow()
    # the workspace's event source (the promptver file, or Parquet / PostgreSQL / Spark)
    with an._reader(ws) as rd, np.errstate(over="ignore", invalid="ignore"):
        base = an._Analysis(rd, experiment, opts, now)
        planned = base.plan_columns()
        # one pass: the segment value joins the groupings of the results query
        values, sums = rd.segment_sums(
            base.flt,
            planned[1],
            by,
            buckets=opts.buckets,
            user_limit=opts.user_limit,
            covariate=base.covariate(),
            max_values=MAX_DIMENSION_VALUES,
        )
        if values == 0:
            raise ValidationError(
                f"no event of experiment {experiment.name!r} in its window carries {by}",
                [Problem(f"no event carries {by}", field="by")],
            )
        if values > MAX_DIMENSION_VALUES:
            raise ValidationError(
                f"{by} has {values:,} distinct values in this experiment; a breakdown shows at "
                f"most {MAX_DIMENSION_VALUES:,}",
                [Problem(f"more than {MAX_DIMENSION_VALUES:,} values", field="by")],
            )
        segments = []
        for value, seg_sums in sums.items():
            one = an._Analysis(rd, experiment, opts, now)
            one.flt = replace(one.flt, segment=(by, value))
            r = one.run(selected, planned=planned, sums=seg_sums, quantile=False)
            segments.append(SegmentResult(value=value, **dict(r)))
    adjusted_over = _holm_across(segments, experiment)
    segments = [_recheck_winner(s, experiment) for s in segments]
    segments = [SegmentResult(**dict(s.select(selected))) for s in segments]
    messages = []
    if any(s.value is None for s in segments):
        messages.append(f"events without {by} form the segment with value null")
    return SegmentedResults(
        by=by,
        segments=segments,
        experiment_id=experiment.id,
        metric=selected,
        alpha=experiment.alpha,
        adjusted_over=adjusted_over,
        heterogeneity=heterogeneity(segments, experiment),
        messages=messages,
    )


def _holm_across(segments: list[SegmentResult], experiment: Experiment) -> int:
    """Holm over all segments' comparisons, per metric (and for the CUPED p-values)."""
    most = 0
    for spec in experiment.metrics:
        comps: list[ComparisonResult] = [
            c for s in segments for c in s.for_metric(spec.name).comparisons
        ]
        most = max(most, len(comps))
        adjusted = st.holm([c.p_value for c in comps])
        cuped = st.holm([c.cuped.p_value if c.cuped else None for c in comps])
        for c, p_adj, p_cuped in zip(comps, adjusted, cuped):
            c.p_value_adjusted = p_adj
            c.significant = p_adj is not None and p_adj < experiment.alpha
            c.verdict = _verdict(c, spec.direction)
            if c.cuped is not None:
                c.cuped.p_value_adjusted = p_cuped
                c.cuped.significant = p_cuped is not None and p_cuped < experiment.alpha
    return most


def _verdict(c: ComparisonResult, direction: str) -> str:
    if c.p_value is None:
        return "not tested"
    if not c.significant:
        return "inconclusive"
    if c.alternative != "two-sided":
        return "worse"
    good = (c.diff or 0) > 0 if direction == "higher" else (c.diff or 0) < 0
    return "better" if good else "worse"


def _recheck_winner(s: SegmentResult, experiment: Experiment) -> SegmentResult:
    """A segment's winner must stay significant after Holm across all segments."""
    if s.winner is None or experiment.engine == "bayesian":
        return s
    primary = s.for_metric(experiment.primary_metric.name)
    c = next(c for c in primary.comparisons if c.treatment == s.winner)
    still = c.cuped.significant if c.cuped is not None else c.significant
    if still:
        return s
    return s.model_copy(
        update={
            "winner": None,
            "winner_reason": f"No winner: {s.winner} is not significant after Holm adjustment "
            "across the comparisons of all segments.",
        }
    )


def heterogeneity(
    segments: list[SegmentResult], experiment: Experiment
) -> list[HeterogeneityResult]:
    """Cochran's Q per metric and treatment over the segments with a standard error."""
    from scipy import stats as sps

    out = []
    for spec in experiment.metrics:
        for treatment in [v.name for v in experiment.variants[1:]]:
            d, se = [], []
            for s in segments:
                c = next(c for c in s.for_metric(spec.name).comparisons if c.treatment == treatment)
                if c.diff is not None and c.se:
                    d.append(c.diff)
                    se.append(c.se)
            k = len(d)
            if k < 2:
                out.append(
                    HeterogeneityResult(
                        metric=spec.name,
                        treatment=treatment,
                        segments=k,
                        q=None,
                        df=max(0, k - 1),
                        p_value=None,
                        i2=None,
                        message="needs at least 2 segments with a tested comparison",
                    )
                )
                continue
            w = 1 / np.asarray(se) ** 2
            dd = np.asarray(d)
            mean = float(np.sum(w * dd) / np.sum(w))
            q = float(np.sum(w * (dd - mean) ** 2))
            df = k - 1
            out.append(
                HeterogeneityResult(
                    metric=spec.name,
                    treatment=treatment,
                    segments=k,
                    q=q,
                    df=df,
                    p_value=float(sps.chi2.sf(q, df)),
                    i2=max(0.0, (q - df) / q) if q > 0 else 0.0,
                )
            )
    return out


def dimensions(ws: an.WorkspaceLike, experiment: Experiment) -> list[str]:
    """The ``dim_*`` dimensions the experiment's events carry (what ``--by`` can take)."""
    with an._reader(ws) as rd:
        return rd.dimension_names(experiment.id)


def forest_rows(s: SegmentedResults) -> list[dict[str, Any]]:
    """One row per segment and treatment: the difference and its interval (for the plot)."""
    return [
        {
            "segment": "(none)" if seg.value is None else seg.value,
            "treatment": c.treatment,
            "diff": c.diff,
            "low": c.ci_low,
            "high": c.ci_high,
            "significant": c.significant,
        }
        for seg in s.segments
        for c in seg.comparisons
        if c.diff is not None and c.ci_low is not None and c.ci_high is not None
    ]

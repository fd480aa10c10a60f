"""The paired comparison of two versions on one dataset (``eval compare``).

SQL reduces the rows to one mean per (item, version) and metric, for the items both versions
answered (:func:`promptver.store.evals.paired_items`); the statistics run on those item means
(:mod:`promptver.evals.stats`), so their cost grows with items, not with samples.

``regressions`` lists items where the candidate is worse, worst first. Metrics have different
scales, so "worst" is measured in standard deviations of that metric's differences (the raw
difference when they do not vary); ``diff`` stays in the metric's own unit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from promptver.evals.models import (
    Agreement,
    Calibrated,
    EvalComparison,
    MetricComparison,
    PairedItem,
    Regression,
)
from promptver.evals.stats import agreement, holm, paired_test, ppi_mean
from promptver.models.core import Commit
from promptver.store import evals as sql

#: labelled items a version needs for a prediction-powered mean (contract)
MIN_LABELS = 10


def compare(
    con: Any,
    *,
    dataset: str,
    template_id: str,
    template: str,
    baseline: Commit,
    candidate: Commit,
    baseline_label: str,
    candidate_label: str,
    metrics: Sequence[str],
    alpha: float,
    lower_is_better: Callable[[str], bool],
    max_regressions: int,
) -> EvalComparison:
    data = sql.paired_items(con, dataset, template_id, baseline.id, candidate.id, metrics)
    item_ids = np.asarray(data["item_id"], dtype=object)
    rows: list[MetricComparison] = []
    worst: list[tuple[float, str, str, float, float, float]] = []
    for i, name in enumerate(metrics):
        b = _floats(data[f"b_{i}"])
        c = _floats(data[f"c_{i}"])
        both = ~np.isnan(b) & ~np.isnan(c)
        b, c = b[both], c[both]
        ids = item_ids[both]
        test = paired_test(b, c, alpha)
        lower = lower_is_better(name)
        gain = (b - c) if lower else (c - b)  # > 0: the candidate is better
        wins = int((gain > 0).sum())
        losses = int((gain < 0).sum())
        calibrated = _calibrated(
            b, c, _floats(data[f"bh_{i}"])[both], _floats(data[f"ch_{i}"])[both], alpha
        )
        rows.append(
            MetricComparison(
                name=name,
                items=test.n,
                baseline_mean=test.baseline_mean,
                candidate_mean=test.candidate_mean,
                diff=test.diff,
                ci_low=test.ci_low,
                ci_high=test.ci_high,
                p_value=test.p_value,
                p_value_adjusted=None,
                wilcoxon_p_value=test.wilcoxon_p_value,
                wins=wins,
                ties=int(test.n - wins - losses),
                losses=losses,
                significant=False,
                calibrated=calibrated,
                direction="lower" if lower else "higher",
                sd_diff=test.sd_diff,
                message=test.message,
            )
        )
        bad = np.flatnonzero(gain < 0)
        if bad.size:
            scale = test.sd_diff if test.sd_diff else 1.0
            order = bad[np.argsort(gain[bad], kind="stable")][:max_regressions]
            for k in order:
                worst.append(
                    (
                        float(-gain[k] / scale),
                        str(ids[k]),
                        name,
                        float(b[k]),
                        float(c[k]),
                        float(c[k] - b[k]),
                    )
                )
    adjusted = holm([m.p_value for m in rows])
    rows = [
        m.model_copy(
            update={
                "p_value_adjusted": p,
                "significant": p is not None and p < alpha,
            }
        )
        for m, p in zip(rows, adjusted)
    ]
    worst.sort(key=lambda w: (-w[0], w[2], w[1]))
    worst = worst[:max_regressions]
    shown = [w[1] for w in worst]
    out_b = sql.outputs(con, dataset, template_id, baseline.id, shown) if shown else {}
    out_c = sql.outputs(con, dataset, template_id, candidate.id, shown) if shown else {}
    regressions = [
        Regression(
            item_id=item,
            metric=name,
            baseline=bv,
            candidate=cv,
            diff=d,
            baseline_output=out_b.get(item),
            candidate_output=out_c.get(item),
        )
        for _, item, name, bv, cv, d in worst
    ]
    return EvalComparison(
        dataset=dataset,
        template=template,
        baseline=baseline_label,
        candidate=candidate_label,
        alpha=alpha,
        metrics=rows,
        regressions=regressions,
        baseline_commit=baseline.id,
        candidate_commit=candidate.id,
    )


def _floats(values: Any) -> np.ndarray:
    """A fetched column as float64 with NULL → NaN (fetchnumpy gives masked arrays)."""
    if isinstance(values, np.ma.MaskedArray):
        return values.astype(float).filled(np.nan)
    return np.asarray(values, dtype=float)


def _calibrated(
    b: np.ndarray, c: np.ndarray, bh: np.ndarray, ch: np.ndarray, alpha: float
) -> Calibrated | None:
    """Prediction-powered means per version over the compared items (contract formula)."""
    nb, nc = int((~np.isnan(bh)).sum()), int((~np.isnan(ch)).sum())
    if max(nb, nc) < MIN_LABELS:
        return None
    pb = ppi_mean(b, bh, alpha, MIN_LABELS)
    pc = ppi_mean(c, ch, alpha, MIN_LABELS)
    pairs, bias, corr = agreement(np.concatenate([b, c]), np.concatenate([bh, ch]))
    return Calibrated(
        baseline_mean=pb.mean,
        baseline_ci_low=pb.ci_low,
        baseline_ci_high=pb.ci_high,
        candidate_mean=pc.mean,
        candidate_ci_low=pc.ci_low,
        candidate_ci_high=pc.ci_high,
        labelled_items=min(nb, nc),
        baseline_labelled_items=nb,
        candidate_labelled_items=nc,
        agreement=Agreement(pairs=pairs, mean_bias=bias, correlation=corr),
    )


def paired_values(
    con: Any,
    dataset: str,
    template_id: str,
    baseline: str,
    candidate: str,
    metric: str,
    with_outputs: bool,
) -> list[PairedItem]:
    """The item means of ``metric`` under both commits, items scored for both only."""
    data = sql.paired_items(con, dataset, template_id, baseline, candidate, [metric])
    ids = [str(i) for i in data["item_id"]]
    b, c = _floats(data["b_0"]), _floats(data["c_0"])
    keep = [k for k in range(len(ids)) if not (np.isnan(b[k]) or np.isnan(c[k]))]
    shown = [ids[k] for k in keep]
    out_b = sql.outputs(con, dataset, template_id, baseline, shown) if with_outputs else {}
    out_c = sql.outputs(con, dataset, template_id, candidate, shown) if with_outputs else {}
    return [
        PairedItem(
            item_id=ids[k],
            baseline=float(b[k]),
            candidate=float(c[k]),
            diff=float(c[k] - b[k]),
            baseline_output=out_b.get(ids[k]),
            candidate_output=out_c.get(ids[k]),
        )
        for k in keep
    ]

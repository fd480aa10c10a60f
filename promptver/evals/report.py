"""The comparison of two versions on a dataset as a report: HTML, Markdown, CSV or JSON (bytes).

HTML and Markdown are built once as a document of plain blocks
(:mod:`promptver.reports.blocks`) and rendered by the experiment reports' renderers, which
escape every string (outputs and item ids are user text). The CSV has one row per metric,
UTF-8 with a byte order mark, formula-like cells neutralised; the JSON is the contract's
``eval compare`` object with ``kind`` and ``schema_version``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime

from promptver.csv_cells import neutralise
from promptver.evals.models import EvalComparison
from promptver.report_formats import FORMATS, check_format

KIND = "promptver.eval-comparison"
SCHEMA_VERSION = 1
CSV_COLUMNS = [
    "dataset",
    "template",
    "baseline",
    "candidate",
    "metric",
    "direction",
    "items",
    "baseline_mean",
    "candidate_mean",
    "diff",
    "ci_low",
    "ci_high",
    "p_value",
    "p_value_adjusted",
    "wilcoxon_p_value",
    "wins",
    "ties",
    "losses",
    "significant",
    "calibrated_baseline_mean",
    "calibrated_baseline_ci_low",
    "calibrated_baseline_ci_high",
    "calibrated_candidate_mean",
    "calibrated_candidate_ci_low",
    "calibrated_candidate_ci_high",
    "labelled_items",
    "judge_bias",
    "judge_correlation",
    "message",
]


def comparison_filename(cmp: EvalComparison, fmt: str) -> str:
    """``eval-<dataset>-<baseline>-vs-<candidate>.<ext>`` with only safe characters."""
    raw = f"{cmp.dataset}-{cmp.baseline}-vs-{cmp.candidate}"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-._")[:80] or "comparison"
    return f"eval-{slug}.{FORMATS[check_format(fmt)][1]}"


def render_comparison(cmp: EvalComparison, fmt: str, *, now: datetime | None = None) -> bytes:
    """The comparison in ``fmt`` (``html``, ``md``, ``csv`` or ``json``).

    Raises:
        ValidationError: an unknown format.
    """
    fmt = check_format(fmt)
    now = now or datetime.now(UTC)
    if fmt == "json":
        doc = {"kind": KIND, "schema_version": SCHEMA_VERSION, "generated_at": now.isoformat()}
        doc.update(cmp.contract())
        return json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8")
    if fmt == "csv":
        return _csv(cmp)
    doc = _document(cmp, now)
    if fmt == "html":
        from promptver.reports.to_html import render

        return render(doc).encode("utf-8")
    from promptver.reports.to_markdown import render as render_md

    return render_md(doc).encode("utf-8")


def _csv(cmp: EvalComparison) -> bytes:
    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for m in cmp.metrics:
        c = m.calibrated
        row = [
            cmp.dataset,
            cmp.template,
            cmp.baseline,
            cmp.candidate,
            m.name,
            m.direction,
            m.items,
            m.baseline_mean,
            m.candidate_mean,
            m.diff,
            m.ci_low,
            m.ci_high,
            m.p_value,
            m.p_value_adjusted,
            m.wilcoxon_p_value,
            m.wins,
            m.ties,
            m.losses,
            m.significant,
            *(
                (
                    c.baseline_mean,
                    c.baseline_ci_low,
                    c.baseline_ci_high,
                    c.candidate_mean,
                    c.candidate_ci_low,
                    c.candidate_ci_high,
                    c.labelled_items,
                    c.agreement.mean_bias,
                    c.agreement.correlation,
                )
                if c
                else (None,) * 9
            ),
            m.message,
        ]
        w.writerow(["" if v is None else neutralise(v) if isinstance(v, str) else v for v in row])
    return out.getvalue().encode("utf-8")


def _num(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


def _document(cmp: EvalComparison, now: datetime):  # -> Document (imports deferred)
    from promptver.reports.blocks import (
        B,
        C,
        Callout,
        Document,
        Fields,
        Para,
        Pre,
        Section,
        Table,
    )

    conf = f"{(1 - cmp.alpha) * 100:g} %"
    summary: list = [
        Fields(
            [
                ("Dataset", [cmp.dataset]),
                ("Template", [C(cmp.template)]),
                ("Baseline", [C(cmp.baseline), f" (commit {cmp.baseline_commit[:10]})"]),
                ("Candidate", [C(cmp.candidate), f" (commit {cmp.candidate_commit[:10]})"]),
                ("Alpha", [f"{cmp.alpha:g} (Holm-adjusted across metrics)"]),
            ]
        )
    ]
    for m in cmp.metrics:
        if m.significant and m.diff is not None:
            better = (m.diff > 0) == (m.direction == "higher")
            summary.append(
                Callout(
                    "good" if better else "bad",
                    [
                        B(m.name),
                        f": the candidate is {'better' if better else 'worse'} by "
                        f"{_num(abs(m.diff))} on {m.items} paired items (adjusted p "
                        f"{_num(m.p_value_adjusted, 3)}).",
                    ],
                )
            )
        elif m.message:
            summary.append(Callout("warn", [B(m.name), f": {m.message}"]))
    rows = []
    for m in cmp.metrics:
        rows.append(
            [
                C(m.name),
                f"{m.direction} is better",
                str(m.items),
                _num(m.baseline_mean),
                _num(m.candidate_mean),
                _num(m.diff),
                f"{_num(m.ci_low)} to {_num(m.ci_high)}",
                _num(m.p_value, 3),
                _num(m.p_value_adjusted, 3),
                _num(m.wilcoxon_p_value, 3),
                f"{m.wins} / {m.ties} / {m.losses}",
            ]
        )
    metrics = Table(
        [
            "metric",
            "direction",
            "items",
            "baseline",
            "candidate",
            "diff",
            f"{conf} CI",
            "p (paired t)",
            "p adjusted",
            "p (Wilcoxon)",
            "wins / ties / losses",
        ],
        rows,
        numeric={2, 3, 4, 5, 7, 8, 9},
    )
    sections = [
        Section("Summary", "summary", summary),
        Section(
            "Paired comparison",
            "metrics",
            [
                Para(
                    [
                        "Only items scored for both versions count; repeated samples of an item "
                        "are averaged first. diff = candidate − baseline; the interval and p are "
                        "the paired t-test, the Wilcoxon signed-rank test drops zero differences."
                    ]
                ),
                metrics,
            ],
        ),
    ]
    cal_rows = []
    for m in cmp.metrics:
        c = m.calibrated
        if c is None:
            continue
        cal_rows.append(
            [
                C(m.name),
                _num(m.baseline_mean),
                f"{_num(c.baseline_mean)} ({_num(c.baseline_ci_low)} to "
                f"{_num(c.baseline_ci_high)})",
                _num(m.candidate_mean),
                f"{_num(c.candidate_mean)} ({_num(c.candidate_ci_low)} to "
                f"{_num(c.candidate_ci_high)})",
                f"{c.baseline_labelled_items} / {c.candidate_labelled_items}",
                _num(c.agreement.mean_bias),
                _num(c.agreement.correlation, 3),
            ]
        )
    if cal_rows:
        sections.append(
            Section(
                "Calibrated judge scores",
                "calibrated",
                [
                    Para(
                        [
                            "Prediction-powered means of the human-scale score (judge mean "
                            "plus the mean human − judge difference on the labelled items), "
                            f"with {conf} intervals."
                        ]
                    ),
                    Table(
                        [
                            "metric",
                            "judge mean (baseline)",
                            "calibrated (baseline)",
                            "judge mean (candidate)",
                            "calibrated (candidate)",
                            "labelled items",
                            "judge − human",
                            "correlation",
                        ],
                        cal_rows,
                        numeric={1, 3, 6, 7},
                    ),
                ],
            )
        )
    reg_blocks: list = []
    if not cmp.regressions:
        reg_blocks.append(Para(["No item is worse with the candidate."]))
    else:
        reg_blocks.append(
            Table(
                ["item", "metric", "baseline", "candidate", "diff"],
                [
                    [C(r.item_id), C(r.metric), _num(r.baseline), _num(r.candidate), _num(r.diff)]
                    for r in cmp.regressions
                ],
                numeric={2, 3, 4},
            )
        )
        for r in cmp.regressions[:10]:
            if r.baseline_output is None and r.candidate_output is None:
                continue
            reg_blocks.append(
                Pre(
                    f"baseline:\n{r.baseline_output or ''}\n\ncandidate:\n"
                    f"{r.candidate_output or ''}",
                    caption=f"item {r.item_id} ({r.metric})",
                )
            )
    sections.append(Section("Regressions (worst first)", "regressions", reg_blocks))
    return Document(
        title=f"Evaluation: {cmp.template} {cmp.candidate} vs {cmp.baseline}",
        subtitle=[f"dataset {cmp.dataset}"],
        sections=sections,
        footer=[f"promptver · generated {now:%Y-%m-%d %H:%M} UTC"],
    )

"""The Results section of the experiment report: each metric's estimates, comparisons and tests.

One block list per metric (:func:`_metric`): the per-variant table, the comparisons with the
control (analytic and bootstrap intervals, adjusted p-values, the verdict) and the detailed
statistics behind them. The rest of the report is :mod:`promptver.reports.document`.
"""

from __future__ import annotations

from promptver.models.results import ComparisonResult, MetricResult
from promptver.reports.blocks import (
    Block,
    Callout,
    ChartFn,
    Heading,
    Inline,
    Para,
    Section,
    Table,
    Text,
    ci,
    num,
    p_cell,
    pct,
    yes,
)
from promptver.reports.gather import Report


def _results(report: Report, chart: ChartFn) -> Section:
    r = report.results
    blocks: list[Block] = [
        Para(
            [
                f"Mean per event of each metric, with {1 - r.alpha:.0%} intervals: analytic ("
                + ("always-valid confidence sequences" if r.method == "sequential" else "Welch")
                + f") beside bootstrap ({r.bootstrap.resamples:,} resamples of "
                + ("users" if r.bootstrap.unit == "user" else "hashed buckets of users")
                + f", seed {r.bootstrap.seed}). Users are the unit of inference."
            ]
        )
    ]
    if len(report.metrics) > 1 or any(m.comparisons for m in report.metrics):
        blocks.append(
            chart("overview", "All metrics: relative lift with analytic and bootstrap intervals")
        )
    for i, m in enumerate(report.metrics):
        blocks += _metric(report, m, i, chart)
    return Section("Results", "results", blocks, new_page=True)


def _metric(report: Report, m: MetricResult, index: int, chart: ChartFn) -> list[Block]:
    r = report.results
    better = f"{m.direction} is better"
    kind = "binary, a rate" if m.binary else "mean per event"
    blocks: list[Block] = [Heading(3, f"{m.metric} ({m.role}, {better}, {kind})")]
    # notes that a table row already carries are not repeated above the tables
    in_rows = {x.message for x in [*m.variants, *m.comparisons, *m.power] if x.message}
    blocks += [Callout("info", [msg]) for msg in m.messages if msg not in in_rows]
    conf = f"{1 - r.alpha:.0%}"
    blocks.append(
        Table(
            [
                "variant",
                "users",
                "users with metric",
                "events",
                "mean",
                "std",
                f"{conf} CI (analytic)",
                f"{conf} CI (bootstrap)",
                "note",
            ],
            [
                [
                    v.name,
                    num(v.users),
                    num(v.metric_users),
                    num(v.events),
                    num(v.mean),
                    num(v.std),
                    ci(v.ci_low, v.ci_high),
                    ci(v.bootstrap_ci_low, v.bootstrap_ci_high),
                    v.message or "",
                ]
                for v in m.variants
            ],
            numeric={1, 2, 3, 4, 5, 6, 7},
            caption=f"{m.metric}: per variant",
        )
    )
    blocks.append(chart(f"means-{index}", f"{m.metric}: mean per variant with its intervals"))
    if m.comparisons:
        blocks += _comparisons(m.metric, m.comparisons)
        blocks += _more_blocks(m.metric, m.comparisons, report.results.alpha)
        blocks.append(chart(f"forest-{index}", f"{m.metric}: treatment − control"))
    if m.quantile is not None:
        q = m.quantile
        level = f"p{q.quantile * 100:g}"
        rows: list[list[Inline | Text]] = [
            [v.name, num(v.events), num(v.value), ci(v.bootstrap_ci_low, v.bootstrap_ci_high)]
            for v in q.variants
        ]
        rows += [
            [
                f"{c.treatment} − {c.control}",
                "",
                num(c.diff),
                ci(c.bootstrap_ci_low, c.bootstrap_ci_high),
            ]
            for c in q.comparisons
        ]
        blocks.append(
            Table(
                ["variant", "events", level, "CI (bootstrap)"],
                rows,
                numeric={1, 2, 3},
                caption=f"{level} {q.metric} · bootstrap over users "
                f"({'exact values' if q.method == 'exact' else 'fine histograms'})",
            )
        )
        if q.message:
            blocks.append(Para([q.message]))
    if m.uncapped is not None and m.winsorized is not None:
        rows = [
            [
                c.treatment,
                num(c.diff),
                p_cell(c.p_value_adjusted),
                num(u.diff),
                p_cell(u.p_value_adjusted),
                ci(u.ci_low, u.ci_high),
            ]
            for c, u in zip(m.comparisons, m.uncapped.comparisons)
        ]
        blocks.append(
            Table(
                [
                    "treatment",
                    "difference (winsorised)",
                    "p (winsorised)",
                    "difference (uncapped)",
                    "p (uncapped)",
                    "CI (uncapped)",
                ],
                rows,
                numeric={1, 2, 3, 4, 5},
                caption=f"Winsorised at p{m.winsorized.percentile:g} of all arms (cap "
                f"{num(m.winsorized.cap)}) beside the uncapped figures",
            )
        )
    if m.power:
        target = m.power[0].target_lift
        blocks.append(
            Table(
                [
                    "treatment",
                    "users (control / treatment)",
                    "MDE now",
                    "MDE (relative)",
                    "users needed for "
                    + (f"{target:.0%}" if target is not None else "the target")
                    + " lift",
                    "days to go",
                    "progress to minimum",
                    "note",
                ],
                [
                    [
                        p.treatment,
                        f"{p.users_control:,} / {p.users_treatment:,}",
                        num(p.mde),
                        pct(p.mde_relative, signed=False),
                        (
                            f"{p.users_needed_control:,} / {p.users_needed_treatment:,}"
                            if p.users_needed_control is not None
                            and p.users_needed_treatment is not None
                            else "—"
                        ),
                        num(p.days_to_target, 3),
                        pct(p.progress, signed=False),
                        p.message or "",
                    ]
                    for p in m.power
                ],
                numeric={1, 2, 3, 4, 5, 6},
                caption=f"{m.metric}: power {m.power[0].power:.0%} and sample size "
                f"(alpha {m.power[0].alpha:.3g} per comparison)",
            )
        )
    return blocks


def _comparisons(metric: str, comps: list[ComparisonResult]) -> list[Block]:
    first = comps[0]
    test = "one-sided (worse)" if first.alternative != "two-sided" else "two-sided"
    analytic = "sequential" if first.method == "sequential" else "Welch"
    conf = f"{first.confidence:.0%}"
    effects = Table(
        [
            "treatment",
            "difference",
            f"{conf} CI ({analytic})",
            "CI (bootstrap)",
            "CI (BCa)",
            "relative lift",
            "lift CI",
            "lift CI (bootstrap)",
        ],
        [
            [
                f"{c.treatment} vs {c.control}",
                num(c.diff),
                ci(c.ci_low, c.ci_high),
                ci(c.bootstrap_ci_low, c.bootstrap_ci_high),
                ci(c.bootstrap_bca_ci_low, c.bootstrap_bca_ci_high),
                pct(c.relative_lift),
                ci(c.relative_lift_ci_low, c.relative_lift_ci_high, percent=True),
                ci(
                    c.bootstrap_relative_lift_ci_low,
                    c.bootstrap_relative_lift_ci_high,
                    percent=True,
                ),
            ]
            for c in comps
        ],
        numeric={1, 2, 3, 4, 5, 6, 7},
        caption=f"{metric}: effects against {first.control} ({test})",
    )
    tests = Table(
        [
            "treatment",
            "p",
            "p (Holm)",
            "significant",
            "Hedges' g",
            "t",
            "df",
            "verdict",
            "note",
        ],
        [
            [
                f"{c.treatment} vs {c.control}",
                p_cell(c.p_value),
                p_cell(c.p_value_adjusted),
                yes(c.significant),
                num(c.effect_size, 3),
                num(c.t_stat, 4),
                num(c.df, 4),
                c.verdict,
                c.message or "",
            ]
            for c in comps
        ],
        numeric={1, 2, 4, 5, 6},
        caption=f"{metric}: tests ({test}, {first.method})",
    )
    return [effects, tests]


def _more_blocks(metric: str, comps: list[ComparisonResult], alpha: float) -> list[Block]:
    """The Bayesian and CUPED tables of one metric (none when neither is present)."""
    blocks: list[Block] = []
    bayes = [c for c in comps if c.bayesian is not None]
    if bayes:
        blocks.append(
            Table(
                [
                    "treatment",
                    "chance to win",
                    "expected loss",
                    f"{1 - alpha:.0%} credible interval",
                ],
                [
                    [
                        f"{c.treatment} vs {c.control}",
                        pct(c.bayesian.chance_to_win, signed=False),
                        pct(c.bayesian.expected_loss, signed=False),
                        ci(c.bayesian.credible_low, c.bayesian.credible_high, percent=True),
                    ]
                    for c in bayes
                ],
                numeric={1, 2, 3},
                caption=f"{metric}: Bayesian readout of the relative lift (flat prior)",
            )
        )
    cuped = [c for c in comps if c.cuped is not None]
    if cuped:
        blocks.append(
            Table(
                [
                    "treatment",
                    "difference",
                    "adjusted difference",
                    "adjusted CI",
                    "adjusted p",
                    "adjusted p (Holm)",
                    "theta",
                    "variance reduction",
                ],
                [
                    [
                        f"{c.treatment} vs {c.control}",
                        num(c.diff),
                        num(c.cuped.diff),
                        ci(c.cuped.ci_low, c.cuped.ci_high),
                        p_cell(c.cuped.p_value),
                        p_cell(c.cuped.p_value_adjusted),
                        num(c.cuped.theta),
                        pct(c.cuped.variance_reduction, signed=False),
                    ]
                    for c in cuped
                ],
                numeric={1, 2, 3, 4, 5, 6, 7},
                caption=f"{metric}: CUPED-adjusted beside unadjusted",
            )
        )
    return blocks

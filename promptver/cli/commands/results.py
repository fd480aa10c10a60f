"""``experiment results ID [--metric M]``: the handler and its options.

The ``experiment`` command group belongs to the experiments CLI, which looks the experiment up by id
or name and then calls :func:`show_results` with it; :func:`add_arguments` adds this command's
options to that parser. ``--json`` prints the contract's results object (plus the extras).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from promptver.cli.context import (
    MAX_RESAMPLES,
    MAX_SEED,
    MAX_TARGET_LIFT,
    Context,
    float_arg,
    int_arg,
    table,
)

if TYPE_CHECKING:
    from promptver.models.experiments import Experiment
    from promptver.models.results import ExperimentResults, SegmentedResults


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``experiment results`` (after its ID argument)."""
    parser.add_argument(
        "--metric", metavar="M", help="metric to report (default: the primary metric)"
    )
    parser.add_argument(
        "--sequential",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="always-valid confidence sequences (default: settings)",
    )
    parser.add_argument(
        "--winsorize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="cap latency and cost at the settings' percentile over all arms "
        "(default: settings); the uncapped result is kept",
    )
    parser.add_argument(
        "--resamples",
        type=int_arg(100, MAX_RESAMPLES),
        metavar="N",
        help=f"bootstrap resamples, 100 to {MAX_RESAMPLES:,} (default: settings, 2000)",
    )
    parser.add_argument(
        "--seed", type=int_arg(0, MAX_SEED), help="bootstrap seed, 0 or more (default: settings)"
    )
    parser.add_argument(
        "--by",
        metavar="DIM",
        help="results per segment of a dim_* column (e.g. dim_country); Holm across all "
        "segments, a heterogeneity test and SRM per segment",
    )
    parser.add_argument(
        "--target-lift",
        type=float_arg(0, MAX_TARGET_LIFT),
        default=None,
        metavar="PCT",
        help="relative lift, in %%, that the power figures plan for (default 5)",
    )


def show_results(ctx: Context, experiment: Experiment) -> ExperimentResults | SegmentedResults:
    """Analyse ``experiment`` and print its results (JSON with ``--json``)."""
    args = ctx.args
    options = {
        "sequential": getattr(args, "sequential", None),
        "winsorize": getattr(args, "winsorize", None),
        "resamples": getattr(args, "resamples", None),
        "seed": getattr(args, "seed", None),
    }
    if getattr(args, "target_lift", None) is not None:
        options["target_lift"] = args.target_lift / 100
    if getattr(args, "by", None):
        from promptver.segments import segment_results  # numpy, scipy: only for results

        seg = segment_results(ctx.ws, experiment, args.by, getattr(args, "metric", None), **options)
        ctx.emit(seg, lambda: format_segments(seg))
        return seg  # type: ignore[return-value]
    # ended experiments answer with their frozen results unless an option asks for a new analysis
    results = ctx.ws.experiment_results(experiment, getattr(args, "metric", None), **options)
    ctx.emit(results, lambda: format_results(results))
    return results


def _n(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.0001" if value < 1e-4 else f"{value:.3g}"


def _ci(low: float | None, high: float | None, pct: bool = False) -> str:
    if low is None or high is None:
        return "-"
    return f"[{low:+.2%}, {high:+.2%}]" if pct else f"[{low:.4g}, {high:.4g}]"


def format_results(r: ExperimentResults) -> str:
    """The results as plain text for the terminal."""
    from promptver.analysis import p_text  # numpy, scipy: only for results

    better = "higher" if r.direction == "higher" else "lower"
    window = (
        f"{r.window_start.isoformat() if r.window_start else 'the beginning'} to "
        f"{r.window_end.isoformat() if r.window_end else 'now'}"
    )
    lines = [
        f"experiment {r.experiment_id} ({r.status}) · metric {r.metric} ({r.role}, {better} is "
        f"better) · alpha {r.alpha:g} · {r.method}",
        f"events from {window}",
        "SRM: "
        + ("ok" if r.srm.ok else "MISMATCH")
        + (
            f" (chi-square {p_text(r.srm.p_value)})"
            if r.srm.p_value is not None
            else " (no users yet)"
        )
        + f" · sample size: {'ok' if r.sample_size_ok else 'not reached'} "
        f"(minimum {r.minimum_sample_size} users per variant)",
    ]
    if r.winsorized is not None:
        lines.append(
            f"winsorised at p{r.winsorized.percentile:g} of all arms "
            f"(cap {_n(r.winsorized.cap)}); uncapped figures in --json 'uncapped'"
        )
    conf = f"{1 - r.alpha:.0%}"
    lines += [
        "",
        table(
            [
                [
                    v.name,
                    v.users,
                    v.events,
                    _n(v.mean),
                    _n(v.std),
                    _ci(v.ci_low, v.ci_high),
                    _ci(v.bootstrap_ci_low, v.bootstrap_ci_high),
                ]
                for v in r.variants
            ],
            ["variant", "users", "events", "mean", "std", f"{conf} CI", "bootstrap CI"],
        ),
    ]
    if r.comparisons:
        lines += [
            "",
            table(
                [
                    [
                        f"{c.treatment} vs {c.control}",
                        _n(c.diff),
                        _ci(c.ci_low, c.ci_high),
                        _ci(c.bootstrap_ci_low, c.bootstrap_ci_high),
                        "-" if c.relative_lift is None else f"{c.relative_lift:+.2%}",
                        _p(c.p_value),
                        _p(c.p_value_adjusted),
                        "yes" if c.significant else "no",
                        _n(c.effect_size, 3),
                        c.verdict,
                    ]
                    for c in r.comparisons
                ],
                [
                    "comparison",
                    "diff",
                    f"{r.comparisons[0].confidence:.0%} CI",
                    "bootstrap CI",
                    "lift",
                    "p",
                    "p (Holm)",
                    "significant",
                    "g",
                    "verdict",
                ],
            ),
        ]
    lines += _more_lines(r)
    if r.quantile is not None:
        q = r.quantile
        rows = [
            [v.name, _n(v.value), _ci(v.bootstrap_ci_low, v.bootstrap_ci_high)] for v in q.variants
        ]
        rows += [
            [
                f"{c.treatment} - {c.control}",
                _n(c.diff),
                _ci(c.bootstrap_ci_low, c.bootstrap_ci_high),
            ]
            for c in q.comparisons
        ]
        lines += ["", table(rows, [f"p{q.quantile * 100:g} {q.metric}", "value", "bootstrap CI"])]
    if r.guardrails:
        lines += [
            "",
            table(
                [
                    [
                        g.metric,
                        g.treatment,
                        _n(g.diff),
                        _p(g.p_value),
                        "-" if g.margin is None else f"{g.margin:.1%}",
                        "-" if g.bound is None else f"{g.bound:+.2%}",
                        g.status.upper() if g.status.startswith("worse") else g.status,
                    ]
                    for g in r.guardrails
                ],
                ["guardrail", "treatment", "diff", "p (worse)", "margin", "bound", "status"],
            ),
        ]
    if r.power:
        lines += [
            "",
            table(
                [
                    [
                        p.treatment,
                        _n(p.mde),
                        "-" if p.mde_relative is None else f"{p.mde_relative:.2%}",
                        "-"
                        if p.users_needed_control is None
                        else f"{p.users_needed_control} / {p.users_needed_treatment}",
                        "-" if p.days_to_target is None else f"{p.days_to_target:.1f}",
                    ]
                    for p in r.power
                ],
                [
                    "power",
                    "MDE now",
                    "MDE (relative)",
                    f"users needed for {_n((r.power[0].target_lift or 0) * 100, 3)} % lift",
                    "days to go",
                ],
            ),
        ]
    lines += ["", f"winner: {r.winner or 'none'} — {r.winner_reason}"]
    lines += [f"note: {m}" for m in r.messages]
    return "\n".join(lines)


def _more_lines(r: ExperimentResults) -> list[str]:
    """The Bayesian readout and the CUPED-adjusted comparisons, beside the frequentist table."""
    lines: list[str] = []
    bayes = [c for c in r.comparisons if c.bayesian is not None]
    if bayes:
        rule = " (decides the winner)" if r.engine == "bayesian" else ""
        lines += [
            "",
            f"Bayesian readout, flat prior{rule}:",
            table(
                [
                    [
                        f"{c.treatment} vs {c.control}",
                        _pct(c.bayesian.chance_to_win, signed=False),
                        _pct(c.bayesian.expected_loss, signed=False),
                        _ci(c.bayesian.credible_low, c.bayesian.credible_high, pct=True),
                    ]
                    for c in bayes
                ],
                [
                    "comparison",
                    "chance to win",
                    "expected loss",
                    f"{1 - r.alpha:.0%} credible interval of the lift",
                ],
            ),
        ]
    if r.bandit is not None:
        current = r.bandit.weights[-1]
        lines += [
            "",
            "bandit split now: "
            + ", ".join(f"{n} {w:.1%}" for n, w in current.weights.items())
            + f" (period {current.period}; {len(r.bandit.weights) - 1} change(s))",
            table(
                [
                    [
                        c.treatment,
                        _n(c.diff),
                        _ci(c.ci_low, c.ci_high),
                        _p(c.p_value),
                        _p(c.p_value_adjusted),
                    ]
                    for c in r.bandit.comparisons
                ],
                ["period-weighted", "diff", "CI", "p", "p (Holm)"],
            ),
        ]
    cuped = [c for c in r.comparisons if c.cuped is not None]
    if cuped:
        lines += [
            "",
            f"CUPED (lookback {r.cuped_lookback_days} days; decides the winner):",
            table(
                [
                    [
                        f"{c.treatment} vs {c.control}",
                        _n(c.diff),
                        _n(c.cuped.diff),
                        _ci(c.cuped.ci_low, c.cuped.ci_high),
                        _p(c.cuped.p_value),
                        _p(c.cuped.p_value_adjusted),
                        _n(c.cuped.theta),
                        _pct(c.cuped.variance_reduction, signed=False),
                    ]
                    for c in cuped
                ],
                [
                    "comparison",
                    "diff",
                    "adjusted diff",
                    "adjusted CI",
                    "p",
                    "p (Holm)",
                    "theta",
                    "variance reduction",
                ],
            ),
        ]
    return lines


def _pct(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "-"
    return f"{value:+.2%}" if signed else f"{value:.2%}"


def format_segments(s: SegmentedResults) -> str:
    """Results per segment as plain text: one row per segment and treatment."""
    rows = []
    for seg in s.segments:
        users = " / ".join(str(v.users) for v in seg.variants)
        for c in seg.comparisons:
            rows.append(
                [
                    "(none)" if seg.value is None else seg.value,
                    c.treatment,
                    users,
                    _n(c.diff),
                    _ci(c.ci_low, c.ci_high),
                    _p(c.p_value),
                    _p(c.p_value_adjusted),
                    "ok" if seg.srm.ok else "MISMATCH",
                    seg.winner or "-",
                ]
            )
    lines = [
        f"experiment {s.experiment_id} · metric {s.metric} · by {s.by} · Holm across all "
        f"{s.adjusted_over} segment comparisons",
        "",
        table(
            rows,
            [
                "segment",
                "treatment",
                "users",
                "diff",
                f"{1 - s.alpha:.0%} CI",
                "p",
                "p (Holm, all)",
                "SRM",
                "winner",
            ],
        ),
    ]
    het = [h for h in s.heterogeneity if h.metric == s.metric]
    if het:
        lines += [
            "",
            table(
                [
                    [
                        h.treatment,
                        h.segments,
                        _n(h.q),
                        h.df,
                        _p(h.p_value),
                        "-" if h.i2 is None else f"{h.i2:.0%}",
                    ]
                    for h in het
                ],
                ["heterogeneity", "segments", "Cochran's Q", "df", "p", "I²"],
            ),
        ]
    lines += [f"note: {m}" for m in s.messages]
    return "\n".join(lines)

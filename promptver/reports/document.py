"""The report as a tree of plain blocks (headings, paragraphs, tables, code, charts), rendered
to HTML by ``to_html`` and to Markdown by ``to_markdown``.

Building the content once keeps the two formats identical in what they say. Every string in a
block is plain text: the renderers escape all of it (HTML: ``html.escape``; Markdown: backslash
escapes, code fences longer than any backtick run in the text), so user-written text can never
become markup whichever block it lands in. Emphasis is structural (:class:`B`, :class:`C`), never
markup inside a string.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from promptver.analysis import p_text
from promptver.models import ComparisonResult, ExperimentResults, GuardrailCheck, MetricResult
from promptver.reports.gather import Report

# ---- inline text ------------------------------------------------------------------------------


@dataclass(frozen=True)
class B:
    """Bold text."""

    text: str


@dataclass(frozen=True)
class C:
    """Inline code (ids, refs, commits)."""

    text: str


Inline = str | B | C
Text = list[Inline]


# ---- blocks -----------------------------------------------------------------------------------


@dataclass
class Heading:
    level: int
    text: str
    anchor: str | None = None


@dataclass
class Para:
    parts: Text


@dataclass
class Callout:
    """A highlighted paragraph: the decision, a warning."""

    kind: Literal["good", "bad", "warn", "info"]
    parts: Text


@dataclass
class Fields:
    """Label/value pairs (a definition list in HTML, a two-column table in Markdown)."""

    pairs: list[tuple[str, Text]]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Inline | Text]]
    #: columns holding numbers (right-aligned)
    numeric: set[int] = field(default_factory=set)
    caption: str | None = None
    #: a CSS class per row (e.g. "hl" for deployments during the experiment), or ""
    row_classes: list[str] | None = None


@dataclass
class Pre:
    """Verbatim text: a prompt, a diff."""

    text: str
    lang: Literal["text", "diff"] = "text"
    caption: str | None = None


@dataclass
class Chart:
    """A chart, rendered to SVG for HTML (Markdown points to the HTML report)."""

    key: str
    caption: str
    svg: str | None = None
    error: str | None = None


@dataclass
class Items:
    """A bulleted list."""

    items: list[Text]


Block = Heading | Para | Callout | Fields | Table | Pre | Chart | Items
#: (key, caption) → the chart to place there
ChartFn = Callable[[str, str], Chart]


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Block]
    #: printing starts this section on a new page
    new_page: bool = False


@dataclass
class Document:
    title: str
    subtitle: Text
    sections: list[Section]
    footer: Text


# ---- number and date formatting ------------------------------------------------------------


def num(value: float | int | None, digits: int = 4) -> str:
    """A number with ``digits`` significant digits (integers with separators), or a dash."""
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:.{digits}g}"


def p_cell(value: float | None) -> str:
    """A p-value for tables: three significant digits, ``< 0.0001`` for tiny ones."""
    if value is None:
        return "—"
    return "< 0.0001" if value < 1e-4 else f"{value:.3g}"


def pct(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "—"
    return f"{value:+.2%}" if signed else f"{value:.1%}"


def ci(low: float | None, high: float | None, percent: bool = False) -> str:
    if low is None or high is None:
        return "—"
    if percent:
        return f"[{low:+.2%}, {high:+.2%}]"
    return f"[{low:.4g}, {high:.4g}]"


def when(t: datetime | None, missing: str = "—") -> str:
    """A time in UTC, to the second."""
    if t is None:
        return missing
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


# ---- the report's content -------------------------------------------------------------------


def build(report: Report, charts: dict[str, Chart] | None = None) -> Document:
    """The report's content. ``charts`` (key → rendered chart) are placed where they belong;
    without them (Markdown) the chart blocks say where to find them."""
    charts = charts or {}
    e, r = report.experiment, report.results

    def chart(key: str, caption: str) -> Chart:
        return charts.get(key) or Chart(key, caption)

    subtitle: Text = [
        B(_status(e.status)),
        " · template ",
        C(e.template or e.template_id),
        " in ",
        C(e.environment),
        f" · generated {when(report.generated_at)}",
    ]
    sections = [
        _decision(report),
        _experiment(report),
        _variants(report),
        _results(report, chart),
        _guardrails(report),
        *([_bandit(r)] if r.bandit is not None else []),
        _srm(report),
        _timeline(report, chart),
        _history(report),
        _method(report),
    ]
    footer: Text = [
        f"Generated by {report.generator} on {when(report.generated_at)} from experiment ",
        C(e.id),
        f" (report schema {report.schema_version}). Results "
        + (
            f"frozen when the experiment ended ({when(r.computed_at)})."
            if report.frozen
            else f"computed {when(r.computed_at)}."
        ),
    ]
    return Document(f"Experiment report: {e.name}", subtitle, sections, footer)


def _status(status: str) -> str:
    return {
        "draft": "Draft",
        "running": "Running",
        "completed": "Completed",
        "stopped": "Stopped early",
    }.get(status, status)


def _decision(report: Report) -> Section:
    e, r = report.experiment, report.results
    blocks: list[Block] = []
    if r.winner is not None:
        blocks.append(Callout("good", [B(f"Winner: {r.winner}."), " ", r.winner_reason]))
    else:
        blocks.append(Callout("info", [B("No winner."), " ", r.winner_reason]))
    if not r.srm.ok:
        blocks.append(
            Callout(
                "bad",
                [
                    B("Sample ratio mismatch"),
                    f" (chi-square {p_text(r.srm.p_value)} < {r.srm.threshold:g}): the users per "
                    "variant do not match the configured split, so these figures may be biased "
                    "and no winner is named.",
                ],
            )
        )
    smallest = min((v.users for v in r.variants), default=0)
    if not r.sample_size_ok:
        blocks.append(
            Callout(
                "warn",
                [
                    B("Sample size not reached"),
                    f": the smallest variant has {smallest:,} of the {r.minimum_sample_size:,} "
                    "users needed before a winner may be named.",
                ],
            )
        )
    worse = [g for g in r.guardrails if g.worse]
    if worse:
        blocks.append(
            Callout(
                "bad",
                [
                    B("Guardrail breached"),
                    ": "
                    + "; ".join(
                        f"{g.treatment} is significantly worse on {g.metric}" for g in worse
                    )
                    + ".",
                ],
            )
        )
    for note in [*r.experiment_messages, *report.notes]:
        if not note.startswith("sample ratio mismatch"):
            blocks.append(Callout("info", [note]))
    headline = [
        f"{c.treatment} vs {c.control}: {pct(c.relative_lift)} "
        f"({'adjusted ' + p_text(c.p_value_adjusted)}, {c.verdict})"
        for c in r.comparisons
    ]
    srm = "ok" if r.srm.ok else "MISMATCH"
    if r.srm.p_value is not None:
        srm += f" (chi-square {p_text(r.srm.p_value)})"
    else:
        srm += " (no users yet)"
    pairs: list[tuple[str, Text]] = [
        (
            "Primary metric",
            [C(e.primary_metric.name), f" ({e.primary_metric.direction} is better)"],
        ),
        ("Effect", ["; ".join(headline) or "no comparison yet"]),
        ("Sample ratio (SRM)", [srm]),
        (
            "Sample size",
            [
                f"{'reached' if r.sample_size_ok else 'not reached'}: the smallest variant has "
                f"{smallest:,} users (minimum {r.minimum_sample_size:,})"
            ],
        ),
        (
            "Guardrails",
            [
                "none configured"
                if not r.guardrails
                else ("breached" if worse else "none significantly worse")
            ],
        ),
        (
            "Analysis",
            [
                f"{r.method}, alpha {r.alpha:g}, "
                + (
                    "final results frozen when the experiment ended"
                    if report.frozen
                    else f"computed {when(r.computed_at)}"
                )
            ],
        ),
    ]
    blocks.append(Fields(pairs))
    return Section("Decision", "decision", blocks)


def _experiment(report: Report) -> Section:
    e, r = report.experiment, report.results
    start, end = report.window
    pairs: list[tuple[str, Text]] = [
        ("Name", [e.name]),
        ("Id", [C(e.id)]),
        ("Status", [_status(e.status)]),
        ("Hypothesis", [e.hypothesis or "—"]),
        ("Description", [e.description or "—"]),
        ("Template", [C(e.template or e.template_id), " (id ", C(e.template_id), ")"]),
        ("Environment", [C(e.environment)]),
        ("Created", [f"{when(e.created_at)} by ", e.created_by or "unknown"]),
        ("Started", [when(e.started_at, "not started")]),
        ("Stopped", [when(e.stopped_at, "still running" if e.status == "running" else "—")]),
    ]
    if e.stop_reason:
        pairs.append(("Reason for stopping", [e.stop_reason]))
    if e.start_at or e.end_at:
        pairs.append(
            ("Planned window", [f"{when(e.start_at, 'at start')} → {when(e.end_at, 'open')}"])
        )
    pairs += [
        (
            "Events analysed",
            [f"{when(start, 'from the start')} → {when(end, 'now (running)')}"],
        ),
        ("Significance level α", [f"{e.alpha:g}"]),
        ("Minimum sample", [f"{e.minimum_sample_size:,} users per variant"]),
        ("Coverage", [f"{e.coverage:.0%} of users"]),
        ("Salt", [C(e.salt)]),
        ("Users", [f"{sum(v.users for v in r.variants):,} in the window"]),
    ]
    metrics = Table(
        ["metric", "role", "better when"],
        [
            [C(m.name), "primary" if i == 0 else m.role, m.direction]
            for i, m in enumerate(e.metrics)
        ],
        caption="Metrics (the first is the primary one)",
    )
    return Section("Experiment", "experiment", [Fields(pairs), metrics])


def _variants(report: Report) -> Section:
    users = {v.name: v.users for v in report.results.variants}
    rows: list[list[Inline | Text]] = []
    for v in report.variants:
        c = v.commit
        rows.append(
            [
                v.spec.name,
                "control" if v.is_control else "treatment",
                C(v.spec.ref),
                C(c.id[:10]) if c else "—",
                (c.version or "unreleased") if c else "—",
                pct(v.share, signed=False),
                num(users.get(v.spec.name, 0)),
            ]
        )
    blocks: list[Block] = [
        Table(
            ["variant", "role", "ref", "commit", "version", "share", "users"],
            rows,
            numeric={5, 6},
            caption="Variants (the first is the control); "
            + (
                "refs resolved now: they are frozen when the experiment starts"
                if any(v.resolved_now for v in report.variants)
                else "commits frozen when the experiment started"
            ),
        )
    ]
    for v in report.variants:
        blocks.append(Heading(3, f"{v.spec.name} ({'control' if v.is_control else 'treatment'})"))
        c = v.commit
        if c is None:
            blocks.append(Para(["The text of this variant is not available."]))
            continue
        blocks.append(
            Para(
                [
                    "Commit ",
                    C(c.id[:12]),
                    f" · version {c.version or 'unreleased (not on main)'} · by ",
                    c.author or "unknown",
                    f" · {when(c.created_at)}",
                    *([" · message: ", c.message] if c.message else []),
                    *([" · resolved when this report was made"] if v.resolved_now else []),
                ]
            )
        )
        if v.diff is not None:
            d = v.diff
            if d.identical:
                blocks.append(Para(["Identical to the control."]))
            else:
                summary = f"Against the control: +{d.lines_added} / −{d.lines_removed} lines"
                if d.variables_added:
                    summary += "; variables added: " + ", ".join(d.variables_added)
                if d.variables_removed:
                    summary += "; variables removed: " + ", ".join(d.variables_removed)
                if d.metadata_changes:
                    summary += "; metadata changed: " + ", ".join(m.key for m in d.metadata_changes)
                if d.config_changes:
                    from promptver.chat import describe_config_change

                    summary += "; model configuration: " + describe_config_change(
                        d.config_changes, limit=8
                    )
                blocks.append(Para([summary]))
                if d.unified:
                    blocks.append(Pre(d.unified, "diff", caption="Diff against the control"))
        if c.kind == "chat" or c.config:
            from promptver.chat import readable

            caption = "Prompt messages and model configuration"
            blocks.append(
                Pre(
                    readable(c.kind, c.content, c.messages or [], c.config), "text", caption=caption
                )
            )
        else:
            blocks.append(Pre(c.content, "text", caption="Prompt text"))
    return Section("Variants and their prompts", "variants", blocks, new_page=True)


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


def _guardrail_status(g: GuardrailCheck) -> str:
    """The status cell: non-inferiority with its bound, or the one-sided test's outcome."""
    if g.margin is not None and g.bound is not None:
        return f"{g.status} (bound {g.bound:+.2%}, margin {g.margin:.1%})"
    return "SIGNIFICANTLY WORSE" if g.worse else g.status


def _bandit(r: ExperimentResults) -> Section:
    """allocation: bandit — the split over time and the period-weighted comparisons."""
    b = r.bandit
    names = list(b.weights[0].weights) if b.weights else []
    return Section(
        "Bandit allocation",
        "bandit",
        [
            Para([b.caveat]),
            Table(
                ["period", "from", *names],
                [
                    [str(w.period), when(w.at), *(pct(w.weights[n], signed=False) for n in names)]
                    for w in b.weights
                ],
                numeric=set(range(2, 2 + len(names))),
                caption="The split over time (share of new users)",
            ),
            Table(
                ["treatment", "difference", "CI", "p", "p (Holm)", "significant"],
                [
                    [
                        c.treatment,
                        num(c.diff),
                        ci(c.ci_low, c.ci_high),
                        p_cell(c.p_value),
                        p_cell(c.p_value_adjusted),
                        yes(c.significant),
                    ]
                    for c in b.comparisons
                ],
                numeric={1, 2, 3, 4},
                caption=f"Period-weighted comparisons against {r.variants[0].name} "
                f"({b.periods_used} period(s) with data in every arm)",
            ),
        ],
    )


def _guardrails(report: Report) -> Section:
    r = report.results
    if not r.guardrails:
        return Section(
            "Guardrails",
            "guardrails",
            [Para(["No guardrail metric is configured for this experiment."])],
        )
    rows: list[list[Inline | Text]] = [
        [
            C(g.metric),
            "higher" if g.direction == "lower" else "lower",
            g.treatment,
            num(g.diff),
            pct(g.relative_lift),
            p_cell(g.p_value),
            _guardrail_status(g),
            g.message or "",
        ]
        for g in r.guardrails
    ]
    return Section(
        "Guardrails",
        "guardrails",
        [
            Para(
                [
                    "Each guardrail is tested one-sided in its bad direction at alpha "
                    f"{r.alpha:g}, without adjustment (adjusting would hide harm). A treatment "
                    "that is significantly worse on a guardrail cannot win. A guardrail with a "
                    "margin is a non-inferiority test instead: the one-sided bound of its "
                    "relative lift must stay within the margin."
                ]
            ),
            Table(
                [
                    "metric",
                    "worse when",
                    "treatment",
                    "difference",
                    "lift",
                    "p (worse)",
                    "status",
                    "note",
                ],
                rows,
                numeric={3, 4, 5},
            ),
        ],
    )


def _srm(report: Report) -> Section:
    r, e = report.results, report.experiment
    total = sum(r.srm.observed.values())
    rows: list[list[Inline | Text]] = []
    for v, w in zip(e.variants, e.weights()):
        rows.append(
            [
                v.name,
                pct(w, signed=False),
                num(r.srm.expected.get(v.name), 6) if total else "—",
                num(r.srm.observed.get(v.name, 0)),
                pct(r.srm.observed.get(v.name, 0) / total, signed=False) if total else "—",
            ]
        )
    status = "ok" if r.srm.ok else "MISMATCH"
    line = (
        f"Pearson's chi-square of the observed users per variant against the configured split: "
        f"χ² = {num(r.srm.chi2)}, {r.srm.df} df, p = {p_cell(r.srm.p_value)} "
        f"(flagged below {r.srm.threshold:g}): {status}."
        if r.srm.p_value is not None
        else "No users yet: the split cannot be tested."
    )
    return Section(
        "Sample ratio",
        "srm",
        [
            Para([line]),
            Table(
                ["variant", "configured share", "expected users", "observed users", "share"],
                rows,
                numeric={1, 2, 3, 4},
            ),
        ],
    )


def _timeline(report: Report, chart: ChartFn) -> Section:
    e = report.experiment
    blocks: list[Block] = []
    if not report.deployments:
        blocks.append(Para(["This template has never been deployed."]))
        return Section(f"Deployment timeline of {e.template}", "deployments", blocks)
    blocks.append(
        Para(
            [
                "Every deployment and rollback of ",
                C(e.template or e.template_id),
                ", newest first. Rows marked ● happened in ",
                C(e.environment),
                " while the experiment's events counted (shaded in the chart).",
            ]
        )
    )
    blocks.append(chart("timeline", f"Deployments of {e.template} by environment"))
    shown = report.timeline_rows()
    rows: list[list[Inline | Text]] = []
    classes = []
    for d in shown:
        inside = report.during(d)
        replaced = d.replaced_label()
        rows.append(
            [
                "●" if inside else "",
                when(d.created_at),
                C(d.environment),
                d.action + (" (forced)" if d.forced else ""),
                d.label(),
                C(d.commit[:10]),
                replaced or "—",
                d.author or "unknown",
                " · ".join(x for x in (d.note, d.force_reason or "") if x),
            ]
        )
        classes.append("hl" if inside else "")
    blocks.append(
        Table(
            [
                "",
                "when",
                "environment",
                "action",
                "version",
                "commit",
                "replaced",
                "by",
                "note",
            ],
            rows,
            row_classes=classes,
        )
    )
    if len(shown) < len(report.deployments):
        blocks.append(
            Para(
                [
                    f"{len(report.deployments) - len(shown):,} older entries are not listed "
                    "(the JSON report holds all of them; ",
                    C(f"promptver deployments {e.template}"),
                    " lists them too).",
                ]
            )
        )
    return Section(f"Deployment timeline of {e.template}", "deployments", blocks, new_page=True)


def _history(report: Report) -> Section:
    if not report.history:
        return Section("Experiment history", "history", [Para(["No lifecycle events recorded."])])
    return Section(
        "Experiment history",
        "history",
        [
            Table(
                ["when", "action", "by", "detail"],
                [[when(h.at), h.action, h.author or "unknown", h.detail] for h in report.history],
            )
        ],
    )


def _method(report: Report) -> Section:
    r = report.results
    method = (
        "Sequential: always-valid normal-mixture confidence sequences; the p-values and "
        "intervals hold at every look."
        if r.method == "sequential"
        else "Fixed horizon: Welch's t-test with the delta method (read the p-values once, at "
        "the planned end)."
    )
    unit = "users" if r.bootstrap.unit == "user" else "hashed buckets of users (large sample)"
    items: list[Text] = [
        [
            "The estimand is the mean per event (Σ metric / Σ events); the user is the unit of "
            "inference, because a user's events are not independent."
        ],
        [method],
        [
            f"Bootstrap: {r.bootstrap.resamples:,} resamples of {unit}, seed {r.bootstrap.seed}; "
            "percentile and BCa intervals."
        ],
        [
            "Holm adjustment across each metric's comparisons; guardrails are one-sided and "
            f"unadjusted; alpha {r.alpha:g}."
        ],
        [
            "SRM: chi-square of users per variant against the configured split, flagged below "
            f"p = {r.srm.threshold:g}."
        ],
        [
            "A treatment wins only if it is significantly better on the primary metric after "
            "adjustment, every variant has the minimum sample, the split matches and no "
            "guardrail is significantly worse."
        ],
        ["Formulas: docs/statistics.md in the promptver repository."],
    ]
    if r.winsorized is not None:
        items.insert(
            3,
            [
                f"Latency and cost are winsorised at p{r.winsorized.percentile:g} of all arms' "
                "events; the uncapped figures are shown beside them."
            ],
        )
    if report.options:
        opts = ", ".join(f"{k}={v}" for k, v in sorted(report.options.items()))
        items.append([f"Analysis options of this report: {opts}."])
    return Section("How these figures are computed", "method", [Items(items)])

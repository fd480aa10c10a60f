"""``eval import | list | items | compare | report | power``: offline evaluations.

Contract: "Offline evaluations". ``compare --json`` prints the contract's object; ``report``
writes it as HTML, Markdown, CSV or JSON with the same file rules as ``promptver report``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from promptver.cli.context import (
    Context,
    UsageError,
    float_arg,
    is_terminal,
    limit_arg,
    table,
    visible,
)
from promptver.report_formats import FORMATS


def register(sub: Any) -> None:
    ep = sub.add_parser(
        "eval", help="offline evaluations: import scored outputs, compare two versions"
    )
    esub = ep.add_subparsers(dest="eval_command", metavar="ACTION")
    esub.required = True

    p = esub.add_parser("import", help="import an eval results CSV (all rows or none)")
    p.add_argument("file", metavar="FILE.csv")
    p.add_argument("--author", help="who imports it (default: $PROMPTVER_AUTHOR or login)")
    p.add_argument("--dry-run", action="store_true", help="check the file only; write nothing")
    p.set_defaults(handler=cmd_import)

    p = esub.add_parser("list", help="datasets, or the runs of one dataset")
    p.add_argument("dataset", nargs="?", metavar="DATASET")
    p.add_argument("--template", metavar="REF", help="only runs of this template")
    p.add_argument("--version", dest="ref", metavar="REF", help="only runs of this version")
    p.set_defaults(handler=cmd_list)

    p = esub.add_parser("items", help="items of a version on a dataset (samples averaged)")
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("ref", metavar="VERSION")
    p.add_argument("--template", metavar="REF")
    p.add_argument("--limit", type=limit_arg, default=50)
    p.set_defaults(handler=cmd_items)

    for name, helptext in (
        ("compare", "paired comparison of two versions on a dataset"),
        ("report", "export a comparison (HTML, Markdown, CSV or JSON)"),
        ("power", "items needed to detect a difference (paired design)"),
    ):
        p = esub.add_parser(name, help=helptext)
        p.add_argument("dataset", metavar="DATASET")
        p.add_argument("baseline", metavar="BASELINE", help="a version, branch or commit prefix")
        p.add_argument("candidate", metavar="CANDIDATE")
        p.add_argument("--template", metavar="REF", help="needed when the dataset has several")
        if name == "power":
            p.add_argument("--metric", required=True, metavar="M")
            p.add_argument(
                "--difference",
                required=True,
                type=float_arg(-1e15, 1e15),
                metavar="D",
                help="the difference to detect, in the metric's unit",
            )
            p.add_argument("--power", type=float_arg(0, 0.999), default=0.8, metavar="P")
            p.set_defaults(handler=cmd_power)
            continue
        p.add_argument("--metric", metavar="M", help="only this score")
        if name == "report":
            p.add_argument(
                "--format",
                dest="report_format",
                metavar="FORMAT",
                help=f"{'|'.join(FORMATS)} (default: from the --output extension)",
            )
            p.add_argument("--output", "-o", default="-", metavar="PATH")
            p.add_argument("--force", action="store_true", help="replace an existing file")
            p.set_defaults(handler=cmd_report)
        else:
            p.set_defaults(handler=cmd_compare)


def cmd_import(ctx: Context) -> None:
    args = ctx.args
    progress = None
    if not ctx.json and sys.stderr.isatty():

        def progress(fraction: float, message: str) -> None:
            sys.stderr.write(f"\r{fraction:4.0%} {visible(message):<40}")
            if fraction >= 1:
                sys.stderr.write("\n")

    r = ctx.ws.evals.import_csv(
        args.file, author=ctx.author, dry_run=args.dry_run, progress=progress
    )
    data = r.contract()
    runs = ", ".join(
        f"{x['dataset']} {x['template']} {x['version'] or x['commit_id'][:10]}" for x in r.runs
    )
    if args.dry_run:
        data = {**data, "dry_run": True}
        human = f"{r.file_name} is valid: {r.rows_imported:,} rows would be imported ({runs})"
    else:
        human = (
            f"imported {r.rows_imported:,} rows from {r.file_name} in {r.seconds:.2f} s "
            f"(eval import {r.import_id}): {runs}"
        )
    ctx.emit(data, human)


def cmd_list(ctx: Context) -> None:
    args = ctx.args
    if args.dataset is None and args.template is None and args.ref is None:
        ds = ctx.ws.evals.datasets()
        data = [d.model_dump(mode="json") for d in ds]

        def human() -> str:
            if not ds:
                return "no evaluations yet (promptver eval import FILE.csv)"
            rows = [
                [d.dataset, ", ".join(d.templates), d.commits, d.items, ", ".join(d.metrics)]
                for d in ds
            ]
            return table(rows, ["dataset", "templates", "versions", "items", "scores"])

        ctx.emit(data, human)
        return
    runs = ctx.ws.evals.runs(args.dataset, template=args.template, ref=args.ref)
    data = [
        {
            "id": r.id,
            "dataset": r.dataset,
            "template": r.template,
            "version": r.version_now or r.version,
            "ref": r.ref,
            "commit": r.commit,
            "rows": r.rows,
            "items": r.items,
            "metrics": r.metrics,
            "created_at": r.created_at,
            "created_by": r.created_by,
            "file_name": r.file_name,
        }
        for r in runs
    ]

    def human_runs() -> str:
        if not runs:
            return "no runs"
        rows = [
            [
                r.dataset,
                r.template,
                r.label,
                r.commit[:10],
                r.items,
                r.rows,
                f"{r.created_at:%Y-%m-%d %H:%M}",
            ]
            for r in runs
        ]
        return table(
            rows, ["dataset", "template", "version", "commit", "items", "rows", "imported"]
        )

    ctx.emit(data, human_runs)


def cmd_items(ctx: Context) -> None:
    args = ctx.args
    items = ctx.ws.evals.items(args.dataset, args.ref, template=args.template, limit=args.limit)
    data = [i.model_dump(mode="json") for i in items]

    def human() -> str:
        names = list(items[0].scores) if items else []
        rows = [
            [
                i.item_id,
                i.samples,
                *("" if i.scores[n] is None else f"{i.scores[n]:.4g}" for n in names),
            ]
            for i in items
        ]
        return table(rows, ["item", "samples", *names])

    ctx.emit(data, human)


def _fmt(x: float | None, spec: str = ".4g") -> str:
    return "" if x is None else format(x, spec)


def cmd_compare(ctx: Context) -> None:
    args = ctx.args
    cmp = ctx.ws.evals.compare(
        args.dataset, args.baseline, args.candidate, template=args.template, metric=args.metric
    )

    def human() -> str:
        head = (
            f"{cmp.template}: {cmp.candidate} vs {cmp.baseline} on {cmp.dataset} "
            f"(paired, alpha {cmp.alpha:g}, Holm across metrics)"
        )
        rows = []
        for m in cmp.metrics:
            rows.append(
                [
                    m.name,
                    m.items,
                    _fmt(m.baseline_mean),
                    _fmt(m.candidate_mean),
                    _fmt(m.diff, "+.4g"),
                    f"[{_fmt(m.ci_low)}, {_fmt(m.ci_high)}]",
                    _fmt(m.p_value_adjusted, ".3g"),
                    f"{m.wins}/{m.ties}/{m.losses}",
                    "yes" if m.significant else "no",
                ]
            )
        out = [
            head,
            "",
            table(
                rows,
                [
                    "metric",
                    "items",
                    "baseline",
                    "candidate",
                    "diff",
                    "CI",
                    "p adj",
                    "w/t/l",
                    "significant",
                ],
            ),
        ]
        for m in cmp.metrics:
            if m.message:
                out.append(f"{m.name}: {m.message}")
            c = m.calibrated
            if c is not None:
                out.append(
                    f"{m.name} calibrated by {c.labelled_items}+ human labels: baseline "
                    f"{_fmt(c.baseline_mean)} [{_fmt(c.baseline_ci_low)}, {_fmt(c.baseline_ci_high)}], "
                    f"candidate {_fmt(c.candidate_mean)} [{_fmt(c.candidate_ci_low)}, "
                    f"{_fmt(c.candidate_ci_high)}]; judge − human {_fmt(c.agreement.mean_bias, '+.3g')}, "
                    f"correlation {_fmt(c.agreement.correlation, '.2f')}"
                )
        if cmp.regressions:
            out.append(f"\n{len(cmp.regressions)} regressions, worst first:")
            out.append(
                table(
                    [
                        [
                            r.item_id,
                            r.metric,
                            _fmt(r.baseline),
                            _fmt(r.candidate),
                            _fmt(r.diff, "+.4g"),
                        ]
                        for r in cmp.regressions[:10]
                    ],
                    ["item", "metric", "baseline", "candidate", "diff"],
                )
            )
        return "\n".join(out)

    ctx.emit(cmp.contract(), human)


def cmd_report(ctx: Context) -> int:
    from promptver.cli.commands.reports import _format, _write_file

    args = ctx.args
    fmt = _format(args)
    from promptver.evals.report import render_comparison

    cmp = ctx.ws.evals.compare(
        args.dataset, args.baseline, args.candidate, template=args.template, metric=args.metric
    )
    data = render_comparison(cmp, fmt)
    if args.output == "-":
        out = ctx.out
        if is_terminal(out):
            data = visible(data.decode("utf-8")).encode("utf-8")
        out.flush()
        buffer = getattr(out, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:
            out.write(data.decode("utf-8"))
        return 0
    path = Path(args.output)
    _write_file(path, data, args.force)
    ctx.emit(
        {"path": str(path), "format": fmt, "bytes": len(data)},
        f"wrote {path} ({fmt}, {len(data):,} bytes)",
    )
    return 0


def cmd_power(ctx: Context) -> None:
    args = ctx.args
    if args.difference == 0:
        raise UsageError("--difference must not be 0")
    p = ctx.ws.evals.power(
        args.dataset,
        args.baseline,
        args.candidate,
        metric=args.metric,
        difference=args.difference,
        power=args.power,
        template=args.template,
    )

    def human() -> str:
        if p.items_needed is None:
            return f"no power calculation: {p.message}"
        return (
            f"{p.items_needed:,} paired items detect a difference of {p.difference:g} in "
            f"{p.metric} with power {p.power:g} at alpha {p.alpha:g} (standard deviation of "
            f"the differences {p.sd_diff:.4g}); the {p.items_now:,} items now give power "
            f"{_fmt(p.power_now, '.2f')}"
        )

    ctx.emit(p.model_dump(mode="json"), human)

"""``report EXPERIMENT --format html|md|csv|json --output PATH``: export an experiment report.

The format comes from ``--format`` or, without it, from the output file's extension. ``--output -``
(the default) writes the report to stdout. An existing file is not overwritten unless ``--force``
is given; the report is written to a temporary file beside it and renamed into place, so a failed
export never leaves a half-written file.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from promptver.cli.context import Context, UsageError
from promptver.errors import PromptverError
from promptver.report_formats import FORMATS, check_format, format_from_path

#: bootstrap resamples a report may ask for (each costs memory proportional to the users)
MAX_RESAMPLES = 100_000


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="export an experiment report (HTML, Markdown, CSV or JSON)",
        description="Export the report of an experiment: configuration, variants and their "
        "diffs, results of every metric with analytic and bootstrap intervals, SRM, power, "
        "guardrails, the decision, and the template's deployment timeline.",
    )
    p.add_argument("experiment", metavar="EXPERIMENT", help="experiment id or name")
    p.add_argument(
        "--format",
        dest="report_format",
        metavar="FORMAT",
        help=f"{'|'.join(FORMATS)} (default: from the --output extension)",
    )
    p.add_argument(
        "--output",
        "-o",
        default="-",
        metavar="PATH",
        help="file to write ('-', the default, writes to stdout)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument(
        "--sequential",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="always-valid confidence sequences (default: settings; an ended experiment "
        "reports its frozen final results unless an option is given)",
    )
    p.add_argument(
        "--winsorize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="cap latency and cost at the settings' percentile (default: settings)",
    )
    p.add_argument(
        "--resamples", type=int, metavar="N", help="bootstrap resamples (100 to 100,000)"
    )
    p.add_argument("--seed", type=int, help="bootstrap seed")
    p.set_defaults(handler=cmd_report)


def _format(args: argparse.Namespace) -> str:
    if args.report_format:
        try:
            return check_format(args.report_format)
        except PromptverError as exc:
            raise UsageError(exc.message) from None
    if args.output != "-":
        guessed = format_from_path(args.output)
        if guessed:
            return guessed
        raise UsageError(
            f"cannot tell the format from {args.output!r}: give --format "
            f"{'|'.join(FORMATS)} (or a .html, .md, .csv or .json file name)"
        )
    raise UsageError(f"give --format {'|'.join(FORMATS)} when writing to stdout")


def _write_file(path: Path, data: bytes, force: bool) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (all or nothing)."""
    if path.is_dir():
        raise PromptverError(f"--output {path} is a directory: give a file name")
    if path.exists() and not force:
        raise PromptverError(f"{path} already exists: use --force to overwrite it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise PromptverError(f"cannot write {path}: the directory {parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise PromptverError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise PromptverError(f"cannot write {path}: {exc.strerror}") from None


def cmd_report(ctx: Context) -> int:
    args = ctx.args
    fmt = _format(args)
    if args.resamples is not None and not 100 <= args.resamples <= MAX_RESAMPLES:
        raise UsageError(f"--resamples must be between 100 and {MAX_RESAMPLES:,}")
    options = {
        "sequential": args.sequential,
        "winsorize": args.winsorize,
        "resamples": args.resamples,
        "seed": args.seed,
    }
    from promptver.reports import render_report  # the renderers load Altair: only when asked

    exp = ctx.ws.experiments.get(args.experiment)
    data = render_report(ctx.ws, exp, fmt, **options)
    if args.output == "-":
        out = ctx.out
        out.flush()
        buffer = getattr(out, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:  # a text stream without bytes underneath (tests capture stdout this way)
            out.write(data.decode("utf-8"))
        return 0
    path = Path(args.output)
    _write_file(path, data, args.force)
    summary = {
        "path": str(path),
        "format": fmt,
        "bytes": len(data),
        "experiment_id": exp.id,
    }
    ctx.emit(summary, f"wrote {path} ({fmt}, {len(data):,} bytes) for experiment {exp.name}")
    return 0

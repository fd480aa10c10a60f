"""``report EXPERIMENT --format html|md|csv|json --output PATH``: export an experiment report.

The format comes from ``--format`` or, without it, from the output file's extension. ``--output -``
(the default) writes the report to stdout. An existing file is not overwritten unless ``--force``
is given; the report is written to a temporary file beside it and renamed into place, so a failed
export never leaves a half-written file. An existing character device or FIFO (``/dev/null``, a
named pipe), or a link to one (``/dev/stdout``), is written into, never replaced; other
symbolic links, block devices and sockets are refused.
"""

from __future__ import annotations

import argparse
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from promptver.cli.context import (
    MAX_RESAMPLES,
    MAX_SEED,
    Context,
    UsageError,
    int_arg,
    is_terminal,
    visible,
)
from promptver.errors import PromptverError
from promptver.report_formats import FORMATS, check_format, format_from_path


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
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing regular file (a device or FIFO is written into; a "
        "symbolic link is refused)",
    )
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
    p.add_argument("--seed", type=int_arg(0, MAX_SEED), help="bootstrap seed (0 or more)")
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
    """Write ``data`` to ``path``: a new or (with ``force``) an existing regular file through a
    temporary file and a rename (all or nothing); an existing character device or FIFO
    (``/dev/null``, a named pipe) by writing into it, since a rename would replace it with a
    regular file; a symbolic link to one of those (``/dev/stdout``) likewise. Other symbolic
    links, block devices, sockets and directories are refused: a report never replaces them, nor
    writes through a link to a file it was not given."""
    try:
        st: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise PromptverError(f"cannot write {path}: {exc.strerror}") from None
    if st is not None:
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            try:
                target_mode = os.stat(path).st_mode
            except OSError:  # dangling, or a loop
                target_mode = 0
            if not (stat.S_ISCHR(target_mode) or stat.S_ISFIFO(target_mode)):
                raise PromptverError(
                    f"--output {path} is a symbolic link: give the path of the file itself "
                    "(a report never replaces a link or writes through one to a file)"
                )
            mode = target_mode  # /dev/stdout and the like: written into below
        if stat.S_ISDIR(mode):
            raise PromptverError(f"--output {path} is a directory: give a file name")
        if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
            _write_into(path, data)
            return
        if not stat.S_ISREG(mode):
            raise PromptverError(
                f"--output {path} is not a regular file (a block device or a socket): "
                "refusing to write to it"
            )
        if not force:
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


def _write_into(path: Path, data: bytes) -> None:
    """Write into an existing character device or FIFO (opening a FIFO waits for a reader)."""
    flags = os.O_WRONLY | getattr(os, "O_NOCTTY", 0)  # the target was checked to be one
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise PromptverError(f"cannot write {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):  # swapped since the check
            raise PromptverError(f"cannot write {path}: it changed while being opened")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise PromptverError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


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
        if is_terminal(out):  # a report read on a terminal: show control characters as escapes
            data = visible(data.decode("utf-8")).encode("utf-8")
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

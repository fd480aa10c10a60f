"""Entry point: global options, the command registry, and error handling.

Each module in ``promptver.cli.commands`` has ``register(subparsers)``, which adds its commands
with ``set_defaults(handler=fn)``; a handler takes a :class:`Context`. Domain errors print one
``error: …`` line and exit 1; usage errors exit 2; nothing prints a traceback unless
``PROMPTVER_DEBUG`` is set.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from promptver._version import __version__
from promptver.cli.context import Context, UsageError, visible
from promptver.errors import PromptverError

# Command modules, in the order their commands appear in --help.
COMMAND_MODULES = [
    "promptver.cli.commands.workspace",
    "promptver.cli.commands.templates",
    "promptver.cli.commands.versioning",
    "promptver.cli.commands.deployments",
    "promptver.cli.commands.experiments",
    "promptver.cli.commands.metrics",
    "promptver.cli.commands.evals",
    "promptver.cli.commands.reports",
    "promptver.cli.commands.alerts",
    "promptver.cli.commands.serve",
    "promptver.cli.commands.files",
    "promptver.cli.commands.webhooks",
]

#: Which module registers each top-level command, so that ``promptver template list`` imports
#: (and builds the argparse tree of) one command module instead of twelve; ``--help``, a missing
#: or an unknown command still registers them all. ``tests/test_cli_registry.py`` checks this
#: map against what the modules register.
COMMANDS = {
    **dict.fromkeys(("backup", "demo", "init", "restore"), "workspace"),
    **dict.fromkeys(("log", "render", "template"), "templates"),
    **dict.fromkeys(("branch", "diff", "fsck", "merge"), "versioning"),
    **dict.fromkeys(
        ("deploy", "deployments", "environments", "promote", "rollback"), "deployments"
    ),
    **dict.fromkeys(("experiment", "route"), "experiments"),
    "metrics": "metrics",
    "eval": "evals",
    "report": "reports",
    **dict.fromkeys(("alerts", "trends"), "alerts"),
    "serve": "serve",
    **dict.fromkeys(("export", "sync"), "files"),
    "webhook": "webhooks",
}

#: Commands that open the file once and keep it for their few steps (schema check, reads,
#: one write) instead of once per step; long or waiting commands (analysis, imports,
#: reports, serve, webhook deliveries) open it per step so other processes get turns.
BRIEF_COMMANDS = frozenset(
    {
        "template",
        "log",
        "render",
        "branch",
        "diff",
        "merge",
        "deploy",
        "deployments",
        "environments",
        "promote",
        "rollback",
        "route",
    }
)

#: Global options that take a value (the command is the first word that is not one of them).
_VALUED_OPTIONS = ("--db", "--config")


def command_of(argv: Sequence[str]) -> str | None:
    """The command word of ``argv`` (``template`` in ``--db X template list``), or None."""
    words = iter(argv)
    for word in words:
        if word == "--":
            return next(words, None)
        if "=" not in word and any(o.startswith(word) for o in _VALUED_OPTIONS if len(word) > 2):
            next(words, None)  # argparse takes unique prefixes too: --d X is --db X
        elif not word.startswith("-"):
            return word
    return None


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one ``error: …`` line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {_one_line(message)} (see '{self.prog} --help')\n")
        raise SystemExit(2)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given ``argv`` naming a known command, only that command's module is
    registered (its help and errors are the same as in the full tree)."""
    import importlib

    parser = _Parser(
        prog="promptver",
        description="Prompt versioning, deployment and A/B testing in one DuckDB file.",
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="database file (default: $PROMPTVER_DB or data/promptver.duckdb)",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="settings file (default: $PROMPTVER_CONFIG or ./promptver.yaml)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument("--version", action="version", version=f"promptver {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    module = COMMANDS.get(command_of(argv)) if argv is not None else None
    names = [f"promptver.cli.commands.{module}"] if module else COMMAND_MODULES
    for name in names:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    ctx = Context(args, hold_file=args.command in BRIEF_COMMANDS)
    try:
        result = args.handler(ctx)
        return int(result or 0)
    except UsageError as exc:
        sys.stderr.write(f"error: {_one_line(exc.message)}\n")
        return 2
    except PromptverError as exc:
        sys.stderr.write(f"error: {_one_line(exc.message)}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except RecursionError:  # input nested deeper than a parser or check reached (files name it)
        if os.environ.get("PROMPTVER_DEBUG"):
            raise
        sys.stderr.write("error: the input nests too deeply to process (hundreds of levels)\n")
        return 1
    except Exception as exc:  # a bug: still one line, unless debugging
        if os.environ.get("PROMPTVER_DEBUG"):
            raise
        sys.stderr.write(
            f"error: internal error ({type(exc).__name__}: {_one_line(str(exc))}); "
            "set PROMPTVER_DEBUG=1 to see the traceback and please report it\n"
        )
        return 1
    finally:
        ctx.close()


def _one_line(text: str) -> str:
    """An error message as one safe line: line breaks become spaces, control characters
    (which the message may quote from user input) are shown as escapes."""
    return visible(" ".join(text.split("\n")).strip())

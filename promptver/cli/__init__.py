"""The ``promptver`` command line: argparse over the same services as the dashboard."""

from promptver.cli.main import main

__all__ = ["main"]

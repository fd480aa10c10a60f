"""CSV cells a spreadsheet will not run: shared by the reports and the import problem list.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (or their
full-width forms) is a formula to Excel and LibreOffice; OWASP's advice is to prefix a quote.
This module imports nothing of promptver, so any layer may use it.
"""

from __future__ import annotations

#: the first characters that make a spreadsheet read a cell as a formula
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


def neutralise(text: str) -> str:
    """A text cell that a spreadsheet will not run as a formula (OWASP: prefix a quote)."""
    return "'" + text if text.startswith(FORMULA_START) else text

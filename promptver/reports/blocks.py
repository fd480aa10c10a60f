"""The blocks a report is made of (headings, paragraphs, tables, code, charts) and the
formatting of its numbers and dates; :mod:`promptver.reports.document` builds the experiment
report from them, ``to_html`` and ``to_markdown`` render them.

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

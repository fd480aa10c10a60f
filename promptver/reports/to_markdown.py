r"""The Markdown report: the HTML report's content as text and tables (GitHub-flavoured).

User-written text cannot become markup. Inline, the characters that open emphasis, code, links,
images, raw HTML, entities, tables, strikethrough and math (``\ ` * _ { } [ ] < > | ~ $ &``) are
backslash-escaped: without an unescaped ``[`` or ``<`` no link, image or HTML tag can form. Line
breaks become spaces, so text never starts a line inside a paragraph; where a block starts with
text, a leading ``#``, ``>``, ``-``, ``+``, ``=`` or ``1.`` is escaped too, so it cannot become a
heading, quote, list or rule (and link definitions need a ``[``). Prompt text and
diffs go into fenced code blocks whose fence is longer than any run of backticks in the text,
so nothing inside can close the fence.
"""

from __future__ import annotations

import re

from promptver.reports.blocks import (
    B,
    Block,
    C,
    Callout,
    Chart,
    Document,
    Fields,
    Heading,
    Inline,
    Items,
    Para,
    Pre,
    Section,
    Table,
    Text,
)
from promptver.reports.document import build
from promptver.reports.gather import Report

#: characters that open inline syntax in CommonMark or GFM (anywhere on a line)
_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~$&])")
#: what makes a block of its own at the start of a line
_LINE_START = re.compile(r"^(?:([#>+=-])|(\d+)([.)]))")
_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")


def esc(text: object) -> str:
    """Escape text for inline Markdown (also safe inside a table cell)."""
    return _SPECIAL.sub(r"\\\1", _BREAKS.sub(" ", str(text)))


def at_line_start(text: str) -> str:
    """Escaped inline text that begins a block: a leading block marker is escaped too, and
    leading blanks go (four of them would start a code block)."""
    text = text.lstrip()
    return _LINE_START.sub(
        lambda m: "\\" + m.group(1) if m.group(1) else m.group(2) + "\\" + m.group(3), text, 1
    )


def fence_for(text: str) -> str:
    """A backtick fence longer than any backtick run in ``text`` (at least three)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def code_span(text: str) -> str:
    """Inline code that no backtick in ``text`` can close (CommonMark: a longer delimiter)."""
    text = _BREAKS.sub(" ", text)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def heading(level: int, text: str) -> str:
    """An ATX heading (a trailing run of '#' would be read as its closing sequence: escaped)."""
    return f"{'#' * level} " + esc(text).replace("#", "\\#")


def _inline(part: Inline) -> str:
    if isinstance(part, B):
        return f"**{esc(part.text)}**" if part.text.strip() else esc(part.text)
    if isinstance(part, C):
        return code_span(part.text) if part.text else ""
    return esc(part)


def _text(parts: Text | Inline) -> str:
    if isinstance(parts, list):
        return "".join(_inline(p) for p in parts)
    return _inline(parts)


def _cell(value: Text | Inline) -> str:
    text = _text(value)
    # a pipe inside a code span still splits a GFM table cell unless escaped
    return text.replace("|", "\\|") if "`" in text else text


def _table(t: Table) -> str:
    head = "| " + " | ".join(esc(h) or " " for h in t.headers) + " |"
    rule = "|" + "|".join("---:" if i in t.numeric else "---" for i in range(len(t.headers))) + "|"
    rows = ["| " + " | ".join(_cell(c) or " " for c in row) + " |" for row in t.rows]
    caption = [f"*{esc(t.caption)}*", ""] if t.caption else []
    return "\n".join([*caption, head, rule, *rows])


def _pre(p: Pre) -> str:
    fence = fence_for(p.text)
    body = p.text if p.text.endswith("\n") or not p.text else p.text + "\n"
    caption = f"{esc(p.caption)}:\n\n" if p.caption else ""
    return f"{caption}{fence}{p.lang}\n{body}{fence}"


def _block(b: Block) -> str:
    if isinstance(b, Heading):
        return heading(b.level, b.text)
    if isinstance(b, Para):
        return at_line_start(_text(b.parts))
    if isinstance(b, Callout):
        mark = {"good": "✅", "bad": "⛔", "warn": "⚠️", "info": "ℹ️"}[b.kind]
        return f"> {mark} {_text(b.parts)}"
    if isinstance(b, Fields):
        return _table(Table(["field", "value"], [[k, v] for k, v in b.pairs]))
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Pre):
        return _pre(b)
    if isinstance(b, Items):
        return "\n".join(f"- {at_line_start(_text(i))}" for i in b.items)
    if isinstance(b, Chart):
        return f"*{esc('Chart (in the HTML report): ' + b.caption)}*"
    raise TypeError(f"unknown block {type(b).__name__}")


def _section(s: Section) -> str:
    return "\n\n".join([heading(2, s.title), *(_block(b) for b in s.blocks)])


def render(doc: Document) -> str:
    """The document as Markdown text."""
    parts = [heading(1, doc.title), at_line_start(_text(doc.subtitle))]
    parts.append(
        "Contents: " + " · ".join(esc(s.title) for s in doc.sections)
    )  # plain text: GitHub's anchors differ between renderers
    parts += [_section(s) for s in doc.sections]
    parts += ["---", _text(doc.footer)]
    return "\n\n".join(parts) + "\n"


def report_markdown(report: Report) -> bytes:
    """The Markdown report of a gathered report, UTF-8."""
    return render(build(report)).encode("utf-8")

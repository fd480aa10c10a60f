"""The HTML report: one self-contained, printable file that makes no network request.

Everything is inline: the stylesheet in a ``<style>`` element, the charts as ``<svg>`` elements
(rendered offline by :func:`promptver.charts.to_svg` and checked against an allow-list). There are
no scripts, fonts, images or links to other documents, and a Content-Security-Policy meta tag
forbids them anyway (``default-src 'none'``), so a report opened from an e-mail attachment cannot
load or run anything. Every piece of text goes through ``html.escape``.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import pandas as pd

from promptver import charts as ch
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

#: the Content-Security-Policy of every HTML report: nothing may load, only inline styles apply
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
#: chart width in CSS pixels: fits the printable width of A4 portrait at 96 dpi (about 700 px)
CHART_WIDTH = 600

STYLE = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa;
  --good: #1a7f37; --bad: #cf222e; --warn: #9a6700; --info: #0969da; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0 auto; max-width: 980px; padding: 24px 28px 48px; color: var(--ink);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; background: #fff; }
h1 { font-size: 1.7em; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 1.3em; margin: 32px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 1.08em; margin: 22px 0 8px; overflow-wrap: anywhere; }
p { margin: 6px 0 10px; }
.subtitle { color: var(--muted); margin-bottom: 14px; }
code { font: 0.92em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: var(--soft); padding: 1px 4px; border-radius: 4px; overflow-wrap: anywhere; }
nav.toc { font-size: 0.92em; margin: 10px 0 18px; color: var(--muted); }
nav.toc a { color: var(--info); text-decoration: none; margin-right: 12px; white-space: nowrap; }
.callout { border-left: 4px solid var(--info); background: #ddf4ff; padding: 8px 12px;
  margin: 10px 0; border-radius: 4px; overflow-wrap: anywhere; }
.callout.good { border-color: var(--good); background: #dafbe1; }
.callout.bad { border-color: var(--bad); background: #ffebe9; }
.callout.warn { border-color: var(--warn); background: #fff8c5; }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; margin: 10px 0; }
dl.fields dt { color: var(--muted); }
dl.fields dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 0.9em; width: 100%; }
caption { text-align: left; font-weight: 600; padding: 4px 0; caption-side: top; }
th, td { border: 1px solid var(--line); padding: 3px 6px; vertical-align: top; }
td { overflow-wrap: anywhere; }
th { background: var(--soft); text-align: left; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.tw { overflow-x: auto; }
tr.hl td { background: #fff3e0; }
figure { margin: 10px 0 18px; }
figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 0.9em; margin-top: 2px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
  padding: 8px 10px; font: 12.5px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  white-space: pre-wrap; overflow-wrap: anywhere; margin: 4px 0 12px; }
pre .add { color: var(--good); } pre .del { color: var(--bad); }
pre .hunk { color: var(--info); } pre .meta { color: var(--muted); }
.label { color: var(--muted); font-size: 0.88em; margin: 8px 0 2px; }
ul { padding-left: 22px; }
footer { margin-top: 36px; padding-top: 8px; border-top: 1px solid var(--line);
  color: var(--muted); font-size: 0.88em; }
@page { size: A4; margin: 16mm 14mm 18mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 9.5pt; color: #000; background: none; }
  nav.toc { display: none; }
  section.new-page { break-before: page; }
  h2, h3, caption, .label { break-after: avoid; }
  table, figure, dl.fields, .callout { break-inside: avoid; }
  tr, pre .line { break-inside: avoid; }
  thead { display: table-header-group; }
  table { font-size: 8pt; }
  .tw { overflow: visible; }
  th { background: none; }
  tr.hl td { background: none; font-weight: 600; }
  .callout { background: none !important; border: 1px solid #000; border-left-width: 4px; }
  code, pre { background: none; }
  pre { font-size: 8pt; border-color: #999; }
  a { color: inherit; text-decoration: none; }
  footer { border-color: #999; }
}
"""


def esc(text: object) -> str:
    """Escape text for HTML element content and attribute values (quotes included)."""
    return html.escape(str(text), quote=True)


def _inline(part: Inline) -> str:
    if isinstance(part, B):
        return f"<strong>{esc(part.text)}</strong>"
    if isinstance(part, C):
        return f"<code>{esc(part.text)}</code>"
    return esc(part)


def _text(parts: Text | Inline) -> str:
    if isinstance(parts, list):
        return "".join(_inline(p) for p in parts)
    return _inline(parts)


def _table(t: Table) -> str:
    out = ['<div class="tw"><table>']
    if t.caption:
        out.append(f"<caption>{esc(t.caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in t.headers) + "</tr></thead>")
    out.append("<tbody>")
    for i, row in enumerate(t.rows):
        cls = (t.row_classes or [""] * len(t.rows))[i]
        cells = "".join(
            f'<td class="n">{_text(c)}</td>' if j in t.numeric else f"<td>{_text(c)}</td>"
            for j, c in enumerate(row)
        )
        out.append(f'<tr class="{esc(cls)}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _pre(p: Pre) -> str:
    label = f'<div class="label">{esc(p.caption)}</div>' if p.caption else ""
    if p.lang != "diff":
        return f"{label}<pre>{esc(p.text)}</pre>"
    lines = []
    for line in p.text.splitlines():
        if line.startswith(("+++", "---")):
            cls = "meta"
        elif line.startswith("+"):
            cls = "add"
        elif line.startswith("-"):
            cls = "del"
        elif line.startswith("@@"):
            cls = "hunk"
        else:
            cls = "ctx"
        lines.append(f'<span class="line {cls}">{esc(line)}</span>')
    return f"{label}<pre>" + "\n".join(lines) + "</pre>"


def _block(b: Block) -> str:
    if isinstance(b, Heading):
        anchor = f' id="{esc(b.anchor)}"' if b.anchor else ""
        return f"<h{b.level}{anchor}>{esc(b.text)}</h{b.level}>"
    if isinstance(b, Para):
        return f"<p>{_text(b.parts)}</p>"
    if isinstance(b, Callout):
        return f'<div class="callout {esc(b.kind)}">{_text(b.parts)}</div>'
    if isinstance(b, Fields):
        rows = "".join(f"<dt>{esc(k)}</dt><dd>{_text(v)}</dd>" for k, v in b.pairs)
        return f'<dl class="fields">{rows}</dl>'
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Pre):
        return _pre(b)
    if isinstance(b, Items):
        return "<ul>" + "".join(f"<li>{_text(i)}</li>" for i in b.items) + "</ul>"
    if isinstance(b, Chart):
        if b.svg is None:
            why = f": {b.error}" if b.error else ""
            return f'<p class="label">Chart not available{esc(why)}</p>'
        # the SVG was serialised by ElementTree after the allow-list check (charts.safe_svg)
        return f"<figure>{b.svg}<figcaption>{esc(b.caption)}</figcaption></figure>"
    raise TypeError(f"unknown block {type(b).__name__}")


def _section(s: Section) -> str:
    cls = ' class="new-page"' if s.new_page else ""
    body = "\n".join(_block(b) for b in s.blocks)
    return f'<section id="{esc(s.anchor)}"{cls}>\n<h2>{esc(s.title)}</h2>\n{body}\n</section>'


def render(doc: Document) -> str:
    """The document as a complete HTML page."""
    toc = " ".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in doc.sections)
    sections = "\n".join(_section(s) for s in doc.sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n'
        '<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="promptver">\n'
        f"<title>{esc(doc.title)}</title>\n"
        f"<style>{STYLE}</style>\n"
        "</head>\n<body>\n"
        f"<header>\n<h1>{esc(doc.title)}</h1>\n"
        f'<div class="subtitle">{_text(doc.subtitle)}</div>\n'
        f'<nav class="toc">{toc}</nav>\n</header>\n'
        f"<main>\n{sections}\n</main>\n"
        f"<footer>{_text(doc.footer)}</footer>\n"
        "</body>\n</html>\n"
    )


# ---- charts -----------------------------------------------------------------------------------


def _render_chart(key: str, caption: str, make: Callable[[], object]) -> Chart:
    try:
        chart = make()
        svg = ch.to_svg(chart, title=caption, prefix=f"{key}-")  # type: ignore[arg-type]
    except ch.ChartError as exc:
        return Chart(key, caption, error=exc.message)
    return Chart(key, caption, svg=svg)


def charts(report: Report) -> dict[str, Chart]:
    """Every chart of the report, rendered to SVG (keys as :func:`document.build` expects)."""
    r = report.results
    out: dict[str, Chart] = {}
    rel = [f for f in (ch.forest_frame(m, "rel") for m in report.metrics) if not f.empty]
    if rel:
        frame = pd.concat(rel, ignore_index=True)
        caption = "All metrics: relative lift with analytic and bootstrap intervals"
        out["overview"] = _render_chart(
            "overview",
            caption,
            lambda: ch.forest_chart(frame, "relative lift", ".1%").properties(
                width=CHART_WIDTH, height=ch.forest_height(frame) - 110
            ),
        )
    analytic = "always-valid confidence sequence" if r.method == "sequential" else "Welch"
    for i, m in enumerate(report.metrics):
        means = ch.means_frame(m)
        if not means.empty:
            caption = f"{m.metric}: mean per variant with its intervals"
            out[f"means-{i}"] = _render_chart(
                f"means-{i}",
                caption,
                lambda means=means, m=m: ch.means_chart(
                    means, f"{m.metric}: mean per event"
                ).properties(width=CHART_WIDTH),
            )
        forest = ch.forest_frame(m, "abs")
        if not forest.empty:
            caption = f"{m.metric}: treatment − control"
            out[f"forest-{i}"] = _render_chart(
                f"forest-{i}",
                caption,
                lambda forest=forest, m=m: ch.forest_chart(
                    forest, f"{m.metric}: treatment − control (analytic = {analytic})"
                ).properties(width=CHART_WIDTH, height=ch.forest_height(forest) - 110),
            )
    if report.deployments:
        frame = ch.timeline_frame(report.deployments)
        window = report.window
        if window[0] is not None and window[1] is None:
            window = (window[0], r.computed_at)
        caption = f"Deployments of {report.experiment.template} by environment"
        out["timeline"] = _render_chart(
            "timeline",
            caption,
            lambda: ch.timeline_chart(frame, report.environments, window).properties(
                width=CHART_WIDTH
            ),
        )
    return out


def report_html(report: Report) -> bytes:
    """The HTML report of a gathered report, UTF-8."""
    return render(build(report, charts(report))).encode("utf-8")

"""Rendering for the History & Diff screen: the side-by-side diff as HTML and the history graph.

Every piece of user text (template lines, messages, authors, branch names) is escaped with
:func:`html.escape` before it is put into HTML; Altair escapes what it draws itself.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from promptver.diffing import Block, Diff
from promptver.models import GraphRow

#: unchanged runs longer than this are folded, keeping CONTEXT lines on each side
FOLD_AFTER = 8
CONTEXT = 3

DIFF_CSS = """
<style>
table.pv-diff {border-collapse: collapse; width: 100%; table-layout: fixed;
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.82rem;}
table.pv-diff th {text-align: left; padding: 4px 8px; border-bottom: 1px solid #ddd;
  font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;}
table.pv-diff td {vertical-align: top; padding: 1px 8px; white-space: pre-wrap;
  word-break: break-word;}
table.pv-diff td.n {width: 3.2em; color: #888; text-align: right; user-select: none;
  padding-right: 6px;}
table.pv-diff tr.fold td {color: #888; background: #f6f6f9; text-align: center;
  font-style: italic;}
table.pv-diff td.del {background: #ffebe9;}
table.pv-diff td.add {background: #e6ffec;}
table.pv-diff td.empty {background: #fafafa;}
table.pv-diff del {background: #ffb3ad; text-decoration: line-through; color: inherit;}
table.pv-diff ins {background: #a6f0b6; text-decoration: none; color: inherit;}
</style>
"""


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _split_segments(segments: Iterable[tuple[str, str]], count: int) -> list[str]:
    """Turn (text, tag) pieces spanning several lines into ``count`` HTML lines.

    ``tag`` is ``""`` for unchanged text, or ``del``/``ins``; each line's pieces are escaped and
    wrapped separately so no tag ever spans a line break.
    """
    lines: list[list[str]] = [[]]
    for text, tag in segments:
        parts = text.split("\n")
        for i, part in enumerate(parts):
            if i:
                lines.append([])
            if part:
                lines[-1].append(f"<{tag}>{_esc(part)}</{tag}>" if tag else _esc(part))
    out = ["".join(x) for x in lines]
    return (out + [""] * count)[:count]


def _block_rows(b: Block) -> list[str]:
    rows: list[str] = []
    if b.op == "equal":
        lines = list(enumerate(b.old_lines))
        if len(lines) > FOLD_AFTER:
            hidden = len(lines) - 2 * CONTEXT
            shown = lines[:CONTEXT] + [(-1, "")] + lines[-CONTEXT:]
        else:
            hidden, shown = 0, lines
        for i, text in shown:
            if i < 0:
                rows.append(
                    f'<tr class="fold"><td colspan="4">⋯ {hidden} unchanged lines ⋯</td></tr>'
                )
                continue
            t = _esc(text)
            rows.append(
                f'<tr><td class="n">{b.old_start + i}</td><td>{t}</td>'
                f'<td class="n">{b.new_start + i}</td><td>{t}</td></tr>'
            )
        return rows
    if b.op == "replace":
        left = _split_segments(
            ((w.old, "" if w.op == "equal" else "del") for w in b.words), len(b.old_lines)
        )
        right = _split_segments(
            ((w.new, "" if w.op == "equal" else "ins") for w in b.words), len(b.new_lines)
        )
    else:
        left = [_esc(x) for x in b.old_lines]
        right = [_esc(x) for x in b.new_lines]
    for i in range(max(len(left), len(right))):
        if i < len(left):
            lcells = f'<td class="n">{b.old_start + i}</td><td class="del">{left[i]}</td>'
        else:
            lcells = '<td class="n"></td><td class="empty"></td>'
        if i < len(right):
            rcells = f'<td class="n">{b.new_start + i}</td><td class="add">{right[i]}</td>'
        else:
            rcells = '<td class="n"></td><td class="empty"></td>'
        rows.append(f"<tr>{lcells}{rcells}</tr>")
    return rows


def side_by_side_html(diff: Diff, old_title: str, new_title: str) -> str:
    """The diff as a two-column HTML table with changed words highlighted (``<del>``/``<ins>``)."""
    body: list[str] = []
    for b in diff.blocks:
        body.extend(_block_rows(b))
    if not body:
        body.append('<tr class="fold"><td colspan="4">(both texts are empty)</td></tr>')
    return (
        DIFF_CSS + '<table class="pv-diff"><colgroup><col style="width:3.2em"><col>'
        '<col style="width:3.2em"><col></colgroup>'
        f'<thead><tr><th colspan="2">{_esc(old_title)}</th>'
        f'<th colspan="2">{_esc(new_title)}</th></tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def history_frame(rows: list[GraphRow]) -> pd.DataFrame:
    """The history as a table (newest first)."""
    return pd.DataFrame(
        [
            {
                "commit": r.commit[:10],
                "version": r.version,
                "lane": r.lane_name or "(deleted branch)",
                "branches": ", ".join(r.branches),
                "message": r.message,
                "author": r.author,
                "date (UTC)": r.created_at,
                "merge": len(r.parents) > 1,
            }
            for r in rows
        ],
        columns=[
            "commit",
            "version",
            "lane",
            "branches",
            "message",
            "author",
            "date (UTC)",
            "merge",
        ],
    )


#: how the history table's columns read (the screen passes it to ``st.dataframe``)
HISTORY_COLUMNS = {
    "commit": st.column_config.TextColumn("Commit", pinned=True),
    "version": st.column_config.TextColumn(
        "Version", help="Commits on branches get a version when merged"
    ),
    "lane": st.column_config.TextColumn("Branch"),
    "branches": st.column_config.TextColumn("Heads", help="Branches that end here"),
    "message": st.column_config.TextColumn("Message", width="large"),
    "author": st.column_config.TextColumn("Author"),
    "date (UTC)": st.column_config.DatetimeColumn("Date (UTC)", format="YYYY-MM-DD HH:mm"),
    "merge": st.column_config.CheckboxColumn("Merge", width="small"),
}

LANE_PX = 26
ROW_PX = 28


def history_chart(rows: list[GraphRow]) -> alt.LayerChart:
    """Commits as dots in branch lanes, parent links as lines, labels on the right.

    Positions are in pixels (lanes ``LANE_PX`` apart, rows ``ROW_PX`` apart) on a 1000-unit wide
    x scale, so the graph keeps its shape at any container width.
    """
    lanes = max((r.lane for r in rows), default=0)
    text_x = (lanes + 1) * LANE_PX + 4
    nodes = pd.DataFrame(
        [
            {
                "row": r.row,
                "x": (r.lane + 0.5) * LANE_PX,
                "text_x": text_x,
                "lane_name": r.lane_name or "(deleted branch)",
                "commit": r.commit[:10],
                "version": r.version or "",
                "label": " · ".join(
                    x
                    for x in (
                        r.version or r.commit[:7],
                        r.message,
                        f"[{', '.join(r.branches)}]" if r.branches else "",
                        r.author,
                    )
                    if x
                ),
                "message": r.message,
                "author": r.author,
                "date": r.created_at.strftime("%Y-%m-%d %H:%M"),
            }
            for r in rows
        ],
        columns=[
            "row",
            "x",
            "text_x",
            "lane_name",
            "commit",
            "version",
            "label",
            "message",
            "author",
            "date",
        ],
    )
    edges = pd.DataFrame(
        [
            {
                "row": r.row,
                "x": (r.lane + 0.5) * LANE_PX,
                "row2": pr,
                "x2": (pl + 0.5) * LANE_PX,
                "lane_name": r.lane_name or "(deleted branch)",
            }
            for r in rows
            for pr, pl in zip(r.parent_rows, r.parent_lanes, strict=True)
        ],
        columns=["row", "x", "row2", "x2", "lane_name"],
    )
    n = max(len(rows), 1)
    y = alt.Y("row:Q", scale=alt.Scale(reverse=True, domain=[-0.5, n - 0.5]), axis=None)
    x = alt.X("x:Q", scale=alt.Scale(domain=[0, 1000]), axis=None)
    color = alt.Color(
        "lane_name:N", title="branch lane", legend=alt.Legend(orient="top", labelLimit=200)
    )
    tooltip = ["commit", "version", "lane_name", "message", "author", "date"]
    link = (
        alt.Chart(edges)
        .mark_rule(strokeWidth=2, opacity=0.7)
        .encode(x=x, y=y, x2="x2:Q", y2="row2:Q", color=color)
    )
    dots = (
        alt.Chart(nodes)
        .mark_circle(size=120, opacity=1)
        .encode(x=x, y=y, color=color, tooltip=tooltip)
    )
    text = (
        alt.Chart(nodes)
        .mark_text(align="left", baseline="middle", fontSize=12, limit=900)
        .encode(
            x=alt.X("text_x:Q", scale=alt.Scale(domain=[0, 1000]), axis=None),
            y=y,
            text="label:N",
            tooltip=tooltip,
        )
    )
    return (link + dots + text).properties(height=ROW_PX * n).configure_view(strokeWidth=0)


def history_chart_height(rows: list[GraphRow]) -> int:
    """Pixels the chart needs: its rows plus the legend above them."""
    return ROW_PX * max(len(rows), 1) + 70


def config_change_rows(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of a model-configuration change table: the dotted path, then each side as JSON
    (empty when the path was added or removed)."""
    import json

    def show(v: Any) -> str:
        return "" if v is None else json.dumps(v, ensure_ascii=False)

    return [{"path": c["path"], "old": show(c["old"]), "new": show(c["new"])} for c in changes]

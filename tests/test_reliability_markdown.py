"""Every Markdown string a screen sends to the browser keeps user text inert (AppTest).

The browser test (tests/browser/test_xss_browser.py) looks at what Chromium renders; this one
reads the Markdown source of every element of every page in app.py's PAGES — bodies, labels,
help tooltips, radio and segmented-control options, expander and tab labels — on the hostile
workspace, including messages that only appear after an action (an upload with a hostile file
name). Outside code spans, no payload may appear unescaped.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.reliability_helpers import XSS_LONG, seed_hostile_workspace

ROOT = Path(__file__).resolve().parents[1]

#: payload fragments that must never reach Markdown as written (escaped, they gain backslashes)
RAW = [
    "<img",
    "<script",
    "<a href",
    "<iframe",
    "](javascript",
    "![",
    ":red[",
    "$\\LaTeX",
    "**XSSBOLD",
]
#: element types whose ``body`` is not Markdown (shown as plain text or escaped HTML)
PLAIN = {"text", "code", "html", "json", "exception"}
#: element types whose options are drawn as Markdown
MARKDOWN_OPTIONS = {"radio", "button_group", "pills"}
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)*?\1", re.S)


def page_scripts() -> list[str]:
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    return [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", None) == "Page"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ]


def markdown_strings(node, out: list[tuple[str, str]]) -> None:
    kind = getattr(node, "type", "")
    proto = getattr(node, "proto", None)
    if proto is not None and kind not in PLAIN:
        fields = {f.name for f in proto.DESCRIPTOR.fields}
        for name in ("body", "label", "help", "caption"):
            if name in fields:
                value = getattr(proto, name)
                if isinstance(value, str) and value:
                    out.append((f"{kind}.{name}", value))
        if kind in MARKDOWN_OPTIONS and "options" in fields:
            for option in proto.options:
                text = option if isinstance(option, str) else getattr(option, "content", "")
                if text:
                    out.append((f"{kind}.option", text))
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        for child in children.values():
            markdown_strings(child, out)


_RAW = [(raw, re.compile(r"(?<!\\)" + re.escape(raw))) for raw in RAW]


def unescaped(text: str) -> list[str]:
    """The payload fragments in ``text`` that Markdown would act on (not backslash-escaped,
    not inside a code span)."""
    outside = _CODE_SPAN.sub("", text)
    return [raw for raw, pattern in _RAW if pattern.search(outside)]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    db, settings = folder / "hostile.duckdb", folder / "promptver.yaml"
    return db, settings, seed_hostile_workspace(db, settings)


def run_page(hostile, monkeypatch, script: str, query: dict[str, str]) -> AppTest:
    db, settings, _ids = hostile
    monkeypatch.setenv("PROMPTVER_DB", str(db))
    monkeypatch.setenv("PROMPTVER_CONFIG", str(settings))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(script)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def check(at: AppTest, where: str) -> int:
    found: list[tuple[str, str]] = []
    markdown_strings(at._tree, found)
    bad = [
        f"{where} {kind}: {text[:120]!r} has {unescaped(text)}"
        for kind, text in found
        if unescaped(text)
    ]
    assert bad == []
    return len(found)


def queries(ids: dict[str, str]) -> dict[str, list[dict[str, str]]]:
    return {
        "pages/experiments.py": [{"experiment": ids[k]} for k in ("running", "stopped", "draft")],
        "pages/history.py": [{"template": "xss-template", "from": "main", "to": "xss-branch"}],
        "pages/metrics.py": [{}],
    }


def test_every_page_keeps_user_text_inert_in_markdown(hostile, monkeypatch):
    by_page = queries(hostile[2])
    checked = 0
    for script in page_scripts():
        for query in by_page.get(script, [{"template": "xss-template"}]):
            at = run_page(hostile, monkeypatch, script, query)
            checked += check(at, f"{script}?{query}")
    assert checked > 100


def test_dialogs_and_upload_messages_keep_user_text_inert(hostile, monkeypatch):
    ids = hostile[2]
    at = run_page(hostile, monkeypatch, "pages/experiments.py", {"experiment": ids["running"]})
    at.button(key="exp_stop").click().run()  # the Stop dialog names the experiment
    check(at, "stop dialog")
    at = run_page(hostile, monkeypatch, "pages/experiments.py", {"experiment": ids["draft"]})
    at.button(key="exp_start").click().run()
    check(at, "start dialog")

    at = run_page(hostile, monkeypatch, "pages/metrics.py", {})
    name = XSS_LONG[:150] + ".csv"
    bad = b"timestamp,template,user_id,latency_ms\n2026-01-01T00:00:00Z,xss-template,u1,-5\n"
    at.file_uploader(key="met_upload").set_value((name, bad, "text/csv")).run()
    assert any("cannot be imported" in e.value for e in at.error)
    check(at, "refused upload")
    good = b"timestamp,template,user_id,latency_ms\n2026-01-01T00:00:00Z,xss-template,u1,5\n"
    at.file_uploader(key="met_upload").set_value((name, good, "text/csv")).run()
    at.button(key="met_import").click().run()
    assert any("Imported 1 events" in s.value for s in at.success)
    check(at, "finished upload")

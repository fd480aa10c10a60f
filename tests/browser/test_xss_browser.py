"""Hostile text on every screen, in a real browser: nothing a user wrote may run or render.

A workspace is seeded with payloads in every user-written field (``XSS_FIELDS`` in
tests/reliability_helpers.py): ``<script>``, ``<img onerror>``, ``javascript:`` links in HTML
and Markdown, external Markdown images, colour directives, LaTeX, bold. The test then opens every
page listed in ``PAGES`` of app.py (so a screen added later is covered without editing this
file), clicks through every tab, opens every expander, hovers the help icons and opens the
dialogs listed below, and after each step checks that:

- no script ran: the payloads set ``window.__xss`` (checked in every frame) and no dialog opened;
- no HTML element came from a payload (``img[src=x]``, ``iframe``, ``[onerror]``, a ``script``
  that mentions ``__xss``), no ``a[href^=javascript:]``, no KaTeX output;
- Markdown in user text stayed literal: wherever a marker shows, its Markdown is still around it;
- the browser asked no host other than the dashboard's for anything (the external image).
"""

from __future__ import annotations

import ast
from pathlib import Path
from urllib.parse import urlencode, urlparse

import pytest
from playwright.sync_api import Locator, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser.conftest import ROOT, shot, start_app
from tests.reliability_helpers import XSS_MARKERS, seed_hostile_workspace

#: how to open each page: query parameters, and ``dialogs``, buttons (by label, on the first
#: tab) that open a dialog showing user text. Pages not listed get ``?template=xss-template``.
VISITS: dict[str, list[dict]] = {
    "templates": [{"query": {"template": "xss-template"}, "dialogs": ["Archive…"]}],
    "history": [{"query": {"template": "xss-template", "from": "main", "to": "xss-branch"}}],
    "deployments": [{"query": {"template": "xss-template"}, "dialogs": ["Roll back…"]}],
    "experiments": [
        {"query": {"experiment": "{running}"}, "dialogs": ["Stop…"]},
        {"query": {"experiment": "{stopped}"}},
        {"query": {"experiment": "{draft}"}, "dialogs": ["Start…"]},
    ],
    "metrics": [{"query": {}}],
}
DEFAULT_VISITS = [{"query": {"template": "xss-template"}}]


def app_pages() -> list[tuple[str, bool]]:
    """``(url path, is default)`` of every ``st.Page`` in app.py's PAGES list."""
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    out: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "Page"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            kw = {k.arg: k.value for k in node.keywords}
            path = kw.get("url_path")
            stem = path.value if isinstance(path, ast.Constant) else Path(node.args[0].value).stem
            default = isinstance(kw.get("default"), ast.Constant) and kw["default"].value is True
            out.append((stem, default))
    assert out, "no st.Page(...) found in app.py"
    return out


DOM_CHECK = """
(markers) => {
  const bad = [];
  const q = (sel, what) => document.querySelectorAll(sel).forEach(
      e => bad.push(what + ': ' + e.outerHTML.slice(0, 160)));
  q('img[src="x"], img[src*="xss.invalid"]', 'payload image');
  q('a[href^="javascript:" i], [href^="javascript:" i]', 'javascript: link');
  q('[onerror], [onload]:not(body):not(link):not(script)', 'event handler attribute');
  q('iframe[src^="javascript:" i]', 'payload iframe');
  q('.katex, .katex-display', 'LaTeX rendered');
  document.querySelectorAll('script').forEach(s => {
      if ((s.textContent || '').includes('__xss')) bad.push('payload script element');
  });
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let seen = 0;
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.textContent || '';
    for (const [marker, literal] of Object.entries(markers)) {
      if (text.includes(marker)) {
        seen += 1;
        if (!text.includes(literal)) {
          const box = n.parentElement && n.parentElement.closest('[data-testid]');
          const id = box ? box.getAttribute('data-testid') : '?';
          bad.push('not shown as written (' + id + '): ' + text.slice(0, 160));
        }
      }
    }
  }
  return {bad, seen};
}
"""


SETTLED = """
() => {
  const status = document.querySelector('[data-testid="stStatusWidget"]');
  const running = status && status.innerText.includes('Running');
  const stale = document.querySelector('[data-stale="true"]');
  const main = document.querySelector('[data-testid="stMain"]');
  return !running && !stale && main && main.innerText.length > 20;
}
"""


def settle(page: Page) -> None:
    """Wait until the script run finished and nothing on the page is stale, twice in a row
    (a rerun may start just after the first look); fail on an exception box."""
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_function(SETTLED, timeout=30_000)
    page.wait_for_timeout(200)
    page.wait_for_function(SETTLED, timeout=30_000)
    boxes = page.locator('[data-testid="stException"]')
    assert boxes.count() == 0, boxes.first.inner_text()


class Watch:
    """What the page did that it must not: dialogs, and requests to other hosts."""

    def __init__(self, page: Page, base: str) -> None:
        self.dialogs: list[str] = []
        self.external: list[str] = []
        host = urlparse(base).hostname
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

        def on_request(req) -> None:  # type: ignore[no-untyped-def]
            url = urlparse(req.url)
            if url.scheme in ("data", "blob", "about"):
                return
            if url.hostname not in (host, "localhost", "127.0.0.1"):
                self.external.append(req.url)

        page.on("request", on_request)


def check(page: Page, watch: Watch, where: str, seen: list[int]) -> None:
    for frame in page.frames:
        try:
            value = frame.evaluate("() => window.__xss")
        except Exception:  # a frame that navigated away has nothing to run
            continue
        assert value is None, f"{where}: a payload ran (window.__xss = {value}) in {frame.url}"
    assert watch.dialogs == [], f"{where}: dialogs opened: {watch.dialogs}"
    result = page.evaluate(DOM_CHECK, XSS_MARKERS)
    assert result["bad"] == [], f"{where}: " + "\n".join(result["bad"])
    seen.append(result["seen"])
    assert watch.external == [], f"{where}: requests to other hosts: {watch.external}"


def explore(page: Page, watch: Watch, where: str, seen: list[int], hover: bool) -> int:
    """Every tab, every expander (and with ``hover`` every help icon) of the page; returns the
    number of states checked."""
    steps = 0
    tabs = page.locator('[data-testid="stTab"]')
    count = max(1, tabs.count())
    for i in range(count):
        if tabs.count() > i:
            close_tooltips(page)  # the last help tooltip may still cover the tab
            tabs.nth(i).click()
            settle(page)
        label = f"{where} tab {i + 1}"
        summaries = page.locator('[data-testid="stExpander"] summary')
        for j in range(summaries.count()):
            s = summaries.nth(j)
            if s.is_visible():
                s.click()
        settle(page)
        icons = page.locator('[data-testid="stTooltipIcon"]')
        for j in range(min(icons.count(), 30) if hover else 0):
            icon = icons.nth(j)
            if icon.is_visible():
                hover_help(page, icon)
        check(page, watch, label, seen)
        steps += 1
    return steps


def close_tooltips(page: Page) -> None:
    """Move the mouse away and wait (a bounded time) until no help tooltip is open."""
    page.mouse.move(0, 0)
    tips = page.locator('[data-testid="stTooltipContent"]')
    try:
        tips.first.wait_for(state="hidden", timeout=10_000)
    except PlaywrightTimeout:
        page.keyboard.press("Escape")


def hover_help(page: Page, icon: Locator) -> None:
    """Open a help tooltip. The previous one may still cover this icon on a slow machine (its
    overlay intercepts the pointer): move the mouse away so it closes, and try again; an icon
    whose tooltip cannot open shows nothing, so there is nothing more to check on it."""
    for _ in range(3):
        page.mouse.move(0, 0)
        try:
            icon.hover(timeout=10_000)
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            continue
        page.wait_for_timeout(30)
        return


@pytest.fixture
def hostile_app(tmp_path: Path, browser_type_launch_args: dict):
    db = tmp_path / "hostile.duckdb"
    settings = tmp_path / "promptver.yaml"
    ids = seed_hostile_workspace(db, settings)
    proc, url = start_app(db, {"PROMPTVER_CONFIG": str(settings)})
    try:
        yield url, ids
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_no_payload_runs_or_renders_on_any_screen(page: Page, hostile_app) -> None:
    url, ids = hostile_app
    watch = Watch(page, url)
    visited: dict[str, int] = {}
    seen: list[int] = []
    for stem, default in app_pages():
        for visit in VISITS.get(stem, DEFAULT_VISITS):
            query = {k: v.format(**ids) for k, v in visit["query"].items()}
            path = "" if default and not query else stem
            target = f"{url}/{path}" + (f"?{urlencode(query)}" if query else "")
            page.goto(target)
            settle(page)
            where = f"/{path}?{urlencode(query)}"
            check(page, watch, where, seen)
            hover = stem not in visited  # help tooltips: once per page
            visited[stem] = visited.get(stem, 0) + 1 + explore(page, watch, where, seen, hover)
            for label in visit.get("dialogs", []):
                first_tab = page.locator('[data-testid="stTab"]')
                if first_tab.count():
                    first_tab.first.click()  # the dialogs open from the first tab
                    settle(page)
                buttons = page.locator("button:visible").filter(has_text=label)
                assert buttons.count() > 0, f"{where}: no {label!r} button to open"
                buttons.first.click()
                page.locator('[role="dialog"]').first.wait_for()
                settle(page)
                check(page, watch, f"{where} dialog {label}", seen)
                page.keyboard.press("Escape")
                settle(page)
                visited[stem] += 1
        shot(page, f"xss-{stem}")
    assert set(visited) == {stem for stem, _ in app_pages()}
    # the payloads really were on the screens (as literal text), so the checks were not vacuous
    assert sum(seen) > 0
    print(
        f"\nXSS: {sum(visited.values())} page states checked: {visited}; marker texts {sum(seen)}"
    )

"""Exported reports: each format opened and checked against the results object, and every
markup or formula payload in user-written text shown inert."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser

import pytest

from promptver.diffing import diff_texts
from promptver.errors import NotFound, ValidationError
from promptver.reports import (
    SCHEMA_VERSION,
    format_from_path,
    render_report,
    report_csv,
    report_filename,
    report_html,
    report_json,
    report_markdown,
)
from promptver.reports.to_csv import COLUMNS, cell, neutralise
from promptver.reports.to_markdown import at_line_start, code_span, esc, fence_for
from tests.reports_helpers import (
    BRANCH,
    CONTROL,
    DESCRIPTION,
    HYPOTHESIS,
    NAME,
    SALT,
    STOP_REASON,
    TEMPLATE_TEXT,
    TREATMENT,
    build_hostile,
)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A stopped experiment full of payloads, its frozen results and the four reports (the
    tests only read, so they share one workspace)."""
    from promptver import Settings, Workspace

    ws = Workspace.open(tmp_path_factory.mktemp("reports") / "r.duckdb", settings=Settings())
    exp = build_hostile(ws)
    with ws.session():
        results = ws.experiment_results(exp.id)
        reports = {fmt: render_report(ws, exp.id, fmt) for fmt in ("html", "md", "csv", "json")}
        yield ws, exp, results, reports
    ws.close()


# ---- JSON -------------------------------------------------------------------------------------


def test_json_holds_the_contract_results_configuration_and_metadata(hostile):
    ws, exp, results, reports = hostile
    doc = json.loads(reports["json"])
    assert doc["schema_version"] == SCHEMA_VERSION == "1.0"
    assert doc["kind"] == "promptver.experiment-report"
    assert doc["generator"].startswith("promptver ")
    # the results object is exactly what the experiment answers (frozen: identical, byte for byte)
    assert doc["results"] == results.model_dump(mode="json")
    assert doc["results_frozen"] is True
    assert list(doc["results"])[:9] == [
        "experiment_id",
        "status",
        "metric",
        "alpha",
        "variants",
        "comparisons",
        "srm",
        "sample_size_ok",
        "winner",
    ]
    assert doc["results"]["metric"] == "quality_score"
    assert [m["metric"] for m in doc["results"]["metrics"]] == [
        "quality_score",
        "latency_ms",
        "cost_usd",
    ]
    e = doc["experiment"]
    assert (e["id"], e["name"], e["description"], e["hypothesis"]) == (
        exp.id,
        NAME,
        DESCRIPTION,
        HYPOTHESIS,
    )
    assert e["stop_reason"] == STOP_REASON and e["weights"] == [0.5, 0.5]
    control, treatment = doc["variants"]
    assert (control["name"], control["role"], control["version"]) == (CONTROL, "control", "1.0.0")
    assert control["diff_against_control"] is None
    assert treatment["name"] == TREATMENT and treatment["ref"] == BRANCH
    assert treatment["commit"] == exp.variants[1].commit and treatment["content"] == TEMPLATE_TEXT
    old = ws.versions.get_commit(exp.variants[0].commit)
    expected = diff_texts(
        old.content,
        TEMPLATE_TEXT,
        old_label=f"{CONTROL} (1.0.0)",
        new_label=f"{TREATMENT} ({exp.variants[1].commit[:10]})",
    )
    assert treatment["diff_against_control"]["unified"] == expected.unified
    assert treatment["diff_against_control"]["identical"] is False
    # the deployment log, newest first; the mid-test deploy to production is flagged
    deps = doc["deployments"]
    assert [(d["environment"], d["version"]) for d in deps] == [
        ("production", "1.0.0"),
        ("production", "1.1.0"),
        ("staging", "1.0.0"),
    ]
    assert [d["during_experiment"] for d in deps] == [True, False, False]
    assert [h["action"] for h in doc["history"]][:3] == ["created", "started", "stopped"]


def test_json_is_strict(hostile):
    *_, reports = hostile

    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    json.loads(reports["json"], parse_constant=refuse)


def test_options_ask_for_a_fresh_analysis_and_are_recorded(hostile):
    ws, exp, results, _ = hostile
    doc = json.loads(report_json(ws, exp.id, sequential=True, resamples=200))
    assert doc["results_frozen"] is False
    assert doc["analysis_options"] == {"sequential": True, "resamples": 200}
    assert doc["results"]["method"] == "sequential"
    assert doc["results"]["bootstrap"]["resamples"] == 200
    fresh = ws.experiment_results(exp.id, sequential=True, resamples=200)
    # a fresh analysis: DuckDB's parallel sums may differ in the last bits between runs
    assert doc["results"]["comparisons"][0]["p_value"] == pytest.approx(
        fresh.comparisons[0].p_value, rel=1e-9
    )


def test_given_results_are_used_as_they_are_and_viewed_on_the_primary_metric(hostile):
    ws, exp, results, _ = hostile
    shown = ws.experiment_results(exp.id, sequential=True).select("latency_ms")
    doc = json.loads(report_json(ws, exp.id, results=shown))
    assert doc["results"]["metric"] == "quality_score"
    assert doc["results"]["method"] == "sequential"
    assert doc["results"]["computed_at"] == shown.model_dump(mode="json")["computed_at"]


# ---- CSV --------------------------------------------------------------------------------------


def _csv_rows(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 byte order mark for spreadsheets
    text = data.decode("utf-8-sig")
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")  # RFC 4180 line ends
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _float(text: str) -> float | None:
    return None if text == "" else float(text)


def test_csv_has_one_row_per_variant_and_metric_with_every_figure(hostile):
    _, exp, results, reports = hostile
    rows = _csv_rows(reports["csv"])
    assert list(rows[0]) == COLUMNS
    assert [(r["metric"], r["is_control"]) for r in rows] == [
        (m, flag) for m in ("quality_score", "latency_ms", "cost_usd") for flag in ("true", "false")
    ]
    for row in rows:
        m = results.for_metric(row["metric"])
        v = next(x for x in m.variants if neutralise(x.name) == row["variant"])
        for col in ("mean", "std", "se", "ci_low", "ci_high", "bootstrap_ci_low"):
            assert _float(row[col]) == getattr(v, col), col  # exact: repr round-trips
        assert int(row["users"]) == v.users and int(row["events"]) == v.events
        if row["is_control"] == "true":
            assert row["diff"] == "" and row["p_value"] == ""
            continue
        c = m.comparisons[0]
        assert _float(row["diff"]) == c.diff
        assert _float(row["diff_ci_low"]) == c.ci_low
        assert _float(row["diff_bootstrap_ci_high"]) == c.bootstrap_ci_high
        assert _float(row["diff_bca_ci_low"]) == c.bootstrap_bca_ci_low
        assert _float(row["relative_lift"]) == c.relative_lift
        assert _float(row["p_value_adjusted"]) == c.p_value_adjusted
        assert row["significant"] == ("true" if c.significant else "false")
        assert row["verdict"] == c.verdict
        assert _float(row["mde"]) == m.power[0].mde
    guard = [r for r in rows if r["metric"] == "cost_usd" and r["is_control"] == "false"][0]
    g = results.guardrails[0]
    assert _float(guard["guardrail_p_value"]) == g.p_value
    assert guard["guardrail_worse"] == ("true" if g.worse else "false")
    latency = [r for r in rows if r["metric"] == "latency_ms"]
    q = results.for_metric("latency_ms").quantile
    assert [_float(r["quantile_value"]) for r in latency] == [v.value for v in q.variants]
    assert all(r["srm_ok"] == "true" and r["winner"] == neutralise(TREATMENT) for r in rows)


def test_csv_neutralises_formula_text_but_keeps_numbers(hostile):
    *_, reports = hostile
    rows = _csv_rows(reports["csv"])
    assert {r["experiment"] for r in rows} == {"'" + NAME}  # starts with '='
    assert {r["variant"] for r in rows} == {"'" + CONTROL, TREATMENT}  # '-1+1' is text
    assert {r["control"] for r in rows if r["control"]} == {"'" + CONTROL}
    negatives = [r[c] for r in rows for c in COLUMNS if r[c].startswith("-")]
    assert negatives, "the fixture has negative figures (lower CI bounds)"
    assert all(float(x) < 0 for x in negatives)  # numbers are never prefixed
    for r in rows:
        for value in r.values():
            assert not value.startswith(("=", "+", "@", "\t", "\r")), value


@pytest.mark.parametrize("first", ["=", "+", "-", "@", "\t", "\r", "＝", "＠"])
def test_every_formula_start_is_neutralised(first):
    assert neutralise(first + "1+1") == "'" + first + "1+1"
    assert cell(first + "x") == "'" + first + "x"


def test_cells_numbers_booleans_and_missing():
    assert cell(-0.5) == "-0.5" and cell(-3) == -3 and cell(1e-300) == "1e-300"
    assert cell(True) == "true" and cell(None) == "" and cell("plain") == "plain"
    assert cell("-0.5") == "'-0.5"  # text that looks like a number is still text


def test_csv_quoting_round_trips_commas_quotes_and_line_breaks(hostile):
    ws, exp, _, _ = hostile
    data = report_csv(ws, exp.id)
    rows = _csv_rows(data)
    assert rows[0]["experiment"] == "'" + NAME  # holds quotes: quoted and doubled
    assert b'"\'=HYPERLINK(""http://evil.example"")' in data


# ---- HTML -------------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Collects what an HTML report contains: tags, attributes, text, style sheets."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.stack.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]

    def handle_endtag(self, tag):
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "style":
            self.styles.append(data)
        else:
            self.text.append(data)


def _parse(data: bytes) -> _Page:
    page = _Page()
    page.feed(data.decode("utf-8"))
    page.close()
    return page


URL_IN_CSS = re.compile(r"url\(\s*['\"]?([^'\")]*)", re.IGNORECASE)


def test_html_is_inert_and_self_contained(hostile):
    *_, reports = hostile
    page = _parse(reports["html"])
    loaders = {"script", "iframe", "img", "image", "object", "embed", "link", "base", "form"}
    loaders |= {"audio", "video", "source", "foreignobject", "use", "frame", "portal"}
    assert not loaders & set(page.tags), loaders & set(page.tags)
    assert not [
        a
        for a in page.attrs
        if a[:2] == ("meta", "http-equiv") and a[2] != ("Content-Security-Policy")
    ]  # no refresh redirect
    assert not [a for a in page.attrs if a[1].lower().startswith("on")], "event handler"
    assert not [a for a in page.attrs if "javascript:" in a[2].lower()]
    # every reference stays inside the document: #fragments or data: URLs only
    refs = [v for _, k, v in page.attrs if k.lower() in ("src", "href", "xlink:href", "action")]
    refs += [u for _, k, v in page.attrs if k.lower() == "style" for u in URL_IN_CSS.findall(v)]
    refs += [u for _, k, v in page.attrs for u in URL_IN_CSS.findall(v)]
    css = "".join(page.styles)
    refs += URL_IN_CSS.findall(css)
    assert "@import" not in css and "@font-face" not in css
    assert refs and all(r.startswith(("#", "data:")) for r in refs), refs
    csp = [v for t, k, v in page.attrs if t == "meta" and k == "content" and "default-src" in v]
    assert csp == ["default-src 'none'; style-src 'unsafe-inline'; img-src data:"]
    assert ("meta", "http-equiv", "Content-Security-Policy") in page.attrs


def test_html_shows_user_text_escaped_never_as_markup(hostile):
    *_, reports = hostile
    html = reports["html"].decode()
    page = _parse(reports["html"])
    text = "".join(page.text)
    for payload in (NAME, TREATMENT, STOP_REASON, "<script>alert(6)</script>"):
        assert payload in text  # shown to the reader, literally
    for raw in ("<script>", "<b onmouseover", "<img src=x", "<iframe", "</td><script>"):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert DESCRIPTION.splitlines()[0] in text
    # the template text is inside a <pre>, whole
    assert TEMPLATE_TEXT in text


def test_html_has_charts_as_inline_svg(hostile):
    *_, reports = hostile
    page = _parse(reports["html"])
    svgs = page.tags.count("svg")
    # the overview, per metric a means chart and a forest plot, and the deployment timeline
    assert svgs == 1 + 3 * 2 + 1
    assert page.tags.count("figure") == svgs
    titles = "".join(page.text)
    assert "quality_score: treatment − control" in titles
    assert "Deployments of qa-basic by environment" in titles
    html = reports["html"].decode()
    # chart text made from user data is escaped by the renderer (then re-serialised)
    assert "&lt;b onmouseover=alert(5)&gt;@evil&lt;/b&gt;" in html.split("<svg", 1)[1]
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids))  # chart ids do not collide


def test_html_numbers_match_the_results(hostile):
    *_, results, reports = hostile
    text = " ".join(_parse(reports["html"]).text)
    for m in results.metrics:
        for v in m.variants:
            assert f"{v.mean:.4g}" in text and f"[{v.ci_low:.4g}, {v.ci_high:.4g}]" in text
            assert f"[{v.bootstrap_ci_low:.4g}, {v.bootstrap_ci_high:.4g}]" in text
        for c in m.comparisons:
            assert f"[{c.ci_low:.4g}, {c.ci_high:.4g}]" in text
            assert f"[{c.bootstrap_ci_low:.4g}, {c.bootstrap_ci_high:.4g}]" in text
    c = results.comparisons[0]
    assert f"{c.relative_lift:+.2%}" in text
    assert results.winner_reason in text
    assert f"χ² = {results.srm.chi2:.4g}" in text
    assert "Winner: " + TREATMENT in text


def test_html_prints_on_a4(hostile):
    *_, reports = hostile
    css = "".join(_parse(reports["html"]).styles)
    assert re.search(r"@page\s*\{[^}]*size:\s*A4", css)
    assert "@media print" in css and "break-before: page" in css
    assert "display: table-header-group" in css  # table headers repeat on each page


# ---- Markdown -------------------------------------------------------------------------------


def _md_html(data: bytes) -> str:
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    return md.render(data.decode("utf-8"))


def test_markdown_renders_without_any_markup_from_user_text(hostile):
    *_, reports = hostile
    rendered = _md_html(reports["md"])  # raw HTML allowed: any that got through would show
    page = _Page()
    page.feed(rendered)
    allowed = {"h1", "h2", "h3", "p", "em", "strong", "code", "pre", "blockquote", "hr"}
    allowed |= {"table", "thead", "tbody", "tr", "th", "td", "ul", "li"}
    assert set(page.tags) <= allowed, set(page.tags) - allowed  # no a, img, script, iframe …
    attrs = {(k, v) for _, k, v in page.attrs}
    assert attrs <= {("style", "text-align:right"), ("class", "language-text")} | {
        ("class", "language-diff")
    }, attrs
    text = "".join(page.text)
    assert "**bold**" in text and "[click](javascript:alert(3))" in text  # shown literally
    # a code span holding a pipe and backticks stays one cell of its table row
    assert (
        f"<td>Salt</td>\n<td><code>{SALT.replace('<', '&lt;').replace('>', '&gt;')}</code></td>"
        in (rendered)
    )
    assert "<h1>" in rendered and rendered.count("<h1>") == 1  # '# not a heading' stays text
    headings = re.findall(r"<h2>(.*?)</h2>", rendered)
    assert headings == [
        "Decision",
        "Experiment",
        "Variants and their prompts",
        "Results",
        "Guardrails",
        "Sample ratio",
        "Deployment timeline of qa-basic",
        "Experiment history",
        "How these figures are computed",
    ]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered  # shown, as text


def test_markdown_fences_prompt_text_that_holds_fences(hostile):
    markdown_it = pytest.importorskip("markdown_it")
    *_, reports = hostile
    tokens = markdown_it.MarkdownIt("commonmark").parse(reports["md"].decode())
    fences = [t for t in tokens if t.type == "fence"]
    texts = [t.content for t in fences if t.info == "text"]
    assert TEMPLATE_TEXT + "\n" in texts  # whole, not cut by its own ``` lines
    diffs = [t.content for t in fences if t.info == "diff"]
    assert len(diffs) == 1 and "+````" in diffs[0]


def test_markdown_numbers_match_the_results(hostile):
    *_, results, reports = hostile
    text = reports["md"].decode()
    for m in results.metrics:
        for v in m.variants:
            assert f"| {v.mean:.4g} |" in text
            assert f"\\[{v.ci_low:.4g}, {v.ci_high:.4g}\\]" in text
        for c in m.comparisons:
            assert f"| {c.diff:.4g} |" in text
    assert results.winner is not None and "Winner: " in text


def test_markdown_escaping_units():
    assert esc("a|b") == "a\\|b" and esc("x\ny") == "x y"
    assert esc("[t](javascript:x)") == "\\[t\\](javascript:x)"
    assert esc("<b>&amp;") == "\\<b\\>\\&amp;"
    assert at_line_start("# h") == "\\# h" and at_line_start("1. x") == "1\\. x"
    assert at_line_start("    code") == "code" and at_line_start("- item") == "\\- item"
    assert fence_for("a ``` b ```` c") == "`````" and fence_for("plain") == "```"
    assert code_span("a`b") == "``a`b``" and code_span("`x") == "`` `x ``"


# ---- other experiments, errors, names ---------------------------------------------------------


def test_a_running_experiment_is_analysed_when_the_report_is_made(ws):
    exp = build_hostile(ws, n=40, stop=False)
    doc = json.loads(report_json(ws, exp.id))
    assert doc["results_frozen"] is False and doc["results"]["status"] == "running"
    assert doc["results"]["window_end"] is None
    html = report_html(ws, exp.id).decode()
    assert "now (running)" in html and "still running" in html
    assert "Results computed" in html
    assert html.count("<svg") == 8


def test_a_draft_reports_its_configuration_and_refs_resolved_now(ws):
    from tests.experiments_helpers import seed_lab, spec

    seed_lab(ws)
    draft = ws.experiments.create(spec(name="draft one"))
    doc = json.loads(report_json(ws, "draft one"))
    assert doc["experiment"]["status"] == "draft"
    assert all(v["resolved_at_report_time"] for v in doc["variants"])
    assert doc["variants"][1]["commit"] == ws.templates.get("qa-basic", "concise-tone").commit
    assert any("has not started" in n for n in doc["notes"])
    assert doc["results"]["winner"] is None
    html = report_html(ws, draft.id).decode()
    assert "refs resolved now" in html and "has not started" in html
    assert report_markdown(ws, draft.id).decode().startswith("# Experiment report: draft one")
    rows = _csv_rows(report_csv(ws, draft.id))
    assert [r["users"] for r in rows] == ["0", "0", "0", "0"]


def test_an_experiment_model_outside_the_workspace_still_reports(ws):
    """A hand-built model whose template and commits are not stored: notes, not a failure."""
    from tests.stats_helpers import make_experiment

    exp = make_experiment(name="in memory")
    doc = json.loads(report_json(ws, exp))
    assert doc["deployments"] == [] and doc["history"] == []
    assert any("not available" in n for n in doc["notes"])
    html = report_html(ws, exp).decode()
    assert "This template has never been deployed." in html


def test_errors_are_clear(ws):
    with pytest.raises(NotFound, match="unknown experiment"):
        report_html(ws, "missing")
    with pytest.raises(ValidationError, match="unknown report format 'pdf'"):
        render_report(ws, "missing", "pdf")


def test_file_names_and_formats(hostile):
    _, exp, _, _ = hostile
    assert (
        report_filename(exp, "html")
        == "report-HYPERLINK-http-evil.example-script-alert-1-script.html"
    )
    assert report_filename(exp.model_copy(update={"name": "<<>>"}), "md") == f"report-{exp.id}.md"
    assert format_from_path("x/Report.HTM") == "html" and format_from_path("a.markdown") == "md"
    assert format_from_path("a.txt") is None

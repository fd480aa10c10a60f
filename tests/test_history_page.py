"""The History & Diff screen under AppTest: graph, diff, deep links, branches, merges."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from promptver.diffing import diff_texts
from tests.versioning_helpers import BASE, edit
from ui.history import side_by_side_html

ROOT = Path(__file__).resolve().parents[1]


def open_page(monkeypatch, db_path, **params) -> AppTest:
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    at.switch_page("pages/history.py").run()
    assert not at.exception, at.exception
    return at


def html_of(at: AppTest) -> list[str]:
    return [h.proto.body for h in at.get("html")]


def flashed(at: AppTest) -> str:
    """The confirmation shown after an action (the page shows pending messages itself)."""
    return " | ".join(s.value.replace("\\", "") for s in at.success)


def by_key(elements, key):
    return next(e for e in elements if e.key == key)


@pytest.fixture
def demo_db(db_path):
    """The dashboard's first run fills a new database with the demo (branches included)."""
    return db_path


def test_page_shows_history_diff_and_branches_of_the_demo(monkeypatch, demo_db):
    at = open_page(monkeypatch, demo_db, template="qa-basic")
    assert [t.label for t in at.tabs] == ["History", "Diff", "Branches", "Merge"]
    assert at.selectbox(key="hist_template").value == "qa-basic"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Branches"] == "2" and metrics["Versions"] == "3"
    # default diff: main against the other branch, with word highlights
    assert at.selectbox(key="hist_from_qa-basic").value == "main"
    assert at.selectbox(key="hist_to_qa-basic").value == "concise-tone"
    body = html_of(at)[0]
    assert (
        '<td class="add">Answer <ins>in</ins> <ins>at most three short sentences,</ins> '
        "using only the context below."
    ) in body
    assert '<td class="del">Answer <del>the</del> <del>question</del> using' in body
    assert '<td class="del">' in body and '<td class="add">' in body
    assert at.query_params["template"] == "qa-basic"


def test_deep_link_opens_a_diff_between_two_versions(monkeypatch, demo_db):
    at = open_page(
        monkeypatch, demo_db, template="summarize-article", **{"from": "1.0.0", "to": "1.1.0"}
    )
    assert at.selectbox(key="hist_template").value == "summarize-article"
    assert at.selectbox(key="hist_from_summarize-article").value == "1.0.0"
    assert at.selectbox(key="hist_to_summarize-article").value == "1.1.0"
    body = html_of(at)[0]
    assert "1.0.0 (" in body and "<ins>" in body and "<del>" in body
    # a bad ref in the URL is ignored, an unknown one is an error message (not a crash)
    at = open_page(monkeypatch, demo_db, template="qa-basic", to="no<such>ref")
    assert at.selectbox(key="hist_to_qa-basic").value == "concise-tone"
    at = open_page(monkeypatch, demo_db, template="qa-basic", to="nosuchbranch")
    assert any("unknown ref 'nosuchbranch'" in e.value for e in at.error)
    # picking another template drops refs that belonged to the previous one
    at = open_page(monkeypatch, demo_db, template="qa-basic", to="concise-tone")
    at.selectbox(key="hist_template").select("translate-chat").run()
    assert not at.error and at.query_params["to"] == "1.0.0"  # the new template's default
    assert any("No differences" in i.value for i in at.info)  # one version, nothing to compare
    assert any("Create a branch first" in i.value for i in at.info)


def test_create_a_branch_from_the_form(monkeypatch, demo_db):
    at = open_page(monkeypatch, demo_db, template="qa-basic")
    at.text_input(key="hist_branch_name").input("polite-tone")
    at.selectbox(key="hist_branch_from").select("1.0.0")
    at.button(key="FormSubmitter:hist_new_branch-Create branch").click().run()
    assert not at.exception
    from promptver import Workspace

    ws = Workspace.open(demo_db)
    got = {b.name: b for b in ws.versions.list_branches("qa-basic")}
    assert got["polite-tone"].head == ws.versions.resolve(got["main"].template_id, "1.0.0").id
    assert got["polite-tone"].created_by == "tester"
    assert flashed(at).startswith("Created branch polite-tone")
    assert at.selectbox(key="hist_to_qa-basic").value == "polite-tone"
    # an invalid name is explained, not created
    at.text_input(key="hist_branch_name").input("1.2.3")
    at.button(key="FormSubmitter:hist_new_branch-Create branch").click().run()
    assert any("looks like a version" in e.value for e in at.error)


def test_fast_forward_merge_from_the_screen(monkeypatch, demo_db):
    at = open_page(monkeypatch, demo_db, template="qa-basic")
    from promptver import Workspace

    before = Workspace.open(demo_db).templates.get("qa-basic")
    assert at.selectbox(key="hist_merge_src_qa-basic_main").value == "concise-tone"
    assert any("Fast-forward" in i.value for i in at.info)
    at.button(key="hist_merge_go").click().run()
    assert not at.exception
    from promptver import Workspace

    ws = Workspace.open(demo_db)
    head = ws.templates.get("qa-basic")
    assert flashed(at).startswith("Fast-forwarded concise-tone into main")
    assert f"version {head.version} |" in flashed(at)
    assert "already contains" in flashed(at)  # the merge tab now says there is nothing to do
    assert head.commit == ws.versions.branch_head(head.id, "concise-tone")
    assert "three short sentences" in head.content and head.version != before.version


def test_conflict_editor_resolves_and_commits_a_merge(monkeypatch, demo_db):
    at = open_page(monkeypatch, demo_db, template="qa-citations")
    at.selectbox(key="hist_merge_src_qa-citations_main").select("strict-sources").run()
    assert any("1 conflicting hunk" in w.value for w in at.warning)
    commit = by_key(at.button, "hist_merge_commit")
    assert commit.disabled  # markers are still in the result
    result = next(t for t in at.text_area if t.key.startswith("hist_result_"))
    assert "<<<<<<< main" in result.value and ">>>>>>> strict-sources" in result.value
    radio = next(r for r in at.radio if r.key.startswith("hist_choice_"))
    radio.set_value("theirs").run()
    result = next(t for t in at.text_area if t.key.startswith("hist_result_"))
    assert "<<<<<<<" not in result.value and "never invent a source" in result.value
    result.input(result.value + "\nBe brief.").run()
    by_key(at.button, "hist_merge_commit").click().run()
    assert not at.exception
    assert flashed(at).startswith("Merged strict-sources into main")
    from promptver import Workspace

    ws = Workspace.open(demo_db)
    head = ws.templates.get("qa-citations")
    # the hunk took the branch's line; main's later, non-conflicting lines stayed
    assert head.content == (
        "Answer {question} using only the sources below; cite each one as "
        "[n] and never invent a source.\n{sources}\n\nQuestion: {question}"
        "\nBe brief."
    )
    assert len(ws.versions.get_commit(head.commit).parents) == 2 and head.version is not None


def test_clean_merge_into_another_branch_and_delete_dialog(monkeypatch, db_path):
    from promptver import Workspace

    ws = Workspace.open(db_path)
    ws.templates.create("t", BASE)
    ws.versions.create_branch("t", "a")
    ws.versions.create_branch("t", "b")
    ws.templates.update("t", edit(BASE, 1, "from a"), branch="a")
    ws.templates.update("t", edit(BASE, 5, "from b"), branch="b")
    ws.mark("seeded", "test")
    at = open_page(monkeypatch, db_path, template="t")
    at.selectbox(key="hist_merge_into_t").select("b").run()
    at.selectbox(key="hist_merge_src_t_b").select("a").run()
    assert any("Clean three-way merge" in i.value for i in at.info)
    at.button(key="hist_merge_go").click().run()
    assert ws.templates.get("t", branch="b").content == edit(edit(BASE, 1, "from a"), 5, "from b")
    # delete "a": contained in b now, so no force needed
    at.selectbox(key="hist_delete_pick").select("a").run()
    at.button(key="hist_delete").click().run()
    at.button(key="hist_delete_yes").click().run()
    assert not at.exception
    assert [b.name for b in ws.versions.list_branches("t")] == ["main", "b"]
    # "b" has unmerged work: refused without the checkbox
    at.selectbox(key="hist_delete_pick").select("b").run()
    at.button(key="hist_delete").click().run()
    at.button(key="hist_delete_yes").click().run()
    assert any("unmerged" in e.value for e in at.error)
    assert [b.name for b in ws.versions.list_branches("t")] == ["main", "b"]


def test_user_text_is_escaped_in_the_diff_html(monkeypatch, db_path):
    from promptver import Workspace

    ws = Workspace.open(db_path)
    ws.templates.create("x", "Hello <b>{name}</b> & <script>alert(1)</script>\n")
    ws.templates.update(
        "x", "Hello <i>{name}</i> & <img src=x onerror=alert(1)>\n", message="<script>msg</script>"
    )
    ws.mark("seeded", "test")
    at = open_page(monkeypatch, db_path, template="x")
    body = html_of(at)[0]
    tags = set(re.findall(r"</?([a-zA-Z]+)", body))
    assert tags <= {
        "style",
        "table",
        "colgroup",
        "col",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "del",
        "ins",
    }, tags
    assert "&lt;<del>script&gt;</del>alert(1)<del>&lt;/script</del>&gt;" in body
    assert "&lt;<ins>img src=x onerror=</ins>alert(1)&gt;" in body


def test_side_by_side_html_folds_long_unchanged_runs_and_pairs_lines():
    old = "\n".join(f"line {i}" for i in range(30)) + "\n"
    new = old.replace("line 15\n", "line fifteen\nextra\n")
    body = side_by_side_html(diff_texts(old, new), "old", "new")
    assert "unchanged lines" in body
    assert '<td class="n">16</td><td class="del">line <del>15</del></td>' in body
    assert '<td class="add">line <ins>fifteen</ins></td>' in body
    assert '<td class="n"></td><td class="empty"></td><td class="n">17</td>' in body


def test_the_template_picked_on_templates_opens_on_history_and_deployments(monkeypatch, demo_db):
    """Issue 22, item 16: moving between screens (the sidebar's links carry no ?template=)
    keeps the template the analyst was working on, in both directions."""
    monkeypatch.setenv("PROMPTVER_DB", str(demo_db))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/templates.py").run()
    at.selectbox(key="tpl_pick").select("summarize-article").run()
    assert not at.exception, at.exception

    def move(page: str) -> None:
        at.query_params.clear()  # as the sidebar navigation does
        at.switch_page(page).run()
        assert not at.exception, at.exception

    move("pages/history.py")
    assert at.selectbox(key="hist_template").value == "summarize-article"
    assert at.selectbox(key="hist_from_summarize-article").value  # its own refs, not qa-basic's
    at.selectbox(key="hist_template").select("translate-formal").run()
    move("pages/deployments.py")
    assert at.selectbox(key="dep_template").value == "translate-formal"
    move("pages/templates.py")
    assert at.selectbox(key="tpl_pick").value == "translate-formal"


CHAT = [
    {"role": "system", "content": "You answer questions about {product}."},
    {"placeholder": "history"},
    {"role": "user", "content": "{question}"},
]


def _chat_workspace(db_path):
    from promptver import Workspace

    ws = Workspace.open(db_path)
    ws.templates.create("c", messages=CHAT, config={"model": "gpt-4o-mini", "temperature": 0.2})
    ws.mark("seeded", "test")
    return ws


def test_diff_of_a_chat_prompt_shows_config_paths_and_changed_messages(monkeypatch, db_path):
    ws = _chat_workspace(db_path)
    ws.templates.update(
        "c",
        messages=[*CHAT[:2], {"role": "user", "content": "{question} Answer in JSON."}],
        config={"model": "gpt-4.1-nano", "temperature": 0.2},
    )
    at = open_page(monkeypatch, db_path, template="c", **{"from": "1.0.0", "to": "1.1.0"})
    frames = [f.value for f in at.dataframe]
    config = next(f for f in frames if "path" in f.columns)
    assert config.to_dict("records") == [
        {"path": "model", "old": '"gpt-4o-mini"', "new": '"gpt-4.1-nano"'}
    ]
    assert any("#3" in c.value for c in at.caption), [c.value for c in at.caption]
    page = " ".join(html_of(at))
    assert "[user]" in page and "Answer in JSON." in page


def test_config_conflict_is_resolved_in_the_merge_editor(monkeypatch, db_path):
    ws = _chat_workspace(db_path)
    ws.versions.create_branch("c", "hot")
    ws.templates.update("c", branch="hot", config={"model": "gpt-4o-mini", "temperature": 0.9})
    ws.templates.update("c", config={"model": "gpt-4o-mini", "temperature": 0.5})
    at = open_page(monkeypatch, db_path, template="c")
    at.selectbox(key="hist_merge_src_c_main").select("hot").run()
    assert any("configuration path" in w.value for w in at.warning)
    radio = next(r for r in at.radio if r.key and r.key.startswith("hist_config_"))
    radio.set_value("theirs").run()
    by_key(at.button, "hist_merge_commit").click().run()
    assert not at.exception
    t = ws.templates.get("c")
    assert t.config["temperature"] == 0.9 and t.version == "1.2.0"
    assert len(ws.versions.get_commit(t.commit).parents) == 2


def test_clean_chat_merge_previews_the_merged_config(monkeypatch, db_path):
    ws = _chat_workspace(db_path)
    ws.versions.create_branch("c", "tone")
    ws.templates.update(
        "c", branch="tone", messages=[{"role": "system", "content": "Be warm."}, *CHAT[1:]]
    )
    ws.templates.update("c", config={"model": "gpt-4o-mini", "temperature": 0.5})
    at = open_page(monkeypatch, db_path, template="c")
    at.selectbox(key="hist_merge_src_c_main").select("tone").run()
    assert any("Clean three-way merge" in i.value for i in at.info)
    assert "warm" in " ".join(html_of(at))  # the merged system message (word-diffed)
    at.button(key="hist_merge_go").click().run()
    t = ws.templates.get("c")
    assert t.messages[0]["content"] == "Be warm." and t.config["temperature"] == 0.5

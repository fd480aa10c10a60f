"""History & Diff: the commit graph of a template, diffs between any two refs, branches and
merges with a conflict editor. Deep links: ``?template=NAME&from=REF&to=REF``."""

from __future__ import annotations

import hashlib
import json

import streamlit as st

from promptver import Conflict, PromptverError
from promptver.merging import CHOICES, conflict_markers
from promptver.models import NAME_RE
from ui.common import (
    MISSING,
    author,
    code,
    domain_errors,
    flash,
    md,
    no_templates,
    pick_template,
    show_error,
    table_height,
    workspace,
)
from ui.history import (
    HISTORY_COLUMNS,
    config_change_rows,
    history_chart,
    history_chart_height,
    history_frame,
    side_by_side_html,
)

ws = workspace()

st.title("History & Diff")
# app.py shows pending messages before running the page; a deep link opened in a fresh session
# can run this page before app.py (streamlit#9624), so show what is still pending here too.
st.caption(
    "Every save is a commit. Branches hold drafts without touching what is live; a merge "
    "brings them back into `main`, where each merge gets a new version."
)

every = ws.templates.list(include_archived=True)
names = [t.name for t in every]
if not names:
    no_templates(ws, "then its history, branches and merges appear here")
    st.stop()

wanted = st.query_params.get("template")
name = pick_template(
    names, "hist_template", help="Deep link: ?template=NAME&from=REF&to=REF opens a diff"
)
if st.query_params.get("template") != name:
    if wanted is not None:  # another template was picked: its refs do not apply here
        for param in ("from", "to"):
            if param in st.query_params:
                del st.query_params[param]
    st.query_params["template"] = name

branches = ws.versions.list_branches(name)
history = ws.versions.history(name, limit=300)
branch_names = [b.name for b in branches]
versions = [r.version for r in history if r.version]
commit_refs = [r.commit[:12] for r in history]
labels = {r.commit[:12]: f"{r.commit[:10]} · {r.message[:50]}" for r in history}


def ref_options(extra: str | None = None) -> list[str]:
    """Branches, then versions (newest first), then every commit by its 12-character prefix."""
    opts = branch_names + versions + commit_refs
    if extra and extra not in opts:
        opts.append(extra)
    return opts


def ref_label(ref: str) -> str:
    if ref in branch_names:
        return f"⎇ {ref}"
    if ref in versions:
        return f"v{ref}"
    return labels.get(ref, ref)


def pick_ref(label: str, key: str, param: str, default: str) -> str:
    """A ref picker that starts from the ``param`` query parameter and writes it back."""
    from_url = st.query_params.get(param)
    if from_url is not None and not NAME_RE.match(from_url):
        from_url = None  # refs are names, versions or hex prefixes: ignore anything else
    opts = ref_options(from_url)
    start = from_url if from_url in opts else default
    ref = st.selectbox(
        label,
        opts,
        index=opts.index(start),
        key=key,
        format_func=ref_label,
        help="A branch (⎇), a version (v) or any commit",
    )
    if st.query_params.get(param) != ref:
        st.query_params[param] = ref
    return ref


deep_diff = "from" in st.query_params or "to" in st.query_params
tab_history, tab_diff, tab_branches, tab_merge = st.tabs(
    ["History", "Diff", "Branches", "Merge"],
    key="hist_tab",
    default="Diff" if deep_diff else "History",
)


# ---- history --------------------------------------------------------------------------------

with tab_history:
    m1, m2, m3 = st.columns(3)
    m1.metric("Commits", len(history))
    m2.metric("Versions", len(versions))
    m3.metric("Branches", len(branches))
    if history:
        st.altair_chart(
            history_chart(history), width="stretch", height=history_chart_height(history)
        )
        with st.expander("As a table", expanded=False):
            st.dataframe(
                history_frame(history),
                hide_index=True,
                width="stretch",
                height=table_height(len(history)),
                placeholder=MISSING,
                column_config=HISTORY_COLUMNS,
            )


# ---- diff -----------------------------------------------------------------------------------

with tab_diff:
    others = [b for b in branch_names if b != "main"]
    # default: main against the first other branch, else the previous version against the last
    default_from = "main" if others or len(versions) < 2 else versions[1]
    default_to = others[0] if others else (versions[0] if versions else "main")
    c1, c2 = st.columns(2)
    with c1:
        ref_a = pick_ref("From (old)", f"hist_from_{name}", "from", default_from)
    with c2:
        ref_b = pick_ref("To (new)", f"hist_to_{name}", "to", default_to)
    diff = None
    with domain_errors():
        diff = ws.versions.diff(name, ref_a, ref_b)
    if diff is not None:
        if diff.identical:
            st.info(
                f"No differences: **{md(ref_a)}** and **{md(ref_b)}** have the same text and "
                "metadata."
                + ("" if diff.old_commit != diff.new_commit else " (They are the same commit.)")
            )
        else:
            d1, d2, d3, d4 = st.columns(4)
            d1.metric("Lines added", diff.lines_added)
            d2.metric("Lines removed", diff.lines_removed)
            d3.metric("Variables added", len(diff.variables_added))
            d4.metric("Variables removed", len(diff.variables_removed))
            if diff.variables_added:
                st.markdown(
                    "Variables added: "
                    + " ".join(f":green-badge[{v}]" for v in diff.variables_added)
                )
            if diff.variables_removed:
                st.markdown(
                    "Variables removed: "
                    + " ".join(f":red-badge[{v}]" for v in diff.variables_removed)
                )
            st.html(
                side_by_side_html(
                    diff,
                    f"{ref_a} ({(diff.old_commit or '')[:10]})",
                    f"{ref_b} ({(diff.new_commit or '')[:10]})",
                )
            )
            if diff.config_changes:
                st.markdown("**Model configuration changes**")
                st.dataframe(
                    config_change_rows(diff.config_changes),
                    hide_index=True,
                    width="stretch",
                )
            if diff.messages_changed:
                st.caption(
                    "Messages added or changed in the new version: "
                    + ", ".join(f"#{i + 1}" for i in diff.messages_changed)
                    + " (the side-by-side view shows each message under its role)"
                )
            if diff.metadata_changes:
                st.markdown("**Metadata changes**")
                st.dataframe(
                    [
                        {
                            "key": m.key,
                            "change": m.op,
                            "old": None
                            if m.op == "added"
                            else json.dumps(m.old, ensure_ascii=False),
                            "new": None
                            if m.op == "removed"
                            else json.dumps(m.new, ensure_ascii=False),
                        }
                        for m in diff.metadata_changes
                    ],
                    hide_index=True,
                    width="stretch",
                    height=table_height(len(diff.metadata_changes)),
                    placeholder=MISSING,
                    column_config={
                        "key": st.column_config.TextColumn("Key", width="medium"),
                        "change": st.column_config.TextColumn("Change"),
                        "old": st.column_config.TextColumn("Old", width="large"),
                        "new": st.column_config.TextColumn("New", width="large"),
                    },
                )
            with st.expander("Unified diff (patch)"):
                st.code(diff.unified or "(the texts are equal)", language="diff")
                st.download_button(
                    "Download .patch",
                    diff.unified.encode("utf-8"),
                    file_name=f"{name.replace('/', '_')}-{ref_a}-{ref_b}.patch",
                    mime="text/x-diff",
                    key="hist_patch",
                    help="The unified diff, for a review or git apply",
                )


# ---- branches -------------------------------------------------------------------------------

with tab_branches:
    st.dataframe(
        [
            {
                "branch": b.name,
                "head": b.head[:10],
                "ahead of main": b.ahead,
                "behind main": b.behind,
                "created (UTC)": b.created_at,
                "by": b.created_by,
            }
            for b in branches
        ],
        hide_index=True,
        width="stretch",
        height=table_height(len(branches)),
        placeholder=MISSING,
        column_config={
            "branch": st.column_config.TextColumn("Branch", pinned=True, width="medium"),
            "head": st.column_config.TextColumn("Head"),
            "ahead of main": st.column_config.NumberColumn(
                "Ahead of main", help="Commits on the branch that main lacks"
            ),
            "behind main": st.column_config.NumberColumn(
                "Behind main", help="Commits on main that the branch lacks"
            ),
            "created (UTC)": st.column_config.DatetimeColumn(
                "Created (UTC)", format="YYYY-MM-DD HH:mm"
            ),
            "by": st.column_config.TextColumn("By"),
        },
    )
    st.caption(
        "Ahead: commits on the branch that main lacks. Behind: commits on main that the "
        "branch lacks. Commit on a branch from the **Templates** screen (pick the branch)."
    )
    with st.form("hist_new_branch", clear_on_submit=True):
        st.markdown("**New branch**")
        f1, f2 = st.columns(2)
        new_name = f1.text_input(
            "Name",
            key="hist_branch_name",
            max_chars=100,
            placeholder="e.g. concise-tone",
            help="Letters, digits, -, _, . and /",
        )
        start = f2.selectbox(
            "Start from",
            ref_options(),
            key="hist_branch_from",
            help="The branch starts at this branch, version or commit",
            format_func=ref_label,
        )
        if st.form_submit_button("Create branch", type="primary"):
            try:
                b = ws.versions.create_branch(
                    name, new_name.strip(), from_ref=start, author=author()
                )
            except PromptverError as exc:
                show_error(exc)
            else:
                flash(f"Created branch {b.name} at {b.head[:10]}")
                st.query_params["to"] = b.name
                st.session_state.pop(f"hist_to_{name}", None)
                st.rerun()

    deletable = [b for b in branch_names if b != "main"]
    if deletable:
        st.markdown("**Delete a branch** (its commits are kept and stay reachable by id)")
        g1, g2 = st.columns([3, 1], vertical_alignment="bottom")
        victim = g1.selectbox(
            "Branch to delete",
            deletable,
            key="hist_delete_pick",
            help="Deleting a branch keeps its commits; only the name goes",
        )
        if g2.button("Delete…", key="hist_delete"):
            st.session_state["hist_confirm_delete"] = (name, victim)
        if st.session_state.get("hist_confirm_delete") == (name, victim):
            info = next(b for b in branches if b.name == victim)

            @st.dialog("Delete branch?")
            def _confirm_delete() -> None:
                st.write(
                    f"Delete branch **{md(victim)}** of **{md(name)}** (head `{info.head[:10]}`)? "
                    "Its commits are kept; you can recreate the branch from the head id."
                )
                force = st.checkbox(
                    "Delete even if no other branch contains its commits", key="hist_delete_force"
                )
                a, b = st.columns(2)
                if a.button("Delete", type="primary", key="hist_delete_yes"):
                    try:
                        ws.versions.delete_branch(name, victim, force=force)
                    except PromptverError as exc:
                        show_error(exc)
                    else:
                        st.session_state.pop("hist_confirm_delete", None)
                        flash(f"Deleted branch {victim} (was {info.head[:10]})")
                        st.rerun()
                if b.button("Cancel", key="hist_delete_no"):
                    st.session_state.pop("hist_confirm_delete", None)
                    st.rerun()

            _confirm_delete()


# ---- merge ----------------------------------------------------------------------------------

with tab_merge:
    if len(branch_names) < 2:
        st.info("Create a branch first (under **Branches**); then merge it here.")
    else:
        k1, k2 = st.columns(2)
        target = k2.selectbox(
            "Into branch",
            branch_names,
            key=f"hist_merge_into_{name}",
            help="The branch that receives the changes (main: the merge gets a new version)",
        )
        sources = [b for b in branch_names if b != target] + versions + commit_refs
        source = k1.selectbox(
            "Merge", sources, key=f"hist_merge_src_{name}_{target}", format_func=ref_label
        )
        plan = None
        with domain_errors():
            plan = ws.versions.plan_merge(name, source, into=target)
        if plan is not None:
            bump = "minor"
            if target == "main" and plan.kind != "up_to_date":
                bump = (
                    st.segmented_control(
                        "Version bump",
                        ["major", "minor", "patch"],
                        default="minor",
                        key="hist_merge_bump",
                        help="major: incompatible change (variables changed); minor: new wording; patch: typo fix",
                    )
                    or "minor"
                )
            msg = st.text_input(
                "Merge message",
                key=f"hist_merge_msg_{name}",
                placeholder=f"Merge {source} into {target}",
                help="Recorded as the merge commit's message",
            )

            def do_merge(**kwargs: object) -> None:
                try:
                    r = ws.versions.merge(
                        name,
                        source,
                        into=target,
                        message=msg or None,
                        author=author(),
                        bump=bump,
                        expected_head=plan.ours.id,
                        expected_source=plan.theirs.id,
                        **kwargs,
                    )  # type: ignore[arg-type]
                except Conflict as exc:
                    st.error(md(exc.message), icon=":material/sync_problem:")
                except PromptverError as exc:
                    show_error(exc)
                else:
                    what = "Fast-forwarded" if r.fast_forward else "Merged"
                    flash(
                        f"{what} {source} into {target}: commit {r.commit[:10]}"
                        + (f", version {r.version}" if r.version else "")
                    )
                    st.rerun()

            if plan.kind == "up_to_date":
                st.success(f"**{md(target)}** already contains **{md(source)}**: nothing to merge.")
            elif plan.kind == "fast_forward":
                st.info(
                    f"Fast-forward: **{md(target)}** has not moved since **{md(source)}** left it, "
                    f"so it simply moves to `{plan.theirs.id[:10]}`"
                    + (" and that commit becomes the next version." if target == "main" else ".")
                )
                no_ff = st.checkbox(
                    "Record a merge commit anyway",
                    key="hist_merge_noff",
                    help="Keep a merge commit in the graph although main could simply move forward",
                )
                if st.button(f"Merge into {target}", type="primary", key="hist_merge_go"):
                    do_merge(no_ff=no_ff)
            elif plan.clean:
                merged = plan.text.text() if plan.text else ""
                bases = ", ".join(b[:10] for b in plan.bases)
                st.info(
                    f"Clean three-way merge against the merge base `{bases}`"
                    + (
                        " (criss-cross history: the bases were merged into a virtual base)"
                        if plan.criss_cross
                        else ""
                    )
                    + ". The result, compared with "
                    f"**{md(target)}**:"
                )
                preview = plan.preview()
                st.html(side_by_side_html(preview, f"{target} now", "after the merge"))
                if preview.config_changes:
                    st.markdown("**Model configuration after the merge**")
                    st.dataframe(
                        config_change_rows(preview.config_changes),
                        hide_index=True,
                        width="stretch",
                    )
                if st.button(f"Merge into {target}", type="primary", key="hist_merge_go"):
                    do_merge()
            else:
                assert plan.text is not None and plan.metadata is not None
                assert plan.config is not None
                conflicts = plan.text.conflicts
                unit = "message" if plan.chat else "hunk"
                st.warning(
                    f"{len(conflicts)} conflicting {unit}(s)"
                    + (
                        f", {len(plan.metadata.conflicts)} metadata key(s)"
                        if plan.metadata.conflicts
                        else ""
                    )
                    + (
                        f", {len(plan.config.conflicts)} configuration path(s)"
                        if plan.config.conflicts
                        else ""
                    )
                    + f": **{md(target)}** and **{md(source)}** changed the same "
                    + ("messages or settings" if plan.chat else "lines")
                    + ". Choose a side for each, or edit the result, then commit the merge. "
                    "Nothing is written until you do.",
                    icon=":material/warning:",
                )
                tag = hashlib.sha1(f"{plan.ours.id}{plan.theirs.id}".encode()).hexdigest()[:10]
                choices: list[str | None] = []
                for i, c in enumerate(conflicts, start=1):
                    with st.container(border=True):
                        st.markdown(f"**Hunk {i}** · base line {c.base_start + 1}")
                        h1, h2, h3 = st.columns(3)
                        h1.caption("base")
                        h1.code("\n".join(c.base) or "(nothing)", language=None)
                        h2.caption(f"{md(target)} (ours)")
                        h2.code("\n".join(c.ours) or "(deleted)", language=None)
                        h3.caption(f"{md(source)} (theirs)")
                        h3.code("\n".join(c.theirs) or "(deleted)", language=None)
                        pick = st.radio(
                            "Take",
                            CHOICES,
                            index=None,
                            horizontal=True,
                            key=f"hist_choice_{tag}_{i}",
                            format_func=lambda x: {
                                "ours": md(target),
                                "theirs": md(source),
                                "ours+theirs": "both (ours first)",
                                "theirs+ours": "both (theirs first)",
                                "base": "base",
                            }[x],
                        )
                        choices.append(pick)

                def pick_sides(
                    conflicts: list, title: str, prefix: str, kind: str
                ) -> dict[str, str]:
                    """A side (ours, theirs or base) for each conflicting key, shown with its
                    three values; metadata keys and configuration paths are chosen alike."""
                    out: dict[str, str] = {}
                    for c in conflicts:
                        with st.container(border=True):
                            st.markdown(f"**{title}** {code(prefix + c.key)}")
                            st.json(
                                {"base": c.base, target: c.ours, source: c.theirs}, expanded=True
                            )
                            out[c.key] = (
                                st.radio(
                                    "Take",
                                    ["ours", "theirs", "base"],
                                    horizontal=True,
                                    key=f"hist_{kind}_{tag}_{c.key}",
                                    format_func=lambda x: {
                                        "ours": md(target),
                                        "theirs": md(source),
                                        "base": "base",
                                    }[x],
                                )
                                or "ours"
                            )
                    return out

                meta_choices = pick_sides(plan.metadata.conflicts, "Metadata", "", "meta")
                config_choices = pick_sides(
                    plan.config.conflicts, "Model configuration", "config.", "config"
                )
                start_text = plan.text.resolve(choices)
                digest = hashlib.sha1(json.dumps(choices).encode()).hexdigest()[:8]
                result = st.text_area(
                    "Merged messages (one JSON message per line, editable)"
                    if plan.chat
                    else "Merged result (editable)",
                    value=start_text,
                    height=300,
                    key=f"hist_result_{tag}_{digest}",
                    help="Starts from your choices; unresolved hunks keep their "
                    "<<<<<<< / ======= / >>>>>>> markers. Edit freely.",
                )
                left = conflict_markers(result)
                if left:
                    st.caption(
                        f"{len(left)} conflict marker line(s) left (first on line "
                        f"{left[0].line}): resolve every hunk to commit."
                    )
                if st.button(
                    "Commit merge", type="primary", disabled=bool(left), key="hist_merge_commit"
                ):
                    do_merge(
                        resolution=result,
                        resolution_metadata=plan.metadata.resolve(meta_choices),
                        resolution_config=plan.config.resolve(config_choices),
                    )

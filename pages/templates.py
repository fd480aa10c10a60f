"""Templates: find, create and edit prompt templates with live validation and a preview.

Deep links: ``?template=NAME`` opens it in the editor, ``?tab=new`` the form for a new one."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from promptver import Conflict, PromptverError
from promptver.chat import config_changes, describe_config_change
from promptver.models import Prompt, Template
from promptver.templates import same_metadata
from promptver.templating import VariableSpec, parse_schema
from ui.chat_editor import config_editor, conversation_preview, message_editor
from ui.chat_editor import reset as reset_editor
from ui.common import (
    MISSING,
    author,
    domain_errors,
    flash,
    md,
    pick_template,
    show_error,
    table_height,
    take_param,
    workspace,
)
from ui.filesync import file_sync_note

ws = workspace()

st.title("Templates")
st.caption(
    "Prompt templates with `{variable}` placeholders. Every save is a commit; "
    "saves on `main` get a new version."
)


# ---- helpers --------------------------------------------------------------------------------


def schema_rows(variables: list[str], metadata: dict) -> pd.DataFrame:
    specs, _ = parse_schema(metadata)
    rows = []
    for name in variables:
        spec = specs.get(name, VariableSpec(name))
        rows.append(
            {
                "variable": name,
                "type": spec.type,
                "required": spec.required,
                "default": "" if spec.default is None else str(spec.default),
                "description": spec.description,
            }
        )
    return pd.DataFrame(rows, columns=["variable", "type", "required", "default", "description"])


def schema_editor(
    key: str, variables: list[str], metadata: dict, previous: list[str] | None = None
) -> dict:
    """Edit the optional variable schema; returns the metadata to save.

    A row left as the editor shows it is no change: a declared variable keeps its stored rules
    word for word (the editor spells out ``required``, which the schema may leave unsaid), and
    an undeclared one stays undeclared. ``previous`` are the variables of the text the edit
    started from: a rule for one of them that the edit removed from the text goes with it;
    rules that were unused before the edit stay as they were.
    """
    original = dict(metadata)
    declared = dict((metadata or {}).get("variables") or {})
    schema: dict = {}
    if variables:
        edited = st.data_editor(
            schema_rows(variables, metadata),
            key=key,
            hide_index=True,
            width="stretch",
            placeholder=MISSING,
            disabled=["variable"],
            column_config={
                "variable": st.column_config.TextColumn("Variable"),
                "type": st.column_config.SelectboxColumn(
                    "Type",
                    options=["str", "int", "float"],
                    help="Values are checked when rendering",
                ),
                "required": st.column_config.CheckboxColumn(
                    "Required", help="Rendering fails without it", width="small"
                ),
                "default": st.column_config.TextColumn(
                    "Default", help="Used when the variable is not given", width="medium"
                ),
                "description": st.column_config.TextColumn(
                    "Description", help="Shown to whoever fills it in", width="large"
                ),
            },
        )
        for row in edited.to_dict("records"):
            name = row["variable"]
            spec = {"type": row["type"] or "str", "required": bool(row["required"])}
            if str(row.get("default") or "") != "":
                spec["default"] = row["default"]
            if str(row.get("description") or "").strip():
                spec["description"] = str(row["description"]).strip()
            if name in declared:
                unchanged = same_metadata(
                    {"variables": {name: spec}}, {"variables": {name: declared[name]}}
                )
                schema[name] = declared[name] if unchanged else spec
            elif spec != {"type": "str", "required": True}:
                schema[name] = spec
    gone = set(previous or []) - set(variables)
    for name, rules in declared.items():
        if name not in schema and name not in variables and name not in gone:
            schema[name] = rules
    out = {k: v for k, v in original.items() if k != "variables"}
    if schema or original.get("variables") == {}:  # an empty schema stays as it was stored
        out["variables"] = schema
    return out


def suggest_message(
    old: Template,
    content: str | None,
    metadata: dict,
    variables: list[str],
    messages: list[dict] | None = None,
    config: dict | None = None,
) -> str:
    """A commit message describing the edit, offered in the message box (the author may
    rewrite it): what happened to the text or messages, its variables, the model configuration
    and the variable schema."""
    parts = []
    body_changed = content != old.content if old.kind == "text" else messages != old.messages
    if body_changed:
        parts.append("Edit the text" if old.kind == "text" else "Edit the messages")
        added = [v for v in variables if v not in old.variables]
        removed = [v for v in old.variables if v not in variables]
        if added:
            parts.append("add " + ", ".join(f"{{{v}}}" for v in added))
        if removed:
            parts.append("remove " + ", ".join(f"{{{v}}}" for v in removed))
    changes = config_changes(old.config, config if config is not None else old.config)
    if changes:
        what = describe_config_change(changes, limit=3)
        parts.append(("set " if parts else "Set ") + what)
    if not same_metadata(metadata, old.metadata):
        before, _ = parse_schema(old.metadata)
        after, _ = parse_schema(metadata)
        names = [
            n
            for n in dict.fromkeys([*after, *before])
            if (before.get(n) and before[n].as_dict()) != (after.get(n) and after[n].as_dict())
        ]
        what = "the variable schema" + (f" of {', '.join(names)}" if names else "")
        parts.append(("change " if parts else "Change ") + what)
    return "; ".join(parts)[:200]


def show_report(
    content: str | None,
    metadata: dict,
    kind: str = "text",
    messages: list[dict] | None = None,
    config: dict | None = None,
) -> bool:
    """Validation messages under the editor; returns True when saving is allowed."""
    report = ws.templates.validate(content, metadata, kind=kind, messages=messages, config=config)
    cols = st.columns(3)
    cols[0].metric("Characters", f"{report.chars:,}")
    cols[1].metric(
        "Tokens (est.)",
        f"{report.tokens:,}",
        help="A tokenizer-free estimate: a common word is one token, long words split.",
    )
    cols[2].metric("Variables", len(report.variables))
    if report.variables:
        st.markdown("Variables: " + " ".join(f"`{v}`" for v in report.variables))
    for p in report.errors:
        st.error(
            md(f"{p.location()}: {p.message}" if p.location() else p.message),
            icon=":material/error:",
        )
    for p in report.warnings:
        st.warning(
            md(f"{p.location()}: {p.message}" if p.location() else p.message),
            icon=":material/warning:",
        )
    return report.ok


def chat_preview(
    key: str, messages: list[dict], config: dict, metadata: dict, variables: list[str]
) -> None:
    """The conversation rendered with sample values, and the payloads of both SDKs."""
    from promptver.chat import placeholders_of

    specs, _ = parse_schema(metadata)
    with st.expander("Preview with sample values", expanded=True):
        values: dict = {}
        cols = st.columns(min(3, max(1, len(variables))))
        for i, name in enumerate(variables):
            spec = specs.get(name)
            default = "" if spec is None or spec.default is None else str(spec.default)
            values[name] = cols[i % len(cols)].text_input(
                name, value=default or f"<{name}>", key=f"{key}_{name}"
            )
        for ph in placeholders_of(messages):
            values[ph] = [
                {"role": "user", "content": f"(earlier question in {ph})"},
                {"role": "assistant", "content": f"(earlier answer in {ph})"},
            ]
        prompt = Prompt(
            template_id="",
            name="preview",
            version=None,
            commit="",
            content="",
            kind="chat",
            chat_messages=messages,
            config=config,
            metadata=metadata,
            max_render_chars=ws.settings.templates.max_render_chars,
        )
        try:
            rendered = prompt.render_messages(values)
        except PromptverError as exc:
            st.error(f"Cannot render: {md(exc.message)}")
            return
        t_conv, t_openai, t_anthropic = st.tabs(
            ["Conversation", "OpenAI payload", "Anthropic payload"]
        )
        with t_conv:
            conversation_preview(rendered)
        for tab, api in ((t_openai, "openai"), (t_anthropic, "anthropic")):
            with tab:
                try:
                    st.json(prompt.payload(api, values), expanded=True)
                except PromptverError as exc:
                    st.info(md(exc.message), icon=":material/info:")


def preview(key: str, content: str, metadata: dict, variables: list[str]) -> None:
    specs, _ = parse_schema(metadata)
    with st.expander("Preview with sample values", expanded=False):
        values = {}
        cols = st.columns(min(3, max(1, len(variables))))
        for i, name in enumerate(variables):
            spec = specs.get(name)
            default = "" if spec is None or spec.default is None else str(spec.default)
            values[name] = cols[i % len(cols)].text_input(
                name,
                value=default or f"<{name}>",
                key=f"{key}_{name}",
                help=md(spec.description) if spec and spec.description else None,
            )
        from promptver.templates import render_template

        try:
            text = render_template(
                content, metadata, values, max_chars=ws.settings.templates.max_render_chars
            )
        except PromptverError as exc:
            st.error(f"Cannot render: {md(exc.message)}")
        else:
            st.code(text, language=None, wrap_lines=True)


# ---- list -----------------------------------------------------------------------------------

f1, f2, f3, f4 = st.columns([3, 2, 2, 1], vertical_alignment="bottom")
search = f1.text_input(
    "Search",
    key="tpl_search",
    placeholder="name, description, tag or text",
    help="Case-insensitive search over names, descriptions, tags and the "
    "text of the latest version",
)
category = f2.selectbox(
    "Category",
    ["All", *ws.templates.categories()],
    key="tpl_category",
    help="Show one category's templates",
)
tags = f3.multiselect(
    "Tags", ws.templates.tags(), key="tpl_tags", help="Show templates that carry all of these tags"
)
archived = f4.toggle("Archived", key="tpl_archived", help="Include archived templates")

items = ws.templates.list(
    category=None if category == "All" else category,
    tags=tags or None,
    search=search or None,
    include_archived=archived,
)
if items:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "name": t.name,
                    "version": t.version,
                    "category": t.category,
                    "tags": ", ".join(t.tags),
                    "variables": ", ".join(t.variables),
                    "updated (UTC)": t.updated_at,
                    "description": t.description,
                    "status": "active" if t.is_active else "archived",
                }
                for t in items
            ]
        ),
        hide_index=True,
        width="stretch",
        height=table_height(len(items)),
        placeholder=MISSING,
        # the long text last, so the short columns fit without scrolling sideways
        column_order=[
            "name",
            "version",
            "status",
            "category",
            "tags",
            "variables",
            "updated (UTC)",
            "description",
        ],
        column_config={
            "name": st.column_config.TextColumn("Name", pinned=True),
            "version": st.column_config.TextColumn("Version"),
            "category": st.column_config.TextColumn("Category"),
            "tags": st.column_config.TextColumn("Tags"),
            "variables": st.column_config.TextColumn("Variables"),
            "updated (UTC)": st.column_config.DatetimeColumn(
                "Updated (UTC)", format="YYYY-MM-DD HH:mm"
            ),
            "description": st.column_config.TextColumn(
                "Description", width="medium", help="Hover a cell to read all of it"
            ),
            "status": st.column_config.TextColumn("Status"),
        },
    )
elif not search and category == "All" and not tags and not ws.templates.list(include_archived=True):
    st.info(
        "There is no template yet. Create the first one under **New template**: a prompt with "
        "`{placeholders}`; every save becomes a version you can deploy and test.",
        icon=":material/lightbulb:",
    )
elif not archived and not search and category == "All" and not tags:
    st.info(
        "Every template is archived: turn on **Archived** to see them (and restore one), or "
        "create a new one under **New template**.",
        icon=":material/inventory_2:",
    )
else:
    st.info(
        "No templates match these filters. Clear the search or create one under **New template**."
    )

# deep link: ?tab=new opens the form for a new template (?template=NAME picks one to edit)
if (wanted_tab := take_param("tab")) in ("new", "edit"):
    st.session_state["tpl_tab"] = "New template" if wanted_tab == "new" else "Edit"
tab_edit, tab_new = st.tabs(["Edit", "New template"], key="tpl_tab", on_change="rerun")


# ---- edit -----------------------------------------------------------------------------------

with tab_edit:
    every = ws.templates.list(include_archived=True)
    names = [t.name for t in every]
    if not names:
        st.info("There is no template yet: create the first one under **New template**.")
    else:
        name = pick_template(names, "tpl_pick", help="Deep link: add ?template=NAME to the address")
        if st.query_params.get("template") != name:
            st.query_params["template"] = name
        branches = [b.name for b in ws.versions.branches(ws.templates.row(name)["id"])]
        branch = (
            st.selectbox(
                "Branch",
                branches,
                key=f"tpl_branch_{name}",
                help="Commits on main get a new version; other branches are drafts until merged",
            )
            if len(branches) > 1
            else "main"
        )
        current: Template = ws.templates.get(name, branch=branch)
        st.markdown(
            f"**{md(current.name)}** · {current.version or 'no version (branch)'} · commit "
            f"`{current.commit[:10]}` · {md(current.category) or 'no category'}"
            + ("" if current.is_active else " · :orange[archived]")
        )
        if current.description:
            st.caption(md(current.description))
        synced = file_sync_note(ws, current.name, current.commit)
        if synced:
            st.caption(synced)
        if evaluated := ws.evals.runs(template=current.id, ref=current.commit):
            st.page_link(
                "pages/evaluations.py",
                label=f"Evaluations of this version ({len(evaluated)})",
                icon=":material/fact_check:",
                query_params={
                    "dataset": evaluated[0].dataset,
                    "template": name,
                    "version": current.version or current.commit[:12],
                },
                help="Its offline scores, compared with another version on the same dataset",
            )
        base_key = f"tpl_base_{current.id}_{branch}"
        if st.session_state.get(base_key) is None:
            st.session_state[base_key] = current.commit
        base = st.session_state[base_key]
        if base != current.commit:
            st.warning(
                f"This template changed since you opened it (now `{current.commit[:10]}`). "
                "Reload to edit the latest text.",
                icon=":material/sync_problem:",
            )
            if st.button(
                "Reload latest",
                key="tpl_reload",
                help="Drop your edits and load the text saved most recently",
            ):
                st.session_state[base_key] = current.commit
                st.rerun()
        chat = current.kind == "chat"
        messages = None
        if chat:
            st.markdown("**Messages** (a chat prompt: one message per role, in order)")
            messages = message_editor(f"tpl_chat_{base}", current.messages or [])
            content = None
        else:
            content = st.text_area(
                "Text",
                value=current.content,
                height=260,
                key=f"tpl_content_{base}",
                help="Placeholders are {name}; write {{ and }} for literal braces. "
                "Press Ctrl+Enter to check it.",
            )
        with st.expander(
            "Model configuration"
            + (f" · {current.config['model']}" if current.config.get("model") else ""),
            expanded=chat or bool(current.config),
        ):
            config, config_problems = config_editor(f"tpl_cfg_{base}", current.config)
        ok = show_report(content, current.metadata, current.kind, messages, config)
        ok = ok and not config_problems
        from promptver.templating import scan, variables_of

        if chat:
            from promptver.chat import CompiledChat

            try:
                detected = CompiledChat(messages or []).variables
            except PromptverError:
                detected = []
        else:
            detected = variables_of(scan(content or "")[0])
        st.markdown("**Variable schema** (optional: types, defaults and descriptions)")
        metadata = schema_editor(
            f"tpl_schema_{base}", detected, current.metadata, previous=current.variables
        )
        if chat:
            if ok:
                chat_preview(f"tpl_prev_{base}", messages or [], config, metadata, detected)
        else:
            preview(f"tpl_prev_{base}", content or "", metadata, detected)

        text_changed = (
            messages != current.messages if chat else content != current.content
        ) or config != current.config
        changed = text_changed or not same_metadata(metadata, current.metadata)
        # The message box offers a description of the edit; it follows the edit until the
        # author writes their own (then it is theirs), and it is never silently "Update".
        msg_key, auto_key = f"tpl_msg_{base}", f"tpl_msg_auto_{base}"
        suggestion = (
            suggest_message(current, content, metadata, detected, messages, config)
            if changed
            else ""
        )
        if st.session_state.get(msg_key, "") == st.session_state.get(auto_key, ""):
            st.session_state[msg_key] = suggestion
        st.session_state[auto_key] = suggestion
        c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
        message = c1.text_input(
            "Commit message",
            key=msg_key,
            max_chars=500,
            placeholder="What changed and why",
            help="Recorded with the commit; prefilled from your edit, rewrite it as you like",
        ).strip()
        bump = None
        automatic = "minor" if text_changed else "patch"
        if branch == "main":
            bump = c2.segmented_control(
                "Version bump",
                ["major", "minor", "patch"],
                default=None,
                key=f"tpl_bump_{base}",
                help="Unset: minor for a text change, patch when only the variable schema "
                "changes. major: incompatible change (variables changed); minor: new wording; "
                "patch: typo fix",
            )
        save_row = st.container(horizontal=True, vertical_alignment="center", gap="medium")
        if save_row.button(
            "Save new version" if branch == "main" else f"Commit to {branch}",
            type="primary",
            disabled=not (ok and changed and message),
            key="tpl_save",
            icon=":material/save:",
        ):
            try:
                saved = ws.templates.update(
                    name,
                    content,
                    messages=messages,
                    config=config,
                    metadata=metadata,
                    branch=branch,
                    bump=bump,
                    author=author(),
                    message=message,
                    expected_head=base,
                )
            except Conflict as exc:
                st.error(f"{md(exc.message)}. Copy your text, reload, and apply it again.")
            except PromptverError as exc:
                show_error(exc)
            else:
                reset_editor(f"tpl_chat_{base}")
                reset_editor(f"tpl_cfg_{base}")
                st.session_state[base_key] = saved.commit
                st.session_state["tpl_saved"] = {
                    "name": saved.name,
                    "commit": saved.commit,
                    "previous": base,
                    "version": saved.version,
                    "branch": branch,
                }
                st.rerun()
        last = st.session_state.get("tpl_saved")
        if not changed and last and last["name"] == name and last["commit"] == current.commit:
            save_row.success(
                md(
                    f"Saved {last['name']} "
                    + (last["version"] or f"on {last['branch']}")
                    + f" (commit {last['commit'][:10]})"
                ),
                icon=":material/check_circle:",
            )
            save_row.page_link(
                "pages/history.py",
                label="Compare with the previous version",
                icon=":material/difference:",
                query_params={
                    "template": name,
                    "from": last["previous"][:12],
                    "to": last["commit"][:12],
                },
                help="What this save changed, side by side, on the History & Diff screen",
            )
            if last["version"]:
                save_row.page_link(
                    "pages/deployments.py",
                    label=f"Deploy {last['version']}…",
                    icon=":material/rocket_launch:",
                    query_params={"template": name, "version": last["version"]},
                    help="Check the gates and deploy it on the Deployments screen",
                )
        elif not changed:
            st.caption("No changes to save yet: edit the text or the variable schema.")
        elif not message:
            st.caption(":orange[Write a commit message: it says why this version exists.]")
        elif branch == "main" and current.version:
            from promptver.versioning import next_version, parse_version

            effective = bump or automatic
            nxt = ".".join(map(str, next_version(parse_version(current.version), effective)))
            why = (
                ""
                if bump
                else (
                    " (minor: the text changed)"
                    if text_changed
                    else " (patch: only the variable schema changed)"
                )
            )
            st.caption(f"Saving creates version {nxt}{why}.")

        with st.expander("Details: description, category, tags"), st.form(f"tpl_info_{current.id}"):
            d = st.text_input("Description", value=current.description, max_chars=1000)
            cat = st.text_input(
                "Category",
                value=current.category,
                max_chars=50,
                help="e.g. qa, summarization, translation",
            )
            tg = st.text_input("Tags", value=", ".join(current.tags), help="Comma-separated")
            if st.form_submit_button("Save details"):
                with domain_errors():
                    ws.templates.update_info(
                        name, description=d, category=cat, tags=[x.strip() for x in tg.split(",")]
                    )
                    flash(f"Saved details of {name}")
                    st.rerun()

        confirm_key = "tpl_confirm_archive"
        if current.is_active:
            if st.button(
                "Archive…",
                key="tpl_archive",
                help="Hide it from lists and applications; its history is kept",
            ):
                st.session_state[confirm_key] = name
        else:
            if st.button(
                "Restore",
                key="tpl_restore",
                help="Bring the template back into lists and applications",
            ):
                with domain_errors():
                    ws.templates.restore(name)
                    flash(f"Restored {name}")
                    st.rerun()
        if st.session_state.get(confirm_key) == name:

            @st.dialog("Archive template?")
            def _confirm() -> None:
                st.write(
                    f"Archive **{md(name)}**? It disappears from lists; its history, versions "
                    "and deployments stay and you can restore it later."
                )
                a, b = st.columns(2)
                if a.button("Archive", type="primary", key="tpl_archive_yes"):
                    with domain_errors():
                        ws.templates.archive(name, author=author())
                        st.session_state.pop(confirm_key, None)
                        flash(f"Archived {name}")
                        st.rerun()
                if b.button("Cancel", key="tpl_archive_no"):
                    st.session_state.pop(confirm_key, None)
                    st.rerun()

            _confirm()


# ---- create ---------------------------------------------------------------------------------

NEW_KEYS = [
    "tpl_new_name",
    "tpl_new_category",
    "tpl_new_description",
    "tpl_new_tags",
    "tpl_new_content",
    "tpl_new_message",
]


def _create() -> None:
    s = st.session_state
    chat = s.get("tpl_new_kind") == "chat"
    try:
        t = ws.templates.create(
            s.get("tpl_new_name", "").strip(),
            None if chat else s.get("tpl_new_content", ""),
            messages=s.get("tpl_new_messages") if chat else None,
            config=s.get("tpl_new_config") or None,
            category=s.get("tpl_new_category", ""),
            description=s.get("tpl_new_description", ""),
            tags=[x.strip() for x in s.get("tpl_new_tags", "").split(",")],
            metadata=s.get("tpl_new_metadata") or {},
            author=author(),
            message=s.get("tpl_new_message") or None,
        )
    except PromptverError as exc:
        s["tpl_new_error"] = exc
        return
    for k in NEW_KEYS:
        s.pop(k, None)
    reset_editor("tpl_new_chat")
    reset_editor("tpl_new_cfg")
    s.pop("tpl_new_error", None)
    st.query_params["template"] = t.name
    s["tpl_pick"] = t.name
    s["tpl_tab"] = "Edit"  # show what was just created
    flash(f"Created {t.name} {t.version} (commit {t.commit[:10]})")


with tab_new:
    c1, c2 = st.columns(2)
    c1.text_input(
        "Name",
        key="tpl_new_name",
        max_chars=100,
        placeholder="e.g. qa-basic",
        help="Letters, digits, -, _, . and /; it is how applications ask for it",
    )
    c2.text_input(
        "Category",
        key="tpl_new_category",
        max_chars=50,
        placeholder="qa, summarization, translation …",
    )
    st.text_input("Description", key="tpl_new_description", max_chars=1000)
    st.text_input("Tags", key="tpl_new_tags", help="Comma-separated, e.g. support, rag")
    new_kind = st.segmented_control(
        "Kind",
        ["text", "chat"],
        default="text",
        key="tpl_new_kind",
        format_func=lambda k: {"text": "Text prompt", "chat": "Chat prompt (messages)"}[k],
        help="A text prompt is one text; a chat prompt is a list of messages with roles",
    )
    new_ok = True
    if new_kind == "chat":
        new_messages = message_editor("tpl_new_chat", [])
        st.session_state["tpl_new_messages"] = new_messages
        new_content = ""
    else:
        new_messages = None
        new_content = st.text_area(
            "Text",
            key="tpl_new_content",
            height=200,
            placeholder="Answer the question using the context.\n\n"
            "Context: {context}\nQuestion: {question}",
            help="Placeholders are {name}; write {{ and }} for literal braces",
        )
    with st.expander("Model configuration", expanded=new_kind == "chat"):
        new_config, new_config_problems = config_editor("tpl_new_cfg", {})
    st.session_state["tpl_new_config"] = new_config
    if new_content or new_messages:
        new_ok = show_report(new_content, {}, new_kind or "text", new_messages, new_config)
        new_ok = new_ok and not new_config_problems
        from promptver.templating import scan, variables_of

        if new_messages is not None:
            from promptver.chat import CompiledChat

            try:
                new_vars = CompiledChat(new_messages).variables
            except PromptverError:
                new_vars = []
        else:
            new_vars = variables_of(scan(new_content)[0])
        st.session_state["tpl_new_metadata"] = schema_editor("tpl_new_schema", new_vars, {})
        if new_messages is not None:
            if new_ok:
                chat_preview(
                    "tpl_new_prev",
                    new_messages,
                    new_config,
                    st.session_state["tpl_new_metadata"],
                    new_vars,
                )
        else:
            preview("tpl_new_prev", new_content, st.session_state["tpl_new_metadata"], new_vars)
    st.text_input("Commit message", key="tpl_new_message", placeholder="Initial version")
    err = st.session_state.get("tpl_new_error")
    if err is not None:
        show_error(err)
    st.button(
        "Create template",
        type="primary",
        key="tpl_create",
        on_click=_create,
        disabled=not (
            new_ok and (new_content or new_messages) and st.session_state.get("tpl_new_name")
        ),
    )

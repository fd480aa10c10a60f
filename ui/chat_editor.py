"""Editing a chat prompt and a model configuration on the Templates screen.

The message list lives in session state under the editor's key (one entry per message, each with a
stable id so that reordering keeps every widget's value with its message); the page reads back
plain messages (``{"role", "content"}`` or ``{"placeholder"}``) and a configuration mapping. Checks
and rendering come from :mod:`promptver.chat`: the editor only shows their findings at their path.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import streamlit as st

from promptver.chat import CONFIG_FIELDS, ROLES, check_config, normalise_config
from ui.common import md

#: the starting conversation of a new chat prompt
STARTER = [
    {"role": "system", "content": "You are a helpful assistant for {product}."},
    {"role": "user", "content": "{question}"},
]


def _rows(key: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The editor's rows (messages with ids), created from ``messages`` on first use."""
    state = f"{key}_rows"
    if state not in st.session_state:
        st.session_state[state] = [
            {**m, "_id": uuid.uuid4().hex[:8]} for m in (messages or STARTER)
        ]
    return st.session_state[state]


def _move(key: str, i: int, step: int) -> None:
    rows = st.session_state[f"{key}_rows"]
    j = i + step
    if 0 <= j < len(rows):
        rows[i], rows[j] = rows[j], rows[i]


def _remove(key: str, i: int) -> None:
    del st.session_state[f"{key}_rows"][i]


def _add(key: str, entry: dict[str, Any]) -> None:
    st.session_state[f"{key}_rows"].append({**entry, "_id": uuid.uuid4().hex[:8]})


def _next_placeholder(rows: list[dict[str, Any]]) -> str:
    taken = {r.get("placeholder") for r in rows}
    name, n = "history", 2
    while name in taken:
        name, n = f"history{n}", n + 1
    return name


def message_editor(key: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Edit a list of chat messages: change roles and texts, add, remove, reorder, insert a
    history placeholder. Returns the messages as they stand now."""
    rows = _rows(key, messages)
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        rid = row["_id"]
        with st.container(border=True, key=f"{key}_msg_{rid}"):
            head = st.columns([3, 1, 1, 1], vertical_alignment="bottom")
            if "placeholder" in row:
                name = head[0].text_input(
                    f"Message list placeholder #{i + 1}",
                    value=row["placeholder"],
                    key=f"{key}_ph_{rid}",
                    help="Stands for a list of messages given when rendering, e.g. the "
                    "conversation so far: p.messages(history=[…])",
                )
                row["placeholder"] = name
                out.append({"placeholder": name})
            else:
                role = head[0].selectbox(
                    f"Role of message #{i + 1}",
                    ROLES,
                    index=ROLES.index(row["role"]) if row.get("role") in ROLES else 0,
                    key=f"{key}_role_{rid}",
                )
                row["role"] = role
            head[1].button(
                "",
                icon=":material/arrow_upward:",
                key=f"{key}_up_{rid}",
                help="Move up",
                disabled=i == 0,
                on_click=_move,
                args=(key, i, -1),
            )
            head[2].button(
                "",
                icon=":material/arrow_downward:",
                key=f"{key}_down_{rid}",
                help="Move down",
                disabled=i == len(rows) - 1,
                on_click=_move,
                args=(key, i, 1),
            )
            head[3].button(
                "",
                icon=":material/delete:",
                key=f"{key}_del_{rid}",
                help="Remove this message",
                disabled=len(rows) == 1,
                on_click=_remove,
                args=(key, i),
            )
            if "placeholder" not in row:
                content = st.text_area(
                    f"Content of message #{i + 1}",
                    value=row.get("content", ""),
                    key=f"{key}_content_{rid}",
                    height=110,
                    label_visibility="collapsed",
                    help="Placeholders are {name}; {{ and }} are literal braces",
                )
                row["content"] = content
                out.append({"role": row["role"], "content": content})
    b1, b2 = st.columns(2)
    b1.button(
        "Add message",
        icon=":material/add:",
        key=f"{key}_add",
        on_click=_add,
        args=(key, {"role": "user", "content": ""}),
        width="stretch",
    )
    b2.button(
        "Insert history placeholder",
        icon=":material/forum:",
        key=f"{key}_add_ph",
        on_click=_add,
        args=(key, {"placeholder": _next_placeholder(rows)}),
        help="A slot for a list of messages given at render time (the conversation so far)",
        width="stretch",
    )
    return out


def reset(key: str) -> None:
    """Forget the editor's working copy (after a save or a reload)."""
    for k in [k for k in st.session_state if str(k).startswith(key)]:
        del st.session_state[k]


def _json_field(label: str, value: Any, key: str, help: str, path: str) -> tuple[Any, str | None]:
    text = st.text_area(
        label,
        value="" if value is None else json.dumps(value, indent=2, ensure_ascii=False),
        key=key,
        height=140,
        help=help,
        placeholder="(none)",
    )
    if not text.strip():
        return None, None
    try:
        return json.loads(text), None
    except ValueError as exc:
        return None, f"{path}: not valid JSON: {exc}"


def config_editor(key: str, config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Edit a model configuration as a form; returns the configuration (unset fields left out)
    and its problems, each naming its path (checked as you type, the same checks as saving)."""
    cfg = dict(config or {})
    out: dict[str, Any] = {}
    problems: list[str] = []
    c1, c2 = st.columns(2)
    provider = c1.text_input(
        "Provider",
        value=cfg.get("provider") or "",
        key=f"{key}_provider",
        help="Free text: openai, anthropic, azure, vertex, local…",
    )
    model = c2.text_input(
        "Model", value=cfg.get("model") or "", key=f"{key}_model", help="e.g. gpt-4o-mini"
    )
    out["provider"], out["model"] = provider.strip() or None, model.strip() or None
    s1, s2 = st.columns(2)
    use_t = s1.checkbox("Set temperature", value="temperature" in cfg, key=f"{key}_use_temperature")
    temperature = s1.slider(
        "Temperature",
        0.0,
        2.0,
        float(cfg.get("temperature", 1.0)),
        0.05,
        key=f"{key}_temperature",
        disabled=not use_t,
        help="0 to 2: lower is more deterministic",
    )
    use_p = s2.checkbox("Set top_p", value="top_p" in cfg, key=f"{key}_use_top_p")
    top_p = s2.slider(
        "top_p",
        0.01,
        1.0,
        float(cfg.get("top_p", 1.0)),
        0.01,
        key=f"{key}_top_p",
        disabled=not use_p,
        help="Nucleus sampling: (0, 1]",
    )
    out["temperature"] = temperature if use_t else None
    out["top_p"] = top_p if use_p else None
    n1, n2 = st.columns(2)
    max_tokens = n1.number_input(
        "Max tokens",
        min_value=0,
        value=int(cfg.get("max_tokens") or 0),
        step=64,
        key=f"{key}_max_tokens",
        help="0: not set (the API's default)",
    )
    seed = n2.text_input(
        "Seed",
        value="" if cfg.get("seed") is None else str(cfg["seed"]),
        key=f"{key}_seed",
        help="An integer, for reproducible sampling where the API supports it",
    )
    out["max_tokens"] = int(max_tokens) or None
    if seed.strip():
        try:
            out["seed"] = int(seed)
        except ValueError:
            problems.append("config.seed: must be an integer")
    stop = st.text_area(
        "Stop sequences (one per line, up to 4)",
        value="\n".join(json.dumps(s)[1:-1] for s in cfg.get("stop") or []),
        key=f"{key}_stop",
        height=80,
        help=r"Escapes like \n are read as in JSON strings",
    )
    stops = []
    for line in [x for x in stop.split("\n") if x]:
        try:
            stops.append(json.loads(f'"{line}"'))
        except ValueError:
            stops.append(line)
    out["stop"] = stops or None
    tools, err = _json_field(
        "Tools (JSON list of function tools)",
        cfg.get("tools"),
        f"{key}_tools",
        '[{"type": "function", "function": {"name", "description", "parameters": JSON Schema}}]',
        "config.tools",
    )
    problems += [err] if err else []
    out["tools"] = tools
    rf, err = _json_field(
        "Response format (JSON)",
        cfg.get("response_format"),
        f"{key}_response_format",
        '{"type": "json_object"} or {"type": "json_schema", "json_schema": {"name", "schema"}}',
        "config.response_format",
    )
    problems += [err] if err else []
    out["response_format"] = rf
    extra, err = _json_field(
        "Extra (JSON object passed to the API untouched)",
        cfg.get("extra"),
        f"{key}_extra",
        "Any other parameter of the API call",
        "config.extra",
    )
    problems += [err] if err else []
    out["extra"] = extra
    # keep any field this form does not know (written by a file or the API) as it was
    for field in CONFIG_FIELDS:
        if field not in out and field in cfg:
            out[field] = cfg[field]
    problems += [str(p) for p in check_config(out)]
    for p in problems:
        st.error(md(p), icon=":material/error:")
    return normalise_config(out), problems


def conversation_preview(messages: list[dict[str, Any]]) -> None:
    """The rendered conversation, one chat bubble per message."""
    avatars = {
        "system": ":material/settings:",
        "developer": ":material/code:",
        "user": ":material/person:",
        "assistant": ":material/smart_toy:",
        "tool": ":material/build:",
    }
    for m in messages:
        with st.chat_message(m["role"], avatar=avatars.get(m["role"])):
            st.caption(m["role"])
            st.text(m["content"])

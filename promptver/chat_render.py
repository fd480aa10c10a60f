"""Rendering chat prompts for model APIs, and showing a prompt or a configuration change.

:class:`CompiledChat` parses a chat prompt's messages once; :func:`render_messages` fills the
variables (the safe renderer of :mod:`promptver.templating`: values are inserted once and never
parsed again) and splices each placeholder's message list; :func:`openai_payload` and
:func:`anthropic_payload` build the SDKs' keyword arguments. :func:`readable` is a prompt as
text for diffs; :func:`config_changes` and :func:`describe_config_change` say what changed in a
configuration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from promptver.chat_checks import ROLES
from promptver.config import TemplateLimits
from promptver.errors import RenderError
from promptver.templating import Token, fill, join_tokens, variables_of


class CompiledChat:
    """A chat prompt's messages parsed once: rendering only joins values into the tokens."""

    __slots__ = ("known", "parts", "placeholders", "variables")

    def __init__(self, messages: Sequence[Mapping[str, Any]]) -> None:
        from promptver.templating import parse

        parts: list[tuple[str, list[Token]] | str] = []
        for m in messages:
            if "placeholder" in m:
                parts.append(m["placeholder"])
            else:
                parts.append((m["role"], parse(m["content"])))
        self.parts = parts
        self.placeholders = frozenset(p for p in parts if isinstance(p, str))
        names: list[str] = []
        for p in parts:
            if not isinstance(p, str):
                for n in variables_of(p[1]):
                    if n not in names:
                        names.append(n)
        self.variables = names
        self.known = frozenset(names) | self.placeholders


def _check_history(name: str, items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list | tuple):
        raise RenderError(
            f"'{name}' must be a list of messages ({{role, content}}), not {type(items).__name__}"
        )
    out = []
    for i, item in enumerate(items):
        if type(item) is not dict and not isinstance(item, Mapping):
            raise RenderError(f"{name}[{i}] must be a dict with 'role' and 'content'")
        if item.get("role") not in ROLES:
            raise RenderError(
                f"{name}[{i}].role: unknown role {item.get('role')!r}; roles: {', '.join(ROLES)}"
            )
        if not isinstance(item.get("content"), str):
            raise RenderError(f"{name}[{i}].content must be a string")
        out.append(dict(item))
    return out


def render_messages(
    compiled: CompiledChat,
    values: Mapping[str, Any],
    *,
    strict: bool = True,
    schema: Mapping[str, Any] | None = None,
    max_chars: int = TemplateLimits.model_construct().max_render_chars,
) -> list[dict[str, Any]]:
    """The messages with variables filled in and each placeholder replaced by its list.

    Values are inserted once (the safe renderer of :mod:`promptver.templating`); the messages
    of a history are copied as given, never parsed.

    Raises:
        RenderError: a missing variable or placeholder (named), an unknown one while
            ``strict``, a history item that is not a message (its index), or output too large.
    """
    missing = [p for p in compiled.placeholders if p not in values]
    if missing:
        missing = [p for p in compiled.parts if isinstance(p, str) and p not in values]
        plural = "s" if len(missing) > 1 else ""
        raise RenderError(
            f"missing message list{plural} for placeholder{plural}: {', '.join(missing)}"
        )
    if strict:
        known = compiled.known
        extra = [k for k in values if k not in known]
        if extra:
            plural = "s" if len(extra) > 1 else ""
            uses = ", ".join(sorted(known)) if known else "none"
            raise RenderError(
                f"unknown variable{plural}: {', '.join(map(str, extra))} (the prompt uses: {uses});"
                " pass strict=False to ignore extra variables"
            )
    # every variable is filled once for the whole conversation (a placeholder's list is not a
    # variable, so it is never looked up there), then each message joins its own tokens
    filled = fill(compiled.variables, values, strict=False, schema=schema)
    out: list[dict[str, Any]] = []
    size = 0
    for part in compiled.parts:
        if part.__class__ is str:
            for item in _check_history(part, values[part]):  # type: ignore[index]
                size += len(item["content"])
                out.append(item)
            continue
        role, tokens = part
        text = join_tokens(tokens, filled, max_chars)
        size += len(text)
        out.append({"role": role, "content": text})
    if size > max_chars:
        raise RenderError(f"rendered messages would exceed the limit of {max_chars} characters")
    return out


def openai_payload(messages: list[dict[str, Any]], config: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``client.chat.completions.create`` (OpenAI Python SDK)."""
    if not config.get("model"):
        raise RenderError(
            "config.model is not set: openai() needs the model in the prompt's config"
        )
    out: dict[str, Any] = {"model": config["model"], "messages": messages}
    for key in ("temperature", "top_p", "max_tokens", "stop", "seed", "response_format", "tools"):
        if config.get(key) is not None:
            out[key] = config[key]
    out.update(config.get("extra") or {})
    return out


def anthropic_payload(messages: list[dict[str, Any]], config: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``client.messages.create`` (Anthropic Python SDK).

    System and developer messages become ``system`` (joined by a blank line); the user, assistant
    and tool turns stay in ``messages``. A ``tool`` turn with a ``tool_call_id`` (from the
    history) becomes Anthropic's ``tool_result`` block in a user turn; without one, its text is
    sent as a user turn (Anthropic has no ``tool`` role).
    """
    if not config.get("model"):
        raise RenderError(
            "config.model is not set: anthropic() needs the model in the prompt's config"
        )
    system = [m["content"] for m in messages if m["role"] in ("system", "developer")]
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] in ("user", "assistant"):
            turns.append({"role": m["role"], "content": m["content"]})
        elif m["role"] == "tool":
            if m.get("tool_call_id"):
                block = {
                    "type": "tool_result",
                    "tool_use_id": m["tool_call_id"],
                    "content": m["content"],
                }
                turns.append({"role": "user", "content": [block]})
            else:
                turns.append({"role": "user", "content": m["content"]})
    out: dict[str, Any] = {
        "model": config["model"],
        "max_tokens": config.get("max_tokens") or 1024,
        "messages": turns,
    }
    if system:
        out["system"] = "\n\n".join(system)
    for key in ("temperature", "top_p"):
        if config.get(key) is not None:
            out[key] = config[key]
    if config.get("stop"):
        out["stop_sequences"] = list(config["stop"])
    if config.get("tools"):
        out["tools"] = [
            {
                "name": t["function"]["name"],
                "description": t["function"].get("description") or "",
                "input_schema": t["function"].get("parameters")
                or {"type": "object", "properties": {}},
            }
            for t in config["tools"]
        ]
    return out


def text_as_messages(text: str) -> list[dict[str, Any]]:
    """A rendered text prompt as a conversation: one ``user`` message."""
    return [{"role": "user", "content": text}]


def readable(
    kind: str, content: str | None, messages: Sequence[Mapping[str, Any]], config: Mapping[str, Any]
) -> str:
    """A readable text form of a whole prompt (messages with their roles, then the config as
    YAML): what a unified diff of two versions compares line by line."""
    import yaml

    if kind == "text":
        body = content or ""
    else:
        chunks = []
        for m in messages:
            if "placeholder" in m:
                chunks.append(f"[{m['placeholder']}: message list]")
            else:
                chunks.append(f"[{m['role']}]\n{m['content']}")
        body = "\n\n".join(chunks)
    if config:
        cfg = yaml.safe_dump(dict(config), sort_keys=True, allow_unicode=True, width=100)
        body = f"{body}\n\n--- config ---\n{cfg.rstrip()}"
    return body


def config_paths(value: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a configuration into ``{dotted path: leaf}`` (lists index as ``[i]``).

    Empty mappings and lists are leaves, so that adding ``extra: {}`` is visible.
    """
    out: dict[str, Any] = {}
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            out.update(config_paths(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            out.update(config_paths(v, f"{prefix}[{i}]"))
    else:
        out[prefix] = value
    return out


_MISSING = object()


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``[{"path", "old", "new"}]`` sorted by path: every leaf that differs (``None`` for a leaf
    added or removed)."""
    a, b = config_paths(old), config_paths(new)
    out = []
    for path in sorted(set(a) | set(b)):
        if a.get(path, _MISSING) != b.get(path, _MISSING) or (path in a) != (path in b):
            out.append({"path": path, "old": a.get(path), "new": b.get(path)})
    return out


def describe_config_change(changes: Sequence[Mapping[str, Any]], limit: int = 4) -> str:
    """``"model gpt-4o-mini → gpt-4.1-nano, temperature 0.2 → 0.7"``: what differs, for people."""

    def show(v: Any) -> str:
        if v is None:
            return "unset"
        if isinstance(v, str):
            return v
        import json

        return json.dumps(v, ensure_ascii=False)

    parts = [f"{c['path']} {show(c['old'])} → {show(c['new'])}" for c in changes[:limit]]
    if len(changes) > limit:
        parts.append(f"and {len(changes) - limit} more")
    return ", ".join(parts)

"""Chat prompts and model configuration: the prompt as a complete LLM call.

A template is either ``text`` (one text with placeholders) or ``chat`` (an ordered list of
messages, each ``{"role", "content"}`` or a ``{"placeholder": NAME}`` that stands for a list of
messages given when rendering). Either kind may carry a model configuration (``config``), versioned
with it. This module owns the shapes (pydantic, ``extra="forbid"``), their validation — every
problem at once, each naming its path (``messages[2].content``, line and column inside a content;
``config.tools[1].function.name``) with a "did you mean" hint for misspelt keys — and the
rendering for model APIs (:func:`render_messages`, :func:`openai_payload`,
:func:`anthropic_payload`). Message contents follow the placeholder rules of
:mod:`promptver.templating`; values are inserted once and never parsed again.

JSON Schemas (``response_format`` and tool ``parameters``) are checked against the Draft 2020-12
meta-schema with the ``jsonschema`` library, imported only when a prompt carries one.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from promptver.config import ALL_CHECKS, TemplateLimits
from promptver.errors import Problem, RenderError
from promptver.templating import (
    Token,
    ValidationReport,
    estimate_tokens,
    fill,
    join_tokens,
    size_problems,
    validate,
    variables_of,
)

KINDS = ("text", "chat")
ROLES = ("system", "developer", "user", "assistant", "tool")
#: the configuration fields, in the order a prompt file shows them
CONFIG_FIELDS = (
    "provider",
    "model",
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "response_format",
    "tools",
    "extra",
)
MAX_STOP = 4
MAX_MESSAGES = 200
#: the keys of a prompt file (``name`` … ``version`` are written by ``export`` and read by sync)
FILE_KEYS = (
    "kind",
    "content",
    "messages",
    "config",
    "name",
    "description",
    "category",
    "tags",
    "version",
    "metadata",
)
_TOOL_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_RESPONSE_TYPES = ("text", "json_object", "json_schema")
#: ``openai()`` payload keys that ``config.extra`` may not override
_PAYLOAD_KEYS = frozenset({"model", "messages"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ChatMessage(_Strict):
    """One message of a chat prompt; ``content`` may hold ``{variables}``."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str


class MessagePlaceholder(_Strict):
    """Stands for a list of messages supplied at render time (e.g. the conversation so far)."""

    placeholder: str


class ToolFunction(_Strict):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Strict):
    type: Literal["function"] = "function"
    function: ToolFunction


class ModelConfig(_Strict):
    """The model and its parameters, versioned with the prompt (every field optional)."""

    provider: str | None = None
    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[Tool] | None = None
    extra: dict[str, Any] | None = None


# ---- validation ------------------------------------------------------------------------------


def _hint(key: str, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unknown_keys(
    value: Mapping[str, Any], allowed: Sequence[str], where: str, problems: list[Problem]
) -> None:
    for key in value:
        if key not in allowed:
            problems.append(
                Problem(
                    f"unknown key '{key}'{_hint(key, allowed)}; allowed: {', '.join(allowed)}",
                    field=f"{where}.{key}" if where else str(key),
                    code="prompt.unknown_key",
                )
            )


def _p(field: str, message: str, code: str = "prompt.invalid") -> Problem:
    return Problem(message, field=field, code=code)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool)) and math.isfinite(v)


def _json_schema_problem(schema: Any, field: str) -> Problem | None:
    """A problem when ``schema`` is not a valid JSON Schema (Draft 2020-12 meta-schema)."""
    if not isinstance(schema, Mapping):
        return _p(field, "not a valid JSON Schema: must be an object", "prompt.json_schema")
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        at = ".".join(str(p) for p in exc.absolute_path)
        where = f" (at {at})" if at else ""
        return _p(field, f"not a valid JSON Schema: {exc.message}{where}", "prompt.json_schema")
    return None


def check_config(config: Any, where: str = "config") -> list[Problem]:
    """Every problem of a model configuration, each naming its path under ``where``."""
    if config is None:
        return []
    if not isinstance(config, Mapping):
        return [_p(where, "must be a mapping of configuration fields")]
    problems: list[Problem] = []
    _unknown_keys(config, CONFIG_FIELDS, where, problems)
    for key in ("provider", "model"):
        v = config.get(key)
        if v is not None and (not isinstance(v, str) or not v.strip() or len(v) > 200):
            problems.append(
                _p(f"{where}.{key}", "must be a non-empty text of at most 200 characters")
            )
    t = config.get("temperature")
    if t is not None and not (_is_number(t) and 0 <= t <= 2):
        problems.append(_p(f"{where}.temperature", "must be between 0 and 2"))
    tp = config.get("top_p")
    if tp is not None and not (_is_number(tp) and 0 < tp <= 1):
        problems.append(_p(f"{where}.top_p", "must be greater than 0 and at most 1"))
    mt = config.get("max_tokens")
    if mt is not None and not (_is_int(mt) and 1 <= mt <= 10_000_000):
        problems.append(_p(f"{where}.max_tokens", "must be an integer of at least 1"))
    stop = config.get("stop")
    if stop is not None:
        if not isinstance(stop, list):
            problems.append(_p(f"{where}.stop", "must be a list of up to 4 strings"))
        elif len(stop) > MAX_STOP:
            problems.append(
                _p(f"{where}.stop", f"at most {MAX_STOP} stop strings, got {len(stop)}")
            )
        else:
            for i, s in enumerate(stop):
                if not isinstance(s, str) or not s:
                    problems.append(_p(f"{where}.stop[{i}]", "must be a non-empty string"))
    seed = config.get("seed")
    if seed is not None and not (_is_int(seed) and -(2**63) <= seed < 2**63):
        problems.append(_p(f"{where}.seed", "must be an integer"))
    if config.get("response_format") is not None:
        problems += _check_response_format(config["response_format"], f"{where}.response_format")
    if config.get("tools") is not None:
        problems += _check_tools(config["tools"], f"{where}.tools")
    extra = config.get("extra")
    if extra is not None:
        if not isinstance(extra, Mapping):
            problems.append(_p(f"{where}.extra", "must be a mapping (passed to the API untouched)"))
        else:
            for key in extra:
                if key in _PAYLOAD_KEYS or key in CONFIG_FIELDS:
                    problems.append(
                        _p(
                            f"{where}.extra.{key}",
                            f"'{key}' is set by the prompt itself; use config.{key}"
                            if key in CONFIG_FIELDS
                            else f"'{key}' is set by the prompt itself",
                        )
                    )
    return problems


def _check_response_format(rf: Any, where: str) -> list[Problem]:
    if not isinstance(rf, Mapping):
        return [_p(where, "must be {type: json_object} or {type: json_schema, json_schema: …}")]
    problems: list[Problem] = []
    kind = rf.get("type")
    if kind not in _RESPONSE_TYPES:
        return [
            _p(
                f"{where}.type",
                f"must be one of {', '.join(_RESPONSE_TYPES)}{_hint(kind, _RESPONSE_TYPES)}",
            )
        ]
    allowed = ("type", "json_schema") if kind == "json_schema" else ("type",)
    _unknown_keys(rf, allowed, where, problems)
    if kind != "json_schema":
        return problems
    js = rf.get("json_schema")
    if not isinstance(js, Mapping):
        problems.append(_p(f"{where}.json_schema", "must be {name, schema, strict?, description?}"))
        return problems
    _unknown_keys(js, ("name", "schema", "strict", "description"), f"{where}.json_schema", problems)
    name = js.get("name")
    if not isinstance(name, str) or not _TOOL_NAME_RE.fullmatch(name):
        problems.append(_p(f"{where}.json_schema.name", "must be 1–64 letters, digits, '_' or '-'"))
    if "strict" in js and not isinstance(js["strict"], bool):
        problems.append(_p(f"{where}.json_schema.strict", "must be true or false"))
    if "description" in js and not isinstance(js["description"], str):
        problems.append(_p(f"{where}.json_schema.description", "must be a text"))
    if "schema" not in js:
        problems.append(_p(f"{where}.json_schema.schema", "is required"))
    else:
        p = _json_schema_problem(js["schema"], f"{where}.json_schema.schema")
        if p is not None:
            problems.append(p)
    return problems


def _check_tools(tools: Any, where: str) -> list[Problem]:
    if not isinstance(tools, list):
        return [_p(where, "must be a list of {type: function, function: {…}}")]
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        at = f"{where}[{i}]"
        if not isinstance(tool, Mapping):
            problems.append(_p(at, "must be {type: function, function: {name, …}}"))
            continue
        _unknown_keys(tool, ("type", "function"), at, problems)
        if tool.get("type", "function") != "function":
            problems.append(_p(f"{at}.type", "only function tools are supported ('function')"))
        fn = tool.get("function")
        if not isinstance(fn, Mapping):
            problems.append(_p(f"{at}.function", "must be {name, description?, parameters?}"))
            continue
        _unknown_keys(
            fn, ("name", "description", "parameters", "strict"), f"{at}.function", problems
        )
        name = fn.get("name")
        if not isinstance(name, str) or not _TOOL_NAME_RE.fullmatch(name):
            problems.append(_p(f"{at}.function.name", "must be 1–64 letters, digits, '_' or '-'"))
        elif name in seen:
            problems.append(_p(f"{at}.function.name", f"duplicate tool name '{name}'"))
        else:
            seen.add(name)
        if "description" in fn and not isinstance(fn["description"], str):
            problems.append(_p(f"{at}.function.description", "must be a text"))
        if "strict" in fn and not isinstance(fn["strict"], bool):
            problems.append(_p(f"{at}.function.strict", "must be true or false"))
        if fn.get("parameters") is not None:
            p = _json_schema_problem(fn["parameters"], f"{at}.function.parameters")
            if p is not None:
                problems.append(p)
    return problems


def check_messages(messages: Any, where: str = "messages") -> list[Problem]:
    """The structural problems of a message list (roles, keys, placeholder names).

    Contents are checked by :func:`validate_prompt`, which also knows the variables.
    """
    if not isinstance(messages, list):
        return [_p(where, "must be a list of {role, content} or {placeholder} entries")]
    if not messages:
        return [_p(where, "a chat prompt needs at least one message")]
    if len(messages) > MAX_MESSAGES:
        return [_p(where, f"at most {MAX_MESSAGES} messages, got {len(messages)}")]
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, m in enumerate(messages):
        at = f"{where}[{i}]"
        if not isinstance(m, Mapping):
            problems.append(_p(at, "must be {role, content} or {placeholder: NAME}"))
            continue
        if "placeholder" in m:
            _unknown_keys(m, ("placeholder",), at, problems)
            name = m["placeholder"]
            if not isinstance(name, str) or not name.isidentifier():
                problems.append(
                    _p(
                        f"{at}.placeholder",
                        "must be a name (letters, digits, _; not a digit first)",
                    )
                )
            elif name in seen:
                problems.append(_p(f"{at}.placeholder", f"duplicate placeholder '{name}'"))
            else:
                seen.add(name)
            continue
        _unknown_keys(m, ("role", "content"), at, problems)
        role = m.get("role")
        if role is None:
            problems.append(_p(f"{at}.role", "is required (or write {placeholder: NAME})"))
        elif role not in ROLES:
            problems.append(
                _p(
                    f"{at}.role",
                    f"unknown role '{role}'{_hint(role, ROLES)}; roles: {', '.join(ROLES)}",
                )
            )
        if "content" not in m:
            problems.append(_p(f"{at}.content", "is required"))
        elif not isinstance(m["content"], str):
            problems.append(_p(f"{at}.content", "must be a text"))
    return problems


def placeholders_of(messages: Iterable[Mapping[str, Any]]) -> list[str]:
    """The names of the message-list placeholders, in order."""
    return [m["placeholder"] for m in messages if "placeholder" in m]


def validate_prompt(
    kind: str,
    content: str | None,
    messages: Sequence[Mapping[str, Any]] | None,
    config: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None = None,
    *,
    limits: TemplateLimits | None = None,
    checks: Iterable[str] = ALL_CHECKS,
) -> ValidationReport:
    """Run every check over a prompt of either kind and its configuration.

    For a chat prompt the template checks (syntax, variables, length, security) run over every
    message content, positions are reported as ``messages[i].content`` with the line and column
    inside that content, and the length and token limits apply to the whole conversation.
    """
    limits = limits or TemplateLimits()
    checks = list(checks)
    if kind not in KINDS:
        report = ValidationReport(checks=checks)
        report.add(_p("kind", f"must be 'text' or 'chat'{_hint(kind, KINDS)}"))
        return report
    if kind == "text":
        report = validate(content or "", metadata, limits=limits, checks=checks)
        for p in check_config(config):
            report.add(p)
        return report
    report = ValidationReport(checks=checks)
    for p in check_messages(messages):
        report.add(p)
    msgs = list(messages) if isinstance(messages, list) else []
    texts: list[tuple[int, str]] = [
        (i, m["content"])
        for i, m in enumerate(msgs)
        if isinstance(m, Mapping) and isinstance(m.get("content"), str) and "placeholder" not in m
    ]
    whole = "\n".join(t for _, t in texts)
    per_message = [c for c in checks if c != "performance_validation"]
    variables: list[str] = []
    seen_warnings: set[tuple[str | None, str]] = set()
    for i, text in texts:
        sub = validate(text, metadata, limits=limits, checks=per_message)
        for name in sub.variables:
            if name not in variables:
                variables.append(name)
        for p in sub.errors + sub.warnings:
            if p.field == "content" or p.field is None:
                p = Problem(
                    p.message,
                    field=f"messages[{i}].content",
                    line=p.line,
                    column=p.column,
                    offset=p.offset,
                    code=p.code,
                    severity=p.severity,
                )
            elif p.code in ("variables.unused",) or (p.field or "").startswith("metadata."):
                # schema-wide findings are checked against all messages below, once
                continue
            report.add(p)
    if "variable_validation" in checks:
        from promptver.templating import parse_schema

        specs, schema_problems = parse_schema(metadata)
        for p in schema_problems:
            key = (p.field, p.message)
            if key not in seen_warnings:
                seen_warnings.add(key)
                report.add(p)
        for name in specs:
            if name not in variables:
                report.add(
                    Problem(
                        f"variable '{name}' is declared but not used in any message",
                        field=f"metadata.variables.{name}",
                        code="variables.unused",
                        severity="warning",
                    )
                )
    for i, m in enumerate(msgs):
        if (
            isinstance(m, Mapping)
            and isinstance(m.get("placeholder"), str)
            and m["placeholder"] in variables
        ):
            report.add(
                _p(
                    f"messages[{i}].placeholder",
                    f"'{m['placeholder']}' is also a variable in a message; "
                    "use another name for the message list",
                )
            )
    report.variables = variables
    report.chars = len(whole)
    report.tokens = sum(estimate_tokens(t) + 4 for _, t in texts)  # ~4 tokens of framing each
    if "performance_validation" in checks:
        for p in size_problems(report.chars, report.tokens, limits, "messages", "the conversation"):
            report.add(p)
    for p in check_config(config):
        report.add(p)
    return report


def normalise_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """A validated configuration without unset fields (``None``), as stored and hashed."""
    if not config:
        return {}
    # unset and empty fields mean the same (no stop strings, no tools, nothing extra): drop them,
    # so that they never make a different commit
    return {k: config[k] for k in CONFIG_FIELDS if config.get(k) not in (None, [], {})}


def normalise_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validated messages as plain dicts with their keys in a fixed order."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if "placeholder" in m:
            out.append({"placeholder": m["placeholder"]})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out


# ---- rendering -------------------------------------------------------------------------------


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
    max_chars: int = TemplateLimits().max_render_chars,
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


# ---- prompt files ----------------------------------------------------------------------------


class PromptDocument(_Strict):
    """A prompt file's fields after validation (``kind`` decided, unset config fields dropped)."""

    kind: Literal["text", "chat"]
    content: str | None = None
    messages: list[dict[str, Any]] | None = None
    config: dict[str, Any] = {}
    name: str | None = None
    description: str | None = None
    category: str | None = None
    tags: list[str] | None = None
    version: str | None = None
    metadata: dict[str, Any] | None = None


def _file_problems(doc: Mapping[str, Any]) -> tuple[str, list[Problem]]:
    """The kind a prompt file declares (or implies) and the problems of its top level (keys,
    kind, identity fields); ``messages`` and ``config`` are checked by their own functions."""
    problems: list[Problem] = []
    _unknown_keys(doc, FILE_KEYS, "", problems)
    kind = doc.get("kind", "chat" if "messages" in doc else "text")
    if kind not in KINDS:
        problems.append(_p("kind", f"must be 'text' or 'chat'{_hint(kind, KINDS)}"))
        kind = "chat" if "messages" in doc else "text"
    if kind == "text":
        if "messages" in doc:
            problems.append(_p("messages", "a text prompt has content, not messages (kind: chat?)"))
        if not isinstance(doc.get("content"), str):
            problems.append(_p("content", "a text prompt needs content (a text)"))
    elif "content" in doc:
        problems.append(_p("content", "a chat prompt has messages, not content (kind: text?)"))
    for key in ("name", "description", "category", "version"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            problems.append(_p(key, "must be a text"))
    tags = doc.get("tags")
    if tags is not None and (
        not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)
    ):
        problems.append(_p("tags", "must be a list of texts"))
    if doc.get("metadata") is not None and not isinstance(doc["metadata"], Mapping):
        problems.append(_p("metadata", "must be a mapping"))
    return kind, problems


def _not_a_mapping() -> Problem:
    return _p("(top)", "a prompt file is a mapping with kind, messages or content, config…")


def parse_document(doc: Any, *, source: str = "prompt file") -> PromptDocument:
    """Check the structure of a parsed prompt file (YAML or JSON) and return its fields.

    Only the structure is checked here (keys, kinds, types, the configuration); the template
    checks of the contents run when the prompt is committed (:func:`validate_prompt`), so that a
    file and a form give the same messages.

    Raises:
        ValidationError: every problem at once, each naming its path.
    """
    from promptver.errors import ValidationError

    if not isinstance(doc, Mapping):
        raise ValidationError(f"{source} is invalid:", [_not_a_mapping()])
    kind, problems = _file_problems(doc)
    if kind == "chat":
        problems += check_messages(doc.get("messages"))
    problems += check_config(doc.get("config"))
    if problems:
        raise ValidationError(f"{source} is invalid:", problems)
    return PromptDocument(
        kind=kind,
        content=doc.get("content") if kind == "text" else None,
        messages=normalise_messages(doc["messages"]) if kind == "chat" else None,
        config=normalise_config(doc.get("config")),
        name=doc.get("name"),
        description=doc.get("description"),
        category=doc.get("category"),
        tags=doc.get("tags"),
        version=doc.get("version"),
        metadata=doc.get("metadata"),
    )


def validate_document(
    doc: Any,
    metadata: Mapping[str, Any] | None = None,
    *,
    limits: TemplateLimits | None = None,
    checks: Iterable[str] = ALL_CHECKS,
) -> ValidationReport:
    """Every problem of a prompt file — its structure, its messages or text, its configuration
    — in one report (what ``template validate --file`` shows), without raising."""
    if not isinstance(doc, Mapping):
        report = ValidationReport(checks=list(checks))
        report.add(_not_a_mapping())
        return report
    kind, problems = _file_problems(doc)
    if metadata is None and isinstance(doc.get("metadata"), Mapping):
        metadata = doc["metadata"]
    content = doc.get("content") if isinstance(doc.get("content"), str) else None
    report = validate_prompt(
        kind,
        content,
        doc.get("messages"),
        doc.get("config"),
        metadata,
        limits=limits,
        checks=checks,
    )
    for p in problems:
        report.add(p)
    return report


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def prompt_document(
    kind: str,
    content: str | None,
    messages: Sequence[Mapping[str, Any]] | None,
    config: Mapping[str, Any] | None,
    *,
    name: str | None = None,
    version: str | None = None,
    description: str = "",
    category: str = "",
    tags: Sequence[str] = (),
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The prompt file of one version, as a mapping in the order a file shows it: ``kind``,
    the identity, ``content`` or ``messages``, then ``config`` and ``metadata`` with their keys
    sorted (their order carries no meaning, so a sorted file diffs minimally)."""
    doc: dict[str, Any] = {"kind": kind}
    if name is not None:
        doc["name"] = name
    if version is not None:
        doc["version"] = version
    if description:
        doc["description"] = description
    if category:
        doc["category"] = category
    if tags:
        doc["tags"] = list(tags)
    if kind == "chat":
        doc["messages"] = normalise_messages(messages or [])
    else:
        doc["content"] = content or ""
    if config:
        doc["config"] = _sorted(normalise_config(config))
    if metadata:
        doc["metadata"] = _sorted(dict(metadata))
    return doc


def dump_prompt_file(doc: Mapping[str, Any]) -> str:
    """YAML for a prompt file, byte-stable: the mapping's own key order, multi-line texts as
    block literals (``|``), Unicode as is, no line folding."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value and _block_safe(value) else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, text)
    return yaml.dump(
        dict(doc),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=10_000,
        default_flow_style=False,
    )


def _block_safe(value: str) -> bool:
    """A literal block can hold ``value`` exactly (no trailing spaces on a line, no tabs or
    control characters that YAML would have to escape)."""
    if value[:1] in ("\n", " "):
        return False
    return not any(line != line.rstrip(" ") or "\t" in line for line in value.split("\n")) and all(
        ch == "\n" or ch >= " " for ch in value
    )

"""The shapes of a chat prompt and of a model configuration, and their validation.

A template is either ``text`` (one text with placeholders) or ``chat`` (an ordered list of
messages, each ``{"role", "content"}`` or a ``{"placeholder": NAME}`` that stands for a list of
messages given when rendering). Either kind may carry a model configuration (``config``). This
module owns the shapes (pydantic, ``extra="forbid"``) and their validation: every problem at
once, each naming its path (``messages[2].content``, line and column inside a content;
``config.tools[1].function.name``) with a "did you mean" hint for misspelt keys.

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
from promptver.errors import Problem
from promptver.templating import ValidationReport, estimate_tokens, size_problems, validate

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
    limits = limits or TemplateLimits.model_construct()
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

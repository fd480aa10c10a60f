"""Chat prompts and model configuration: the prompt as a complete LLM call.

A template is either ``text`` or ``chat`` (messages and placeholders), and either kind may carry
a model configuration, versioned with it. The shapes and their validation are
:mod:`promptver.chat_checks`; rendering for model APIs (:func:`render_messages`,
:func:`openai_payload`, :func:`anthropic_payload`) and showing changes are
:mod:`promptver.chat_render`; both are re-exported here. This module is the prompt file: its
structure checked with paths (:func:`parse_document`, :func:`validate_document`) and the
byte-stable YAML written for it (:func:`prompt_document`, :func:`dump_prompt_file`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from promptver.chat_checks import CONFIG_FIELDS as CONFIG_FIELDS
from promptver.chat_checks import (
    FILE_KEYS,
    KINDS,
    _hint,
    _p,
    _Strict,
    _unknown_keys,
    check_config,
    check_messages,
    normalise_config,
    normalise_messages,
    validate_prompt,
)
from promptver.chat_checks import MAX_MESSAGES as MAX_MESSAGES
from promptver.chat_checks import MAX_STOP as MAX_STOP
from promptver.chat_checks import ROLES as ROLES
from promptver.chat_checks import ChatMessage as ChatMessage
from promptver.chat_checks import MessagePlaceholder as MessagePlaceholder
from promptver.chat_checks import ModelConfig as ModelConfig
from promptver.chat_checks import Tool as Tool
from promptver.chat_checks import ToolFunction as ToolFunction
from promptver.chat_checks import placeholders_of as placeholders_of
from promptver.chat_render import CompiledChat as CompiledChat
from promptver.chat_render import anthropic_payload as anthropic_payload
from promptver.chat_render import config_changes as config_changes
from promptver.chat_render import config_paths as config_paths
from promptver.chat_render import describe_config_change as describe_config_change
from promptver.chat_render import openai_payload as openai_payload
from promptver.chat_render import readable as readable
from promptver.chat_render import render_messages as render_messages
from promptver.chat_render import text_as_messages as text_as_messages
from promptver.config import ALL_CHECKS, TemplateLimits
from promptver.errors import Problem
from promptver.templating import ValidationReport

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

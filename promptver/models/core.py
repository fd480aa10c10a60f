"""Names, commits, templates, branches, the log and the prompt an application renders."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from promptver.templating import parse, parse_schema, render

NAME_RE = re.compile(r"\A[A-Za-z0-9_./-]{1,100}\Z")
"""Template and branch names: letters, digits, ``-``, ``_``, ``.`` and ``/`` (1–100 characters)."""

VERSION_RE = re.compile(r"\A(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)\Z")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


def check_name(value: str, what: str = "name") -> str:
    """Validate a template or branch name (raises ``ValueError`` with the rule)."""
    if not NAME_RE.match(value or ""):
        raise ValueError(
            f"{what} {value!r} is invalid: use 1–100 letters, digits, '-', '_', '.' or '/'"
        )
    if value.startswith("/") or value.endswith("/") or "//" in value or value in {".", ".."}:
        raise ValueError(f"{what} {value!r} is invalid: no leading, trailing or double '/'")
    return value


class Commit(Model):
    """An immutable snapshot of a template's text and metadata."""

    id: str
    template_id: str
    parents: list[str] = Field(default_factory=list)
    content: str
    variables: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    message: str = ""
    author: str = ""
    created_at: datetime
    #: the semantic version this commit carries on ``main`` (``None`` on other branches)
    version: str | None = None
    #: ``text`` (``content``) or ``chat`` (``messages``; ``content`` is empty)
    kind: Literal["text", "chat"] = "text"
    messages: list[dict[str, Any]] | None = None
    #: the model configuration (``promptver.chat.ModelConfig`` fields; ``{}`` when none)
    config: dict[str, Any] = Field(default_factory=dict)

    @property
    def short_id(self) -> str:
        return self.id[:10]


class Template(Model):
    """A template as seen at one commit (by default the head of ``main``)."""

    id: str
    name: str
    description: str = ""
    category: str = ""
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    created_by: str = ""
    is_active: bool = True
    version: str | None = None
    commit: str
    #: the text of a text template; ``None`` for a chat template (see ``messages``)
    content: str | None
    variables: list[str] = Field(default_factory=list)
    #: branch whose head this view shows, when it was read from a branch
    branch: str | None = None
    updated_at: datetime | None = None
    kind: Literal["text", "chat"] = "text"
    messages: list[dict[str, Any]] | None = None
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "template name")

    def summary(self) -> dict[str, Any]:
        """The contract's ``template create/update --json`` shape."""
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "commit": self.commit,
            "variables": self.variables,
        }


class Branch(Model):
    template_id: str
    name: str
    head: str
    created_at: datetime
    created_by: str = ""
    #: commits on this branch that ``main`` lacks / on ``main`` that this branch lacks
    ahead: int | None = None
    behind: int | None = None


class VersionLabel(Model):
    template_id: str
    version: str
    commit_id: str
    created_at: datetime


class LogEntry(Model):
    """One row of ``promptver log`` (contract shape plus a few conveniences)."""

    commit: str
    parents: list[str]
    version: str | None
    message: str
    author: str
    created_at: datetime
    branches: list[str] = Field(default_factory=list)


class Prompt(Model):
    """What ``Workspace.get_prompt`` returns: one template version, ready to render.

    ``variant`` and ``experiment_id`` are set when an experiment routed this user; ``user_id``
    and ``environment`` are kept so that ``Workspace.track(prompt, …)`` can attribute the event.
    """

    template_id: str
    name: str
    version: str | None
    commit: str
    content: str
    variables: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    environment: str | None = None
    user_id: str | None = None
    variant: str | None = None
    experiment_id: str | None = None
    max_render_chars: int = 1_000_000
    #: ``text`` or ``chat``; a chat prompt renders with :meth:`messages`
    kind: Literal["text", "chat"] = "text"
    #: the chat messages as stored (``{"role", "content"}`` or ``{"placeholder"}``)
    chat_messages: list[dict[str, Any]] | None = None
    #: the model configuration (``{}`` when none): model, temperature, tools …
    config: dict[str, Any] = Field(default_factory=dict)
    # The parsed text and variable schema, kept after the first render: an application renders
    # the same prompt many times, and parsing costs more than rendering (see _Compiled).
    _compiled: _Compiled | None = PrivateAttr(default=None)

    def text(self, strict: bool = True, **values: Any) -> str:
        """Render with ``values`` (see :func:`promptver.templating.render`).

        Raises:
            RenderError: a missing or unknown variable, or a chat prompt (use :meth:`messages`).
        """
        return self.render_text(values, strict=strict)

    def render_text(self, values: Mapping[str, Any], *, strict: bool = True) -> str:
        """:meth:`text` with the values as a mapping (any variable name, ``strict`` included)."""
        if self.kind == "chat":
            from promptver.errors import RenderError

            raise RenderError(
                f"'{self.name}' is a chat prompt: render it with messages(), openai() or "
                "anthropic(), not text()"
            )
        c = self._compiled
        if c is None or c.content is not self.content or c.metadata != self.metadata:
            c = self._compiled = _Compiled.of(self.content, self.metadata)
        return render(
            c.tokens, values, strict=strict, schema=c.schema, max_chars=self.max_render_chars
        )

    def messages(self, strict: bool = True, **values: Any) -> list[dict[str, Any]]:
        """The conversation with ``values`` filled in: ``[{"role", "content"}, …]``.

        A placeholder takes the list of messages given under its name (``history=[…]``). A text
        prompt gives one ``user`` message.

        Raises:
            RenderError: a missing variable or message list (named), an unknown variable while
                ``strict``, or a history item that is not a message (its index).
        """
        return self.render_messages(values, strict=strict)

    def render_messages(
        self, values: Mapping[str, Any], *, strict: bool = True
    ) -> list[dict[str, Any]]:
        """:meth:`messages` with the values (and message lists) as a mapping."""
        # the chat module loads on first use: serving a text prompt never needs it
        if self.kind != "chat":
            from promptver.chat_render import text_as_messages

            return text_as_messages(self.render_text(values, strict=strict))
        from promptver.chat_render import render_messages

        c = self._compiled
        if c is None or c.chat is not self.chat_messages or c.metadata != self.metadata:
            c = self._compiled = _Compiled.of_chat(self.chat_messages or [], self.metadata)
        return render_messages(
            c.tokens, values, strict=strict, schema=c.schema, max_chars=self.max_render_chars
        )

    def openai(self, strict: bool = True, **values: Any) -> dict[str, Any]:
        """Keyword arguments for ``client.chat.completions.create`` (OpenAI SDK): ``model``,
        ``messages`` and each configured parameter (and the keys of ``config.extra``)."""
        return self.payload("openai", values, strict=strict)

    def anthropic(self, strict: bool = True, **values: Any) -> dict[str, Any]:
        """Keyword arguments for ``client.messages.create`` (Anthropic SDK): system messages
        in ``system``, tools as ``input_schema`` tools, ``stop`` as ``stop_sequences``."""
        return self.payload("anthropic", values, strict=strict)

    def payload(
        self, api: Literal["openai", "anthropic"], values: Mapping[str, Any], *, strict: bool = True
    ) -> dict[str, Any]:
        """:meth:`openai` or :meth:`anthropic` with the values as a mapping."""
        from promptver.chat import anthropic_payload, openai_payload

        build = openai_payload if api == "openai" else anthropic_payload
        return build(self.render_messages(values, strict=strict), self.config)

    def prepare(self) -> Prompt:
        """Parse the text now rather than at the first :meth:`text` (copies share the result).

        Raises:
            TemplateSyntaxError: the text is not a valid template.
        """
        if self._compiled is None:
            self._compiled = (
                _Compiled.of_chat(self.chat_messages or [], self.metadata)
                if self.kind == "chat"
                else _Compiled.of(self.content, self.metadata)
            )
        return self


class _Compiled:
    """A prompt text parsed once, with its variable schema.

    It is a cache, not state: it compares equal to any other ``_Compiled`` (and to the ``None`` of
    a prompt never rendered) so that two prompts with the same fields stay equal whether or not
    they were rendered. A new one replaces it
    whenever the content or metadata change (copies made with ``model_copy`` share it safely,
    since it is never modified).
    """

    __slots__ = ("chat", "content", "metadata", "schema", "tokens")

    def __init__(
        self,
        content: str | None,
        metadata: dict[str, Any],
        tokens: Any,
        schema: dict[str, Any],
        chat: list[dict[str, Any]] | None = None,
    ) -> None:
        self.content = content
        self.metadata = metadata
        self.tokens = tokens
        self.schema = schema
        self.chat = chat

    @classmethod
    def of(cls, content: str, metadata: dict[str, Any]) -> _Compiled:
        import copy

        from promptver.errors import PromptverError

        schema, problems = parse_schema(metadata)
        if problems:  # refused when committed; reachable only through a hand-built Prompt
            raise PromptverError(f"variable schema is invalid: {problems[0]}")
        return cls(content, copy.deepcopy(metadata), parse(content), schema)

    @classmethod
    def of_chat(cls, messages: list[dict[str, Any]], metadata: dict[str, Any]) -> _Compiled:
        import copy

        from promptver.chat import CompiledChat
        from promptver.errors import PromptverError

        schema, problems = parse_schema(metadata)
        if problems:  # refused when committed; reachable only through a hand-built Prompt
            raise PromptverError(f"variable schema is invalid: {problems[0]}")
        return cls(None, copy.deepcopy(metadata), CompiledChat(messages), schema, chat=messages)

    def __eq__(self, other: object) -> bool:
        return other is None or isinstance(other, _Compiled)

    __hash__ = None  # type: ignore[assignment]

"""Placeholders, the safe renderer and the validation engine.

A template is text with ``{name}`` placeholders (``name`` a Python identifier); ``{{`` and ``}}``
are literal braces. Nothing else is a placeholder: attribute access (``{x.y}``), indexing
(``{x[0]}``), conversions (``{x!r}``), format specs (``{x:>9}``), positional (``{0}``) and empty
(``{}``) fields are refused with their position. The renderer joins literal text and the values
once; a value is never parsed again, so braces inside values stay as they are, and
``str.format`` is never called on user text.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptver.config import ALL_CHECKS, TemplateLimits
from promptver.errors import (
    SURROGATE_RE,
    Problem,
    RenderError,
    TemplateSyntaxError,
    ValidationError,
    surrogate_problem,
)


@dataclass(frozen=True)
class Placeholder:
    """A ``{name}`` field; ``offset`` is where its ``{`` stands in the text."""

    name: str
    offset: int


Token = str | Placeholder


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a 0-based character offset."""
    line = text.count("\n", 0, offset) + 1
    start = text.rfind("\n", 0, offset) + 1
    return line, offset - start + 1


def _problem(text: str, offset: int, message: str, code: str, severity: str = "error") -> Problem:
    line, col = line_col(text, offset)
    return Problem(
        message, field="content", line=line, column=col, offset=offset, code=code, severity=severity
    )


_UNSAFE_KINDS = {"attribute", "index", "conversion", "format_spec"}


def _classify(inner: str) -> tuple[str, str]:
    """Why ``{inner}`` is not a valid placeholder: (kind, message)."""
    if inner == "":
        return "empty", "empty placeholder '{}' is not allowed (write '{{}}' for literal braces)"
    first = min((inner.find(c) for c in ".[!:" if c in inner), default=-1)
    head = inner[:first] if first >= 0 else inner
    if first >= 0:
        sym = inner[first]
        kind, what = {
            ".": ("attribute", "attribute access"),
            "[": ("index", "indexing"),
            "!": ("conversion", "conversion"),
            ":": ("format_spec", "format spec"),
        }[sym]
        return kind, (
            f"{what} in placeholder '{{{_short(inner)}}}' is not allowed; "
            "placeholders are plain names like {question}"
        )
    if head.isdigit():
        return "positional", (
            f"positional placeholder '{{{_short(inner)}}}' is not allowed; use a name like {{question}}"
        )
    return "name", (
        f"'{{{_short(inner)}}}' is not a valid placeholder: names are Python identifiers "
        "(letters, digits, _), with no spaces (write '{{' and '}}' for literal braces)"
    )


def _short(s: str, n: int = 40) -> str:
    s = s.replace("\n", "\\n")
    return s if len(s) <= n else s[: n - 1] + "…"


def scan(text: str) -> tuple[list[Token], list[Problem]]:
    """Tokenize ``text`` into literal strings and placeholders, collecting every problem."""
    tokens: list[Token] = []
    problems: list[Problem] = []
    buf: list[str] = []
    i, n = 0, len(text)
    find = text.find
    while i < n:
        j_open = find("{", i)
        j_close = find("}", i)
        if j_open < 0 and j_close < 0:
            buf.append(text[i:])
            break
        j = j_open if j_close < 0 or (0 <= j_open < j_close) else j_close
        if j > i:
            buf.append(text[i:j])
        c = text[j]
        nxt = text[j + 1] if j + 1 < n else ""
        if c == "{" and nxt == "{":
            buf.append("{")
            i = j + 2
            continue
        if c == "}":
            if nxt == "}":
                buf.append("}")
                i = j + 2
            else:
                problems.append(
                    _problem(
                        text,
                        j,
                        "single '}' is not allowed; write '}}' for a literal brace",
                        "syntax.stray_close",
                    )
                )
                i = j + 1
            continue
        # an opening brace: the placeholder runs to the next '}' unless a '{' comes first
        end = find("}", j + 1)
        again = find("{", j + 1)
        if end < 0 or (0 <= again < end):
            problems.append(
                _problem(
                    text,
                    j,
                    "'{' is never closed; write '{{' for a literal brace",
                    "syntax.unclosed",
                )
            )
            i = j + 1
            continue
        inner = text[j + 1 : end]
        if inner.isidentifier():
            if buf:
                tokens.append("".join(buf))
                buf = []
            tokens.append(Placeholder(inner, j))
        else:
            kind, message = _classify(inner)
            code = "security.unsafe_placeholder" if kind in _UNSAFE_KINDS else f"syntax.{kind}"
            problems.append(_problem(text, j, message, code))
        i = end + 1
    if buf:
        tokens.append("".join(buf))
    return tokens, problems


def parse(text: str) -> list[Token]:
    """Tokens of a valid template.

    Raises:
        TemplateSyntaxError: listing every invalid brace with its line and column.
    """
    tokens, problems = scan(text)
    if problems:
        raise TemplateSyntaxError("invalid template:", problems)
    return tokens


def variables_of(tokens: Iterable[Token]) -> list[str]:
    """Placeholder names in order of first appearance."""
    seen: dict[str, None] = {}
    for t in tokens:
        if isinstance(t, Placeholder):
            seen.setdefault(t.name, None)
    return list(seen)


def extract_variables(text: str) -> list[str]:
    """Variables of ``text`` (raises TemplateSyntaxError when the text is invalid)."""
    return variables_of(parse(text))


# ---- variable schema -----------------------------------------------------------------------

_TYPES = ("str", "int", "float")


@dataclass(frozen=True)
class VariableSpec:
    """Optional per-variable rules kept in a template's ``metadata["variables"]``."""

    name: str
    type: str = "str"
    required: bool = True
    default: Any = None
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "required": self.required}
        if self.default is not None:
            out["default"] = self.default
        if self.description:
            out["description"] = self.description
        return out


def parse_schema(
    metadata: Mapping[str, Any] | None,
) -> tuple[dict[str, VariableSpec], list[Problem]]:
    """Read ``metadata["variables"]`` (``{name: {type, required, default, description}}``)."""
    specs: dict[str, VariableSpec] = {}
    problems: list[Problem] = []
    raw = (metadata or {}).get("variables")
    if raw is None:
        return specs, problems
    if not isinstance(raw, Mapping):
        return specs, [
            Problem(
                "must be a mapping of variable name to its rules",
                field="metadata.variables",
                code="variables.schema",
            )
        ]
    for name, rules in raw.items():
        where = f"metadata.variables.{name}"
        if not isinstance(name, str) or not name.isidentifier():
            problems.append(
                Problem(
                    "variable names are Python identifiers", field=where, code="variables.schema"
                )
            )
            continue
        rules = rules or {}
        if not isinstance(rules, Mapping):
            problems.append(
                Problem("rules must be a mapping", field=where, code="variables.schema")
            )
            continue
        unknown = set(rules) - {"type", "required", "default", "description"}
        if unknown:
            problems.append(
                Problem(
                    f"unknown rule(s) {', '.join(sorted(map(str, unknown)))} "
                    "(allowed: type, required, default, description)",
                    field=where,
                    code="variables.schema",
                )
            )
        vtype = rules.get("type", "str")
        if vtype not in _TYPES:
            problems.append(
                Problem(
                    f"type must be one of {', '.join(_TYPES)}, not {vtype!r}",
                    field=f"{where}.type",
                    code="variables.schema",
                )
            )
            vtype = "str"
        required = rules.get("required", True)
        if not isinstance(required, bool):
            problems.append(
                Problem(
                    "required must be true or false",
                    field=f"{where}.required",
                    code="variables.schema",
                )
            )
            required = True
        default = rules.get("default")
        if default is not None:
            try:
                default = _coerce(name, vtype, default)
            except RenderError as exc:
                problems.append(
                    Problem(
                        f"default: {exc.message}", field=f"{where}.default", code="variables.schema"
                    )
                )
                default = None
        description = rules.get("description", "")
        specs[name] = VariableSpec(name, vtype, bool(required), default, str(description or ""))
    return specs, problems


def _coerce(name: str, vtype: str, value: Any) -> Any:
    if vtype == "str":
        return value if isinstance(value, str) else str(value)
    if isinstance(value, bool):
        raise RenderError(f"variable '{name}' must be {vtype}, got a boolean")
    try:
        if vtype == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value) if not isinstance(value, str) else int(value.strip())
        out = float(value)
        if not math.isfinite(out):
            raise ValueError
        return out
    except (TypeError, ValueError):
        raise RenderError(f"variable '{name}' must be {vtype}, got {_short(repr(value))}") from None


# ---- rendering -----------------------------------------------------------------------------


def render(
    template: str | Sequence[Token],
    values: Mapping[str, Any],
    *,
    strict: bool = True,
    schema: Mapping[str, VariableSpec] | None = None,
    max_chars: int = TemplateLimits.model_construct().max_render_chars,
) -> str:
    """Fill placeholders with ``values``.

    Each value is converted with ``str()`` (after the schema's type check) and inserted as is.

    Raises:
        TemplateSyntaxError: the template text is invalid.
        RenderError: a variable is missing (named), an unknown one was given while ``strict``,
            a value has the wrong type, or the output would exceed ``max_chars``.
    """
    tokens = parse(template) if isinstance(template, str) else list(template)
    filled = fill(variables_of(tokens), values, strict=strict, schema=schema)
    return join_tokens(tokens, filled, max_chars)


def fill(
    used: Sequence[str],
    values: Mapping[str, Any],
    *,
    strict: bool = True,
    schema: Mapping[str, VariableSpec] | None = None,
) -> dict[str, str]:
    """The text each variable in ``used`` takes: its value (type-checked by the schema, then
    ``str()``), its default, or ``""`` when optional.

    Raises:
        RenderError: a variable is missing (named), an unknown one was given while ``strict``,
            or a value has the wrong type.
    """
    schema = schema or {}
    filled: dict[str, str] = {}
    missing: list[str] = []
    for name in used:
        spec = schema.get(name)
        value = values.get(name)
        if value is None:
            if spec is not None and spec.default is not None:
                value = spec.default
            elif spec is not None and not spec.required:
                value = ""
            else:
                missing.append(name)
                continue
        if spec is not None:
            value = _coerce(name, spec.type, value)
        filled[name] = value if isinstance(value, str) else str(value)
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise RenderError(f"missing variable{plural}: {', '.join(missing)}")
    if strict:
        extra = [k for k in values if k not in filled]
        if extra:
            plural = "s" if len(extra) > 1 else ""
            uses = ", ".join(used) if used else "none"
            raise RenderError(
                f"unknown variable{plural}: {', '.join(map(str, extra))} (the template uses: {uses});"
                " pass strict=False to ignore extra variables"
            )
    return filled


def join_tokens(tokens: Sequence[Token], filled: Mapping[str, str], max_chars: int) -> str:
    """Literal text and filled values, joined once (a value is never parsed again).

    Raises:
        RenderError: the output would exceed ``max_chars``.
    """
    out: list[str] = []
    size = 0
    for t in tokens:
        piece = filled[t.name] if isinstance(t, Placeholder) else t
        size += len(piece)
        if size > max_chars:
            raise RenderError(f"rendered text would exceed the limit of {max_chars} characters")
        out.append(piece)
    return "".join(out)


# ---- validation ----------------------------------------------------------------------------


@dataclass
class ValidationReport:
    """What the checks found. ``errors`` block saving or deploying; ``warnings`` are shown."""

    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)
    chars: int = 0
    tokens: int = 0
    checks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, p: Problem) -> None:
        (self.errors if p.severity == "error" else self.warnings).append(p)

    def raise_for_errors(self, message: str = "template is invalid:") -> None:
        if self.errors:
            raise ValidationError(message, self.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": [p.as_dict() for p in self.errors],
            "warnings": [p.as_dict() for p in self.warnings],
            "variables": self.variables,
            "chars": self.chars,
            "tokens": self.tokens,
            "checks": self.checks,
        }


_TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate of LLM tokens (BPE-like: a common word is one token, longer
    words split about every 6 characters, digits in groups of 3, each symbol is one token)."""
    total = 0
    for m in _TOKEN_RE.finditer(text):
        piece = m.group(0)
        if piece.isdigit():
            total += math.ceil(len(piece) / 3)
        elif piece[0].isalnum() or piece[0] == "_":
            total += 1 + (len(piece) - 1) // 6
        else:
            total += 1
    return total


@functools.cache
def _secret_patterns() -> list[tuple[str, re.Pattern[str]]]:
    """The secret detectors, compiled on the first security check, not at import (they cost
    milliseconds that serving a prompt never needs)."""
    return [
        ("a private key", re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY(?: BLOCK)?-----")),
        ("an Anthropic API key", re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{20,}")),
        ("an OpenAI API key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_\-]{20,}")),
        ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
        ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b")),
        ("a Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}")),
        ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b")),
        (
            "a JSON web token",
            re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
        ),
        (
            "a password or secret assignment",
            re.compile(
                r"(?i)\b(?:api[_\-]?key|secret(?:[_\-]?key)?|password|passwd|access[_\-]?token)\s*[:=]\s*"
                r"['\"]?[A-Za-z0-9_\-/+=.]{8,}"
            ),
        ),
    ]


@functools.cache
def _injection_patterns() -> list[re.Pattern[str]]:
    """The prompt-injection detectors, compiled on first use like :func:`_secret_patterns`."""
    return [
        re.compile(p, re.IGNORECASE)
        for p in (
            r"\bignore\s+(?:all\s+|any\s+)?(?:the\s+|your\s+)?(?:previous|prior|above|earlier|preceding)\s+"
            r"(?:instructions?|prompts?|messages?|rules|directions)",
            r"\bdisregard\s+(?:all\s+|any\s+)?(?:the\s+|your\s+)?(?:previous|prior|above|earlier)\b",
            r"\bforget\s+(?:all\s+|everything\s+)?(?:the\s+|your\s+)?(?:previous|prior|above)\s+"
            r"(?:instructions?|prompts?|messages?|rules)",
            r"\byou\s+are\s+now\s+(?:in\s+)?(?:DAN|developer\s+mode|jailbroken|unrestricted)\b",
            r"\bdo\s+anything\s+now\b",
            r"\b(?:reveal|print|show|repeat|output)\s+(?:me\s+)?(?:your|the)\s+(?:system\s+prompt|hidden\s+instructions|initial\s+instructions)",
            r"\boverride\s+(?:your|the|all)\s+(?:safety|system)\s+(?:rules|instructions|guidelines)",
        )
    ]


def size_problems(
    chars: int, tokens: int, limits: TemplateLimits, field: str, what: str
) -> list[Problem]:
    """The length and token-estimate findings for a prompt of ``chars`` characters: an error
    above the limits, a warning above the warning levels. ``what`` names it in the message
    (``template``, ``the messages``)."""
    out: list[Problem] = []
    if chars > limits.max_chars:
        out.append(
            Problem(
                f"{what} is {chars} characters; the limit is {limits.max_chars}",
                field=field,
                code="performance.length",
            )
        )
    elif chars > limits.warn_chars:
        out.append(
            Problem(
                f"{what} is long ({chars} characters; warning above {limits.warn_chars})",
                field=field,
                code="performance.length",
                severity="warning",
            )
        )
    if tokens > limits.max_tokens:
        out.append(
            Problem(
                f"about {tokens} tokens; the limit is {limits.max_tokens}",
                field=field,
                code="performance.tokens",
            )
        )
    elif tokens > limits.warn_tokens:
        out.append(
            Problem(
                f"about {tokens} tokens (warning above {limits.warn_tokens})",
                field=field,
                code="performance.tokens",
                severity="warning",
            )
        )
    return out


def validate(
    content: str,
    metadata: Mapping[str, Any] | None = None,
    *,
    limits: TemplateLimits | None = None,
    checks: Iterable[str] = ALL_CHECKS,
) -> ValidationReport:
    """Run the named checks over a template text and its metadata."""
    limits = limits or TemplateLimits.model_construct()
    checks = list(checks)
    report = ValidationReport(checks=checks, chars=len(content))
    tokens, syntax_problems = scan(content)
    report.variables = variables_of(tokens)
    for m in SURROGATE_RE.finditer(content):  # whatever the checks: such text cannot be stored
        report.add(_problem(content, m.start(), surrogate_problem(None).message, "syntax.encoding"))
    seen_offsets: set[int] = set()
    if "syntax_validation" in checks:
        for p in syntax_problems:
            report.add(p)
            seen_offsets.add(p.offset or 0)
    if "security_validation" in checks:
        for p in syntax_problems:
            if p.code == "security.unsafe_placeholder" and (p.offset or 0) not in seen_offsets:
                report.add(p)
        for label, pattern in _secret_patterns():
            for m in pattern.finditer(content):
                report.add(
                    _problem(
                        content,
                        m.start(),
                        f"looks like {label}; never put secrets in a "
                        "prompt (they reach the model and its logs)",
                        "security.secret",
                        "warning",
                    )
                )
        for pattern in _injection_patterns():
            for m in pattern.finditer(content):
                report.add(
                    _problem(
                        content,
                        m.start(),
                        f"prompt-injection phrase '{_short(m.group(0))}'",
                        "security.injection",
                        "warning",
                    )
                )
    if "variable_validation" in checks:
        specs, schema_problems = parse_schema(metadata)
        for p in schema_problems:
            report.add(p)
        if specs:
            for name in specs:
                if name not in report.variables:
                    report.add(
                        Problem(
                            f"variable '{name}' is declared but not used in the text",
                            field=f"metadata.variables.{name}",
                            code="variables.unused",
                            severity="warning",
                        )
                    )
            for t in tokens:
                if isinstance(t, Placeholder) and t.name not in specs:
                    report.add(
                        _problem(
                            content,
                            t.offset,
                            f"variable '{t.name}' is used but not declared in the variable schema",
                            "variables.undeclared",
                            "warning",
                        )
                    )
                    specs = {**specs, t.name: VariableSpec(t.name)}  # report each name once
    if "performance_validation" in checks:
        report.tokens = estimate_tokens(content)
        for p in size_problems(len(content), report.tokens, limits, "content", "template"):
            report.add(p)
    else:
        report.tokens = estimate_tokens(content)
    if not content.strip():
        report.add(Problem("template text is empty", field="content", code="syntax.empty"))
    return report

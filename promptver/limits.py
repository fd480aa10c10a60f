"""Size, depth and length limits that every writer passes through.

The CLI, the HTTP API, the dashboard and file imports all end in the services
(``templates``, ``versioning``, ``deployments``, ``experiments``, ``metrics``, ``alerts``);
the services call the checks here before they write, so one rule holds whatever the front door.
Reads go the other way: :func:`stored_json` turns whatever an older version may have stored into a
value every reader can serialise (a subtree nested too deeply becomes a placeholder text).

Every check is iterative (no recursion) and stops as soon as a limit is crossed, so a hostile
value — 100,000 nested lists, or a YAML graph whose aliases expand to gigabytes — costs no more
than a value at the limit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from promptver.errors import Problem, PromptverError, ValidationError, check_unicode

#: a JSON value (metadata, a variable schema, a spec) may nest this many containers deep
MAX_JSON_DEPTH = 32
#: … and take this many bytes serialised as compact JSON
MAX_JSON_BYTES = 64 * 1024
#: what a subtree nested deeper than :data:`MAX_JSON_DEPTH` reads back as (values stored by
#: versions that did not check depth)
TOO_DEEP = "[nested too deeply: not shown]"

# free-text fields (characters)
MAX_AUTHOR = 100
MAX_MESSAGE = 1000
MAX_NOTE = 1000
MAX_DESCRIPTION = 1000
#: a YAML or JSON file (template metadata, experiment file) is refused above this size
MAX_FILE_BYTES = 1_000_000
#: YAML files may nest this deep (the JSON check then applies its own, stricter limit)
MAX_YAML_DEPTH = 64


def _path(parts: list[str]) -> str:
    """``metadata.a.b[2]`` from its parts, shortened in the middle when very long."""
    text = "".join(parts)
    return text if len(text) <= 120 else f"{text[:60]}…{text[-50:]}"


def json_problem(
    value: Any,
    field: str,
    *,
    max_depth: int = MAX_JSON_DEPTH,
    max_bytes: int = MAX_JSON_BYTES,
    allow: tuple[type, ...] = (),
    types: bool = True,
) -> Problem | None:
    """The first reason ``value`` is not a JSON value within the limits, or ``None``.

    Allowed: mappings with text keys, lists (and tuples), text, finite numbers, booleans and
    ``None``, and instances of ``allow`` (counted by the length of their ``str``). The size
    counts compact JSON (``separators=(",", ":")``) and the walk stops as soon as it passes
    ``max_bytes``, so shared subtrees (YAML aliases) cannot make it slow. ``types=False`` checks
    only depth and size (for values whose fields are checked one by one afterwards, with better
    messages); other values then count by the length of their ``str``.
    """
    size = 0
    # (value, depth of the container holding it, path parts)
    stack: list[tuple[Any, int, list[str]]] = [(value, 0, [field])]
    while stack:
        v, depth, parts = stack.pop()
        if isinstance(v, Mapping | list | tuple):
            depth += 1
            if depth > max_depth:
                return Problem(
                    f"is nested more than {max_depth} levels deep (at {_path(parts)})",
                    field=field,
                    code="limit.depth",
                )
            size += 2 + max(len(v) - 1, 0)  # brackets and commas
            if size > max_bytes:
                break
            if isinstance(v, Mapping):
                for k, item in v.items():
                    if not isinstance(k, str) and not types:
                        k = str(k)
                    elif not isinstance(k, str):
                        return Problem(
                            f"keys must be text, not {type(k).__name__} {k!r:.40} "
                            f"(at {_path(parts)})",
                            field=field,
                            code="limit.type",
                        )
                    size += len(json.dumps(k, ensure_ascii=False).encode("utf-8")) + 1
                    stack.append((item, depth, [*parts, f".{k}"]))
            else:
                for i, item in enumerate(v):
                    stack.append((item, depth, [*parts, f"[{i}]"]))
        elif isinstance(v, str):
            size += len(json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        elif v is None or isinstance(v, bool):
            size += 4 if v in (None, True) else 5
        elif isinstance(v, int):
            # the length of a huge int's decimal form is bounded cheaply (str() of a 100,000
            # digit number is slow and refused by Python above 4,300 digits)
            bits = v.bit_length()
            size += bits * 30103 // 100000 + 2 if bits > 64 else len(str(v))
        elif isinstance(v, float):
            if not math.isfinite(v) and types:
                return Problem(
                    f"holds {v!r}, which is not a JSON number (at {_path(parts)})",
                    field=field,
                    code="limit.type",
                )
            size += len(repr(v))
        elif (allow and isinstance(v, allow)) or not types:
            size += len(str(v)) + 2
        else:
            return Problem(
                f"holds a {type(v).__name__}, which is not a JSON value (at {_path(parts)}); "
                "use text, numbers, true/false, null, lists and mappings",
                field=field,
                code="limit.type",
            )
        if size > max_bytes:
            break
    if size > max_bytes:
        return Problem(
            f"is larger than {max_bytes // 1024} KB serialised as JSON",
            field=field,
            code="limit.size",
        )
    return None


def check_json(
    value: Any,
    field: str,
    *,
    max_depth: int = MAX_JSON_DEPTH,
    max_bytes: int = MAX_JSON_BYTES,
) -> None:
    """Refuse ``value`` unless it is a JSON value within the depth and size limits.

    Raises:
        ValidationError: naming ``field``, the limit and where in the value it was crossed.
    """
    p = json_problem(value, field, max_depth=max_depth, max_bytes=max_bytes)
    if p is not None:
        raise ValidationError("invalid input:", [p])


def clip_json(value: Any, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A copy of ``value`` whose containers deeper than ``max_depth`` are replaced by
    :data:`TOO_DEEP` (iterative: any depth is safe). Values within the limit come back equal."""
    if not _deeper_than(value, max_depth):
        return value
    root: list[Any] = [None]
    # (source, depth of the container holding it, target container, key in the target)
    stack: list[tuple[Any, int, Any, Any]] = [(value, 0, root, 0)]
    while stack:
        v, depth, target, key = stack.pop()
        if isinstance(v, Mapping | list):
            if depth + 1 > max_depth:
                target[key] = TOO_DEEP
                continue
            if isinstance(v, Mapping):
                out: Any = {}
                for k, item in v.items():
                    out[k] = None
                    stack.append((item, depth + 1, out, k))
            else:
                out = [None] * len(v)
                for i, item in enumerate(v):
                    stack.append((item, depth + 1, out, i))
            target[key] = out
        else:
            target[key] = v
    return root[0]


def _deeper_than(value: Any, max_depth: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, Mapping | list):
            if depth + 1 > max_depth:
                return True
            items = v.values() if isinstance(v, Mapping) else v
            stack.extend((item, depth + 1) for item in items)
    return False


def stored_json(text: str | None, default: Any = None) -> Any:
    """Parse a JSON value read from the database, whatever an older version stored.

    Subtrees nested deeper than :data:`MAX_JSON_DEPTH` read back as :data:`TOO_DEEP`; text too
    deep for the parser at all reads back as a mapping holding only that placeholder. The
    stored text is untouched (``fsck`` still checks the commit id against it).
    """
    if not text:
        return {} if default is None else default
    try:
        value = json.loads(text)
    except RecursionError:
        return {"(unreadable)": TOO_DEEP}
    return clip_json(value)


def check_text(
    value: Any,
    field: str,
    limit: int,
    *,
    single_line: bool = False,
    strip: bool = True,
) -> str:
    """``value`` as text within ``limit`` characters (stripped unless ``strip=False``).

    ``None`` reads as empty text. Raises :class:`ValidationError` naming ``field`` when it is
    not text, is longer than ``limit``, holds a lone surrogate, or (``single_line``) a line
    break.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(
            "invalid input:", [Problem(f"must be text, not {type(value).__name__}", field=field)]
        )
    if len(value) > limit:
        raise ValidationError(
            "invalid input:",
            [
                Problem(
                    f"must be at most {limit:,} characters (it has {len(value):,})",
                    field=field,
                    code="limit.length",
                )
            ],
        )
    value = check_unicode(value.strip() if strip else value, field)
    if single_line and any(ch in value for ch in "\r\n\x0b\x0c\x85\u2028\u2029"):
        raise ValidationError(
            "invalid input:",
            [Problem("must be one line (no line breaks)", field=field, code="limit.line")],
        )
    return value


def check_author(value: Any, field: str = "author") -> str:
    """An author or user name: one line, at most :data:`MAX_AUTHOR` characters."""
    return check_text(value, field, MAX_AUTHOR, single_line=True)


# ---- reading YAML and JSON files -------------------------------------------------------------


def read_text_file(path: str | Path, *, max_bytes: int = MAX_FILE_BYTES, what: str = "file") -> str:
    """The UTF-8 text of ``path``, refused above ``max_bytes`` (read no further than that).

    Raises:
        PromptverError: the file is missing, unreadable, too large or not UTF-8.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise PromptverError(f"file not found: {p}") from None
    except OSError as exc:
        raise PromptverError(f"cannot read {p}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise PromptverError(
            f"{what} {p} is larger than {max_bytes:,} bytes; the limit is {max_bytes:,}"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PromptverError(f"cannot read {p}: not UTF-8 text ({exc.reason})") from None


def _yaml_loader() -> type:
    import yaml
    from yaml.composer import ComposerError

    class BoundedLoader(yaml.SafeLoader):
        """The safe loader, refusing aliases and nesting beyond :data:`MAX_YAML_DEPTH`.

        Aliases let 250 bytes expand into gigabytes (a "billion laughs" document); prompt,
        metadata and experiment files have no need for them.
        """

        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise ComposerError(
                    None,
                    None,
                    f"aliases (*{event.anchor}) are not allowed; write the value out",
                    event.start_mark,
                )
            self._depth += 1
            try:
                if self._depth > MAX_YAML_DEPTH:
                    raise ComposerError(
                        None,
                        None,
                        f"nested more than {MAX_YAML_DEPTH} levels deep",
                        self.peek_event().start_mark,
                    )
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    return BoundedLoader


_LOADER: type | None = None


def _flow_too_deep(text: str) -> tuple[int, int] | None:
    """Line and column (1-based) where ``[``/``{`` collections nest deeper than
    :data:`MAX_YAML_DEPTH`, or ``None``.

    PyYAML's scanner looks up to 1,024 characters ahead for a possible key at every open flow
    level, so a deep ``[[[[…`` costs seconds before the composer's depth check is reached; this
    linear pre-scan (skipping quoted text and comments) refuses it first.
    """
    if text.count("[") + text.count("{") <= MAX_YAML_DEPTH:
        return None
    depth, line, col, quote, comment, prev = 0, 1, 0, "", False, "\n"
    for ch in text:
        col += 1
        if ch == "\n":
            line, col, comment = line + 1, 0, False
        elif comment:
            pass
        elif quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'" and prev in " \t\n[{,:":
            quote = ch
        elif ch == "#" and prev in " \t\n":
            comment = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_YAML_DEPTH:
                return line, col
        elif ch in "]}" and depth:
            depth -= 1
        prev = ch
    return None


def load_yaml(text: str, source: str = "file") -> Any:
    """Parse YAML safely: no aliases, bounded nesting, at most :data:`MAX_FILE_BYTES`.

    Raises:
        ValidationError: not YAML, an alias, too deep or too large (with line and column).
    """
    import yaml

    global _LOADER
    if len(text) > MAX_FILE_BYTES:
        raise ValidationError(
            f"{source} is larger than {MAX_FILE_BYTES:,} characters; the limit is "
            f"{MAX_FILE_BYTES:,}"
        )
    deep = _flow_too_deep(text)
    if deep is not None:
        raise ValidationError(
            f"{source} is not valid YAML:",
            [
                Problem(
                    f"nested more than {MAX_YAML_DEPTH} levels deep",
                    line=deep[0],
                    column=deep[1],
                    code="syntax",
                )
            ],
        )
    if _LOADER is None:
        _LOADER = _yaml_loader()
    try:
        return yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ValidationError(
            f"{source} is not valid YAML:",
            [
                Problem(
                    str(problem),
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                    code="syntax",
                )
            ],
        ) from None
    except RecursionError:  # pragma: no cover - the depth limit comes first
        raise ValidationError(f"{source} is nested too deeply") from None


def load_json(text: str, source: str = "file") -> Any:
    """Parse JSON, with a clear error for text too large or nested too deeply to read.

    Raises:
        ValidationError: not JSON (with line and column), too large or too deep.
    """
    if len(text) > MAX_FILE_BYTES:
        raise ValidationError(
            f"{source} is larger than {MAX_FILE_BYTES:,} characters; the limit is "
            f"{MAX_FILE_BYTES:,}"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{source} is not valid JSON:",
            [Problem(exc.msg, line=exc.lineno, column=exc.colno, code="syntax")],
        ) from None
    except RecursionError:
        raise ValidationError(
            f"{source} is nested too deeply to read (the limit is {MAX_JSON_DEPTH} levels)"
        ) from None

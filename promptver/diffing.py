"""Diffs between two versions of a template: lines, words, variables and metadata.

Everything here is pure (no database) and built on :mod:`difflib`:

- the **unified** diff is ``difflib.unified_diff`` over lines that keep their ``\\n``; a last line
  without a newline is followed by ``\\ No newline at end of file``, as git and ``patch`` expect,
  so the text can be applied with ``patch -p1`` or :func:`apply_unified`;
- **changes** are the non-equal line opcodes of a ``SequenceMatcher`` (1-based line ranges), and
  inside a replaced block a second ``SequenceMatcher`` over word tokens (words, runs of
  whitespace, single punctuation marks) says which words changed;
- **variables** added and removed compare the placeholder lists of both sides;
- **metadata** changes compare the two metadata mappings key by key (nested mappings are walked
  and reported with dotted keys such as ``variables.product.default``).

Lines are split on ``\\n`` only, so a ``\\r`` or other Unicode line separator stays inside its line
and the diff round-trips any text exactly.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from promptver.errors import ValidationError

NO_NEWLINE = "\\ No newline at end of file"
_WORD_RE = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)
_MISSING = object()


def split_lines(text: str) -> list[str]:
    """Lines of ``text`` keeping their ``\\n`` (split on ``\\n`` only; ``"".join`` restores it)."""
    if not text:
        return []
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def words(text: str) -> list[str]:
    """Word tokens: runs of word characters, runs of whitespace, single other characters."""
    return _WORD_RE.findall(text)


@dataclass(frozen=True)
class WordChange:
    """One opcode of the word diff of a replaced block (``equal`` pieces are kept for context)."""

    op: Literal["equal", "delete", "insert", "replace"]
    old: str
    new: str

    def as_dict(self) -> dict[str, Any]:
        return {"op": self.op, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class LineChange:
    """A block of lines that differs. Ranges are 1-based and inclusive; an empty side has
    ``count`` 0 and ``start`` the line after which the other side's lines go."""

    op: Literal["insert", "delete", "replace"]
    old_start: int
    old_lines: list[str]
    new_start: int
    new_lines: list[str]
    words: list[WordChange] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "text",
            "op": self.op,
            "old_start": self.old_start,
            "old_count": len(self.old_lines),
            "old_lines": self.old_lines,
            "new_start": self.new_start,
            "new_count": len(self.new_lines),
            "new_lines": self.new_lines,
            "words": [w.as_dict() for w in self.words],
        }


@dataclass(frozen=True)
class MetadataChange:
    """A metadata key added, removed or changed (``key`` is dotted for nested mappings)."""

    op: Literal["added", "removed", "changed"]
    key: str
    old: Any = None
    new: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "metadata",
            "op": self.op,
            "key": self.key,
            "old": self.old,
            "new": self.new,
        }


@dataclass(frozen=True)
class Block:
    """One row of a side-by-side view: an equal run of lines, or a change."""

    op: Literal["equal", "insert", "delete", "replace"]
    old_start: int
    old_lines: list[str]
    new_start: int
    new_lines: list[str]
    words: list[WordChange] = field(default_factory=list)


@dataclass
class Diff:
    """The difference between two texts (and their metadata).

    ``as_dict()`` is the contract's ``diff --json`` shape: ``unified``, ``changes`` (line changes
    with ``"kind": "text"`` followed by metadata changes with ``"kind": "metadata"``),
    ``variables_added`` and ``variables_removed``.
    """

    unified: str
    changes: list[LineChange]
    metadata_changes: list[MetadataChange]
    variables_added: list[str]
    variables_removed: list[str]
    blocks: list[Block]
    old_label: str = "a"
    new_label: str = "b"
    #: the commits compared, when the diff is between two refs of a template
    old_commit: str | None = None
    new_commit: str | None = None
    #: model configuration changes: ``{"path", "old", "new"}`` sorted by dotted path
    config_changes: list[dict[str, Any]] = field(default_factory=list)
    #: indices (in the new prompt) of chat messages added or changed
    messages_changed: list[int] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.changes and not self.metadata_changes and not self.config_changes

    @property
    def lines_added(self) -> int:
        return sum(len(c.new_lines) for c in self.changes)

    @property
    def lines_removed(self) -> int:
        return sum(len(c.old_lines) for c in self.changes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "unified": self.unified,
            "changes": [c.as_dict() for c in self.changes]
            + [m.as_dict() for m in self.metadata_changes],
            "variables_added": self.variables_added,
            "variables_removed": self.variables_removed,
            "config_changes": self.config_changes,
            "messages_changed": self.messages_changed,
        }


def word_diff(old: str, new: str) -> list[WordChange]:
    """Word-level opcodes turning ``old`` into ``new`` (equal pieces included)."""
    a, b = words(old), words(new)
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return [
        WordChange(tag, "".join(a[i1:i2]), "".join(b[j1:j2]))  # type: ignore[arg-type]
        for tag, i1, i2, j1, j2 in sm.get_opcodes()
    ]


def _range(start: int, stop: int) -> str:
    """A unified-diff range, exactly as ``difflib.unified_diff`` writes it."""
    beginning, length = start + 1, stop - start
    if length == 1:
        return f"{beginning}"
    if not length:
        beginning -= 1
    return f"{beginning},{length}"


def _unified(
    sm: difflib.SequenceMatcher,
    a: list[str],
    b: list[str],
    old_label: str,
    new_label: str,
    context: int,
) -> str:
    """The unified diff of ``difflib.unified_diff`` built from an existing matcher (so a diff
    matches its lines once), plus git's marker after a last line without a newline."""
    out: list[str] = []

    def line(prefix: str, text: str) -> None:
        out.append(prefix + text if text.endswith("\n") else f"{prefix}{text}\n{NO_NEWLINE}\n")

    for group in sm.get_grouped_opcodes(context):
        if not out:
            out += [f"--- {old_label}\n", f"+++ {new_label}\n"]
        first, last = group[0], group[-1]
        out.append(f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for x in a[i1:i2]:
                    line(" ", x)
                continue
            if tag in ("replace", "delete"):
                for x in a[i1:i2]:
                    line("-", x)
            if tag in ("replace", "insert"):
                for x in b[j1:j2]:
                    line("+", x)
    return "".join(out)


def unified_diff(
    old: str, new: str, old_label: str = "a", new_label: str = "b", context: int = 3
) -> str:
    """A unified diff of two texts (empty when they are equal)."""
    a, b = split_lines(old), split_lines(new)
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return _unified(sm, a, b, old_label, new_label, context)


def _line_changes(
    sm: difflib.SequenceMatcher, a: list[str], b: list[str]
) -> tuple[list[LineChange], list[Block]]:
    changes: list[LineChange] = []
    blocks: list[Block] = []
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        old = [x.rstrip("\n") for x in a[i1:i2]]
        new = [x.rstrip("\n") for x in b[j1:j2]]
        wd = word_diff("".join(a[i1:i2]), "".join(b[j1:j2])) if tag == "replace" else []
        old_start = i1 + 1 if i2 > i1 else i1
        new_start = j1 + 1 if j2 > j1 else j1
        blocks.append(Block(tag, old_start, old, new_start, new, wd))  # type: ignore[arg-type]
        if tag != "equal":
            changes.append(LineChange(tag, old_start, old, new_start, new, wd))  # type: ignore[arg-type]
    return changes, blocks


def metadata_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = ""
) -> list[MetadataChange]:
    """Keys added, removed or changed between two metadata mappings (sorted by key)."""
    out: list[MetadataChange] = []
    for key in sorted(set(old) | set(new), key=str):
        dotted = f"{prefix}{key}"
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        if a is _MISSING:
            out.append(MetadataChange("added", dotted, None, b))
        elif b is _MISSING:
            out.append(MetadataChange("removed", dotted, a, None))
        elif isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(metadata_changes(a, b, dotted + "."))
        elif a != b or type(a) is not type(b):
            out.append(MetadataChange("changed", dotted, a, b))
    return out


def diff_texts(
    old: str,
    new: str,
    *,
    old_variables: list[str] | None = None,
    new_variables: list[str] | None = None,
    old_metadata: Mapping[str, Any] | None = None,
    new_metadata: Mapping[str, Any] | None = None,
    old_label: str = "a",
    new_label: str = "b",
    context: int = 3,
) -> Diff:
    """Diff two template texts. Variables default to the placeholders found in each text."""
    from promptver.templating import scan, variables_of

    if context < 0:
        raise ValidationError("context must be 0 or more lines")
    ov = old_variables if old_variables is not None else variables_of(scan(old)[0])
    nv = new_variables if new_variables is not None else variables_of(scan(new)[0])
    a, b = split_lines(old), split_lines(new)
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    changes, blocks = _line_changes(sm, a, b)
    return Diff(
        unified=_unified(sm, a, b, old_label, new_label, context),
        changes=changes,
        metadata_changes=metadata_changes(old_metadata or {}, new_metadata or {}),
        variables_added=[v for v in nv if v not in ov],
        variables_removed=[v for v in ov if v not in nv],
        blocks=blocks,
        old_label=old_label,
        new_label=new_label,
    )


_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def apply_unified(old: str, patch: str) -> str:
    """Apply a unified diff made by :func:`unified_diff` to ``old`` and return the new text.

    Every context and removed line must match ``old`` exactly at the position the hunk header
    gives (no fuzz): a patch made from another text is refused.

    Raises:
        ValidationError: the patch is malformed or does not apply (the hunk is named).
    """
    if not patch:
        return old
    src = split_lines(old)
    rows = patch.split("\n")
    if rows and rows[-1] == "":
        rows.pop()
    out: list[str] = []
    pos = 0  # next unconsumed line of src
    i = 0
    while i < len(rows) and rows[i].startswith(("--- ", "+++ ", "diff ", "index ")):
        i += 1  # the file header
    hunk_no = 0
    while i < len(rows):
        m = _HUNK_RE.match(rows[i])
        if not m:
            raise ValidationError(f"patch line {i + 1}: expected a hunk header '@@ -a,b +c,d @@'")
        hunk_no += 1
        old_start, old_count = int(m.group(1)), int(m.group(2) or 1)
        start = old_start - 1 if old_count else old_start
        if start < pos or start > len(src):
            raise ValidationError(
                f"patch hunk {hunk_no} starts at line {old_start}, outside the text"
            )
        out.extend(src[pos:start])
        pos = start
        i += 1
        seen_old = 0
        while i < len(rows) and not rows[i].startswith("@@"):
            row = rows[i]
            kind, body = row[:1], row[1:] + "\n"
            if i + 1 < len(rows) and rows[i + 1] == NO_NEWLINE:
                body = row[1:]
                i += 1
            if kind in (" ", "-"):
                if pos >= len(src) or src[pos] != body:
                    raise ValidationError(
                        f"patch hunk {hunk_no} does not apply: line {pos + 1} differs"
                    )
                pos += 1
                seen_old += 1
                if kind == " ":
                    out.append(body)
            elif kind == "+":
                out.append(body)
            else:
                raise ValidationError(f"patch line {i + 1}: expected ' ', '-' or '+'")
            i += 1
        if seen_old != old_count:
            raise ValidationError(
                f"patch hunk {hunk_no} is malformed: it says {old_count} old "
                f"lines but has {seen_old}"
            )
    out.extend(src[pos:])
    return "".join(out)


def diff_prompts(
    old: Any,
    new: Any,
    *,
    old_label: str = "a",
    new_label: str = "b",
    context: int = 3,
) -> Diff:
    """Diff two prompts of either kind (commits, templates: anything with ``kind``,
    ``content``, ``messages``, ``config``, ``variables`` and ``metadata``).

    The line diff compares the readable text form of each prompt (messages with their roles,
    then the configuration as YAML; a text prompt without configuration is its text), and the
    structural fields say which configuration paths and which messages changed.
    """
    import json

    from promptver.chat_render import config_changes, readable

    def text(p: Any) -> str:
        return readable(p.kind, p.content, p.messages or [], p.config or {})

    d = diff_texts(
        text(old),
        text(new),
        old_variables=list(old.variables),
        new_variables=list(new.variables),
        old_metadata=old.metadata,
        new_metadata=new.metadata,
        old_label=old_label,
        new_label=new_label,
        context=context,
    )
    d.config_changes = config_changes(old.config or {}, new.config or {})
    if new.kind == "chat":
        a = [json.dumps(m, sort_keys=True) for m in (old.messages or [])]
        b = [json.dumps(m, sort_keys=True) for m in new.messages or []]
        sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
        d.messages_changed = [
            j
            for op, _, _, j1, j2 in sm.get_opcodes()
            if op in ("insert", "replace")
            for j in range(j1, j2)
        ]
    return d

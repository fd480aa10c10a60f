"""The errors promptver raises on purpose.

Every error carries a message written for the person at the keyboard; the CLI prints it as
``error: …`` and exits 1, the dashboard shows it with ``st.error``, the HTTP API turns it into a
problem document. Anything else escaping the core is a bug.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any


class PromptverError(Exception):
    """Base class: a domain error with a user-facing message."""

    #: HTTP status the API maps this error to.
    http_status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(PromptverError):
    """A template, ref, environment, experiment … does not exist."""

    http_status = 404


@dataclass(frozen=True)
class Problem:
    """One problem found by a validation: where it is and what is wrong.

    ``field`` names the input field (``content``, ``variants[1].weight`` …); ``line`` and
    ``column`` are 1-based positions inside a text; ``offset`` is the 0-based character offset.
    """

    message: str
    field: str | None = None
    line: int | None = None
    column: int | None = None
    offset: int | None = None
    code: str | None = None
    severity: str = "error"
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)

    def location(self) -> str:
        parts = []
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.column is not None:
            parts.append(f"column {self.column}")
        if self.field is not None and not parts:
            parts.append(self.field)
        elif self.field is not None:
            parts.insert(0, self.field)
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.location()
        return f"{where}: {self.message}" if where else self.message

    def as_dict(self) -> dict[str, Any]:
        out = {
            "message": self.message,
            "field": self.field,
            "line": self.line,
            "column": self.column,
            "offset": self.offset,
            "code": self.code,
            "severity": self.severity,
        }
        out.update(self.extra)
        return out


class ValidationError(PromptverError):
    """Input was refused. ``problems`` lists each problem with its position or field."""

    http_status = 422

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        self.problems: list[Problem] = list(problems or [])
        if self.problems and message.endswith(":"):
            shown = "; ".join(str(p) for p in self.problems[:20])
            more = len(self.problems) - 20
            if more > 0:
                shown += f"; … and {more} more"
            message = f"{message} {shown}"
        super().__init__(message)


class TemplateSyntaxError(ValidationError):
    """A template text has an invalid placeholder or a stray brace."""


class RenderError(PromptverError):
    """Rendering failed: a missing or unknown variable, a bad value, output too large."""

    http_status = 422


class ConfigError(ValidationError):
    """The settings file or environment holds an unknown key or a bad value."""


class Conflict(PromptverError):
    """The write lost a race (a branch head moved) or clashes with existing state."""

    http_status = 409


class WriteRace(Conflict):
    """Two writers changed the same rows at the same moment; nothing was written, and the same
    request may be retried as it is (the API answers 409 with ``Retry-After``)."""


@dataclass(frozen=True)
class ConflictHunk:
    """One conflicting region of a three-way merge (line numbers are 1-based in ``base``)."""

    base_start: int
    base_lines: list[str]
    ours: list[str]
    theirs: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "base_start": self.base_start,
            "base": self.base_lines,
            "ours": self.ours,
            "theirs": self.theirs,
        }


class MergeConflict(Conflict):
    """A three-way merge found overlapping changes; nothing was written."""

    def __init__(
        self,
        message: str,
        hunks: list[ConflictHunk],
        *,
        base: str = "",
        ours: str = "",
        theirs: str = "",
        marked: str = "",
    ) -> None:
        super().__init__(message)
        self.hunks = hunks
        self.base = base
        self.ours = ours
        self.theirs = theirs
        #: the merged text with git-style conflict markers, a starting point for a resolution
        self.marked = marked
        #: model configuration paths changed differently on both sides (``key`` is
        #: ``config.PATH``, with ``base``/``ours``/``theirs`` values)
        self.config_conflicts: list[dict[str, Any]] = []


class DatabaseBusy(PromptverError):
    """Another process kept the database file locked longer than the configured wait."""

    http_status = 409


class DatabaseError(PromptverError):
    """The database file cannot be opened or is damaged (message says how to recover)."""

    http_status = 500


class SourceError(PromptverError):
    """The configured event source (Parquet, PostgreSQL, Spark) cannot answer: it cannot be
    reached, its table is missing, or a required column is missing or of the wrong type. The
    message names the source and what failed."""

    http_status = 503


class ImportError_(ValidationError):  # noqa: N801 - avoids shadowing the builtin ImportError
    """A CSV import was refused; ``problems`` name line, column and reason."""


class IntegrityError(PromptverError):
    """Stored data failed a consistency check (fsck)."""


class DeploymentRefused(ValidationError):
    """A deployment gate refused the deployment; ``problems`` give the reasons."""


#: a lone surrogate: in a Python ``str`` only, never in decoded text
SURROGATE_RE = re.compile("[\ud800-\udfff]")


def surrogate_problem(field: str | None, offset: int | None = None) -> Problem:
    """The problem of a text holding a lone surrogate (U+D800–U+DFFF): such a Python string is not
    Unicode text and cannot be stored, hashed or sent."""
    return Problem(
        "contains a lone surrogate (U+D800 to U+DFFF), which is not valid Unicode text",
        field=field,
        offset=offset,
        code="syntax.encoding",
    )


def check_unicode(value: str, field: str) -> str:
    """``value`` unchanged, or :class:`ValidationError` naming ``field`` if it holds a lone
    surrogate (only possible from Python callers: decoded files and HTTP bodies never do)."""
    m = SURROGATE_RE.search(value)
    if m is not None:
        raise ValidationError("invalid input:", [surrogate_problem(field, m.start())])
    return value

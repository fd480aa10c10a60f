"""What every command handler gets: the parsed options, the workspace, and output helpers."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from promptver.errors import NotFound, PromptverError

if TYPE_CHECKING:
    # loaded when a handler first asks for them: parsing and --help need neither pydantic
    # nor DuckDB
    from promptver.config import Settings
    from promptver.workspace import Workspace


class UsageError(PromptverError):
    """Bad command-line usage that argparse cannot see (exit 2)."""


#: What a terminal acts on instead of showing: C0 controls but tab and newline (ESC starts
#: screen-clearing and title-setting sequences, BEL rings, CR and backspace overwrite), DEL, C1
#: controls (0x9b is a one-byte CSI), the line/paragraph separators, and the bidirectional
#: formatting characters that reorder the text after them (U+202E shows "abc" as "cba").
UNSAFE_CHARS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _escape_char(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` safe to print on a terminal: every character in :data:`UNSAFE_CHARS` is shown as
    an escape (ESC as ``\\x1b``, U+202E as ``\\u202e``); tabs, newlines and all printable text,
    whatever the script, are kept. Every human-readable line the CLI prints passes through here,
    so text stored by one user cannot rewrite another user's screen."""
    return UNSAFE_CHARS.sub(_escape_char, text) if UNSAFE_CHARS.search(text) else text


def to_jsonable(value: Any) -> Any:
    """Models, datetimes and paths as JSON-friendly values (datetimes in ISO 8601, UTC)."""
    pydantic = sys.modules.get("pydantic")  # no model exists unless pydantic is loaded
    if pydantic is not None and isinstance(value, pydantic.BaseModel):
        return to_jsonable(value.model_dump(mode="python"))
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "as_dict"):
        return to_jsonable(value.as_dict())
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


@dataclass
class Context:
    args: argparse.Namespace
    out: TextIO = field(default_factory=lambda: sys.stdout)
    _ws: Workspace | None = None
    _settings: Settings | None = None
    #: keep one connection to the file for the whole command (brief commands: see
    #: ``promptver.cli.main.BRIEF_COMMANDS``)
    hold_file: bool = False

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            if self._ws is not None:  # the workspace's own (its defaults are built lazily)
                return self._ws.settings
            from promptver.config import Settings

            path = getattr(self.args, "config", None)
            with nesting_guard("--config", path or "(the settings file)"):
                self._settings = Settings.load(path)
        return self._settings

    @property
    def ws(self) -> Workspace:
        """The workspace; only commands registered with ``creates_database=True`` (``init``,
        ``demo``) create a missing database file, so a mistyped ``--db`` creates nothing."""
        if self._ws is None:
            from promptver.config_source import unvalidated
            from promptver.workspace import Workspace

            create = bool(getattr(self.args, "creates_database", False))
            # nothing to validate (no --config, no settings file, no override but the database's
            # path): the workspace builds the settings only if the command reads one
            lazy = self._settings is None and not getattr(self.args, "config", None)
            settings = None if lazy and unvalidated() is not None else self.settings
            try:
                self._ws = Workspace.open(
                    getattr(self.args, "db", None),
                    settings=settings,
                    create=create,
                    hold=self.hold_file,
                )
            except NotFound as exc:
                raise NotFound(
                    f"{exc.message} (run 'promptver init' to create it, or check --db and "
                    "$PROMPTVER_DB)"
                ) from None
        return self._ws

    @property
    def author(self) -> str:
        from promptver.config import default_author

        return getattr(self.args, "author", None) or default_author()

    def emit(
        self, data: Any, human: str | Callable[[], str] | None = None, *, exact: bool = False
    ) -> None:
        """Print ``data`` as JSON with ``--json``, otherwise the human text.

        The human text goes through :func:`visible` (control characters shown as escapes).
        ``exact=True`` is for text the user asked for verbatim (``render``): it is escaped only
        when stdout is a terminal, so a pipe or a file gets it byte for byte.
        """
        if self.json:  # JSON escapes control characters itself
            self.out.write(json.dumps(to_jsonable(data), indent=2, ensure_ascii=False) + "\n")
            return
        text = human() if callable(human) else human
        if text is None:
            text = json.dumps(to_jsonable(data), indent=2, ensure_ascii=False)
        if text:
            if not exact or is_terminal(self.out):
                text = visible(text)
            self.out.write(text.rstrip("\n") + "\n")

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()


def is_terminal(stream: TextIO) -> bool:
    """True when ``stream`` is a terminal (a person reads it), False for pipes and files."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such method, or a closed stream
        return False


@contextmanager
def nesting_guard(option: str, path: str | None) -> Iterator[None]:
    """Report a file nested too deeply to parse (``[[[[…``, a RecursionError in the YAML or JSON
    parser) as an error naming the option and the file, not an internal error."""
    from promptver.errors import ValidationError

    try:
        yield
    except RecursionError:
        raise PromptverError(
            f"{option} {path}: values nest too deeply to read (hundreds of levels); "
            "flatten the file"
        ) from None
    except ValidationError as exc:
        # the core's bounded readers name the file ("F is not valid YAML: line 1, column 68:
        # nested more than 64 levels deep"): say which option gave it
        if path and exc.message.startswith(str(path)):
            raise ValidationError(f"{option} {exc.message}", exc.problems) from None
        raise


def read_text_arg(
    args: argparse.Namespace, text_attr: str = "content", file_attr: str = "file"
) -> str:
    """``--content TEXT`` or ``--file PATH`` (``-`` reads stdin)."""
    text = getattr(args, text_attr, None)
    path = getattr(args, file_attr, None)
    if text is not None:
        return text
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptverError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptverError(f"cannot read {path}: {exc}") from None


MAX_LIMIT = 1_000_000_000
#: the largest count an option may hold (DuckDB stores counts as BIGINT)
MAX_COUNT = 2**63 - 1
#: the largest random seed (numpy refuses negative ones)
MAX_SEED = 2**63 - 1
#: bootstrap resamples an analysis may ask for (each costs memory proportional to the users)
MAX_RESAMPLES = 100_000
#: the largest --target-lift, in percent
MAX_TARGET_LIFT = 10_000.0
#: the longest duration in days (100 years; as ``promptver.trends.MAX_DURATION_DAYS``)
MAX_DURATION_DAYS = 36_500


def int_arg(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``low`` to ``high``. Out-of-range values are
    refused by argparse, naming the option (exit 2), instead of overflowing further on."""

    def parse(text: str) -> int:
        try:
            # 20 digits are past any limit here; the length check keeps int() from parsing
            # (or refusing, past 4,300 digits) a huge number
            value = int(text) if len(text.strip().lstrip("+-").lstrip("0")) <= 20 else None
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be from {low:,} to {high:,}, got {_shorten(text)}"
            )
        return value

    parse.__name__ = "whole number"  # argparse names the type in some messages
    return parse


def float_arg(low: float, high: float) -> Callable[[str], float]:
    """An argparse ``type``: a finite number ``low < x <= high`` (NaN and inf refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not low < value <= high:  # False for NaN too
            raise argparse.ArgumentTypeError(
                f"must be more than {low:g} and at most {high:g}, got {_shorten(text)}"
            )
        return value

    parse.__name__ = "number"
    return parse


def duration_arg(text: str) -> str:
    """An argparse ``type`` for a duration (``30m``, ``24h``, ``7d``, ``2w``): one too long for
    the date arithmetic (over 100 years) is refused naming the option; the text is returned as
    given, and the service reports any other problem with it as before."""
    from promptver.errors import ValidationError
    from promptver.metric_defs import parse_duration

    try:
        parse_duration(text)
    except ValidationError as exc:
        if any(p.code == "range" for p in exc.problems):
            raise argparse.ArgumentTypeError(exc.problems[0].message) from None
    return text


def window_arg(text: str) -> str:
    """An argparse ``type`` for a metrics window (``24h``, ``7d``, ``90d``, ``all``): as
    :func:`duration_arg`, with the metrics service's window rule."""
    from datetime import UTC, datetime

    from promptver.errors import ValidationError
    from promptver.metric_defs import parse_window

    try:
        parse_window(text, now=datetime.now(UTC))
    except ValidationError as exc:
        if any(p.code == "range" for p in exc.problems):
            raise argparse.ArgumentTypeError(exc.message) from None
    return text


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def limit_arg(text: str) -> int:
    """An argparse ``type`` for ``--limit N``: a whole number from 1 to 1,000,000,000 (larger
    values are refused here, with the option's name, instead of overflowing in SQL)."""
    return _limit(text)


_limit = int_arg(1, MAX_LIMIT)


def parse_vars(pairs: list[str] | None) -> dict[str, str]:
    """``KEY=VALUE`` pairs (values may contain '=')."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--var expects KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def table(rows: list[list[Any]], headers: list[str]) -> str:
    """A plain-text table for human output."""
    # escaped before measuring, so columns line up with what is printed
    cells = [[visible(("" if c is None else str(c)).replace("\n", " ")) for c in r] for r in rows]
    headers = [visible(h) for h in headers]
    widths = [len(h) for h in headers]
    for r in cells:
        for i, c in enumerate(r):
            widths[i] = min(max(widths[i], len(c)), 60)

    def fmt(r: list[str]) -> str:
        return "  ".join(
            (c if len(c) <= 60 else c[:59] + "…").ljust(widths[i]) for i, c in enumerate(r)
        ).rstrip()

    lines = [fmt(headers), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in cells]
    return "\n".join(lines)

"""What every command handler gets: the parsed options, the workspace, and output helpers."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from promptver.errors import PromptverError

if TYPE_CHECKING:
    # loaded when a handler first asks for them: parsing and --help need neither pydantic
    # nor DuckDB
    from promptver.config import Settings
    from promptver.workspace import Workspace


class UsageError(PromptverError):
    """Bad command-line usage that argparse cannot see (exit 2)."""


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

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from promptver.config import Settings

            self._settings = Settings.load(getattr(self.args, "config", None))
        return self._settings

    @property
    def ws(self) -> Workspace:
        if self._ws is None:
            from promptver.workspace import Workspace

            self._ws = Workspace.open(getattr(self.args, "db", None), settings=self.settings)
        return self._ws

    @property
    def author(self) -> str:
        from promptver.config import default_author

        return getattr(self.args, "author", None) or default_author()

    def emit(self, data: Any, human: str | Callable[[], str] | None = None) -> None:
        """Print ``data`` as JSON with ``--json``, otherwise the human text."""
        if self.json:
            self.out.write(json.dumps(to_jsonable(data), indent=2, ensure_ascii=False) + "\n")
            return
        text = human() if callable(human) else human
        if text is None:
            text = json.dumps(to_jsonable(data), indent=2, ensure_ascii=False)
        if text:
            self.out.write(text.rstrip("\n") + "\n")

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()


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


def limit_arg(text: str) -> int:
    """An argparse ``type`` for ``--limit N``: a whole number from 1 to 1,000,000,000 (larger
    values are refused here, with the option's name, instead of overflowing in SQL)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_LIMIT:,}, got {text}")
    return value


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
    cells = [[("" if c is None else str(c)).replace("\n", " ") for c in r] for r in rows]
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

"""promptver: prompt versioning, deployment and A/B testing in one DuckDB file.

``Workspace`` and ``Settings`` load on first use (module ``__getattr__``): building the pydantic
models and opening DuckDB costs most of a second, which ``promptver --help`` and a plain
``import promptver`` need not pay. ``from promptver import Workspace`` works as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from promptver._version import __version__
from promptver.errors import (
    Conflict,
    DatabaseBusy,
    MergeConflict,
    NotFound,
    PromptverError,
    RenderError,
    TemplateSyntaxError,
    ValidationError,
)

if TYPE_CHECKING:
    from promptver.config import Settings
    from promptver.workspace import Workspace


__all__ = [
    "Conflict",
    "DatabaseBusy",
    "MergeConflict",
    "NotFound",
    "PromptverError",
    "RenderError",
    "Settings",
    "TemplateSyntaxError",
    "ValidationError",
    "Workspace",
    "__version__",
]

#: public names loaded on first access, and the module each lives in
_LAZY = {"Settings": "promptver.config", "Workspace": "promptver.workspace"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'promptver' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""promptver: prompt versioning, deployment and A/B testing in one DuckDB file."""

from typing import TYPE_CHECKING

from promptver.config import Settings
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
    from promptver.workspace import Workspace

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Workspace (and with it duckdb and the services) loads on first use, so that the remote
    # client (promptver.client), which has no database, imports none of it
    if name == "Workspace":
        from promptver.workspace import Workspace

        return Workspace
    raise AttributeError(f"module 'promptver' has no attribute {name!r}")


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

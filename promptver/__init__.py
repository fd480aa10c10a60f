"""promptver: prompt versioning, deployment and A/B testing in one DuckDB file."""

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
from promptver.workspace import Workspace

__version__ = "0.1.0"

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

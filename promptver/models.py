"""The shapes promptver stores and returns (pydantic, ``extra="forbid"``).

Models are plain data: services build them, the store reads and writes them, the CLI and the HTTP
API serialise them with ``model_dump(mode="json")``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME_RE = re.compile(r"^[A-Za-z0-9_./-]{1,100}$")
"""Template and branch names: letters, digits, ``-``, ``_``, ``.`` and ``/`` (1–100 characters)."""

VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    content: str
    variables: list[str] = Field(default_factory=list)
    #: branch whose head this view shows, when it was read from a branch
    branch: str | None = None
    updated_at: datetime | None = None

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

    def text(self, strict: bool = True, **values: Any) -> str:
        """Render with ``values`` (see :func:`promptver.templating.render`)."""
        from promptver.templates import render_template

        return render_template(self.content, self.metadata, values, strict=strict,
                               max_chars=self.max_render_chars)


# ---- experiments -----------------------------------------------------------------------------

BUILTIN_METRICS: dict[str, str] = {
    "latency_ms": "lower",
    "success": "higher",
    "error": "lower",
    "quality_score": "higher",
    "cost_usd": "lower",
    "tokens_in": "lower",
    "tokens_out": "lower",
}
"""Built-in metric columns of ``metric_events`` and the direction in which they are better."""

BINARY_METRICS = frozenset({"success", "error"})


class MetricSpec(Model):
    """A metric an experiment watches. The first of an experiment's metrics is the primary one."""

    name: str
    direction: Literal["higher", "lower"]
    role: Literal["primary", "secondary", "guardrail"] = "secondary"


class VariantSpec(Model):
    """One arm: a name, the ref it was configured with, the commit that ref resolved to."""

    name: str
    ref: str
    weight: float
    commit: str | None = None


class Experiment(Model):
    """An A/B experiment on one template in one environment (variants[0] is the control)."""

    id: str
    name: str
    description: str = ""
    hypothesis: str = ""
    template_id: str
    template: str = ""
    environment: str = "production"
    status: Literal["draft", "running", "completed", "stopped"] = "draft"
    variants: list[VariantSpec]
    metrics: list[MetricSpec]
    alpha: float = 0.05
    minimum_sample_size: int = 100
    salt: str
    #: fraction of users that enter the experiment (the rest get the deployed version)
    coverage: float = 1.0
    start_at: datetime | None = None
    end_at: datetime | None = None
    created_at: datetime
    created_by: str = ""
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    stop_reason: str | None = None

    @property
    def control(self) -> VariantSpec:
        return self.variants[0]

    @property
    def primary_metric(self) -> MetricSpec:
        return self.metrics[0]

    def metric(self, name: str) -> MetricSpec | None:
        return next((m for m in self.metrics if m.name == name), None)

    def window(self) -> tuple[datetime | None, datetime | None]:
        """[start, end] of the events that count: configured, else started/stopped times."""
        return (self.start_at or self.started_at, self.end_at or self.stopped_at)

    def weights(self) -> list[float]:
        """Normalised weights in variant order (they sum to 1)."""
        total = sum(v.weight for v in self.variants)
        return [v.weight / total for v in self.variants]


class Assignment(Model):
    """The variant a running experiment gives one user (what ``get_prompt`` serves)."""

    experiment_id: str
    experiment: str
    variant: str
    #: the commit the variant serves (its ref, frozen when the experiment started)
    commit: str
    ref: str
    bucket: float


class ExperimentLogEntry(Model):
    """One lifecycle event of an experiment: created, edited, started, stopped, completed …"""

    experiment_id: str
    at: datetime
    action: str
    author: str = ""
    detail: str = ""

"""Deployments, their gate reports and what is live per environment."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from promptver.models.core import Model

GateStatus = Literal["passed", "failed", "overridden", "skipped"]


class GateResult(Model):
    """The outcome of one deployment gate (a validation check or a rule)."""

    #: ``syntax_validation`` … (the checks), ``require_previous`` or ``require_experiment_win``
    gate: str
    status: GateStatus
    message: str
    #: errors then warnings found by a validation check (``Problem.as_dict()`` shapes)
    problems: list[dict[str, Any]] = Field(default_factory=list)
    #: the completed experiment that was the evidence (``require_experiment_win``)
    experiment_id: str | None = None
    #: the paired comparison behind an ``eval`` gate: dataset, metric, margin, items, diff,
    #: ci_low, ci_high, lower_bound (on the good side), baseline, candidate
    eval: dict[str, Any] | None = None


class GateReport(Model):
    """What the gates decided about putting ``commit`` live in ``environment``."""

    template_id: str
    template: str
    environment: str
    action: Literal["deploy", "rollback"]
    commit: str
    version: str | None
    live_commit: str | None = None
    live_version: str | None = None
    checks: list[str] = Field(default_factory=list)
    gates: list[GateResult] = Field(default_factory=list)
    forced: bool = False
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when no gate failed (overridden gates do not block)."""
        return all(g.status != "failed" for g in self.gates)

    def gate(self, name: str) -> GateResult | None:
        return next((g for g in self.gates if g.gate == name), None)

    @property
    def warnings(self) -> list[dict[str, Any]]:
        return [p for g in self.gates for p in g.problems if p.get("severity") == "warning"]


class Deployment(Model):
    """One entry of the append-only deployment log (a deploy or a rollback)."""

    id: int
    template_id: str
    template: str
    environment: str
    action: Literal["deploy", "rollback"]
    commit: str
    version: str | None
    replaced_deployment_id: int | None = None
    replaced_commit: str | None = None
    replaced_version: str | None = None
    #: rollbacks: ``previous`` (the version live before) or ``named`` (``--to``)
    rollback_mode: Literal["previous", "named"] | None = None
    #: rollbacks: the earlier entry that had put the restored commit live, if any
    restored_deployment_id: int | None = None
    note: str = ""
    author: str = ""
    created_at: datetime
    forced: bool = False
    force_reason: str | None = None
    evidence_experiment_id: str | None = None
    evidence_override_reason: str | None = None
    gate_report: dict[str, Any] = Field(default_factory=dict)

    def label(self) -> str:
        """``1.2.0`` or, for a commit without a version, its short id."""
        return self.version or self.commit[:10]

    def replaced_label(self) -> str | None:
        if self.replaced_commit is None:
            return None
        return self.replaced_version or self.replaced_commit[:10]


class EnvironmentInfo(Model):
    """A configured environment, its place on the promotion path and its rules."""

    name: str
    position: int
    previous: str | None
    next: str | None
    required_checks: list[str]
    require_previous: bool
    require_experiment_win: bool


class LiveCell(Model):
    """What is live for one template in one environment (the deployments matrix)."""

    template_id: str
    template: str
    environment: str
    deployment: Deployment | None = None
    #: a running experiment on this template in this environment, if any
    experiment_id: str | None = None
    experiment_name: str | None = None

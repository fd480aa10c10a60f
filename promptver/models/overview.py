"""What the Home screen shows: experiment progress, recent commits, counts."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from promptver.models.core import Model
from promptver.models.deployments import Deployment, LiveCell
from promptver.models.trends import Alert, AlertGroup


class VariantProgress(Model):
    """Users and events of one variant of an experiment so far (in its window)."""

    name: str
    #: the variant's configured share of the experiment's users (weights normalised)
    share: float
    users: int = 0
    events: int = 0


class ExperimentProgress(Model):
    """Where an experiment stands: users per variant against the minimum sample, the sample
    ratio check, and (once ended) the winner its frozen results named."""

    id: str
    name: str
    template: str
    environment: str
    status: Literal["draft", "running", "completed", "stopped"]
    primary_metric: str
    minimum_sample_size: int
    started_at: datetime | None = None
    end_at: datetime | None = None
    stopped_at: datetime | None = None
    variants: list[VariantProgress]
    #: users in the smallest variant, and that against the minimum sample (capped at 1)
    smallest: int = 0
    progress: float = 0.0
    #: chi-square of users per variant against the split; ``None`` without users
    srm_p_value: float | None = None
    srm_ok: bool = True
    winner: str | None = None


class RecentCommit(Model):
    """A commit in the activity feed, with the version or branch it is known by."""

    template: str
    commit: str
    parents: list[str]
    version: str | None = None
    #: the branch whose head it is, if any (a version on main is named by ``version``)
    branch: str | None = None
    message: str
    author: str
    created_at: datetime


class WorkspaceCounts(Model):
    """How much of everything the workspace holds (the home screen's map of the screens)."""

    templates: int = 0
    archived_templates: int = 0
    versions: int = 0
    branches: int = 0
    commits: int = 0
    deployments: int = 0
    experiments: dict[str, int] = Field(default_factory=dict)
    events: int = 0
    first_event: datetime | None = None
    last_event: datetime | None = None
    imports: int = 0
    rules: int = 0
    rules_enabled: int = 0
    open_alerts: int = 0


class Overview(Model):
    """Everything the home screen shows, read in one snapshot of the database."""

    environments: list[str]
    #: what is live for every active template in every environment (template by template)
    live: list[LiveCell]
    running: list[ExperimentProgress]
    #: the most recently ended experiments, newest first
    ended: list[ExperimentProgress]
    #: the newest open (unacknowledged) alerts; ``counts.open_alerts`` has how many in all
    open_alerts: list[Alert]
    #: the open alerts grouped per rule and template, the group with the newest window first
    #: (so one noisy rule takes one line of "Needs attention")
    alert_groups: list[AlertGroup] = Field(default_factory=list)
    commits: list[RecentCommit]
    deployments: list[Deployment]
    counts: WorkspaceCounts

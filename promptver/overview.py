"""The home screen's overview: what is live where, how experiments are doing, what needs
attention and what happened lately, read in one snapshot of the database.

``ws.overview.build()`` returns an :class:`~promptver.models.Overview`. It is made for a screen
that opens often, so it never runs an analysis: experiment progress is users per variant counted
in SQL and the sample-ratio test on those counts (the same chi-square the results use,
:func:`promptver.stats.srm_test`); the winner of an ended experiment comes from the results
frozen when it stopped.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from promptver.alerts import group_alerts
from promptver.clock import utcnow
from promptver.config import Settings
from promptver.errors import Problem, ValidationError
from promptver.metric_defs import canonical_metric
from promptver.models.deployments import Deployment
from promptver.models.experiments import Experiment
from promptver.models.overview import ExperimentProgress, Overview, VariantProgress
from promptver.store import alerts as alert_sql
from promptver.store import overview as sql
from promptver.store import trends as trend_sql
from promptver.store.db import Database

if TYPE_CHECKING:
    from promptver.deployments import DeploymentService
    from promptver.experiments import ExperimentService


class OverviewService:
    """Builds the :class:`~promptver.models.Overview` of a workspace."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        deployments: DeploymentService,
        experiments: ExperimentService,
    ) -> None:
        self.db = db
        self.settings = settings
        self.deployments = deployments
        self.experiments = experiments

    def build(
        self, *, commits: int = 8, deployments: int = 8, alerts: int = 5, ended: int = 3
    ) -> Overview:
        """Everything the home screen shows.

        Args:
            commits: how many recent commits to list.
            deployments: how many recent deploys and rollbacks to list.
            alerts: how many open alerts, and how many groups of them (per rule and
                template), to list (the count covers all of them).
            ended: how many of the most recently ended experiments to list.

        Raises:
            ValidationError: a limit below 0.
        """
        limits = {"commits": commits, "deployments": deployments, "alerts": alerts, "ended": ended}
        bad = [Problem("must be 0 or more", field=k) for k, v in limits.items() if v < 0]
        if bad:
            raise ValidationError("invalid input:", bad)
        with self.db.read() as con:
            live = self.deployments.matrix()
            every = self.experiments.list()
            running = [e for e in every if e.status == "running"]
            stopped = sorted(
                (e for e in every if e.status in ("completed", "stopped")),
                key=lambda e: (e.stopped_at is not None, e.stopped_at, e.id),
                reverse=True,
            )[:ended]
            users = sql.experiment_users(con, [e.id for e in running])
            frozen = sql.frozen_results(con, [e.id for e in stopped])
            every_open = alert_sql.list_alerts(con, status="open", limit=10_000) if alerts else []
            groups: list = []
            if every_open:
                ids = sorted({a.template_id for a in every_open})
                history = trend_sql.deployments(con, ids, utcnow(), None)
                groups = group_alerts(every_open, history, self.settings.deployment.environments)
            return Overview(
                environments=list(self.settings.deployment.environments),
                live=live,
                running=[progress(e, users) for e in running],
                ended=[ended_progress(e, frozen.get(e.id)) for e in stopped],
                open_alerts=every_open[:alerts],
                alert_groups=groups[:alerts],
                commits=sql.recent_commits(con, commits) if commits else [],
                deployments=sql.recent_deployments(con, deployments) if deployments else [],
                counts=sql.counts(con),
            )


def progress(e: Experiment, users: dict[tuple[str, str], tuple[int, int]]) -> ExperimentProgress:
    """Users per variant so far, against the minimum sample and the configured split."""
    variants = [
        VariantProgress(
            name=v.name,
            share=w,
            users=users.get((e.id, v.name), (0, 0))[0],
            events=users.get((e.id, v.name), (0, 0))[1],
        )
        for v, w in zip(e.variants, e.weights(), strict=True)
    ]
    from promptver import stats  # scipy: only when an experiment is shown

    srm = stats.srm_test([v.users for v in variants], [v.share for v in variants])
    return _progress(e, variants, srm.p_value, srm.ok, None)


def ended_progress(e: Experiment, results: dict[str, Any] | None) -> ExperimentProgress:
    """An ended experiment as its frozen results describe it (users, SRM, winner)."""
    found = {v.get("name"): v for v in (results or {}).get("variants", [])}
    variants = [
        VariantProgress(
            name=v.name,
            share=w,
            users=int(found.get(v.name, {}).get("users") or 0),
            events=int(found.get(v.name, {}).get("events") or 0),
        )
        for v, w in zip(e.variants, e.weights(), strict=True)
    ]
    srm = (results or {}).get("srm") or {}
    return _progress(
        e,
        variants,
        srm.get("p_value"),
        bool(srm.get("ok", True)),
        (results or {}).get("winner"),
    )


def _progress(
    e: Experiment,
    variants: list[VariantProgress],
    p_value: float | None,
    ok: bool,
    winner: str | None,
) -> ExperimentProgress:
    smallest = min((v.users for v in variants), default=0)
    return ExperimentProgress(
        id=e.id,
        name=e.name,
        template=e.template,
        environment=e.environment,
        status=e.status,
        primary_metric=e.primary_metric.name,
        minimum_sample_size=e.minimum_sample_size,
        started_at=e.start_at or e.started_at,
        end_at=e.end_at,
        stopped_at=e.stopped_at,
        variants=variants,
        smallest=smallest,
        progress=min(1.0, smallest / max(1, e.minimum_sample_size)),
        srm_p_value=p_value,
        srm_ok=ok,
        winner=winner,
    )


def trend_params(
    experiment: Experiment | ExperimentProgress, now: datetime | None = None
) -> dict[str, str]:
    """Query parameters of the Trends screen for an experiment: its template and primary
    metric in its environment, one line per variant, over a period reaching back a day before
    it started (whole days; a custom metric as ``custom:NAME``)."""
    now = now or utcnow()
    if isinstance(experiment, Experiment):
        metric = experiment.primary_metric.name
        start = experiment.start_at or experiment.started_at or now
    else:
        metric = experiment.primary_metric
        start = experiment.started_at or now
    end = experiment.stopped_at or now
    days = max(1, math.ceil(((now - start) + timedelta(days=1)) / timedelta(days=1)))
    params = {
        "template": experiment.template,
        "period": f"{days}d",
        "by": "variant",
        "env": experiment.environment,
        "bucket": "hour" if end - start <= timedelta(days=3) and days <= 14 else "auto",
    }
    try:
        params["metric"] = canonical_metric(metric)
    except ValidationError:
        params["metric"] = f"custom:{metric}"
    return params


def deployment_trend_params(d: Deployment, now: datetime | None = None) -> dict[str, str]:
    """Query parameters of the Trends screen around a deployment: its template in its
    environment, by version, from a week before it to now (whole days)."""
    now = now or utcnow()
    days = max(1, math.ceil(((now - d.created_at) + timedelta(days=7)) / timedelta(days=1)))
    return {
        "template": d.template,
        "period": f"{days}d",
        "by": "version",
        "env": d.environment,
        "bucket": "auto",
    }

"""Everything a report shows, collected once: the experiment, its variants' commits and their
diffs against the control, the results of every metric, the template's deployment timeline and
the experiment's lifecycle. The four formats render from one :class:`Report`, so they agree.

Lookups that can fail on an experiment whose template or commits are gone (an archived template,
an experiment model built by hand) add a note to the report instead of failing it: a report is
still useful without the timeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from promptver._version import __version__
from promptver.clock import utcnow
from promptver.diffing import Diff, diff_prompts
from promptver.errors import NotFound, PromptverError
from promptver.models.core import Commit
from promptver.models.deployments import Deployment
from promptver.models.experiments import Experiment, ExperimentLogEntry, VariantSpec
from promptver.models.results import ExperimentResults, MetricResult

if TYPE_CHECKING:  # the workspace imports the services, not the other way round
    from promptver.workspace import Workspace

#: the version of the JSON report's layout (see docs/reports.md): the major part changes when a
#: key is removed, renamed or changes meaning; the minor part when keys are added
SCHEMA_VERSION = "1.0"
#: deployments listed in the HTML and Markdown tables (the newest, plus all inside the window)
TIMELINE_ROWS = 100


@dataclass
class VariantInfo:
    """One arm as the report shows it: its configuration, its commit and its diff."""

    spec: VariantSpec
    share: float
    is_control: bool
    commit: Commit | None
    #: the ref was resolved when the report was made (a draft: refs are frozen only at start)
    resolved_now: bool = False
    #: the change from the control's text (None for the control, or when a commit is missing)
    diff: Diff | None = None


@dataclass
class Report:
    """The material of one experiment report."""

    experiment: Experiment
    #: the results viewed on the primary metric (contract fields = primary metric)
    results: ExperimentResults
    #: every metric of the experiment, in the experiment's order
    metrics: list[MetricResult]
    variants: list[VariantInfo]
    deployments: list[Deployment]
    environments: list[str]
    history: list[ExperimentLogEntry]
    generated_at: datetime
    #: the results are the final ones frozen when the experiment stopped
    frozen: bool
    #: analysis options the caller asked for (None values dropped)
    options: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    generator: str = f"promptver {__version__}"
    schema_version: str = SCHEMA_VERSION

    @property
    def window(self) -> tuple[datetime | None, datetime | None]:
        """[start, end] of the events analysed (end None while running)."""
        return self.results.window_start, self.results.window_end

    def during(self, d: Deployment) -> bool:
        """True when ``d`` happened in the experiment's environment while its events counted."""
        start, end = self.window
        if start is None or d.environment != self.experiment.environment:
            return False
        return start <= d.created_at and (end is None or d.created_at <= end)

    def timeline_rows(self) -> list[Deployment]:
        """The deployments the tables list: the newest ones and every one inside the window."""
        keep = {d.id for d in self.deployments[:TIMELINE_ROWS]}
        return [d for d in self.deployments if d.id in keep or self.during(d)]


def gather(
    ws: Workspace,
    ref: str | Experiment,
    *,
    results: ExperimentResults | None = None,
    now: datetime | None = None,
    **options: Any,
) -> Report:
    """Collect an experiment's report.

    Args:
        ws: the workspace.
        ref: the experiment's id or name, or the model.
        results: results already computed (the dashboard passes what it shows); computed with
            ``ws.experiment_results(ref, **options)`` when omitted.
        now: the report's time stamp (default: now).
        options: analysis options (``sequential``, ``winsorize``, ``resamples``, ``seed``,
            ``target_lift`` …, see :func:`promptver.analysis.experiment_results`).

    Raises:
        NotFound: unknown experiment.
        ValidationError: an invalid analysis option.
    """
    exp = ref if isinstance(ref, Experiment) else ws.experiments.get(ref)
    options = {k: v for k, v in options.items() if v is not None}
    notes: list[str] = []
    # one open of the file for all the reads below (a session, not one read transaction: a
    # lookup that fails is noted and the others go on)
    with ws.db.session():
        if results is None:
            results = ws.experiment_results(exp, **options)
        results, metrics = _all_metrics(ws, exp, results, options, notes)
        frozen = _is_frozen(ws, exp, results)
        variants = _variants(ws, exp, notes)
        deployments = _deployments(ws, exp, notes)
        history = _history(ws, exp)
    return Report(
        experiment=exp,
        results=results,
        metrics=metrics,
        variants=variants,
        deployments=deployments,
        environments=list(ws.settings.deployment.environments),
        history=history,
        generated_at=now or utcnow(),
        frozen=frozen,
        options=options,
        notes=notes,
    )


def _all_metrics(
    ws: Workspace,
    exp: Experiment,
    results: ExperimentResults,
    options: dict[str, Any],
    notes: list[str],
) -> tuple[ExperimentResults, list[MetricResult]]:
    """The results on the primary metric and every metric's result, in the experiment's order.

    Results carry every metric (``metrics``); results stored by an older version may lack some,
    which are then computed now (and the report says so).
    """
    from promptver.analysis import experiment_results

    have = {m.metric: m for m in results.metrics}
    missing = [m.name for m in exp.metrics if m.name not in have]
    if missing:
        fresh = experiment_results(ws, exp, **options)
        have.update({m.metric: m for m in fresh.metrics if m.metric in missing})
        notes.append(
            "The stored results lack "
            + ", ".join(missing)
            + "; those figures were computed when this report was made."
        )
    metrics = [have[m.name] for m in exp.metrics if m.name in have]
    results = results.model_copy(update={"metrics": metrics})
    primary = exp.primary_metric.name
    if results.metric != primary and primary in have:
        results = results.select(primary)
    return results, metrics


def _is_frozen(ws: Workspace, exp: Experiment, results: ExperimentResults) -> bool:
    if exp.status not in ("completed", "stopped"):
        return False
    try:
        stored = ws.experiments.stored_results(exp.id)
    except NotFound:
        return False
    return bool(stored) and stored.get("computed_at") == results.model_dump(mode="json").get(
        "computed_at"
    )


def _commit(ws: Workspace, exp: Experiment, v: VariantSpec) -> tuple[Commit | None, bool]:
    """The variant's commit, frozen when the experiment started; a draft's refs are resolved
    again at start, so for a draft the report resolves them now."""
    if exp.status != "draft" and v.commit:
        return ws.versions.get_commit(v.commit), False
    return ws.versions.resolve(exp.template_id, v.ref, template_name=exp.template), True


def _variants(ws: Workspace, exp: Experiment, notes: list[str]) -> list[VariantInfo]:
    weights = exp.weights()
    out: list[VariantInfo] = []
    for i, v in enumerate(exp.variants):
        try:
            commit, now = _commit(ws, exp, v)
        except PromptverError as exc:
            notes.append(f"The text of variant {v.name} is not available: {exc.message}")
            commit, now = None, False
        out.append(VariantInfo(v, weights[i], i == 0, commit, resolved_now=now))
    control = out[0]
    for info in out[1:]:
        if control.commit is None or info.commit is None:
            continue
        a, b = control.commit, info.commit
        info.diff = diff_prompts(
            a,
            b,
            old_label=f"{control.spec.name} ({a.version or a.id[:10]})",
            new_label=f"{info.spec.name} ({b.version or b.id[:10]})",
        )
    if any(v.resolved_now for v in out):
        notes.append(
            "This experiment has not started: its refs were resolved when the report was made; "
            "they are frozen only when it starts."
        )
    return out


def _deployments(ws: Workspace, exp: Experiment, notes: list[str]) -> list[Deployment]:
    try:
        return ws.deployments.history(exp.template_id)
    except NotFound as exc:
        notes.append(f"The deployment timeline is not available: {exc.message}")
        return []


def _history(ws: Workspace, exp: Experiment) -> list[ExperimentLogEntry]:
    try:
        return ws.experiments.history(exp.id)
    except NotFound:  # a model that was never stored
        return []

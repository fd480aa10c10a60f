"""The shapes promptver stores and returns (pydantic, ``extra="forbid"``).

Models are plain data: services build them, the store reads and writes them, the CLI and the HTTP
API serialise them with ``model_dump(mode="json")``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from promptver.chat import render_messages, text_as_messages
from promptver.templating import parse, parse_schema, render

NAME_RE = re.compile(r"\A[A-Za-z0-9_./-]{1,100}\Z")
"""Template and branch names: letters, digits, ``-``, ``_``, ``.`` and ``/`` (1–100 characters)."""

VERSION_RE = re.compile(r"\A(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)\Z")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


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
    #: ``text`` (``content``) or ``chat`` (``messages``; ``content`` is empty)
    kind: Literal["text", "chat"] = "text"
    messages: list[dict[str, Any]] | None = None
    #: the model configuration (``promptver.chat.ModelConfig`` fields; ``{}`` when none)
    config: dict[str, Any] = Field(default_factory=dict)

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
    #: the text of a text template; ``None`` for a chat template (see ``messages``)
    content: str | None
    variables: list[str] = Field(default_factory=list)
    #: branch whose head this view shows, when it was read from a branch
    branch: str | None = None
    updated_at: datetime | None = None
    kind: Literal["text", "chat"] = "text"
    messages: list[dict[str, Any]] | None = None
    config: dict[str, Any] = Field(default_factory=dict)

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
    #: ``text`` or ``chat``; a chat prompt renders with :meth:`messages`
    kind: Literal["text", "chat"] = "text"
    #: the chat messages as stored (``{"role", "content"}`` or ``{"placeholder"}``)
    chat_messages: list[dict[str, Any]] | None = None
    #: the model configuration (``{}`` when none): model, temperature, tools …
    config: dict[str, Any] = Field(default_factory=dict)
    # The parsed text and variable schema, kept after the first render: an application renders
    # the same prompt many times, and parsing costs more than rendering (see _Compiled).
    _compiled: _Compiled | None = PrivateAttr(default=None)

    def text(self, strict: bool = True, **values: Any) -> str:
        """Render with ``values`` (see :func:`promptver.templating.render`).

        Raises:
            RenderError: a missing or unknown variable, or a chat prompt (use :meth:`messages`).
        """
        return self.render_text(values, strict=strict)

    def render_text(self, values: Mapping[str, Any], *, strict: bool = True) -> str:
        """:meth:`text` with the values as a mapping (any variable name, ``strict`` included)."""
        if self.kind == "chat":
            from promptver.errors import RenderError

            raise RenderError(
                f"'{self.name}' is a chat prompt: render it with messages(), openai() or "
                "anthropic(), not text()"
            )
        c = self._compiled
        if c is None or c.content is not self.content or c.metadata != self.metadata:
            c = self._compiled = _Compiled.of(self.content, self.metadata)
        return render(
            c.tokens, values, strict=strict, schema=c.schema, max_chars=self.max_render_chars
        )

    def messages(self, strict: bool = True, **values: Any) -> list[dict[str, Any]]:
        """The conversation with ``values`` filled in: ``[{"role", "content"}, …]``.

        A placeholder takes the list of messages given under its name (``history=[…]``). A text
        prompt gives one ``user`` message.

        Raises:
            RenderError: a missing variable or message list (named), an unknown variable while
                ``strict``, or a history item that is not a message (its index).
        """
        return self.render_messages(values, strict=strict)

    def render_messages(
        self, values: Mapping[str, Any], *, strict: bool = True
    ) -> list[dict[str, Any]]:
        """:meth:`messages` with the values (and message lists) as a mapping."""
        if self.kind != "chat":
            return text_as_messages(self.render_text(values, strict=strict))
        c = self._compiled
        if c is None or c.chat is not self.chat_messages or c.metadata != self.metadata:
            c = self._compiled = _Compiled.of_chat(self.chat_messages or [], self.metadata)
        return render_messages(
            c.tokens, values, strict=strict, schema=c.schema, max_chars=self.max_render_chars
        )

    def openai(self, strict: bool = True, **values: Any) -> dict[str, Any]:
        """Keyword arguments for ``client.chat.completions.create`` (OpenAI SDK): ``model``,
        ``messages`` and each configured parameter (and the keys of ``config.extra``)."""
        return self.payload("openai", values, strict=strict)

    def anthropic(self, strict: bool = True, **values: Any) -> dict[str, Any]:
        """Keyword arguments for ``client.messages.create`` (Anthropic SDK): system messages
        in ``system``, tools as ``input_schema`` tools, ``stop`` as ``stop_sequences``."""
        return self.payload("anthropic", values, strict=strict)

    def payload(
        self, api: Literal["openai", "anthropic"], values: Mapping[str, Any], *, strict: bool = True
    ) -> dict[str, Any]:
        """:meth:`openai` or :meth:`anthropic` with the values as a mapping."""
        from promptver.chat import anthropic_payload, openai_payload

        build = openai_payload if api == "openai" else anthropic_payload
        return build(self.render_messages(values, strict=strict), self.config)

    def prepare(self) -> Prompt:
        """Parse the text now rather than at the first :meth:`text` (copies share the result).

        Raises:
            TemplateSyntaxError: the text is not a valid template.
        """
        if self._compiled is None:
            self._compiled = (
                _Compiled.of_chat(self.chat_messages or [], self.metadata)
                if self.kind == "chat"
                else _Compiled.of(self.content, self.metadata)
            )
        return self


class _Compiled:
    """A prompt text parsed once, with its variable schema.

    It is a cache, not state: it compares equal to any other ``_Compiled`` (and to the ``None`` of
    a prompt never rendered) so that two prompts with the same fields stay equal whether or not
    they were rendered. A new one replaces it
    whenever the content or metadata change (copies made with ``model_copy`` share it safely,
    since it is never modified).
    """

    __slots__ = ("chat", "content", "metadata", "schema", "tokens")

    def __init__(
        self,
        content: str | None,
        metadata: dict[str, Any],
        tokens: Any,
        schema: dict[str, Any],
        chat: list[dict[str, Any]] | None = None,
    ) -> None:
        self.content = content
        self.metadata = metadata
        self.tokens = tokens
        self.schema = schema
        self.chat = chat

    @classmethod
    def of(cls, content: str, metadata: dict[str, Any]) -> _Compiled:
        import copy

        from promptver.errors import PromptverError

        schema, problems = parse_schema(metadata)
        if problems:  # refused when committed; reachable only through a hand-built Prompt
            raise PromptverError(f"variable schema is invalid: {problems[0]}")
        return cls(content, copy.deepcopy(metadata), parse(content), schema)

    @classmethod
    def of_chat(cls, messages: list[dict[str, Any]], metadata: dict[str, Any]) -> _Compiled:
        import copy

        from promptver.chat import CompiledChat
        from promptver.errors import PromptverError

        schema, problems = parse_schema(metadata)
        if problems:  # refused when committed; reachable only through a hand-built Prompt
            raise PromptverError(f"variable schema is invalid: {problems[0]}")
        return cls(None, copy.deepcopy(metadata), CompiledChat(messages), schema, chat=messages)

    def __eq__(self, other: object) -> bool:
        return other is None or isinstance(other, _Compiled)

    __hash__ = None  # type: ignore[assignment]


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
    #: guardrails only: the relative non-inferiority margin (0.05 = at most 5 % worse)
    margin: float | None = None


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
    #: CUPED: days before the start whose events give each user's covariate (None: off)
    cuped_lookback_days: int | None = None
    #: which rule names the winner: the Holm-adjusted p-value, or the chance to win
    engine: Literal["frequentist", "bayesian"] = "frequentist"
    #: "fixed": the configured split; "bandit": Thompson sampling moves traffic (hourly)
    allocation: Literal["fixed", "bandit"] = "fixed"

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


# ---- version control -------------------------------------------------------------------------


class MergeResult(Model):
    """What a merge did. ``as_contract()`` is the ``merge --json`` shape."""

    template_id: str
    target: str
    source: str
    commit: str
    version: str | None = None
    fast_forward: bool = False
    #: the target already contained the source: nothing was written
    up_to_date: bool = False
    #: the merge base(s): one lowest common ancestor, or several for criss-cross histories
    merge_bases: list[str] = Field(default_factory=list)
    #: conflicting hunks the caller resolved with the resolution text
    conflicts_resolved: int = 0

    def as_contract(self) -> dict[str, Any]:
        return {"commit": self.commit, "version": self.version, "fast_forward": self.fast_forward}


class FsckProblem(Model):
    """One inconsistency found by ``fsck``."""

    kind: str
    template_id: str | None = None
    template: str | None = None
    object: str
    message: str


class FsckReport(Model):
    ok: bool
    problems: list[FsckProblem] = Field(default_factory=list)
    templates: int = 0
    commits: int = 0
    branches: int = 0
    versions: int = 0


class GraphRow(Model):
    """One commit of a template's history, placed in a lane for drawing the graph.

    Rows are newest first; ``lane`` 0 is ``main``; ``lane_name`` is the branch whose first-parent
    chain holds the commit (empty for commits of deleted branches).
    """

    row: int
    commit: str
    parents: list[str]
    parent_rows: list[int]
    parent_lanes: list[int]
    lane: int
    lane_name: str
    version: str | None
    message: str
    author: str
    created_at: datetime
    branches: list[str] = Field(default_factory=list)


# ---- deployments -----------------------------------------------------------------------------

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


# ---- metrics -------------------------------------------------------------------------------


class MetricEvent(Model):
    """One stored event (one LLM call), as the Metrics screen lists them."""

    event_id: str | None = None
    import_id: str | None = None
    timestamp: datetime
    template_id: str
    template: str
    user_id: str
    experiment_id: str | None = None
    variant: str | None = None
    version: str | None = None
    commit: str | None = None
    environment: str | None = None
    latency_ms: float | None = None
    success: bool | None = None
    error: bool | None = None
    quality_score: float | None = None
    cost_usd: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    custom: dict[str, float] = Field(default_factory=dict)


class ImportRecord(Model):
    """One CSV import: which file (name and SHA-256), what landed, who and when."""

    id: str
    file_name: str
    sha256: str
    rows_imported: int
    rows_skipped_duplicate: int
    has_event_ids: bool
    created_at: datetime
    created_by: str
    #: events of this import still stored (retention may have purged some)
    events_present: int | None = None


class CsvWarning(Model):
    """Something about an accepted file the importer should know (the file is still imported).

    ``code``: ``outside_window`` (older than the screens' default window), ``retention`` (older
    than the retention setting), ``before_deployment`` (a version's events from before it was
    first deployed there, or never deployed), ``custom_near_builtin`` (a custom metric column
    named like a built-in one). ``rows`` counts the events concerned (0 for a column).
    """

    code: str
    message: str
    rows: int = 0
    column: str | None = None


class ImportProblem(Model):
    """One problem of a refused file, as stored and downloaded: ``line N, column NAME: …``."""

    line: int | None = None
    column: str | None = None
    message: str
    code: str | None = None


class ImportAttempt(Model):
    """A refused import, kept in its own log (the refused file wrote nothing else)."""

    id: int
    file_name: str
    sha256: str | None
    size_bytes: int | None
    attempted_at: datetime
    attempted_by: str
    reason: str
    total_problems: int
    problems: list[ImportProblem] = Field(default_factory=list)


class ImportResult(Model):
    """What ``metrics import`` reports (``contract()`` is the contract's JSON shape)."""

    import_id: str
    file_name: str
    sha256: str
    rows_imported: int
    rows_skipped_duplicate: int
    rows_in_file: int
    columns: list[str]
    custom_metrics: list[str] = Field(default_factory=list)
    first: datetime | None = None
    last: datetime | None = None
    templates: list[str] = Field(default_factory=list)
    template_ids: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    warnings: list[CsvWarning] = Field(default_factory=list)

    def contract(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "rows_imported": self.rows_imported,
            "rows_skipped_duplicate": self.rows_skipped_duplicate,
        }


class CsvColumn(Model):
    """A column of an uploaded CSV and the role it plays (or why it is refused)."""

    position: int
    name: str
    role: Literal["required", "key", "metric", "custom metric", "dimension", "refused"]
    type: str
    description: str = ""


class CsvPreview(Model):
    """The header of a CSV read the way the import reads it, and its first rows as text."""

    file_name: str
    size_bytes: int
    columns: list[CsvColumn]
    rows: list[list[str]]
    problems: list[str] = Field(default_factory=list)
    #: the physical line each of ``rows`` starts on (the header is line 1)
    lines: list[int] = Field(default_factory=list)


class MetricStat(Model):
    count: int
    mean: float | None


class MetricsSummary(Model):
    """``metrics summary``: events, users, first and last timestamps, count and mean per metric."""

    events: int
    users: int
    first: datetime | None
    last: datetime | None
    metrics: dict[str, MetricStat]

    def contract(self) -> dict[str, Any]:
        from datetime import UTC  # local: keeps the shared import block of this file untouched

        def iso(d: datetime | None) -> str | None:
            return None if d is None else d.astimezone(UTC).isoformat()

        return {
            "events": self.events,
            "users": self.users,
            "first": iso(self.first),
            "last": iso(self.last),
            "metrics": {k: {"count": v.count, "mean": v.mean} for k, v in self.metrics.items()},
        }


class PerformanceFigures(Model):
    """Figures of one group of events (a template, version, variant, environment) in a window.

    Rates and means are over the events that carry the metric; percentiles interpolate linearly
    between order statistics (``quantile_cont``).
    """

    template: str | None = None
    template_id: str | None = None
    version: str | None = None
    experiment_id: str | None = None
    variant: str | None = None
    environment: str | None = None
    requests: int
    users: int
    latency_avg: float | None = None
    latency_p50: float | None = None
    latency_p95: float | None = None
    success_rate: float | None = None
    error_rate: float | None = None
    quality_mean: float | None = None
    cost_per_request: float | None = None
    cost_total: float | None = None
    tokens_in_avg: float | None = None
    tokens_out_avg: float | None = None
    tokens_in_total: int | None = None
    tokens_out_total: int | None = None
    first: datetime | None = None
    last: datetime | None = None


class PurgeResult(Model):
    """``metrics purge``: events older than the cutoff (counted on a dry run, else deleted)."""

    dry_run: bool
    older_than_days: int
    cutoff: datetime
    events: int
    deleted: int = 0


class MetricsWritten(Model):
    """Told to metrics listeners after an import or a tracking flush was committed."""

    source: Literal["import", "track"]
    rows: int
    import_id: str | None = None
    template_ids: list[str] = Field(default_factory=list)
    first: datetime | None = None
    last: datetime | None = None
    written_at: datetime


# ---- experiment results (statistics engine) ---------------------------------------------------
# ``ExperimentResults.model_dump()`` is a superset of the contract's results object: the contract's
# keys come first, in its order; everything after them is an extra.


class VariantResult(Model):
    """One variant's figures for one metric (mean per event, its spread and CI)."""

    name: str
    #: users with at least one event in the window
    users: int
    #: events with a value of this metric
    events: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    # extras
    weight: float
    #: users with at least one value of this metric (the n of the inference)
    metric_users: int
    se: float | None = None
    bootstrap_ci_low: float | None = None
    bootstrap_ci_high: float | None = None
    message: str | None = None


class Inference(Model):
    """The p-value and intervals of one testing method (fixed-horizon or sequential)."""

    p_value: float | None
    ci_low: float | None
    ci_high: float | None
    relative_lift_ci_low: float | None
    relative_lift_ci_high: float | None


class BayesianResult(Model):
    """The Bayesian readout of one comparison: normal posterior of the relative lift under a
    flat prior (GrowthBook's effect-Bayesian test)."""

    #: posterior probability that the treatment is better in the metric's good direction
    chance_to_win: float | None
    #: posterior E[max(0, −lift)] with the lift signed so that positive is good (a fraction)
    expected_loss: float | None
    #: the 1 − alpha credible interval of the relative lift
    credible_low: float | None
    credible_high: float | None
    # extras: the posterior N(mean, sd²) of the relative lift
    posterior_mean: float | None = None
    posterior_sd: float | None = None


class CupedResult(Model):
    """The CUPED (regression-adjusted) comparison: treatment − control of Ȳ − θX̄."""

    theta: float | None
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    variance_reduction: float | None
    # extras
    se: float | None = None
    df: float | None = None
    p_value_adjusted: float | None = None
    significant: bool = False
    relative_lift: float | None = None
    #: users per arm with events in the lookback window (the others have X = 0)
    users_with_history: dict[str, int] = Field(default_factory=dict)
    message: str | None = None


class ComparisonResult(Model):
    """Treatment vs control on one metric."""

    control: str
    treatment: str
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    relative_lift: float | None
    p_value: float | None
    p_value_adjusted: float | None
    significant: bool
    effect_size: float | None
    bootstrap_ci_low: float | None
    bootstrap_ci_high: float | None
    # extras
    #: "two-sided", or "greater"/"less" for a guardrail's one-sided test in its bad direction
    alternative: Literal["two-sided", "greater", "less"] = "two-sided"
    method: Literal["fixed-horizon", "sequential"] = "fixed-horizon"
    #: level of ci_low/ci_high and the bootstrap intervals (1 − 2·alpha for one-sided tests)
    confidence: float = 0.95
    se: float | None = None
    df: float | None = None
    t_stat: float | None = None
    relative_lift_ci_low: float | None = None
    relative_lift_ci_high: float | None = None
    bootstrap_bca_ci_low: float | None = None
    bootstrap_bca_ci_high: float | None = None
    bootstrap_relative_lift_ci_low: float | None = None
    bootstrap_relative_lift_ci_high: float | None = None
    #: "better"/"worse" when significant (in the metric's direction), else "inconclusive"
    verdict: Literal["better", "worse", "inconclusive", "not tested"] = "not tested"
    fixed_horizon: Inference | None = None
    sequential: Inference | None = None
    message: str | None = None
    #: the Bayesian readout (every comparison; None when the lift is undefined)
    bayesian: BayesianResult | None = None
    #: the CUPED-adjusted comparison (experiments with ``cuped``)
    cuped: CupedResult | None = None
    #: guardrails with a margin: the one-sided 1 − alpha bound of the relative lift stays
    #: within the margin on the bad side (None: no margin, or not computable)
    non_inferior: bool | None = None
    margin: float | None = None
    non_inferiority_bound: float | None = None


class QuantileVariant(Model):
    name: str
    events: int
    value: float | None
    bootstrap_ci_low: float | None = None
    bootstrap_ci_high: float | None = None


class QuantileComparison(Model):
    control: str
    treatment: str
    diff: float | None
    bootstrap_ci_low: float | None = None
    bootstrap_ci_high: float | None = None


class QuantileResult(Model):
    """A quantile of a metric per variant (p95 latency) with bootstrap CIs over users."""

    metric: str
    quantile: float
    #: "exact": resampled event values; "binned": fine histograms around the quantile (large data)
    method: Literal["exact", "binned"]
    variants: list[QuantileVariant]
    comparisons: list[QuantileComparison]
    message: str | None = None


class PowerResult(Model):
    """Power and sample size of one comparison."""

    treatment: str
    alpha: float
    power: float
    #: per-user standard deviation implied by the standard error
    sigma: float | None
    #: minimum detectable effect (absolute, and relative to the control mean) at the current sample
    mde: float | None
    mde_relative: float | None
    target_lift: float | None
    users_needed_control: int | None
    users_needed_treatment: int | None
    users_control: int
    users_treatment: int
    #: share of the experiment's minimum_sample_size reached by the smaller of the two arms
    progress: float
    #: days until users_needed at the rate seen so far (None when unknown or already reached)
    days_to_target: float | None = None
    message: str | None = None


class WinsorInfo(Model):
    percentile: float
    cap: float | None


class GuardrailCheck(Model):
    """A guardrail metric, one treatment: one-sided test in the metric's bad direction."""

    metric: str
    direction: Literal["higher", "lower"]
    treatment: str
    diff: float | None
    relative_lift: float | None
    p_value: float | None
    worse: bool
    message: str | None = None
    #: "worse" (significantly, one-sided), "ok" (tested, not worse), "not tested" (too few users
    #: or no events yet) or "cannot compute" (the sums overflowed: it may be worse, so the
    #: treatment cannot be the winner); with a margin: "within margin" or "worse than allowed"
    status: Literal[
        "ok", "worse", "not tested", "cannot compute", "within margin", "worse than allowed"
    ] = "not tested"
    #: non-inferiority (guardrails with a margin): the margin, the one-sided 1 − alpha bound of
    #: the relative lift on the bad side, and whether the bound stays within the margin
    margin: float | None = None
    bound: float | None = None
    non_inferior: bool | None = None


class SRMResult(Model):
    p_value: float | None
    ok: bool
    # extras
    chi2: float | None = None
    df: int = 0
    observed: dict[str, int] = Field(default_factory=dict)
    expected: dict[str, float] = Field(default_factory=dict)
    threshold: float = 0.001


class BootstrapInfo(Model):
    resamples: int
    seed: int
    #: "user": users resampled exactly; "bucket": hashed buckets of users (large experiments)
    unit: Literal["user", "bucket"]
    units: dict[str, int] = Field(default_factory=dict)


class MetricResult(Model):
    """Everything about one metric of an experiment."""

    metric: str
    direction: Literal["higher", "lower"]
    role: Literal["primary", "secondary", "guardrail"]
    binary: bool
    variants: list[VariantResult]
    comparisons: list[ComparisonResult]
    power: list[PowerResult] = Field(default_factory=list)
    quantile: QuantileResult | None = None
    winsorized: WinsorInfo | None = None
    uncapped: MetricResult | None = None
    messages: list[str] = Field(default_factory=list)


class ExperimentResults(Model):
    """The contract's results object (first fields) plus the engine's extras."""

    experiment_id: str
    status: str
    metric: str
    alpha: float
    variants: list[VariantResult]
    comparisons: list[ComparisonResult]
    srm: SRMResult
    sample_size_ok: bool
    winner: str | None
    # extras
    direction: Literal["higher", "lower"]
    role: Literal["primary", "secondary", "guardrail"]
    binary: bool
    method: Literal["fixed-horizon", "sequential"]
    primary_metric: str
    minimum_sample_size: int
    window_start: datetime | None
    window_end: datetime | None
    computed_at: datetime
    bootstrap: BootstrapInfo
    power: list[PowerResult] = Field(default_factory=list)
    quantile: QuantileResult | None = None
    winsorized: WinsorInfo | None = None
    uncapped: MetricResult | None = None
    guardrails: list[GuardrailCheck] = Field(default_factory=list)
    winner_reason: str = ""
    #: what to know about these figures: the experiment's notes, then the selected metric's
    messages: list[str] = Field(default_factory=list)
    #: notes about the experiment as a whole (no users yet, SRM, ignored events …)
    experiment_messages: list[str] = Field(default_factory=list)
    #: every metric of the experiment (the selected one included)
    metrics: list[MetricResult] = Field(default_factory=list)
    #: the winner rule: "frequentist" (adjusted p-value) or "bayesian" (chance to win)
    engine: Literal["frequentist", "bayesian"] = "frequentist"
    #: CUPED's lookback in days (None: off); the winner rule then uses the adjusted results
    cuped_lookback_days: int | None = None
    #: allocation: bandit — the split's history and the period-weighted comparisons (None: fixed)
    bandit: BanditResult | None = None

    def for_metric(self, name: str) -> MetricResult:
        """The result of one metric.

        Raises:
            KeyError: the experiment has no such metric.
        """
        for m in self.metrics:
            if m.metric == name:
                return m
        raise KeyError(name)

    def select(self, name: str) -> ExperimentResults:
        """The same results viewed on another metric (no recomputation)."""
        m = self.for_metric(name)
        return self.model_copy(
            update={
                "metric": m.metric,
                "direction": m.direction,
                "role": m.role,
                "binary": m.binary,
                "variants": m.variants,
                "comparisons": m.comparisons,
                "power": m.power,
                "quantile": m.quantile,
                "winsorized": m.winsorized,
                "uncapped": m.uncapped,
                "messages": [*self.experiment_messages, *m.messages],
            }
        )


class BanditWeights(Model):
    """One split of a bandit: from ``at`` on (period ``period``; 0 = the configured split)."""

    period: int
    at: datetime | None
    weights: dict[str, float]


class BanditComparison(Model):
    """A treatment against the control, period-weighted (unbiased under a moving split)."""

    treatment: str
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_value_adjusted: float | None = None
    significant: bool = False


class BanditResult(Model):
    """allocation: bandit — the split over time and the period-weighted comparisons."""

    weights: list[BanditWeights]
    comparisons: list[BanditComparison]
    periods_used: int
    caveat: str


class SegmentResult(ExperimentResults):
    """The results object computed on one segment's events (``value`` of the dimension; None:
    the events without it)."""

    value: str | None


class HeterogeneityResult(Model):
    """Does the effect differ across segments? Cochran's Q over the segments' differences."""

    metric: str
    treatment: str
    segments: int
    q: float | None
    df: int
    p_value: float | None
    #: Higgins' I²: the share of the spread of the effects beyond chance (0 to 1)
    i2: float | None
    message: str | None = None


class SegmentedResults(Model):
    """``experiment results --by dim_x``: the results per segment, Holm across all of them."""

    by: str
    segments: list[SegmentResult]
    # extras
    experiment_id: str
    metric: str
    alpha: float
    #: comparisons Holm adjusts over, per metric (segments × treatments)
    adjusted_over: int = 0
    heterogeneity: list[HeterogeneityResult] = Field(default_factory=list)
    messages: list[str] = Field(default_factory=list)


# ---- trends and alerts ------------------------------------------------------------------------


class TrendPoint(Model):
    """One time bucket of one series and metric: the value, its CI, the events behind it."""

    bucket: datetime
    #: events with a value of the metric in the bucket
    events: int
    #: users with an event in the bucket (estimated by HyperLogLog when ``TrendReport.clusters``)
    users: int
    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    #: the bucket has too few events to enter the trend fit
    thin: bool = False


class TrendFit(Model):
    """The trend of one metric in one series: a robust straight line through its buckets."""

    #: "rlm-huber" (Huber M-estimator), "ols" (fallback), "exact", "constant", or None (no fit)
    method: str | None = None
    #: start of the buckets the line was fitted on (a deployment, or the period start)
    fit_start: datetime | None = None
    #: first and last bucket in the fit, and their mean time (where the line is at ``level``)
    first_bucket: datetime | None = None
    last_bucket: datetime | None = None
    center: datetime | None = None
    buckets: int = 0
    slope_per_day: float | None = None
    slope_ci_low: float | None = None
    slope_ci_high: float | None = None
    p_value: float | None = None
    #: the fitted value at the mean bucket time: the level the percentages refer to
    level: float | None = None
    pct_per_day: float | None = None
    pct_ci_low: float | None = None
    pct_ci_high: float | None = None
    significant: bool = False
    #: "worse", "better", "stable" (not significant) or "unknown" (no fit)
    verdict: Literal["worse", "better", "stable", "unknown"] = "unknown"
    #: buckets the robust fit down-weighted to less than half (outliers)
    outliers: int = 0
    #: the deployment the fit starts at, when it starts at one
    since_version: str | None = None
    since_environment: str | None = None
    since_at: datetime | None = None
    message: str | None = None


class TrendSeries(Model):
    """One template (and one version, variant or environment when grouped) and one metric."""

    template_id: str
    template: str
    #: the grouping value ("1.2.0", "concise", "production"); None without grouping
    group: str | None = None
    metric: str
    label: str
    unit: str
    direction: Literal["higher", "lower"]
    points: list[TrendPoint] = Field(default_factory=list)
    fit: TrendFit


class DeploymentMarker(Model):
    """A deployment or rollback inside the period (drawn as a vertical rule)."""

    deployment_id: int
    template_id: str
    template: str
    environment: str
    action: Literal["deploy", "rollback"]
    version: str | None
    commit: str
    at: datetime
    replaced_version: str | None = None
    author: str = ""
    note: str = ""


class ChangeMetric(Model):
    """One metric before and after a deployment (users as the unit, Welch / delta method)."""

    metric: str
    label: str
    direction: Literal["higher", "lower"]
    before: float | None
    after: float | None
    events_before: int
    events_after: int
    users_before: int = 0
    users_after: int = 0
    diff: float | None = None
    relative_change: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    significant: bool = False
    verdict: Literal["worse", "better", "inconclusive", "not tested"] = "not tested"
    message: str | None = None


class ChangePoint(Model):
    """Metrics in the windows before and after one deployment (observational, not randomised)."""

    deployment: DeploymentMarker
    before_start: datetime
    after_end: datetime
    metrics: list[ChangeMetric] = Field(default_factory=list)
    observational: bool = True


class TrendReport(Model):
    """Everything the Trends screen and ``promptver trends`` show for a selection."""

    templates: list[str]
    metrics: list[str]
    period: str
    start: datetime
    end: datetime
    bucket: Literal["hour", "day", "week"]
    by: Literal["version", "variant", "environment"] | None = None
    environment: str | None = None
    alpha: float
    min_bucket_events: int
    #: None: intervals treat each user as a unit; a number: users were pooled into that many
    #: hashed clusters per bucket (periods with many events; see docs/trends.md)
    clusters: int | None = None
    series: list[TrendSeries] = Field(default_factory=list)
    deployments: list[DeploymentMarker] = Field(default_factory=list)
    change_points: list[ChangePoint] = Field(default_factory=list)
    #: what is live now in each environment of each template (the latest deployment or
    #: rollback up to the time of the analysis, which may be after ``end``): recommendations
    #: never suggest rolling back a version that is no longer live
    live: list[DeploymentMarker] = Field(default_factory=list)
    recommendations: list[str] = Field(default_factory=list)
    computed_at: datetime


Comparator = Literal[">", ">=", "<", "<="]


class AlertRule(Model):
    """A condition on a metric over a window of events, checked after imports and flushes."""

    id: int
    name: str = ""
    #: latency_avg, latency_p95, error_rate, success_rate, quality_score, cost_per_request,
    #: tokens_in, tokens_out, or custom:NAME
    metric: str
    comparator: Comparator
    threshold: float
    #: the window as written (``1h``, ``24h``, ``7d``) and its length in seconds
    window: str
    window_seconds: int
    min_events: int
    #: None: every template ("*"), each evaluated on its own
    template_id: str | None = None
    template: str | None = None
    #: None: events of any environment
    environment: str | None = None
    enabled: bool = True
    created_at: datetime
    created_by: str = ""
    updated_at: datetime
    updated_by: str = ""

    def describe(self) -> str:
        """``p95 latency > 1500 over 24h (qa-basic, production, ≥ 20 events)``."""
        from promptver.metric_defs import metric_label  # local: models stay import-light

        where = [self.template or "every template", self.environment or "any environment"]
        return (
            f"{metric_label(self.metric)} {self.comparator} {self.threshold:g} over "
            f"{self.window} ({', '.join(where)}, ≥ {self.min_events} events)"
        )


class Alert(Model):
    """A rule that fired for one template in one window (stored once per rule and window)."""

    id: int
    rule_id: int
    #: the rule still exists (it may have been deleted since)
    rule_exists: bool = True
    template_id: str
    template: str
    window_start: datetime
    window_end: datetime
    value: float
    events: int
    fired_at: datetime
    source: Literal["check", "import", "track"]
    rule_name: str = ""
    metric: str
    comparator: Comparator
    threshold: float
    window: str
    min_events: int
    environment: str | None = None
    #: "open" until someone acknowledges it
    status: Literal["open", "acknowledged"] = "open"
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    #: the window had ended before the rule was created: found looking back (a check with
    #: ``since``, an import of old events), never watched live by the rule (False when the
    #: rule was deleted since)
    backfill: bool = False


class AlertCheck(Model):
    """What one evaluation did: rules and windows looked at, alerts fired now."""

    source: Literal["check", "import", "track"]
    evaluated_at: datetime
    rules: int
    windows: int
    fired: list[Alert] = Field(default_factory=list)
    #: windows that crossed the threshold again but had fired before (not stored twice)
    already_fired: int = 0


class AlertGroup(Model):
    """The alerts one rule fired for one template: how many, the latest window, and what was
    live in the rule's environment then and now (the deployment to look at or roll back)."""

    rule_id: int
    rule_exists: bool = True
    template_id: str
    template: str
    #: the alerts in the group (those matching the status asked for), newest window first
    alert_ids: list[int]
    #: the open ones among them
    open_ids: list[int] = Field(default_factory=list)
    #: how many of them were stored by a backfill
    backfill: int = 0
    first_window: datetime
    #: the alert of the latest window (its condition, value and window)
    latest: Alert
    #: the environment the deployments below are in: the rule's, or for a rule on any
    #: environment the last one of the promotion path
    environment: str | None = None
    #: what was live there when the latest window began, and what is live now
    deployed: DeploymentMarker | None = None
    live_now: DeploymentMarker | None = None

    @property
    def count(self) -> int:
        return len(self.alert_ids)


# ---- the home screen's overview ----------------------------------------------------------------


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

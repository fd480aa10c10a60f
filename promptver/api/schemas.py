"""Request and response bodies of the HTTP API that are not already core models.

Responses reuse the core's models (``Template``, ``Deployment``, ``Experiment``,
``ExperimentResults``) so that the API and the CLI's ``--json`` output have the same shapes.
Request bodies check types only; the services check meaning (names, refs, ranges) with the
same rules and messages as the CLI, so a rule is never written twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from promptver.models.experiments import Experiment

#: a JSON value that can fill a placeholder or a metric cell
Scalar = str | int | float | bool | None


class ApiModel(BaseModel):
    # strict: a JSON value of another type is refused, not converted (0 is not false, "50" is
    # not a number): what the OpenAPI document says is what the server accepts
    model_config = ConfigDict(extra="forbid", strict=True)


# ---- problems ---------------------------------------------------------------------------------


class ProblemItem(BaseModel):
    """One problem of a refused request: where (``field``, ``index``, ``line`` …) and what."""

    model_config = ConfigDict(extra="allow")

    message: str
    field: str | None = None
    line: int | None = None
    column: int | None = None
    offset: int | None = None
    code: str | None = None
    severity: str = "error"


class ProblemDetails(BaseModel):
    """An error, as RFC 9457 problem details (``application/problem+json``).

    ``detail`` is the message the CLI prints after ``error:``; ``problems`` lists each problem
    of a refused input with its field (and item index or line where it has one).
    """

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="a URN naming the kind of problem")
    title: str
    status: int
    detail: str
    instance: str | None = Field(None, description="the request path")
    problems: list[ProblemItem] | None = None


# ---- templates --------------------------------------------------------------------------------


class TemplateCreate(ApiModel):
    """A new template; its text becomes version 1.0.0 on ``main``."""

    name: str = Field(description="letters, digits, '-', '_', '.' and '/' (1-100 characters)")
    content: str | None = Field(None, description="a text template's text; placeholders are {name}")
    kind: Literal["text", "chat"] | None = Field(
        None, description="text (content) or chat (messages); default: from what is given"
    )
    messages: list[dict[str, Any]] | None = Field(
        None,
        description="a chat template's messages: {role, content} or {placeholder: NAME}",
    )
    config: dict[str, Any] | None = Field(
        None,
        description="model configuration: provider, model, temperature, top_p, max_tokens, "
        "stop, seed, response_format, tools, extra",
    )
    description: str = ""
    category: str = ""
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] | None = Field(
        None, description="e.g. a variable schema under 'variables'"
    )
    author: str | None = Field(None, description="who (recorded); default 'api'")
    message: str | None = Field(None, description="commit message")


class TemplateUpdate(ApiModel):
    """A new commit: a new text, messages, config and/or metadata (``null`` keeps the current
    one; ``config: {}`` removes the model configuration)."""

    content: str | None = None
    kind: Literal["text", "chat"] | None = None
    messages: list[dict[str, Any]] | None = None
    config: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    branch: str = Field("main", description="branch to commit on; commits on main get a version")
    bump: Literal["major", "minor", "patch"] | None = Field(
        None,
        description="version part to bump on main (default: patch when only the metadata "
        "changes, else minor)",
    )
    expected_head: str | None = Field(
        None, description="refuse (409) if the branch head is no longer this commit"
    )
    author: str | None = None
    message: str | None = None


class TemplateSummary(ApiModel):
    """The contract's ``template create/update --json`` shape."""

    id: str
    name: str
    version: str | None
    commit: str
    variables: list[str]


# ---- rendering --------------------------------------------------------------------------------


class RenderRequest(ApiModel):
    """What to render: the head of ``main``, a ``version`` (any ref), or what is live in ``env``
    (as ``get_prompt`` serves it, routing ``user_id`` into a running experiment)."""

    variables: dict[str, Scalar] = Field(default_factory=dict)
    version: str | None = Field(None, description="a version, branch or commit prefix")
    env: str | None = Field(None, description="an environment: render what is deployed there")
    user_id: str | None = Field(None, description="with env: the user asking")
    strict: bool = Field(True, description="refuse variables the template does not use")
    history: list[dict[str, Any]] | dict[str, list[dict[str, Any]]] | None = Field(
        None,
        description="chat prompts: the messages for the placeholder (a list), or "
        "{PLACEHOLDER: [messages]} when there are several",
    )
    format: Literal["openai", "anthropic"] | None = Field(
        None,
        description="answer exactly the keyword arguments of that SDK's create call instead",
    )


class RenderResponse(ApiModel):
    """The CLI's ``render --json`` shape: ``text`` for a text prompt; ``messages`` and
    ``config`` for a chat prompt (with ``format``, the SDK payload instead)."""

    text: str | None = None
    messages: list[dict[str, Any]] | None = None
    config: dict[str, Any] | None = None
    version: str | None
    commit: str
    variant: str | None


class LivePromptOut(ApiModel):
    """What ``get_prompt(name, env, user_id)`` returns in process: the version live in ``env``
    (or the experiment variant routed to ``user_id``), unrendered. A remote client
    (:class:`promptver.client.Client`) builds its ``Prompt`` from it and renders locally."""

    template_id: str
    name: str
    version: str | None = Field(description="null for a commit off main (a branch variant)")
    commit: str
    content: str = Field(description="a text prompt's text (placeholders are {name})")
    variables: list[str]
    metadata: dict[str, Any]
    environment: str | None
    user_id: str | None
    variant: str | None = Field(description="the experiment variant routed to user_id, if any")
    experiment_id: str | None
    max_render_chars: int
    kind: Literal["text", "chat"]
    chat_messages: list[dict[str, Any]] | None = Field(
        description="a chat prompt's messages as stored"
    )
    config: dict[str, Any] = Field(description="the model configuration ({} when none)")


# ---- deployments ------------------------------------------------------------------------------


class DeployRequest(ApiModel):
    version: str = Field(description="a version, commit prefix or branch")
    env: str
    note: str = ""
    force: bool = Field(False, description="override the promotion-order rule (needs reason)")
    reason: str | None = None
    author: str | None = None


class RollbackRequest(ApiModel):
    env: str
    to: str | None = Field(
        None, description="restore this version (default: the one live before the current one)"
    )
    note: str = ""
    author: str | None = None


# ---- experiments ------------------------------------------------------------------------------


class VariantIn(ApiModel):
    name: str
    ref: str = Field(description="a version, commit prefix or branch")
    weight: float


class MetricIn(ApiModel):
    name: str
    direction: Literal["higher", "lower"] | None = None
    guardrail: bool | None = None
    margin: float | None = Field(None, description="guardrails: relative non-inferiority margin")


class GuardrailIn(ApiModel):
    name: str
    direction: Literal["higher", "lower"] | None = None
    margin: float | None = Field(
        None, description="relative non-inferiority margin (0.05 = at most 5 % worse)"
    )


class CupedIn(ApiModel):
    lookback_days: int = Field(description="days before the start that give each covariate")


class ExperimentCreate(ApiModel):
    """The fields of an experiment file (see docs/experiments.md); the template is the one in
    the path. The first variant is the control, the first metric the primary one."""

    name: str
    description: str | None = None
    hypothesis: str | None = None
    template: str | None = Field(None, description="optional; must name the template in the path")
    environment: str | None = Field(None, description="default production")
    variants: list[VariantIn]
    metrics: list[str | MetricIn]
    guardrails: list[str | GuardrailIn] | None = None
    minimum_sample_size: int | None = None
    alpha: float | None = None
    salt: str | None = None
    coverage: float | None = None
    start: str | None = Field(None, description="ISO 8601; no offset means UTC")
    end: str | None = Field(None, description="ISO 8601; no offset means UTC")
    cuped: CupedIn | None = Field(None, description="CUPED variance reduction")
    engine: Literal["frequentist", "bayesian"] | None = Field(
        None, description="the winner rule (default frequentist)"
    )
    allocation: Literal["fixed", "bandit"] | None = Field(
        None, description="bandit: Thompson sampling moves traffic to the best variant (hourly)"
    )
    author: str | None = None


class ExperimentStart(ApiModel):
    author: str | None = None


class ExperimentStop(ApiModel):
    reason: str | None = Field(None, description="why it stops early (needed before its end)")
    author: str | None = None


class ExperimentOut(Experiment):
    """An experiment as the API shows it."""

    salt: str | None = Field(  # type: ignore[assignment]
        description="the routing salt; null for readers without an accepted token when the "
        "server has server.token_hashes set (it would let them predict every user's variant)"
    )


# ---- metric events ----------------------------------------------------------------------------


class EventIn(BaseModel):
    """One metric event: the columns of the metric-events CSV as keys.

    Any other key whose value is numeric is a custom metric. Values are checked with the CSV
    import's rules (docs/metrics.md); ``null`` means missing.
    """

    model_config = ConfigDict(extra="allow", strict=True)
    # extra keys (custom metrics) must be JSON scalars too
    __pydantic_extra__: dict[str, Scalar] = Field(init=False)  # type: ignore[assignment]

    timestamp: str = Field(description="ISO 8601; no offset means UTC")
    template: str = Field(description="template name or id")
    user_id: str
    event_id: str | None = Field(None, description="unique id; an id already stored is skipped")
    experiment: str | None = Field(None, description="experiment id or name (needs variant)")
    variant: str | None = None
    version: str | None = None
    environment: str | None = None
    latency_ms: Scalar = Field(None, description="milliseconds, >= 0")
    success: Scalar = Field(None, description="true/false/1/0")
    error: Scalar = Field(None, description="true/false/1/0")
    quality_score: Scalar = Field(None, description="between 0 and 1")
    cost_usd: Scalar = Field(None, description="US dollars, >= 0")
    tokens_in: Scalar = Field(None, description="whole number >= 0")
    tokens_out: Scalar = Field(None, description="whole number >= 0")


class EventBatch(ApiModel):
    """A batch of events, stored whole or not at all."""

    events: list[EventIn] = Field(min_length=1)
    author: str | None = Field(None, description="who sends them (recorded on the import)")


class EventsResult(ApiModel):
    """The CLI's ``metrics import --json`` shape."""

    import_id: str
    rows_imported: int
    rows_skipped_duplicate: int


# ---- webhooks ---------------------------------------------------------------------------------


class WebhookCreate(ApiModel):
    """A new subscription (docs/webhooks.md); the service checks the URL and the events."""

    url: str = Field(description="an http:// or https:// endpoint with a host")
    events: list[str] = Field(
        description="commit.created, deployment.created, experiment.started, "
        "experiment.stopped, alert.fired, eval.imported, or * for all"
    )
    format: Literal["json", "slack"] = Field(
        "json", description="json: {type, timestamp, data}; slack: {text} for an incoming webhook"
    )
    description: str = Field("", description="a note shown in lists (at most 200 characters)")
    author: str | None = Field(None, description="who (recorded); default 'api'")


class WebhookOut(ApiModel):
    """A subscription, as ``webhook list --json`` shows it (never its secret)."""

    id: str
    url: str
    events: list[str]
    format: str
    description: str
    created_at: datetime
    created_by: str


class WebhookCreated(WebhookOut):
    """The new subscription with its signing secret: shown in this answer only."""

    secret: str = Field(description="whsec_ + base64: verify the webhook-signature header with it")


class DeliveryAttemptOut(ApiModel):
    attempt: int = Field(description="1 for the first try of the message")
    at: datetime
    ok: bool = Field(description="the receiver answered 2xx")
    status_code: int | None = Field(description="null: no HTTP answer (see error)")
    error: str | None
    response_body: str | None = Field(description="at most the first 1 KB")
    manual: bool = Field(description="a redelivery or a test asked for by hand")


class DeliveryOut(ApiModel):
    """One message to one subscription with every attempt (``webhook deliveries --json``)."""

    id: str = Field(description="the webhook-id header, the same on every attempt")
    webhook_id: str
    type: str
    timestamp: datetime
    status: str = Field(description="pending, delivered, failed or cancelled")
    attempts: list[DeliveryAttemptOut]
    next_attempt_at: datetime | None
    delivered_at: datetime | None


class RedeliveryOut(ApiModel):
    """``webhook redeliver --json``: the message and what the attempt made of it."""

    id: str
    attempted: int
    delivered: int
    retrying: int
    failed: int


# ---- health -----------------------------------------------------------------------------------


class DatabaseHealth(ApiModel):
    path: str | None = Field(
        description="the database file; null for readers without an accepted token when the "
        "server has server.token_hashes set"
    )
    exists: bool
    ok: bool
    size_bytes: int | None = None
    migrations: int | None = Field(None, description="schema migrations applied")
    detail: str | None = Field(None, description="why the database cannot be used, if it cannot")


class Health(ApiModel):
    status: Literal["ok", "unavailable"]
    version: str
    database: DatabaseHealth
    auth: bool = Field(description="write endpoints need a bearer token")

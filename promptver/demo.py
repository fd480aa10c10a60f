"""The demo workspace: realistic content so that the first screen is never empty.

``build_demo(ws, seed)`` is deterministic for a given seed: run twice with the same seed and the
same ``now``, it writes the same rows (only the random ids of templates and experiments, and what
derives from them, differ). The dashboard runs it on a new database and ``promptver demo``
on request. Everything is back-dated over the last 90 days with the demo clock
(:func:`promptver.versioning.demo_clock`), in this order:

1. eight templates with one to three versions each — six text prompts and two chat prompts with
   their model configuration (``support-chat``: a system message, the conversation so far and the
   question, on gpt-4o-mini, whose newest version changes only the configuration to ask for a
   JSON answer; ``ticket-entities``: a developer message and the text, with a function tool
   whose parameters are a JSON Schema) — and branches (one open, one merged, one that conflicts,
   and ``support-chat``/``cheaper-model``, which changes only the model);
2. deployments walking development → staging → production, qa-basic's regressed release rolled
   back a day ago, and qa-citations' second version shipped after it won its experiment;
3. three experiments: ``cite-each-claim`` (qa-citations, three weeks, completed with a clear
   winner), ``concise-answers`` (qa-basic's concise-tone branch against the live version,
   running since the rollback) and ``cheaper-model`` (support-chat's live version against the
   same prompt on gpt-4.1-nano, running for a week: variants that differ only in the model);
4. 90 days of metric events served by what was live (:mod:`promptver.metrics.demo`);
5. stopping the completed experiment at its planned end, which freezes its results;
6. alert rules evaluated over the 90 days (some alerts fire, one is acknowledged);
7. an offline evaluation: qa-basic's three versions scored on 200 questions, 40 of them also
   labelled by people (:mod:`promptver.evals.demo`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from promptver.clock import demo_clock, utcnow
from promptver.errors import PromptverError, ValidationError
from promptver.evals.demo import add_demo_evals
from promptver.metrics.demo import DEMO_DAYS, add_demo_events
from promptver.workspace import Workspace

AUTHORS = ["ana.silva", "ben.okafor", "chen.wei", "dara.kim"]


@dataclass(frozen=True)
class ChatVersion:
    """One version of a chat prompt: its messages and its model configuration."""

    messages: tuple[dict, ...]
    config: dict


@dataclass(frozen=True)
class DemoTemplate:
    name: str
    category: str
    description: str
    tags: tuple[str, ...]
    #: (the text of a text prompt, or a chat prompt's messages and config; commit message)
    versions: tuple[tuple[str | ChatVersion, str], ...]
    metadata: dict | None = None


def _prompt(p: str | ChatVersion) -> dict:
    """The ``create``/``update`` arguments of one demo version."""
    if isinstance(p, str):
        return {"content": p}
    return {"messages": [dict(m) for m in p.messages], "config": p.config}


_SUPPORT_SYSTEM_1 = "You answer questions about {product} for its customers. Be brief and friendly."
_SUPPORT_SYSTEM_2 = (
    "You are the support assistant for {product}. Answer from the product documentation and "
    "the conversation so far. If you are not sure, say so and offer to open a ticket. Keep "
    "answers under five sentences."
)
_SUPPORT_CONFIG = {
    "provider": "openai",
    "model": "gpt-4o-mini",
    "temperature": 0.2,
    "max_tokens": 400,
}
_SUPPORT_ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "description": "The reply shown to the customer"},
        "needs_ticket": {"type": "boolean", "description": "Whether to open a support ticket"},
    },
    "required": ["answer", "needs_ticket"],
    "additionalProperties": False,
}


def _support(system: str, config: dict) -> ChatVersion:
    return ChatVersion(
        (
            {"role": "system", "content": system},
            {"placeholder": "history"},
            {"role": "user", "content": "{question}"},
        ),
        config,
    )


def _entities_tool(fields: tuple[str, ...]) -> dict:
    """The function the extraction model calls, its parameters a JSON Schema."""
    return {
        "type": "function",
        "function": {
            "name": "record_entities",
            "description": "Record the entities found in the text",
            "parameters": {
                "type": "object",
                "properties": {
                    f: {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": f"Every {f[:-1]} named",
                    }
                    for f in fields
                },
                "required": list(fields),
                "additionalProperties": False,
            },
        },
    }


DEMO_TEMPLATES: tuple[DemoTemplate, ...] = (
    DemoTemplate(
        "qa-basic",
        "qa",
        "Answers a customer question from retrieved context.",
        ("support", "rag"),
        (
            (
                "Answer the question using the context.\n\nContext: {context}\n\nQuestion: {question}",
                "Initial version",
            ),
            (
                "You are a helpful support assistant.\nAnswer the question using only the context "
                "below. If the answer is not in the context, say you do not know.\n\n"
                "Context:\n{context}\n\nQuestion: {question}\nAnswer:",
                "Ground answers in the context and admit uncertainty",
            ),
            (
                "You are a helpful support assistant for {product}.\nAnswer the question using only "
                "the context below. If the answer is not in the context, say you do not know.\n\n"
                "Context:\n{context}\n\nQuestion: {question}\nAnswer:",
                "Name the product so answers stay on topic",
            ),
        ),
        {
            "variables": {
                "context": {"type": "str", "description": "Retrieved passages"},
                "question": {"type": "str", "description": "The customer's question"},
                "product": {
                    "type": "str",
                    "required": False,
                    "default": "Acme Cloud",
                    "description": "Product name shown to the model",
                },
            }
        },
    ),
    DemoTemplate(
        "qa-citations",
        "qa",
        "Answers with numbered citations to the sources.",
        ("rag", "citations"),
        (
            (
                "Answer {question} and cite the sources [1], [2] … from:\n{sources}",
                "Initial version",
            ),
            (
                "Answer the question. After each claim, cite the supporting source as [n].\n"
                "Use only these sources:\n{sources}\n\nQuestion: {question}",
                "Cite after each claim, not at the end",
            ),
        ),
    ),
    DemoTemplate(
        "summarize-article",
        "summarization",
        "Summarises a news or blog article.",
        ("news",),
        (
            (
                "Summarize the following article in {sentences} sentences:\n\n{article}",
                "Initial version",
            ),
            (
                "Summarize the article below in {sentences} sentences for a busy reader. Keep "
                "names, numbers and dates exact.\n\nArticle:\n{article}",
                "Keep facts exact",
            ),
            (
                "Summarize the article below in {sentences} sentences for a busy reader. Keep "
                "names, numbers and dates exact. Do not add opinions.\n\nArticle:\n{article}",
                "No editorialising",
            ),
        ),
        {"variables": {"sentences": {"type": "int", "default": 3}, "article": {"type": "str"}}},
    ),
    DemoTemplate(
        "summarize-meeting",
        "summarization",
        "Turns a meeting transcript into notes.",
        ("meetings", "internal"),
        (
            ("Write meeting notes from this transcript:\n{transcript}", "Initial version"),
            (
                "Write meeting notes from the transcript below with three sections: Decisions, "
                "Action items (owner and due date), Open questions.\n\n{transcript}",
                "Structure the notes",
            ),
        ),
    ),
    DemoTemplate(
        "translate-formal",
        "translation",
        "Translates text into a formal register.",
        ("i18n",),
        (
            ("Translate into {language}:\n{text}", "Initial version"),
            (
                "Translate the text into {language} using a formal register. Keep product names "
                "in English. Return only the translation.\n\nText:\n{text}",
                "Formal register, keep product names",
            ),
        ),
    ),
    DemoTemplate(
        "translate-chat",
        "translation",
        "Translates chat messages, keeping their tone.",
        ("i18n", "chat"),
        (
            (
                "Translate this chat message into {language}, keeping its tone and emoji: {message}",
                "Initial version",
            ),
        ),
    ),
    DemoTemplate(
        "support-chat",
        "support",
        "The support chat assistant: answers a customer in the conversation so far.",
        ("support", "chat"),
        (
            (_support(_SUPPORT_SYSTEM_1, _SUPPORT_CONFIG), "Initial version"),
            (
                _support(_SUPPORT_SYSTEM_2, _SUPPORT_CONFIG),
                "Answer from the docs, admit uncertainty, offer a ticket",
            ),
            (
                _support(
                    _SUPPORT_SYSTEM_2,
                    {
                        **_SUPPORT_CONFIG,
                        "response_format": {
                            "type": "json_schema",
                            "json_schema": {
                                "name": "support_answer",
                                "strict": True,
                                "schema": _SUPPORT_ANSWER_SCHEMA,
                            },
                        },
                    },
                ),
                "Answer as JSON so the app can open tickets",
            ),
        ),
    ),
    DemoTemplate(
        "ticket-entities",
        "extraction",
        "Extracts the people, organisations and dates named in a text, by a tool call.",
        ("extraction", "tools"),
        (
            (
                ChatVersion(
                    (
                        {
                            "role": "system",
                            "content": "Find the people, organizations and dates named in the "
                            "text. Call record_entities once with everything you found.",
                        },
                        {"role": "user", "content": "{text}"},
                    ),
                    {
                        "provider": "openai",
                        "model": "gpt-4o-mini",
                        "temperature": 0,
                        "tools": [_entities_tool(("people", "organizations", "dates"))],
                    },
                ),
                "Initial version",
            ),
            (
                ChatVersion(
                    (
                        {
                            "role": "developer",
                            "content": "Find the people, organizations, products and dates "
                            "named in the text between the triple quotes. Call record_entities "
                            "once with everything you found; leave a list empty when the text "
                            "names none. Write dates as YYYY-MM-DD.",
                        },
                        {"role": "user", "content": '"""\n{text}\n"""'},
                    ),
                    {
                        "provider": "openai",
                        "model": "gpt-4o-mini",
                        "temperature": 0,
                        "seed": 7,
                        "tools": [_entities_tool(("people", "organizations", "products", "dates"))],
                    },
                ),
                "Products too; delimit the text; ISO dates",
            ),
        ),
    ),
)


#: when the first, second and third version of each demo template was committed (days from now)
VERSION_DAYS = (-89.0, -50.0, -13.0)
#: a version reaches development, staging and production this long after its commit
PROMOTION_DELAYS = {"development": timedelta(hours=2), "staging": timedelta(days=1)}
PRODUCTION_DELAY = timedelta(days=3)
#: the demo rolls the regressed qa-basic release back this long before now
ROLLBACK_AGO = timedelta(days=1)


@dataclass(frozen=True)
class DemoExperiment:
    name: str
    template: str
    hypothesis: str
    description: str
    #: days from now: created, started, planned end (None: open, still running)
    created: float
    started: float
    end: float | None
    minimum_sample_size: int
    metrics: tuple[str, ...]
    guardrails: tuple[str, ...]
    #: the treatment's variant name, and the branch it runs (None: the template's second
    #: version against its first); a branch runs against the version live in production
    treatment: str = ""
    branch: str | None = None


#: the completed experiment: qa-citations' second version against the first, in production; it
#: wins on quality, and ships to production half a day after the experiment ends
CITE = DemoExperiment(
    name="cite-each-claim",
    template="qa-citations",
    hypothesis="Citing after each claim makes answers more trustworthy without slowing them",
    description="Three weeks in production: citations after each claim against at the end.",
    created=-41.0,
    started=-40.0,
    end=-19.0,
    minimum_sample_size=250,
    metrics=("quality_score", "success"),
    guardrails=("latency_ms",),
    treatment="cite-each-claim",
)
WINNER_SHIPPED_AFTER = timedelta(hours=12)
#: the running experiment: qa-basic's concise-tone branch against the version live in
#: production (what the rollback restored); it started shortly after the rollback
CONCISE = DemoExperiment(
    name="concise-answers",
    template="qa-basic",
    hypothesis="Short answers keep quality while cutting latency and cost",
    description="The concise-tone branch against the live version in production.",
    created=-0.95,
    started=-0.9,
    end=None,
    minimum_sample_size=300,
    metrics=("quality_score", "cost_usd"),
    guardrails=("latency_ms",),
    treatment="concise",
    branch="concise-tone",
)
#: the running experiment whose variants differ only in the model: support-chat's live version
#: on gpt-4o-mini against the cheaper-model branch, the same messages on gpt-4.1-nano
CHEAPER = DemoExperiment(
    name="cheaper-model",
    template="support-chat",
    hypothesis="gpt-4.1-nano answers support chats about as well as gpt-4o-mini, faster and "
    "for two thirds of the cost",
    description="The same prompt on a cheaper model: the cheaper-model branch changes only "
    "config.model, against the live version in production.",
    created=-6.5,
    started=-6.0,
    end=None,
    minimum_sample_size=400,
    metrics=("quality_score", "cost_usd"),
    guardrails=("latency_ms",),
    treatment="gpt-4.1-nano",
    branch="cheaper-model",
)
#: the cheaper model of that experiment
CHEAPER_MODEL = "gpt-4.1-nano"


class DemoClock:
    """The demo's back-dated clock: :meth:`at` sets the time of the next writes, and every
    reading advances it by a millisecond so that records written in one step keep their order."""

    def __init__(self, start: datetime) -> None:
        self.t = start

    def at(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        self.t += timedelta(milliseconds=1)
        return self.t


def build_demo(ws: Workspace, seed: int = 7, *, now: datetime | None = None) -> list[str]:
    """Create the demo content; returns the names of the templates created.

    Args:
        ws: an empty workspace.
        seed: the random seed (texts, authors, deployment times, events, users).
        now: the moment the demo ends at (default: the current time); the same seed and ``now``
            give the same rows.

    Raises:
        ValidationError: the workspace already holds a template with a demo name.
    """
    rng = random.Random(seed)
    existing = {t.name for t in ws.templates.list(include_archived=True)}
    clash = [d.name for d in DEMO_TEMPLATES if d.name in existing]
    if clash:
        raise ValidationError(
            f"the demo needs an empty workspace; these templates already exist: {', '.join(clash)}"
        )
    now = now or utcnow()
    clock = DemoClock(now - timedelta(days=DEMO_DAYS))
    created: list[str] = []
    with ws.session(), demo_clock(clock):
        for i, d in enumerate(DEMO_TEMPLATES):
            authors = rng.sample(AUTHORS, k=2)
            first, *rest = d.versions
            stagger = timedelta(minutes=70 * i)
            clock.at(now + timedelta(days=VERSION_DAYS[0]) + stagger)
            ws.templates.create(
                d.name,
                **_prompt(first[0]),
                description=d.description,
                category=d.category,
                tags=list(d.tags),
                metadata=d.metadata,
                author=authors[0],
                message=first[1],
            )
            for j, (prompt, message) in enumerate(rest, start=1):
                clock.at(now + timedelta(days=VERSION_DAYS[j]) + stagger)
                ws.templates.update(
                    d.name,
                    **_prompt(prompt),
                    author=authors[j % 2],
                    message=message,
                    bump="patch" if rng.random() < 0.3 else "minor",
                )
            created.append(d.name)
        build_demo_branches(ws, rng, clock.at, now)
        _demo_deployments(ws, rng, created, clock.at, now)
        add_demo_evals(ws, seed, clock.at, now, AUTHORS)
        experiments = _demo_experiments(ws, rng, clock.at, now)
        add_demo_events(ws, seed, now=now)
        for exp, spec in experiments:
            if spec.end is not None:  # ends as planned: the results freeze on these events
                clock.at(now + timedelta(days=spec.end))
                ws.experiments.stop(
                    exp, author=rng.choice(AUTHORS), now=now + timedelta(days=spec.end)
                )
        add_demo_alerts(ws, rng, now, clock.at)
        clock.at(now - timedelta(seconds=1))
        ws.mark("seeded", f"demo seed {seed}")
    return created


def has_demo(ws: Workspace) -> bool:
    """Whether the demo was built in this workspace (``promptver demo`` marks it)."""
    return (ws.info("seeded") or "").startswith("demo seed")


def build_demo_branches(
    ws: Workspace,
    rng: random.Random,
    at: Callable[[datetime], None] | None = None,
    now: datetime | None = None,
) -> None:
    """Branches that show version control at work (``at(t)`` back-dates each step).

    - ``qa-basic``/``concise-tone``: an open alternative one commit ahead of ``main`` (the
      experiment examples compare it with the live version);
    - ``summarize-article``/``delimit-article``: branched from the version before the latest,
      merged back cleanly into
      ``main`` with a merge commit while ``main`` had moved on;
    - ``qa-citations``/``strict-sources``: branched from 1.0.0 and changing the line ``main``
      rewrote since, so merging it opens the conflict editor;
    - ``support-chat``/``cheaper-model``: branched from the version before the latest (the one
      production runs) and changing only ``config.model``, for the cheaper-model experiment.
    """
    now = now or utcnow()

    def when(days: float) -> None:
        if at is not None:
            at(now + timedelta(days=days))

    who = rng.sample(AUTHORS, k=3)
    qa = ws.templates.get("qa-basic")
    when(-4.0)
    ws.versions.create_branch("qa-basic", "concise-tone", author=who[0])
    ws.templates.update(
        "qa-basic",
        qa.content.replace(
            "Answer the question using only the context below.",
            "Answer in at most three short sentences, using only the context below.",
        ),
        branch="concise-tone",
        author=who[0],
        message="Ask for short answers",
    )
    art = ws.templates.get("summarize-article")
    previous = ws.versions.log(art.id, art.commit, first_parent=True, limit=2)[-1]
    when(-8.5)
    ws.versions.create_branch(
        "summarize-article", "delimit-article", from_ref=previous.id, author=who[1]
    )
    old = previous.content
    when(-8.0)
    ws.templates.update(
        "summarize-article",
        old.replace("Article:\n{article}", 'Article:\n"""\n{article}\n"""'),
        branch="delimit-article",
        author=who[1],
        message="Delimit the article text",
    )
    when(-7.5)
    ws.versions.merge(
        "summarize-article",
        "delimit-article",
        author=who[1],
        message="Merge delimit-article: quote the article",
    )
    when(-3.0)
    ws.versions.create_branch("qa-citations", "strict-sources", from_ref="1.0.0", author=who[2])
    ws.templates.update(
        "qa-citations",
        "Answer {question} using only the sources below; cite each one as [n] and never "
        "invent a source.\n{sources}",
        branch="strict-sources",
        author=who[2],
        message="Never invent sources",
    )
    chat = ws.templates.get(CHEAPER.template)
    base = ws.versions.log(chat.id, chat.commit, first_parent=True, limit=2)[-1]
    when(CHEAPER.created - 0.5)
    ws.versions.create_branch(CHEAPER.template, "cheaper-model", from_ref=base.id, author=who[0])
    ws.templates.update(
        CHEAPER.template,
        config={**base.config, "model": CHEAPER_MODEL},
        branch="cheaper-model",
        author=who[0],
        message=f"Same prompt on {CHEAPER_MODEL}",
    )


def _demo_deployments(
    ws: Workspace,
    rng: random.Random,
    names: list[str],
    at: Callable[[datetime], None],
    now: datetime,
) -> None:
    """Each version walks the promotion path after its commit (so the demo also builds under
    ``require_previous``): development two hours later, staging a day later, production three
    days later; production lags behind (the newest version of most templates stays in staging),
    and qa-basic's latest release, which made answers longer and slower, was rolled back a day
    ago, so the history, the rollback button, the trends and the alerts have something to show.
    The reason covers the evidence gate, should the settings turn it on."""
    envs = ws.deployments.environments
    why = "demo history (promptver demo)"
    last = envs[-1]
    steps: list[tuple[datetime, int, str, str, str]] = []  # (when, order, template, version, env)
    special: dict[tuple[str, str], str] = {}
    for name in names:
        t = ws.templates.get(name)
        log = [c for c in reversed(ws.versions.log(t.id, t.commit, first_parent=True)) if c.version]
        released = log if name == "qa-basic" else log[:-1] or log
        for c in log:
            for k, env in enumerate(envs[:-1] if len(envs) > 1 else envs):
                delay = PROMOTION_DELAYS.get(env, timedelta(hours=2 + 22 * k))
                steps.append((c.created_at + delay, len(steps), name, c.version, env))
        if len(envs) > 1:
            for c in released:
                steps.append((c.created_at + PRODUCTION_DELAY, len(steps), name, c.version, last))
        if name == CITE.template and len(log) > 1 and CITE.end is not None:
            # the experiment's winner ships to production once the experiment has ended
            shipped = now + timedelta(days=CITE.end) + WINNER_SHIPPED_AFTER
            steps.append((shipped, len(steps), name, log[1].version, last))
            special[(name, log[1].version)] = f"won the experiment {CITE.name}: cite each claim"
    notes = ["initial release", "grounded answers", "name the product in answers"]
    released_count: dict[str, int] = {}
    for when, _, name, version, env in sorted(steps):
        at(when)
        if env == last and len(envs) > 1:
            i = released_count[name] = released_count.get(name, -1) + 1
            note = special.get((name, version)) or (
                notes[i] if i < len(notes) else f"release {version}"
            )
        else:
            note = f"try {version}" if env == envs[0] else f"review {version}"
        ws.deployments.deploy(name, version, env, author=rng.choice(AUTHORS), reason=why, note=note)
    if len(envs) > 1 and ws.deployments.history("qa-basic", last, limit=2)[1:]:
        at(now - ROLLBACK_AGO)
        ws.deployments.rollback(
            "qa-basic",
            last,
            author=rng.choice(AUTHORS),
            note="answers got longer and slower; back to the previous",
        )


def _demo_experiments(
    ws: Workspace, rng: random.Random, at: Callable[[datetime], None], now: datetime
) -> list[tuple[str, DemoExperiment]]:
    """Create and start the demo experiments (back-dated); returns their ids and specs.

    Salts are fixed (``demo-NAME``), so the same users land in the same variants every time the
    demo is built. Nothing is created when the templates they need are missing.
    """
    envs = ws.deployments.environments
    env = "production" if "production" in envs else envs[-1]
    out: list[tuple[str, DemoExperiment]] = []
    for spec in (CITE, CONCISE, CHEAPER):
        try:
            t = ws.templates.get(spec.template)
        except PromptverError:
            continue
        if spec.branch is None:
            log = [c for c in reversed(ws.versions.log(t.id, t.commit, first_parent=True))]
            versions = [c.version for c in log if c.version]
            if len(versions) < 2:
                continue
            variants = [
                {"name": "control", "ref": versions[0], "weight": 50},
                {"name": spec.treatment, "ref": versions[1], "weight": 50},
            ]
        else:
            live = ws.deployments.live(spec.template, env)
            branches = {b.name for b in ws.versions.branches(t.id)}
            if live is None or live.version is None or spec.branch not in branches:
                continue
            variants = [
                {"name": "control", "ref": live.version, "weight": 50},
                {"name": spec.treatment, "ref": spec.branch, "weight": 50},
            ]
        who = rng.choice(AUTHORS)
        at(now + timedelta(days=spec.created))
        fields: dict = {
            "name": spec.name,
            "description": spec.description,
            "hypothesis": spec.hypothesis,
            "template": spec.template,
            "environment": env,
            "variants": variants,
            "metrics": list(spec.metrics),
            "guardrails": list(spec.guardrails),
            "minimum_sample_size": spec.minimum_sample_size,
            "salt": f"demo-{spec.name}",
        }
        if spec.end is not None:
            fields["end"] = now + timedelta(days=spec.end)
        exp = ws.experiments.create(fields, author=who)
        at(now + timedelta(days=spec.started))
        ws.experiments.start(exp.id, author=who, now=now + timedelta(days=spec.started))
        out.append((exp.id, spec))
    return out


def add_demo_alerts(
    ws: Workspace,
    rng: random.Random,
    now: datetime,
    at: Callable[[datetime], None] | None = None,
) -> None:
    """Alert rules over the demo events, evaluated on the last 90 days: the p95 latency rule
    fires on the days of qa-basic's regressed release (the oldest of those alerts is already
    acknowledged), the error-rate rule on the weeks the translation templates' errors ran high,
    the quality rule stays quiet, and a disabled cost rule shows how rules are switched off.
    ``at(t)`` back-dates the rules to the start of the demo and the alerts to ``now``."""
    if at is not None:
        at(now - timedelta(days=DEMO_DAYS - 2))
    who = rng.sample(AUTHORS, k=2)
    slow = ws.alerts.add(
        "latency_p95",
        ">",
        1500,
        "24h",
        min_events=20,
        template="qa-basic",
        environment="production",
        name="qa-basic answers slow",
        author=who[0],
    )
    ws.alerts.add("error_rate", ">", 0.09, "7d", min_events=50, name="error budget", author=who[1])
    ws.alerts.add(
        "quality_score",
        "<",
        0.55,
        "24h",
        min_events=10,
        template="summarize-meeting",
        name="meeting notes quality floor",
        author=who[0],
    )
    ws.alerts.add(
        "cost_per_request",
        ">",
        0.002,
        "1h",
        min_events=5,
        name="cost spike",
        enabled=False,
        author=who[1],
    )
    if at is not None:
        at(now - timedelta(minutes=5))
    ws.alerts.check(now, since=now - timedelta(days=DEMO_DAYS))
    first = ws.alerts.alerts(rule_id=slow.id, limit=10_000)
    if first:
        ws.alerts.acknowledge(first[-1].id, author=who[1])

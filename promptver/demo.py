"""The demo workspace: realistic content so that the first screen is never empty.

``build_demo(ws, seed)`` is deterministic for a given seed (texts, authors, messages); it is run
on a new database by the dashboard and by ``promptver demo``. Later capabilities add their parts
(branches, deployments, experiments, metrics, alerts) here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from promptver.errors import ValidationError
from promptver.metrics.demo import add_demo_events
from promptver.workspace import Workspace

AUTHORS = ["ana.silva", "ben.okafor", "chen.wei", "dara.kim"]


@dataclass(frozen=True)
class DemoTemplate:
    name: str
    category: str
    description: str
    tags: tuple[str, ...]
    versions: tuple[tuple[str, str], ...]  # (content, commit message)
    metadata: dict | None = None


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
)


def build_demo(ws: Workspace, seed: int = 7) -> list[str]:
    """Create the demo content; returns the names of the templates created.

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
    created: list[str] = []
    with ws.session():
        for d in DEMO_TEMPLATES:
            authors = rng.sample(AUTHORS, k=2)
            first, *rest = d.versions
            ws.templates.create(
                d.name,
                first[0],
                description=d.description,
                category=d.category,
                tags=list(d.tags),
                metadata=d.metadata,
                author=authors[0],
                message=first[1],
            )
            for i, (content, message) in enumerate(rest):
                ws.templates.update(
                    d.name,
                    content,
                    author=authors[(i + 1) % 2],
                    message=message,
                    bump="patch" if rng.random() < 0.3 else "minor",
                )
            created.append(d.name)
        build_demo_branches(ws, rng)
        _demo_deployments(ws, rng, created)
        add_demo_events(ws, seed)
        ws.mark("seeded", f"demo seed {seed}")
    return created


def build_demo_branches(ws: Workspace, rng: random.Random) -> None:
    """Branches that show version control at work.

    - ``qa-basic``/``concise-tone``: an open alternative one commit ahead of ``main`` (the
      experiment examples compare it with the live version);
    - ``summarize-article``/``delimit-article``: branched from the version before the latest,
      merged back cleanly into
      ``main`` with a merge commit while ``main`` had moved on;
    - ``qa-citations``/``strict-sources``: branched from 1.0.0 and changing the line ``main``
      rewrote since, so merging it opens the conflict editor.
    """
    who = rng.sample(AUTHORS, k=3)
    qa = ws.templates.get("qa-basic")
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
    ws.versions.create_branch(
        "summarize-article", "delimit-article", from_ref=previous.id, author=who[1]
    )
    old = previous.content
    ws.templates.update(
        "summarize-article",
        old.replace("Article:\n{article}", 'Article:\n"""\n{article}\n"""'),
        branch="delimit-article",
        author=who[1],
        message="Delimit the article text",
    )
    ws.versions.merge(
        "summarize-article",
        "delimit-article",
        author=who[1],
        message="Merge delimit-article: quote the article",
    )
    ws.versions.create_branch("qa-citations", "strict-sources", from_ref="1.0.0", author=who[2])
    ws.templates.update(
        "qa-citations",
        "Answer {question} using only the sources below; cite each one as [n] and never "
        "invent a source.\n{sources}",
        branch="strict-sources",
        author=who[2],
        message="Never invent sources",
    )


def _demo_deployments(ws: Workspace, rng: random.Random, names: list[str]) -> None:
    """Each template walks the promotion path in order (so the demo also builds under
    ``require_previous``); production lags behind, and qa-basic has a release that was rolled
    back, so the history and the rollback button have something to show. The reason covers the
    evidence gate, should the settings turn it on."""
    envs = ws.deployments.environments
    why = "demo history (promptver demo)"
    for name in names:
        t = ws.templates.get(name)
        versions = [
            c.version
            for c in reversed(ws.versions.log(t.id, t.commit, first_parent=True))
            if c.version
        ]
        for env in envs[:-1]:
            for v in versions:
                ws.deployments.deploy(
                    name,
                    v,
                    env,
                    author=rng.choice(AUTHORS),
                    reason=why,
                    note=f"try {v}" if env == envs[0] else f"review {v}",
                )
        if len(envs) == 1:
            continue
        last = envs[-1]
        released = versions if name == "qa-basic" else versions[:-1] or versions
        notes = ["initial release", "grounded answers", "name the product in answers"]
        for i, v in enumerate(released):
            ws.deployments.deploy(
                name,
                v,
                last,
                author=rng.choice(AUTHORS),
                reason=why,
                note=notes[i] if i < len(notes) else f"release {v}",
            )
        if name == "qa-basic" and len(released) > 1:
            ws.deployments.rollback(
                name,
                last,
                author=rng.choice(AUTHORS),
                note="answers got longer and slower; back to the previous",
            )

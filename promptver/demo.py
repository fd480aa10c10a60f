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
        "qa-basic", "qa", "Answers a customer question from retrieved context.",
        ("support", "rag"),
        (
            ("Answer the question using the context.\n\nContext: {context}\n\nQuestion: {question}",
             "Initial version"),
            ("You are a helpful support assistant.\nAnswer the question using only the context "
             "below. If the answer is not in the context, say you do not know.\n\n"
             "Context:\n{context}\n\nQuestion: {question}\nAnswer:",
             "Ground answers in the context and admit uncertainty"),
            ("You are a helpful support assistant for {product}.\nAnswer the question using only "
             "the context below. If the answer is not in the context, say you do not know.\n\n"
             "Context:\n{context}\n\nQuestion: {question}\nAnswer:",
             "Name the product so answers stay on topic"),
        ),
        {"variables": {
            "context": {"type": "str", "description": "Retrieved passages"},
            "question": {"type": "str", "description": "The customer's question"},
            "product": {"type": "str", "required": False, "default": "Acme Cloud",
                        "description": "Product name shown to the model"},
        }},
    ),
    DemoTemplate(
        "qa-citations", "qa", "Answers with numbered citations to the sources.",
        ("rag", "citations"),
        (
            ("Answer {question} and cite the sources [1], [2] … from:\n{sources}",
             "Initial version"),
            ("Answer the question. After each claim, cite the supporting source as [n].\n"
             "Use only these sources:\n{sources}\n\nQuestion: {question}",
             "Cite after each claim, not at the end"),
        ),
    ),
    DemoTemplate(
        "summarize-article", "summarization", "Summarises a news or blog article.",
        ("news",),
        (
            ("Summarize the following article in {sentences} sentences:\n\n{article}",
             "Initial version"),
            ("Summarize the article below in {sentences} sentences for a busy reader. Keep "
             "names, numbers and dates exact.\n\nArticle:\n{article}",
             "Keep facts exact"),
            ("Summarize the article below in {sentences} sentences for a busy reader. Keep "
             "names, numbers and dates exact. Do not add opinions.\n\nArticle:\n{article}",
             "No editorialising"),
        ),
        {"variables": {"sentences": {"type": "int", "default": 3},
                       "article": {"type": "str"}}},
    ),
    DemoTemplate(
        "summarize-meeting", "summarization", "Turns a meeting transcript into notes.",
        ("meetings", "internal"),
        (
            ("Write meeting notes from this transcript:\n{transcript}", "Initial version"),
            ("Write meeting notes from the transcript below with three sections: Decisions, "
             "Action items (owner and due date), Open questions.\n\n{transcript}",
             "Structure the notes"),
        ),
    ),
    DemoTemplate(
        "translate-formal", "translation", "Translates text into a formal register.",
        ("i18n",),
        (
            ("Translate into {language}:\n{text}", "Initial version"),
            ("Translate the text into {language} using a formal register. Keep product names "
             "in English. Return only the translation.\n\nText:\n{text}",
             "Formal register, keep product names"),
        ),
    ),
    DemoTemplate(
        "translate-chat", "translation", "Translates chat messages, keeping their tone.",
        ("i18n", "chat"),
        (
            ("Translate this chat message into {language}, keeping its tone and emoji: {message}",
             "Initial version"),
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
                d.name, first[0], description=d.description, category=d.category,
                tags=list(d.tags), metadata=d.metadata, author=authors[0], message=first[1],
            )
            for i, (content, message) in enumerate(rest):
                ws.templates.update(d.name, content, author=authors[(i + 1) % 2], message=message,
                                    bump="patch" if rng.random() < 0.3 else "minor")
            created.append(d.name)
        add_demo_events(ws, seed)
        ws.mark("seeded", f"demo seed {seed}")
    return created

"""Helpers shared by the experiment tests: a valid spec, a branch, a custom metric event.

Test modules import the fixtures by their function names (``lab_fixture``,
``shared_lab_fixture``) and use them by their fixture names (``lab``, ``shared_lab``).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from promptver.store import templates as tsql
from promptver.versioning import utcnow

BASE_SPEC: dict[str, Any] = {
    "name": "concise-vs-control",
    "template": "qa-basic",
    "environment": "production",
    "variants": [
        {"name": "control", "ref": "1.0.0", "weight": 50},
        {"name": "concise", "ref": "concise-tone", "weight": 50},
    ],
    "metrics": ["quality_score", "latency_ms"],
    "minimum_sample_size": 100,
    "alpha": 0.05,
}


def spec(**changes: Any) -> dict[str, Any]:
    """A valid experiment spec with some fields replaced (``None`` removes a field)."""
    out = copy.deepcopy(BASE_SPEC)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def make_branch(ws, template: str, name: str, content: str) -> str:
    """Create branch ``name`` from main's head and commit ``content`` on it; returns the commit."""
    row = ws.templates.row(template)
    with ws.db.transaction() as con:
        tsql.insert_branch(
            con, row["id"], name, ws.versions.branch_head(row["id"]), utcnow(), "tester"
        )
    return ws.templates.update(template, content, branch=name, author="tester").commit


def add_custom_metric_event(ws, template_id: str, metric: str, value: float = 1.0) -> None:
    """Store one event carrying a custom metric (what an import would leave behind)."""
    with ws.db.transaction() as con:
        con.execute(
            "INSERT INTO metric_events (ts, template_id, user_id, custom)"
            " VALUES (?, ?, 'u1', MAP([?], [?]))",
            [utcnow(), template_id, metric, value],
        )


def seed_lab(ws) -> None:
    """qa-basic with versions 1.0.0 and 1.1.0 and a branch ``concise-tone``."""
    ws.templates.create(
        "qa-basic", "Answer {question} using {context}.", category="qa", author="ana"
    )
    ws.templates.update("qa-basic", "Answer {question} briefly using {context}.", author="ben")
    make_branch(
        ws, "qa-basic", "concise-tone", "Answer {question} in one sentence using {context}."
    )


@pytest.fixture(name="lab")
def lab_fixture(ws):
    """A workspace holding qa-basic (1.0.0, 1.1.0, branch concise-tone); one connection is kept
    open for the test (as the dashboard does per run) so that operations do not reopen the file."""
    seed_lab(ws)
    with ws.session():
        yield ws


@pytest.fixture(name="shared_lab", scope="module")
def shared_lab_fixture(tmp_path_factory):
    """Like ``lab`` but shared by a module's tests: only for tests that write nothing."""
    from promptver import Settings, Workspace

    ws = Workspace.open(tmp_path_factory.mktemp("lab") / "lab.duckdb", settings=Settings())
    seed_lab(ws)
    with ws.session():
        yield ws
    ws.close()

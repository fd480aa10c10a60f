"""get_prompt routes users into a running experiment (contract: Python API)."""

from __future__ import annotations

import pytest

from promptver.routing import route
from tests.experiments_helpers import lab_fixture, spec  # noqa: F401 - fixture

USERS = [f"user-{i}" for i in range(300)] + ["ünï-çødé-👩‍💻"]


@pytest.fixture
def running(lab):
    lab.deployments.deploy("qa-basic", "1.1.0", "production", author="t")
    exp = lab.experiments.create(spec(), author="t")
    lab.experiments.start(exp.id, author="t")
    return lab, lab.experiments.get(exp.id)


def test_users_get_their_routed_variant_and_the_variant_text(running):
    ws, exp = running
    contents = {
        "control": ws.templates.get("qa-basic", "1.0.0").content,
        "concise": ws.templates.get("qa-basic", "concise-tone").content,
    }
    seen = set()
    for u in USERS:
        p = ws.get_prompt("qa-basic", env="production", user_id=u)
        want, _ = route(exp, u)
        assert p.variant == want
        assert p.experiment_id == exp.id and p.user_id == u
        assert p.content == contents[want]
        assert p.version == {"control": "1.0.0", "concise": None}[want]  # a branch has none
        assert p.text(question="q", context="c").startswith("Answer q")
        seen.add(want)
    assert seen == {"control", "concise"}
    again = [ws.get_prompt("qa-basic", env="production", user_id=u).variant for u in USERS]
    assert again == [route(exp, u)[0] for u in USERS]  # sticky


def test_without_a_user_or_in_another_environment_the_deployed_version_is_served(running):
    ws, _ = running
    p = ws.get_prompt("qa-basic", env="production")
    assert (p.version, p.variant, p.experiment_id) == ("1.1.0", None, None)
    ws.deployments.deploy("qa-basic", "1.0.0", "staging", author="t")
    p = ws.get_prompt("qa-basic", env="staging", user_id="user-1")
    assert (p.version, p.variant) == ("1.0.0", None)


def test_after_stop_everyone_gets_the_deployed_version_again(running):
    ws, exp = running
    ws.experiments.stop(exp.id, author="t", reason="enough")
    for u in USERS[:20]:
        p = ws.get_prompt("qa-basic", env="production", user_id=u)
        assert (p.version, p.variant, p.experiment_id) == ("1.1.0", None, None)


def test_a_modified_prompt_does_not_leak_into_the_next_answer(running):
    ws, _ = running
    p = ws.get_prompt("qa-basic", env="production", user_id="user-1")
    p.metadata["x"] = 1
    p.variables.append("junk")
    q = ws.get_prompt("qa-basic", env="production", user_id="user-1")
    assert "x" not in q.metadata and "junk" not in q.variables

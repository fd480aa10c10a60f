"""'Deploy the winner' on a completed experiment's results (issue 22 item 17): it asks for the
environment and a note, then deploys the winning variant's frozen commit through the
deployment service."""

from __future__ import annotations

import numpy as np
import pytest

from promptver import Workspace
from tests.experiments_helpers import seed_lab, spec
from tests.test_experiments_page import key, open_page, rerun, shown


@pytest.fixture
def db(db_path, monkeypatch):
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    ws = Workspace.open(db_path)
    seed_lab(ws)
    yield ws
    ws.close()


def run_to_completion(db, lift: float) -> str:
    """1.0.0 live; control 1.0.0 against branch concise-tone, which is better by ``lift``."""
    db.deployments.deploy("qa-basic", "1.0.0", "production", author="t")
    e = db.experiments.create(spec(minimum_sample_size=20, salt="win"))
    db.experiments.start(e.id)
    rng = np.random.default_rng(11)
    for i in range(160):
        p = db.get_prompt("qa-basic", env="production", user_id=f"u{i}")
        bump = lift if p.variant == "concise" else 0.0
        db.track(p, quality_score=float(np.clip(rng.normal(0.55 + bump, 0.05), 0, 1)))
    db.metrics.flush()
    db.experiments.stop(e.id)
    assert db.experiments.get(e.id).status == "completed"
    return e.id


def test_deploy_the_winner_asks_environment_and_note_then_deploys(db) -> None:
    eid = run_to_completion(db, lift=0.2)
    winner_commit = db.experiments.get(eid).variants[1].commit
    at = open_page(exp_pick=eid)
    assert any("Winner: concise" in s.value for s in at.success)
    button = key(at, "exp_deploy_winner")
    assert "concise" in button.label
    assert db.deployments.live("qa-basic", "production").version == "1.0.0"
    button.click()
    rerun(at)
    assert db.deployments.live("qa-basic", "production").version == "1.0.0"  # asked only
    assert key(at, "exp_deploy_env").value == "production"
    assert "1.0.0" in " ".join(shown(c.value) for c in at.caption)  # what is live now
    key(at, "exp_deploy_note").input("ship the concise tone")
    key(at, "exp_deploy_yes").click()
    rerun(at)
    live = db.deployments.live("qa-basic", "production")
    assert live.commit == winner_commit
    assert live.note == "ship the concise tone"
    assert any("Deployed concise" in shown(s.value) for s in at.success)


def test_no_deploy_action_without_a_winner_or_while_running(db) -> None:
    eid = run_to_completion(db, lift=0.0)
    at = open_page(exp_pick=eid)
    assert not any("Winner:" in s.value for s in at.success)
    with pytest.raises(KeyError):
        key(at, "exp_deploy_winner")
    running = db.experiments.create(spec(name="still running", environment="staging"))
    db.experiments.start(running.id)
    at = open_page(exp_pick=running.id)
    with pytest.raises(KeyError):
        key(at, "exp_deploy_winner")

"""The Configure form writes the "More statistics" fields: engine, allocation, CUPED's lookback
and guardrail margins; a bad lookback shows under its field."""

from __future__ import annotations

import pytest

from promptver import Workspace
from tests.experiments_helpers import seed_lab
from tests.test_experiments_page import key, open_page, rerun, shown


@pytest.fixture
def db(db_path, monkeypatch):
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    ws = Workspace.open(db_path)
    seed_lab(ws)
    yield ws
    ws.close()


def test_form_saves_engine_allocation_cuped_and_margin(db) -> None:
    at = open_page()
    key(at, "exp_f_name").input("stats options")
    key(at, "exp_f_guard").set_value(["latency_ms"])
    rerun(at)
    key(at, "exp_f_engine").select("bayesian")
    key(at, "exp_f_allocation").select("bandit")
    key(at, "exp_f_cuped").set_value(400)
    key(at, "exp_f_margin_latency_ms").set_value(5.0)
    rerun(at)
    errs = [shown(e.value) for e in at.error]
    assert any(e.startswith("CUPED lookback (days, 0 = off):") and "1 to 365" in e for e in errs)
    assert key(at, "exp_save").disabled
    key(at, "exp_f_cuped").set_value(14)
    rerun(at)
    assert not at.exception
    key(at, "exp_save").click()
    rerun(at)
    (exp,) = db.experiments.list()
    assert exp.engine == "bayesian" and exp.allocation == "bandit"
    assert exp.cuped_lookback_days == 14
    assert exp.metric("latency_ms").margin == pytest.approx(0.05)

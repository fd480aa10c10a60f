"""allocation: bandit end to end: sticky routing, hourly Thompson updates with their history,
and the results' period-weighted comparisons and caveat."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from promptver import bandit_routing as br
from promptver.bandits import thompson_weights
from promptver.errors import Conflict, ValidationError
from promptver.routing import Router
from promptver.stats import MetricStats
from promptver.store import bandits as bsql
from promptver.versioning import utcnow
from tests.experiments_helpers import lab_fixture, spec  # noqa: F401 - fixture
from tests.stats_helpers import insert_events


@pytest.fixture
def bandit(lab):
    lab.deployments.deploy("qa-basic", "1.1.0", "production", author="t")
    exp = lab.experiments.create(spec(allocation="bandit"), author="t")
    lab.experiments.start(exp.id, author="t")
    return lab, lab.experiments.get(exp.id)


def test_allocation_is_validated_and_stored(lab):
    with pytest.raises(ValidationError) as err:
        lab.experiments.create(spec(allocation="greedy"))
    assert err.value.problems[0].field == "allocation"
    exp = lab.experiments.create(spec(allocation="bandit"))
    assert lab.experiments.get(exp.id).allocation == "bandit"


def _in_first_period(exp):
    """A time inside the experiment's window and before the bandit's first update: halfway
    between its start and now (a fixed "a second ago" fell before the start when the test ran
    fast, and the events then counted for nothing)."""
    now = utcnow()
    return exp.started_at + (now - exp.started_at) / 2


def _serve(ws, users):
    return {u: ws.get_prompt("qa-basic", env="production", user_id=u).variant for u in users}


def test_routing_is_the_formula_then_sticky_while_the_split_moves(bandit):
    ws, exp = bandit
    users = [f"u{i}" for i in range(300)]
    first = _serve(ws, users)
    router = Router.build(exp.salt, [(v.name, v.weight) for v in exp.variants])
    assert first == {u: router.route(u)[0] for u in users}  # the contract's formula
    # the treatment does much better: an update moves traffic to it
    events = [
        {"user_id": u, "variant": v, "quality_score": 0.9 if v == "concise" else 0.3}
        for u, v in first.items()
    ]
    import pandas as pd

    frame = pd.DataFrame(events)
    frame["quality_score"] += np.random.default_rng(0).normal(0, 0.05, len(frame))
    insert_events(ws, frame, experiment_id=exp.id)
    weights = ws.experiments.update_bandit(exp.id)
    assert weights[1] == pytest.approx(0.99) and weights[0] == pytest.approx(0.01)
    # every earlier user keeps their variant; new users follow the new split
    assert _serve(ws, users) == first
    new = _serve(ws, [f"n{i}" for i in range(300)])
    assert sum(v == "concise" for v in new.values()) > 280
    with ws.db.read() as con:
        history = bsql.weight_history(con, exp.id)
        periods = bsql.period_user_counts(con, exp.id)
    assert [h[0] for h in history] == [1]
    assert sum(n for (p, _), n in periods.items() if p == 0) == 300
    assert sum(n for (p, _), n in periods.items() if p == 1) == 300


def test_updates_at_most_hourly(bandit):
    ws, exp = bandit
    rb = br.BanditRouting(ws.db)
    start = exp.started_at
    _, period = rb.router(exp, start + timedelta(minutes=59))
    assert period == 0
    with ws.db.read() as con:
        assert bsql.latest_weights(con, exp.id) is None
    _, period = rb.router(exp, start + timedelta(minutes=61))
    assert period == 1
    _, period = rb.router(exp, start + timedelta(minutes=100))  # 39 minutes after the change
    assert period == 1
    _, period = rb.router(exp, start + timedelta(minutes=122))
    assert period == 2
    with ws.db.read() as con:
        at = [h[1] for h in bsql.weight_history(con, exp.id)]
    assert at[1] - at[0] >= br.UPDATE_EVERY


def test_update_bandit_refuses_a_fixed_experiment(lab):
    exp = lab.experiments.create(spec())
    with pytest.raises(Conflict):
        lab.experiments.update_bandit(exp.id)


def test_pure_python_thompson_agrees_with_numpy():
    rng = np.random.default_rng(4)
    arms = [rng.normal(1.0, 1, 300), rng.normal(1.08, 1, 300), rng.normal(0.95, 1, 300)]
    stats = [MetricStats.from_values(a) for a in arms]
    ref = thompson_weights(stats, "higher", draws=200_000)
    sums = [(len(a), a.sum(), (a * a).sum(), float(len(a)), float(len(a)), a.sum()) for a in arms]
    pure = br.thompson([br.mean_se(s) for s in sums], "higher", seed=1, draws=50_000)
    assert pure == pytest.approx(list(ref), abs=0.01)
    assert sum(pure) == pytest.approx(1.0) and min(pure) >= br.FLOOR - 1e-12
    for (m, se), s in zip([br.mean_se(x) for x in sums], stats):
        assert m == pytest.approx(float(s.mean)) and se == pytest.approx(float(s.se))


def test_results_carry_the_split_history_and_the_period_weighted_comparison(bandit):
    ws, exp = bandit
    users = [f"u{i}" for i in range(400)]
    first = _serve(ws, users)
    import pandas as pd

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"user_id": list(first), "variant": list(first.values())})
    frame["quality_score"] = np.where(frame.variant == "concise", 0.62, 0.6) + rng.normal(
        0, 0.1, len(frame)
    )
    frame["ts"] = _in_first_period(exp)
    insert_events(ws, frame, experiment_id=exp.id)
    ws.experiments.update_bandit(exp.id)
    r = ws.experiment_results(exp.id)
    assert r.bandit is not None and [w.period for w in r.bandit.weights] == [0, 1]
    assert r.bandit.weights[0].weights == {"control": 0.5, "concise": 0.5}
    assert r.bandit.periods_used == 1
    (c,) = r.bandit.comparisons
    plain = r.comparisons[0]
    # one period: the period-weighted difference is the plain one (normal interval)
    assert c.diff == pytest.approx(plain.diff, rel=1e-9)
    assert any("bandit allocation" in m for m in r.messages)
    # the SRM compares with the split in force when each user arrived
    assert r.srm.expected == pytest.approx({"control": 200.0, "concise": 200.0})
    dumped = r.model_dump(mode="json")["bandit"]
    assert {"weights", "comparisons", "caveat"} <= set(dumped)


def test_report_shows_the_split_and_the_more_statistics_tables(bandit):
    from promptver.reports import report_markdown

    ws, exp = bandit
    users = [f"u{i}" for i in range(200)]
    first = _serve(ws, users)
    import pandas as pd

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"user_id": list(first), "variant": list(first.values())})
    frame["quality_score"] = rng.normal(0.6, 0.1, len(frame))
    frame["latency_ms"] = rng.normal(1000, 50, len(frame))
    frame["ts"] = _in_first_period(exp)
    insert_events(ws, frame, experiment_id=exp.id)
    ws.experiments.update_bandit(exp.id)
    text = report_markdown(ws, exp.id).decode()
    assert "Bandit allocation" in text and "Period-weighted comparisons" in text
    assert "Bayesian readout of the relative lift" in text


def test_route_answers_with_the_sticky_variant_without_recording(bandit):
    ws, exp = bandit
    first = _serve(ws, ["a1"])
    with ws.db.transaction() as con:
        bsql.insert_weights(con, exp.id, 1, utcnow(), [0.01, 0.99])
    ws.experiments._changed()
    assert ws.experiments.route(exp.id, "a1")[0] == first["a1"]
    with ws.db.read() as con:
        before = bsql.period_user_counts(con, exp.id)
    variants = {ws.experiments.route(exp.id, f"x{i}")[0] for i in range(50)}
    assert variants <= {"control", "concise"}
    with ws.db.read() as con:
        assert bsql.period_user_counts(con, exp.id) == before  # a preview records nothing

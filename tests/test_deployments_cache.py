"""get_prompt's cache: TTL, changes from this process and from other processes, a busy file.

Changes "from another process" are made by a real subprocess (the ``promptver`` CLI) on the same
file. The cache's clock is replaced by a fake one where the exact TTL boundary matters, so the
tests do not sleep and do not depend on how fast the subprocess starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import promptver.serving as serving_mod
from promptver import DatabaseBusy, NotFound
from tests.deployments_helpers import open_ws, three_versions

ROOT = Path(__file__).resolve().parents[1]
PROD = "production"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    c = FakeClock()
    monkeypatch.setattr(serving_mod, "_clock", c)
    return c


def test_a_deploy_or_rollback_in_this_process_is_served_at_once(db_path, clock):
    ws = open_ws(db_path, cache__ttl_seconds=3600)
    three_versions(ws)
    ws.deployments.deploy("qa", "1.0.0", PROD)
    assert ws.get_prompt("qa", PROD).version == "1.0.0"
    ws.deployments.deploy("qa", "1.2.0", PROD)
    assert ws.get_prompt("qa", PROD).version == "1.2.0"
    ws.deployments.rollback("qa", PROD)
    assert ws.get_prompt("qa", PROD).version == "1.0.0"
    ws.deployments.deploy("qa", "1.1.0", "staging")
    ws.deployments.promote("qa", "staging")
    assert ws.get_prompt("qa", PROD).version == "1.1.0"
    assert clock.now == 1000.0  # no time passed: invalidation, not expiry


def test_a_change_from_another_process_shows_after_the_ttl(db_path, clock, run_cli):
    ws = open_ws(db_path, cache__ttl_seconds=10)
    three_versions(ws)
    ws.deployments.deploy("qa", "1.0.0", PROD)
    assert ws.get_prompt("qa", PROD).version == "1.0.0"  # cached at t = 1000
    with pytest.raises(NotFound, match="nothing is deployed"):
        ws.get_prompt("qa", "staging")  # the refusal is cached too

    for args in (
        ["deploy", "qa", "1.2.0", "--env", PROD],
        ["deploy", "qa", "1.1.0", "--env", "staging"],
    ):
        r = run_cli(*args)
        assert r.code == 0, r.err

    clock.now += 9.9
    assert ws.get_prompt("qa", PROD).version == "1.0.0"  # still within the TTL
    with pytest.raises(NotFound):
        ws.get_prompt("qa", "staging")
    clock.now += 0.2
    assert ws.get_prompt("qa", PROD).version == "1.2.0"  # the TTL passed
    assert ws.get_prompt("qa", "staging").version == "1.1.0"

    r = run_cli("rollback", "qa", "--env", PROD)
    assert r.code == 0, r.err
    clock.now += 5
    assert ws.get_prompt("qa", PROD).version == "1.2.0"
    clock.now += 5.1
    assert ws.get_prompt("qa", PROD).version == "1.0.0"


def test_with_ttl_zero_every_call_reads_the_file(db_path, run_cli):
    ws = open_ws(db_path, cache__ttl_seconds=0)
    three_versions(ws)
    ws.deployments.deploy("qa", "1.0.0", PROD)
    assert ws.get_prompt("qa", PROD).version == "1.0.0"
    assert run_cli("deploy", "qa", "1.1.0", "--env", PROD).code == 0
    assert ws.get_prompt("qa", PROD).version == "1.1.0"
    assert ws.serving._cache == {}


def test_real_clock_expiry(db_path, run_cli):
    """End to end with the real clock: a short TTL expires on its own."""
    ws = open_ws(db_path, cache__ttl_seconds=0.3)
    three_versions(ws)
    ws.deployments.deploy("qa", "1.0.0", PROD)
    ws.get_prompt("qa", PROD)
    assert run_cli("deploy", "qa", "1.1.0", "--env", PROD).code == 0
    deadline = time.monotonic() + 5
    while ws.get_prompt("qa", PROD).version != "1.1.0":
        assert time.monotonic() < deadline, "the change never became visible"
        time.sleep(0.05)


def test_an_answer_read_before_a_deploy_is_not_cached_after_it(db_path, monkeypatch):
    """A lookup racing a deploy in another thread must not store what it read before it."""
    ws = open_ws(db_path, cache__ttl_seconds=3600)
    three_versions(ws)
    ws.deployments.deploy("qa", "1.0.0", PROD)
    real = serving_mod.sql.resolve
    calls = []

    def racing(con, ref, env):
        out = real(con, ref, env)
        calls.append(1)
        if len(calls) == 1:
            ws.deployments.invalidate()  # what a deploy in another thread does meanwhile
        return out

    monkeypatch.setattr(serving_mod.sql, "resolve", racing)
    ws.get_prompt("qa", PROD)
    ws.get_prompt("qa", PROD)
    assert len(calls) == 2  # the first answer was not kept
    ws.get_prompt("qa", PROD)
    assert len(calls) == 2  # the second was


def test_the_cache_stays_bounded(db_path, monkeypatch):
    monkeypatch.setattr(serving_mod, "MAX_CACHE_ENTRIES", 3)
    ws = open_ws(db_path, cache__ttl_seconds=3600)
    ws.templates.create("qa", "Q {x}")
    ws.deployments.deploy("qa", "1.0.0", PROD)
    with ws.session():
        for i in range(10):
            with pytest.raises(NotFound):
                ws.get_prompt(f"missing-{i}", PROD)
            assert len(ws.serving._cache) <= 3
    assert ws.get_prompt("qa", PROD).version == "1.0.0"


# ---- another process holds the file --------------------------------------------------------

HOLD = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.readline()
con.close()
"""


@pytest.fixture
def holder(db_path):
    """Start a process that keeps the database file open until told to let go."""
    procs = []

    def start() -> subprocess.Popen:
        p = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(db_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert p.stdout.readline().strip() == "holding"
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def release(p: subprocess.Popen) -> None:
    p.stdin.write("go\n")
    p.stdin.flush()
    p.wait(timeout=30)


def test_get_prompt_reports_a_busy_file_then_works_once_released(db_path, holder):
    ws = open_ws(db_path, cache__ttl_seconds=0, storage__busy_timeout=0.5)
    three_versions(ws)
    ws.deployments.deploy("qa", "1.0.0", PROD)
    p = holder()
    t0 = time.monotonic()
    with pytest.raises(DatabaseBusy) as exc:
        ws.get_prompt("qa", PROD)
    waited = time.monotonic() - t0
    assert 0.5 <= waited < 5
    assert exc.value.message.startswith("database busy: another promptver process is writing ")
    assert str(db_path.resolve()) in exc.value.message and "waited 0.5 s" in exc.value.message
    release(p)
    assert ws.get_prompt("qa", PROD).version == "1.0.0"


def test_a_cached_answer_is_served_while_another_process_holds_the_file(db_path, holder):
    ws = open_ws(db_path, cache__ttl_seconds=3600, storage__busy_timeout=0.2)
    three_versions(ws)
    ws.deployments.deploy("qa", "1.0.0", PROD)
    # the first call with a user looks up what is live and any running experiment; both cached
    assert ws.get_prompt("qa", PROD, user_id="u0").version == "1.0.0"
    p = holder()
    try:
        p_ = ws.get_prompt("qa", PROD, user_id="u1")
        assert (p_.version, p_.user_id) == ("1.0.0", "u1")
        with pytest.raises(DatabaseBusy):
            ws.get_prompt("qa", "staging")  # not cached: needs the file
    finally:
        release(p)


def test_archiving_reaches_get_prompt_at_once_in_the_same_process(ws, qa):
    from promptver.errors import NotFound

    ws.deployments.deploy("qa-basic", "1.1.0", "production", author="t")
    assert ws.get_prompt("qa-basic", env="production").version == "1.1.0"  # now cached
    ws.templates.archive("qa-basic")
    with pytest.raises(NotFound, match="archived"):
        ws.get_prompt("qa-basic", env="production")
    ws.templates.restore("qa-basic")
    assert ws.get_prompt("qa-basic", env="production").version == "1.1.0"


def test_a_served_prompt_equals_a_validated_one(tmp_path):
    """get_prompt builds the live prompt from the stored row without validation: it must be
    the prompt validation would give, field by field, for a text and a chat prompt."""
    from promptver import Workspace
    from promptver.models import Prompt

    ws = Workspace.open(tmp_path / "w.duckdb")
    ws.templates.create("t", "Hi {name}", author="a", metadata={"k": [1, 2]})
    ws.templates.create(
        "c",
        messages=[{"role": "system", "content": "Be {tone}."}, {"role": "user", "content": "{q}"}],
        config={"model": "gpt-x", "temperature": 0.2},
        author="a",
    )
    for name in ("t", "c"):
        ws.deployments.deploy(name, "1.0.0", "development", author="a")
        served = ws.get_prompt(name, "development")
        checked = Prompt.model_validate(served.model_dump())
        assert served.model_dump() == checked.model_dump()
        assert {k: type(v) for k, v in served.__dict__.items()} == {
            k: type(v) for k, v in checked.__dict__.items()
        }
    assert ws.get_prompt("t", "development").text(name="Ann") == "Hi Ann"
    ws.close()

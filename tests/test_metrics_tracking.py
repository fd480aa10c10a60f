"""``Workspace.track``: call-time validation, batching, background flushes, busy files, exit."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from promptver import DatabaseBusy, Settings, ValidationError, Workspace
from promptver.models import Prompt
from tests.metrics_helpers import add_experiment, count, rows

ROOT = Path(__file__).resolve().parents[1]


def prompt_for(ws, ref: str = "qa-basic", version: str | None = None, **extra) -> Prompt:
    t = ws.templates.get(ref, version)
    fields = {"user_id": "u1", "environment": "production", **extra}
    return Prompt(
        template_id=t.id,
        name=t.name,
        version=t.version,
        commit=t.commit,
        content=t.content,
        variables=t.variables,
        **fields,
    )


def open_ws(db_path: Path, **overrides) -> Workspace:
    settings = Settings().with_overrides(**overrides)
    return Workspace.open(db_path, settings=settings)


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def tws(db_path):
    """A workspace whose buffer only flushes when asked (or on close)."""
    ws = open_ws(
        db_path,
        performance_tracking__batch_size=1_000_000,
        performance_tracking__flush_interval=3600,
    )
    ws.templates.create("qa-basic", "Answer {question}.", author="ana")
    ws.templates.update("qa-basic", "Answer {question} briefly.", author="ana")
    yield ws
    ws.close()


def test_track_writes_every_field_on_flush(tws):
    p = prompt_for(tws, version="1.0.0", user_id="u42", environment="staging")
    tws.track(
        p,
        latency_ms=812,
        success=True,
        error=False,
        quality_score=0.8,
        cost_usd=0.0021,
        tokens_in=120,
        tokens_out=30,
        thumbs_up=1,
        nps=9.5,
    )
    tws.track(
        p,
        latency_ms=100,
        event_id="evt-1",
        user_id="other",
        timestamp=datetime(2026, 1, 2, 3, 4, 5, 600000),
    )
    assert count(tws) == 0 and tws.metrics.pending == 2
    assert tws.metrics.flush() == 2
    assert tws.metrics.pending == 0
    a, b = rows(tws, "ORDER BY event_id NULLS FIRST")
    assert a["template_id"] == p.template_id and a["version"] == "1.0.0"
    assert a["commit_id"] == p.commit and a["user_id"] == "u42"
    assert a["environment"] == "staging" and a["import_id"] is None
    assert (a["latency_ms"], a["success"], a["error"]) == (812.0, True, False)
    assert (a["quality_score"], a["cost_usd"], a["tokens_in"], a["tokens_out"]) == (
        0.8,
        0.0021,
        120,
        30,
    )
    assert a["custom"] == {"thumbs_up": 1.0, "nps": 9.5}
    assert abs((datetime.now(UTC) - a["ts"]).total_seconds()) < 60
    assert b["event_id"] == "evt-1" and b["user_id"] == "other"
    assert b["ts"] == datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)  # naive means UTC
    assert b["success"] is None and b["custom"] is None


def test_track_records_experiment_and_variant(tws):
    exp = add_experiment(tws, "qa-basic", "e", [("control", "1.0.0"), ("b", "1.1.0")])
    p = prompt_for(tws, version="1.1.0", experiment_id=exp, variant="b")
    tws.track(p, success=1)
    tws.metrics.flush()
    (r,) = rows(tws)
    assert (r["experiment_id"], r["variant"], r["success"]) == (exp, "b", True)


BAD_CALLS = [
    ({"latency_ms": -1}, "latency_ms must be ≥ 0"),
    ({"latency_ms": math.nan}, "latency_ms is NaN"),
    ({"cost_usd": math.inf}, "cost_usd is infinite"),
    ({"latency_ms": "fast"}, "latency_ms must be a number"),
    ({"latency_ms": True}, "latency_ms must be a number"),
    ({"quality_score": 1.2}, "quality_score must be between 0 and 1"),
    ({"tokens_in": 3.5}, "tokens_in must be a whole number"),
    ({"tokens_out": -2}, "tokens_out must be ≥ 0"),
    ({"success": "yes"}, "success must be a boolean"),
    ({"error": 2}, "error must be a boolean"),
    ({"notes": "great"}, "notes must be a number"),
    ({"Bad-Name": 1}, "Bad-Name is not a valid custom metric name"),
    ({"nps": math.nan}, "nps is NaN"),
    ({}, "at least one metric is required"),
    ({"latency_ms": None}, "at least one metric is required"),
    ({"latency_ms": 1, "timestamp": datetime.now(UTC) + timedelta(days=1)}, "in the future"),
    ({"latency_ms": 1, "event_id": ""}, "event_id must be a non-empty string"),
]


@pytest.mark.parametrize("kwargs,message", BAD_CALLS, ids=[m for _, m in BAD_CALLS])
def test_bad_values_are_refused_at_call_time(tws, kwargs, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        tws.track(prompt_for(tws), **kwargs)
    assert tws.metrics.pending == 0


def test_bad_prompts_are_refused_at_call_time(tws):
    good = prompt_for(tws)
    cases = [
        (good.model_copy(update={"user_id": None}), "user_id is required"),
        (good.model_copy(update={"environment": "prod"}), "unknown environment 'prod'"),
        (good.model_copy(update={"template_id": "nope"}), "unknown template"),
        (good.model_copy(update={"version": "9.9.9"}), "has no version 9.9.9"),
        (good.model_copy(update={"version": None, "commit": "f" * 64}), "has no commit"),
        (good.model_copy(update={"variant": "x"}), "a variant needs its experiment"),
        (good.model_copy(update={"experiment_id": "nope", "variant": "x"}), "has no variant"),
    ]
    for prompt, message in cases:
        with pytest.raises(ValidationError, match=message):
            tws.track(prompt, latency_ms=1)
    with pytest.raises(ValidationError, match="expected the Prompt"):
        tws.track("qa-basic", latency_ms=1)
    assert tws.metrics.pending == 0


def test_a_template_created_after_tracking_started_is_found(tws):
    tws.track(prompt_for(tws), latency_ms=1)
    tws.templates.create("late", "Hi {name}.", author="ana")
    tws.track(prompt_for(tws, "late"), latency_ms=2)
    assert tws.metrics.flush() == 2


def test_batch_size_triggers_a_background_flush(db_path):
    ws = open_ws(
        db_path, performance_tracking__batch_size=50, performance_tracking__flush_interval=3600
    )
    try:
        ws.templates.create("qa-basic", "Answer {question}.", author="ana")
        p = prompt_for(ws)
        for i in range(49):
            ws.track(p, latency_ms=i)
        time.sleep(0.3)
        assert count(ws) == 0  # below the batch size nothing is written
        ws.track(p, latency_ms=49)
        assert wait_for(lambda: count(ws) == 50)
    finally:
        ws.close()


def test_flush_interval_writes_a_partial_batch(db_path):
    ws = open_ws(
        db_path, performance_tracking__batch_size=1000, performance_tracking__flush_interval=0.2
    )
    try:
        ws.templates.create("qa-basic", "Answer {question}.", author="ana")
        ws.track(prompt_for(ws), latency_ms=1)
        assert wait_for(lambda: count(ws) == 1, timeout=5)
    finally:
        ws.close()


def test_close_flushes_and_listeners_hear_it(tws):
    heard = []
    tws.metrics.add_listener(heard.append)
    p = prompt_for(tws)
    for i in range(7):
        tws.track(p, latency_ms=i)
    tws.close()
    assert heard and heard[-1].source == "track" and sum(h.rows for h in heard) == 7
    assert heard[-1].template_ids == [p.template_id]
    reopened = Workspace.open(tws.path)
    try:
        assert count(reopened) == 7
    finally:
        reopened.close()
    with pytest.raises(ValidationError, match="closed"):
        tws.track(p, latency_ms=1)


def test_a_failing_listener_does_not_lose_the_write(tws, caplog):
    def broken(_):
        raise RuntimeError("listener bug")

    tws.metrics.add_listener(broken)
    tws.track(prompt_for(tws), latency_ms=1)
    assert tws.metrics.flush() == 1
    assert count(tws) == 1
    assert "listener" in caplog.text


HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    sys.stdin.readline()
    con.close()
""")


def hold_file(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "holding"
    return proc


def release(proc: subprocess.Popen) -> None:
    proc.stdin.write("\n")
    proc.stdin.flush()
    proc.wait(timeout=10)


def test_busy_file_keeps_the_buffer_and_a_later_flush_writes_it(db_path):
    ws = open_ws(
        db_path,
        storage__busy_timeout=0.3,
        performance_tracking__batch_size=10_000,
        performance_tracking__flush_interval=3600,
    )
    try:
        ws.templates.create("qa-basic", "Answer {question}.", author="ana")
        p = prompt_for(ws)
        ws.track(p, latency_ms=1)  # fills the reference cache while the file is free
        holder = hold_file(db_path)
        try:
            for i in range(99):
                ws.track(p, latency_ms=i)  # no I/O: works while another process holds the file
            with pytest.raises(DatabaseBusy):
                ws.metrics.flush()
            assert ws.metrics.pending == 100
        finally:
            release(holder)
        assert ws.metrics.flush() == 100
        assert count(ws) == 100
    finally:
        ws.close()


def test_background_flush_retries_until_the_file_is_free(db_path):
    ws = open_ws(
        db_path,
        storage__busy_timeout=0.2,
        performance_tracking__batch_size=10,
        performance_tracking__flush_interval=0.2,
    )
    try:
        ws.templates.create("qa-basic", "Answer {question}.", author="ana")
        p = prompt_for(ws)
        ws.track(p, latency_ms=0)
        assert wait_for(lambda: count(ws) == 1)
        holder = hold_file(db_path)
        try:
            for i in range(30):
                ws.track(p, latency_ms=i)
            time.sleep(1.0)  # several failed attempts
            assert ws.metrics.buffer.last_error is not None
            assert ws.metrics.pending == 30
        finally:
            release(holder)
        assert wait_for(lambda: ws.metrics.pending == 0 and count(ws) == 31)
    finally:
        ws.close()


EXITER = textwrap.dedent("""
    import sys
    from promptver import Settings, Workspace
    from promptver.models import Prompt
    settings = Settings.load().with_overrides(performance_tracking__batch_size=100000,
                                         performance_tracking__flush_interval=3600)
    ws = Workspace.open(sys.argv[1], settings=settings)
    t = ws.templates.get("qa-basic")
    p = Prompt(template_id=t.id, name=t.name, version=t.version, commit=t.commit,
               content=t.content, user_id="u1", environment="production")
    for i in range(250):
        ws.track(p, latency_ms=i, thumbs_up=1)
    print(ws.metrics.pending)
    # no ws.close(): the interpreter exits with the events still buffered
""")


def test_events_buffered_at_exit_are_written(db_path):
    ws = Workspace.open(db_path)
    ws.templates.create("qa-basic", "Answer {question}.", author="ana")
    ws.close()
    proc = subprocess.run(
        [sys.executable, "-c", EXITER, str(db_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "250"  # nothing had been written before exit
    again = Workspace.open(db_path)
    try:
        assert count(again) == 250
        assert again.metrics.summary().metrics["thumbs_up"].count == 250
    finally:
        again.close()


def test_threads_tracking_at_once_lose_nothing(db_path):
    import threading

    ws = open_ws(
        db_path, performance_tracking__batch_size=100, performance_tracking__flush_interval=0.1
    )
    try:
        ws.templates.create("qa-basic", "Answer {question}.", author="ana")
        p = prompt_for(ws)

        def work(k: int) -> None:
            for i in range(2000):
                ws.track(p, latency_ms=i, event_id=f"{k}-{i}")

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ws.metrics.flush()
        with ws.db.read() as con:
            n, distinct = con.execute(
                "SELECT count(*), count(DISTINCT event_id) FROM metric_events"
            ).fetchone()
        assert n == distinct == 8000
    finally:
        ws.close()


def test_event_ids_already_stored_are_skipped_like_csv_reimports(tws):
    p = prompt_for(tws)
    tws.track(p, latency_ms=1, event_id="a")
    tws.track(p, latency_ms=2, event_id="a")  # the same id twice in one batch
    tws.track(p, latency_ms=3)
    assert tws.metrics.flush() == 2
    tws.track(p, latency_ms=4, event_id="a")  # already stored
    tws.track(p, latency_ms=5, event_id="b")
    assert tws.metrics.flush() == 1
    got = sorted((r["event_id"] or "", r["latency_ms"]) for r in rows(tws))
    assert got == [("", 3.0), ("a", 1.0), ("b", 5.0)]


WAITER = EXITER + textwrap.dedent("""
    sys.stdout.flush()
    sys.stdin.readline()  # the parent locks the file, then lets us exit
""")


def test_events_that_cannot_be_written_at_exit_are_saved_and_written_later(db_path):
    ws = Workspace.open(db_path)
    ws.templates.create("qa-basic", "Answer {question}.", author="ana")
    ws.close()
    proc = subprocess.Popen(
        [sys.executable, "-c", WAITER, str(db_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PROMPTVER_BUSY_TIMEOUT": "0.3"},
    )
    assert proc.stdout.readline().strip() == "250"  # tracked, nothing written yet
    holder = hold_file(db_path)
    try:
        _, err = proc.communicate("\n", timeout=120)  # exits while the file is locked
    finally:
        release(holder)
    assert proc.returncode == 0, err
    assert "saved to" in err
    pending = Path(f"{db_path}.pending")
    assert len(list(pending.glob("*.jsonl"))) == 1
    again = Workspace.open(db_path)
    try:
        assert count(again) == 0
        assert again.metrics.flush() == 250  # the next flush writes the saved events
        assert count(again) == 250
        assert again.metrics.summary().metrics["thumbs_up"].count == 250
        assert list(pending.iterdir()) == []
    finally:
        again.close()

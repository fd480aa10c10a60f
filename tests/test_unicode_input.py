"""Lone surrogates (U+D800–U+DFFF) can reach promptver only from Python callers (decoded files and
HTTP bodies never hold them). They are not Unicode text: DuckDB, JSON and hashing refuse them.
Every entry point answers with our ValidationError, naming the field where it can, and writes
nothing."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pytest

from promptver import ValidationError, Workspace

BAD = "bad \udc80 text"


@pytest.fixture()
def ws(db_path):
    w = Workspace.open(db_path)
    w.templates.create("ok", "Hi {x}")
    w.deployments.deploy("ok", "1.0.0", "development")
    yield w
    w.close()


def counts(path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("templates", "commits", "branches", "deployments", "metric_events")
        }
    finally:
        con.close()


CALLS: dict[str, tuple[Callable[[Workspace], object], str | None]] = {
    "template text": (lambda w: w.templates.create("t1", f"Hi {{x}} {BAD}"), "content"),
    "description": (lambda w: w.templates.create("t2", "Hi {x}", description=BAD), "description"),
    "category": (lambda w: w.templates.create("t3", "Hi {x}", category=BAD), "category"),
    "commit message": (lambda w: w.templates.update("ok", "Hi {x}!", message=BAD), "message"),
    "author": (lambda w: w.templates.update("ok", "Hi {x}!", author=BAD), "author"),
    "deployment note": (
        lambda w: w.deployments.deploy("ok", "1.0.0", "staging", note=BAD),
        None,
    ),
}


@pytest.mark.parametrize("what", list(CALLS))
def test_a_lone_surrogate_is_a_validation_error_and_nothing_is_written(ws, db_path, what):
    call, field = CALLS[what]
    ws.close()
    before = counts(db_path)
    w = Workspace.open(db_path)
    with pytest.raises(ValidationError, match="lone surrogate") as info:
        call(w)
    if field is not None:
        assert field in str(info.value)
    w.close()
    assert counts(db_path) == before


def test_the_template_text_problem_gives_its_position(ws):
    with pytest.raises(ValidationError) as info:
        ws.templates.create("t1", "Hi {x}\nsecond \ud800 line")
    p = next(p for p in info.value.problems if p.code == "syntax.encoding")
    assert (p.line, p.column) == (2, 8)


@pytest.mark.parametrize("field", ["user_id", "event_id"])
def test_tracking_refuses_it_at_the_call_so_no_flush_is_ever_poisoned(ws, db_path, field):
    prompt = ws.get_prompt("ok", "development", user_id="u1")
    kwargs = {"user_id": "u1", "event_id": "e1", field: BAD}
    with pytest.raises(ValidationError, match=field):
        ws.track(prompt, latency_ms=5, **kwargs)
    ws.track(prompt, latency_ms=5, user_id="u2")  # the buffer still works
    ws.close()
    assert counts(db_path)["metric_events"] == 1

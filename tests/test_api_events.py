"""``POST /api/v1/events``: JSON batches under the CSV import's rules, atomic and idempotent.

Every refused case is also imported as the equivalent CSV file, and the problems must be the
same ones: the batch goes through the CSV import itself, so there is one set of rules.
"""

from __future__ import annotations

import csv
import json
from datetime import timedelta

import httpx
import pytest

from promptver.errors import ImportError_
from promptver.versioning import utcnow
from tests.api_helpers import (
    api_fixture,  # noqa: F401 - fixture
    fields,
    open_ws,
    problem,
    seed,
    serve_fixture,  # noqa: F401 - fixture
)

T0 = "2026-01-01T00:00:00Z"


def ev(**cells):
    return {"timestamp": T0, "template": "qa-basic", "user_id": "u1", **cells}


@pytest.fixture
def lab(ws):
    seed(ws)
    return ws


def stored(ws) -> int:
    return ws.metrics.count()


def csv_problems(ws, tmp_path, events: list[dict]) -> list[tuple[int | None, str | None, str]]:
    """(line, column, message) of each problem the CSV import finds in the same rows."""
    columns: list[str] = ["timestamp", "template", "user_id"]
    for e in events:
        columns += [k for k in e if k not in columns]
    path = tmp_path / "same.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for e in events:
            w.writerow(["" if e.get(c) is None else _text(e.get(c)) for c in columns])
    with pytest.raises(ImportError_) as info:
        ws.metrics.import_csv(path)
    return [(p.line, p.field, p.message) for p in info.value.problems]


def _text(v) -> str:
    if v is True or v is False:
        return str(v).lower()
    return repr(v) if isinstance(v, float) else str(v)


REFUSED = [
    # (events, [(index, field), …] of the problems); the CSV reports one problem per row
    ([ev(latency_ms=-1)], [(0, "latency_ms")]),
    ([ev(latency_ms=1), ev(success="maybe")], [(1, "success")]),
    ([ev(template="nope", latency_ms=1)], [(0, "template")]),
    ([ev(timestamp="yesterday", latency_ms=1)], [(0, "timestamp")]),
    (
        [ev(latency_ms=1), ev(quality_score=2), ev(tokens_in=1.5)],
        [(1, "quality_score"), (2, "tokens_in")],
    ),
    ([ev(latency_ms=1, error="2")], [(0, "error")]),
    ([ev(variant="control", latency_ms=1)], [(0, "variant")]),
    ([ev(latency_ms=1, environment="prod")], [(0, "environment")]),
    ([ev(latency_ms=1, version="9.9.9")], [(0, "version")]),
    ([ev(latency_ms=1), ev(latency_ms=2, mood="happy")], [(1, "mood")]),
    ([ev(latency_ms=1), ev(Latency=1)], [(1, "Latency")]),
    ([ev(latency_ms=1, event_id="a"), ev(latency_ms=2, event_id="a")], [(1, "event_id")]),
    ([ev(latency_ms=1), ev()], [(1, None)]),
    ([ev(latency_ms=True)], [(0, "latency_ms")]),
]


@pytest.mark.parametrize("events, where", REFUSED)
def test_refused_batches_name_each_event_and_field_like_the_csv_import(
    api, lab, tmp_path, events, where
):
    before = stored(lab)
    body = problem(api.post("/events", json={"events": events}), 422, "validation-error")
    assert body["detail"].startswith("events refused, nothing was imported;")
    got = [(p.get("index"), p["field"]) for p in body["problems"]]
    assert got == [(i, f"events[{i}]" + (f".{f}" if f else "")) for i, f in where]
    assert stored(lab) == before  # nothing of the batch was written
    # the same rows as a CSV file: the same problems, on the lines of those events
    on_csv = csv_problems(lab, tmp_path, events)
    assert [m for _, _, m in on_csv] == [
        p["message"].replace("in events[0]", "on line 2") for p in body["problems"]
    ]
    header = [p["code"] == "header" for p in body["problems"]]  # a key's name: the header line
    assert [(line, col) for line, col, _ in on_csv] == [
        (1 if h else i + 2, f) for h, (i, f) in zip(header, where)
    ]


def test_future_nan_and_infinity_are_refused(api, lab):
    # NaN and Infinity are not JSON: refused with the body, each by field, before any import
    raw = json.dumps({"events": [ev(latency_ms=float("nan")), ev(latency_ms=float("inf"))]})
    raw = raw.replace("}]}", ', "cost_usd": 1e400}]}')
    body = problem(
        api.post("/events", content=raw, headers={"content-type": "application/json"}),
        422,
        "invalid-request",
    )
    messages = {p["field"]: p["message"] for p in body["problems"]}
    assert messages == {
        "events[0].latency_ms": "NaN is not a JSON number",
        "events[1].latency_ms": "Infinity (or a number too large for a double) is not a JSON number",
        "events[1].cost_usd": "Infinity (or a number too large for a double) is not a JSON number",
    }
    future = (utcnow() + timedelta(hours=2)).isoformat()
    body = problem(
        api.post("/events", json={"events": [ev(timestamp=future, latency_ms=1)]}),
        422,
        "validation-error",
    )
    assert "is in the future" in body["problems"][0]["message"]
    assert stored(lab) == 0


def test_line_breaks_inside_values_keep_the_index_right(api, lab):
    events = [
        ev(user_id="multi\nline\r\nuser", latency_ms=1),
        ev(user_id="cr\ronly", latency_ms=1),
        ev(latency_ms=-3),
    ]
    body = problem(api.post("/events", json={"events": events}), 422, "validation-error")
    assert fields(body) == ["events[2].latency_ms"]
    r = api.post("/events", json={"events": events[:2]})
    assert r.json()["rows_imported"] == 2
    assert {e.user_id for e in lab.metrics.events()} == {"multi\nline\r\nuser", "cr\ronly"}


def test_experiment_without_variant_is_named_per_event(api, lab):
    body = problem(
        api.post("/events", json={"events": [ev(latency_ms=1), ev(experiment="x", latency_ms=1)]}),
        422,
        "validation-error",
    )
    assert ("events[1].variant", "required with an experiment (x)") in [
        (p["field"], p["message"]) for p in body["problems"]
    ]


def test_lone_surrogates_and_batches_without_metrics(api, lab):
    one = json.dumps(ev(latency_ms=1, user_id="x")).replace('"x"', '"a\\ud800b"')
    raw = '{"events": [' + one + "]}"
    body = problem(
        api.post("/events", content=raw, headers={"content-type": "application/json"}),
        422,
        "invalid-request",
    )
    assert fields(body) == ["events[0].user_id"]
    assert "lone surrogate" in body["detail"] and stored(lab) == 0
    body = problem(api.post("/events", json={"events": [ev()]}), 422, "validation-error")
    assert fields(body) == ["events"] and "no metric" in body["detail"]


def test_request_shape_errors(api, lab):
    body = problem(api.post("/events", json={"events": []}), 422, "invalid-request")
    assert fields(body) == ["events"]
    bad = {"timestamp": T0, "template": "qa-basic", "latency_ms": 1}
    body = problem(
        api.post("/events", json={"events": [ev(latency_ms=1), bad]}), 422, "invalid-request"
    )
    assert fields(body) == ["events[1].user_id"]
    body = problem(api.post("/events", json={"events": [ev(mood=[1, 2])]}), 422, "invalid-request")
    assert fields(body)[0].startswith("events[0].mood")
    body = problem(api.post("/events", json=[ev(latency_ms=1)]), 422, "invalid-request")
    assert stored(lab) == 0


def test_batches_are_stored_and_idempotent_by_event_id(api, lab):
    seen = []
    lab.metrics.add_listener(seen.append)
    events = [
        ev(event_id="a", latency_ms=120, success=True, quality_score=0.9, cost_usd=0.002),
        ev(event_id="b", user_id="u2", latency_ms=80.5, success="FALSE", error=1, tokens_in=12),
        ev(
            event_id="c",
            user_id="u3",
            latency_ms="95",
            thumbs_up=1,
            environment="production",
            version="1.0.0",
        ),
    ]
    r = api.post("/events", json={"events": events, "author": "svc-checkout"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["rows_imported"], out["rows_skipped_duplicate"]) == (3, 0) and out["import_id"]
    rows = {e.event_id: e for e in lab.metrics.events()}
    assert rows["a"].success is True and rows["b"].success is False and rows["b"].error is True
    assert rows["b"].tokens_in == 12 and rows["c"].latency_ms == 95
    assert rows["c"].custom == {"thumbs_up": 1.0} and rows["c"].version == "1.0.0"
    record = lab.metrics.imports()[0]
    assert (record.created_by, record.file_name) == ("svc-checkout", "HTTP batch of 3 events")
    assert len(seen) == 1 and seen[0].rows == 3

    again = api.post("/events", json={"events": events}).json()
    assert (again["rows_imported"], again["rows_skipped_duplicate"]) == (0, 3)
    more = api.post("/events", json={"events": [*events, ev(event_id="d", latency_ms=1)]}).json()
    assert (more["rows_imported"], more["rows_skipped_duplicate"]) == (1, 3)
    assert stored(lab) == 4


def test_a_batch_without_event_ids_is_not_counted_twice(api, lab):
    batch = {"events": [ev(latency_ms=1), ev(user_id="u2", latency_ms=2)]}
    assert api.post("/events", json=batch).json()["rows_imported"] == 2
    body = problem(api.post("/events", json=batch), 422, "validation-error")
    message = body["problems"][0]["message"]
    assert message.startswith("this batch was already imported")
    assert "give each event an event_id" in message and "file" not in message
    assert stored(lab) == 2


def test_one_bad_event_in_a_large_batch_writes_nothing(api, lab):
    events = [ev(user_id=f"u{i}", latency_ms=i, event_id=f"e{i}") for i in range(2000)]
    events[1234]["quality_score"] = 7
    body = problem(api.post("/events", json={"events": events}), 422, "validation-error")
    assert fields(body) == ["events[1234].quality_score"]
    assert stored(lab) == 0
    del events[1234]["quality_score"]
    assert api.post("/events", json={"events": events}).json()["rows_imported"] == 2000


def test_bodies_over_the_events_limit_are_413(serve, db_path):
    ws = open_ws(db_path, server__max_events_mb=1)
    try:
        seed(ws)
        api = serve(ws)
        big = {"events": [ev(user_id="x" * 1000, latency_ms=1) for _ in range(1200)]}
        body = problem(api.post("/events", json=big), 413, "payload-too-large")
        assert "1 MB" in body["detail"] and "server.max_events_mb" in body["detail"]
        data = json.dumps(big).encode()

        def chunks():
            for i in range(0, len(data), 65536):
                yield data[i : i + 65536]

        # no Content-Length (chunked): counted as it arrives
        with httpx.Client(base_url=str(api.base_url), timeout=60) as c:
            r = c.post("/events", content=chunks(), headers={"content-type": "application/json"})
        problem(r, 413, "payload-too-large")
        small = {"events": big["events"][:10]}
        small_data = json.dumps(small).encode()
        with httpx.Client(base_url=str(api.base_url), timeout=60) as c:
            r = c.post(
                "/events", content=iter([small_data]), headers={"content-type": "application/json"}
            )
        assert r.status_code == 200 and r.json()["rows_imported"] == 10
        assert ws.metrics.count() == 10
    finally:
        ws.close()

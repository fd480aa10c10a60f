"""Alert rules: every metric kind firing and not firing at the edges, aligned windows, one alert
per rule and window, evaluation after imports and tracking flushes, acknowledgement, rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from promptver import NotFound, Settings, ValidationError, Workspace
from promptver.alerts import trend_params, window_bounds, window_number
from promptver.models import MetricsWritten, Prompt
from promptver.versioning import utcnow
from tests.trends_helpers import add_events

NOW = datetime(2026, 11, 24, 11, 30, tzinfo=UTC)  # a Tuesday
#: the 1-hour window the crafted events fall in (two days before NOW)
W = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.fixture
def aws(ws):
    ws.templates.create("qa", "Answer {q}.", author="ana")
    ws.templates.create("sum", "Summarise {text}.", author="ana")
    return ws


def at(i: int) -> datetime:
    return W + timedelta(minutes=i)


# ---- windows --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "length", "start"),
    [
        (NOW, timedelta(hours=1), datetime(2026, 11, 24, 11, 0, tzinfo=UTC)),
        (NOW, timedelta(hours=24), datetime(2026, 11, 24, 0, 0, tzinfo=UTC)),
        (NOW, timedelta(days=1), datetime(2026, 11, 24, 0, 0, tzinfo=UTC)),
        (NOW, timedelta(days=7), datetime(2026, 11, 23, 0, 0, tzinfo=UTC)),  # Monday
        (NOW, timedelta(minutes=15), datetime(2026, 11, 24, 11, 30, tzinfo=UTC)),
        # an event on a boundary opens the next window, it never belongs to two
        (
            datetime(2026, 11, 24, 12, 0, tzinfo=UTC),
            timedelta(hours=1),
            datetime(2026, 11, 24, 12, 0, tzinfo=UTC),
        ),
        (
            datetime(2026, 11, 24, 11, 59, 59, 999999, tzinfo=UTC),
            timedelta(hours=1),
            datetime(2026, 11, 24, 11, 0, tzinfo=UTC),
        ),
        # before the anchor (Monday 2000-01-03) the floor still rounds down
        (
            datetime(1999, 12, 31, 23, 30, tzinfo=UTC),
            timedelta(hours=1),
            datetime(1999, 12, 31, 23, 0, tzinfo=UTC),
        ),
    ],
)
def test_windows_are_aligned_to_their_length(t, length, start):
    k = window_number(t, length)
    assert window_bounds(k, length) == (start, start + length)


def test_sql_and_python_agree_on_the_window_of_boundary_events(aws):
    edge = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    add_events(
        aws,
        "qa",
        [
            {"ts": edge - timedelta(microseconds=1), "user_id": "a", "latency_ms": 100.0},
            {"ts": edge, "user_id": "b", "latency_ms": 900.0},
        ],
    )
    aws.alerts.add("latency_avg", ">", 0, "1h", min_events=1, template="qa")
    fired = aws.alerts.check(NOW, since=W).fired
    assert sorted((a.window_start, a.value, a.events) for a in fired) == [
        (W, 100.0, 1),
        (edge, 900.0, 1),
    ]


# ---- every metric kind at the edges ---------------------------------------------------------------

KINDS = [
    # metric, events (column values), the window's value
    ("latency_avg", [{"latency_ms": v} for v in (100.0, 200.0, 300.0, 400.0)], 250.0),
    ("latency_p95", [{"latency_ms": 100.0 * i} for i in range(21)], 1900.0),
    ("error_rate", [{"error": i < 2} for i in range(10)], 0.2),
    ("success_rate", [{"success": i < 8} for i in range(10)], 0.8),
    ("quality_score", [{"quality_score": v} for v in (0.5, 0.75, 1.0, 0.25)], 0.625),
    ("cost_per_request", [{"cost_usd": v} for v in (0.5, 1.5)], 1.0),
    ("tokens_in", [{"tokens_in": v} for v in (100, 300)], 200.0),
    ("tokens_out", [{"tokens_out": v} for v in (50, 150)], 100.0),
    ("custom:nps", [{"custom": {"nps": v}} for v in (1.0, 2.0, 3.0, 6.0)], 3.0),
]


@pytest.mark.parametrize(("metric", "values", "value"), KINDS, ids=[k[0] for k in KINDS])
def test_each_metric_fires_and_does_not_fire_at_the_edges(aws, metric, values, value):
    rows = [{"ts": at(i), "user_id": f"u{i}", **v} for i, v in enumerate(values)]
    # an event without this metric in the same window does not count towards min_events
    rows.append(
        {"ts": at(50), "user_id": "x", "latency_ms": 1e6}
        if "latency" not in metric
        else {"ts": at(50), "user_id": "x", "quality_score": 0.1}
    )
    add_events(aws, "qa", rows)
    n = len(values)
    delta = abs(value) * 1e-6 or 1e-9
    cases = {
        (">", value, n): False,  # exactly at the threshold
        (">=", value, n): True,
        ("<", value, n): False,
        ("<=", value, n): True,
        (">", value - delta, n): True,
        ("<", value + delta, n): True,
        (">=", value + delta, n): False,
        ("<=", value - delta, n): False,
        (">=", value, n + 1): False,  # one event short of the minimum
    }
    rules = {
        aws.alerts.add(metric, cmp, threshold, "1h", min_events=min_events, template="qa").id: want
        for (cmp, threshold, min_events), want in cases.items()
    }
    result = aws.alerts.check(NOW, since=W)
    fired = {a.rule_id: a for a in result.fired}
    assert {rid for rid, want in rules.items() if want} == set(fired)
    for a in fired.values():
        assert a.value == pytest.approx(value, rel=1e-12)
        assert a.events == n
        assert (a.window_start, a.window_end) == (W, W + timedelta(hours=1))
        assert a.metric == metric and a.template == "qa" and a.status == "open"
        assert a.source == "check"


def test_min_events_counts_the_events_of_the_window_only(aws):
    add_events(
        aws,
        "qa",
        [{"ts": at(i), "user_id": f"u{i}", "latency_ms": 500.0} for i in range(5)]
        + [
            {"ts": W + timedelta(hours=1, minutes=i), "user_id": f"v{i}", "latency_ms": 500.0}
            for i in range(4)
        ],
    )
    aws.alerts.add("latency_avg", ">=", 500, "1h", min_events=5, template="qa")
    fired = aws.alerts.check(NOW, since=W).fired
    assert [(a.window_start, a.events) for a in fired] == [(W, 5)]


# ---- one alert per rule, template and window ---------------------------------------------------


def test_re_evaluation_never_stores_a_second_alert(aws):
    add_events(aws, "qa", [{"ts": at(i), "user_id": f"u{i}", "error": True} for i in range(3)])
    rule = aws.alerts.add("error_rate", ">", 0.5, "1h", min_events=1)
    first = aws.alerts.check(NOW, since=W)
    assert len(first.fired) == 1 and first.already_fired == 0
    again = aws.alerts.check(NOW, since=W)
    assert again.fired == [] and again.already_fired == 1
    # more events in the same window: still the one alert, which keeps what it saw
    add_events(aws, "qa", [{"ts": at(30), "user_id": "z", "error": True}])
    aws.alerts.on_metrics_written(
        MetricsWritten(
            source="import",
            rows=1,
            template_ids=[aws.templates.row("qa")["id"]],
            first=at(30),
            last=at(30),
            written_at=utcnow(),
        )
    )
    alerts = aws.alerts.alerts(rule_id=rule.id)
    assert len(alerts) == 1 and alerts[0].events == 3


def test_every_template_rule_fires_per_template_and_environment_filters(aws):
    add_events(
        aws,
        "qa",
        [{"ts": at(i), "user_id": f"u{i}", "latency_ms": 900.0} for i in range(3)]
        + [
            {"ts": at(10 + i), "user_id": f"s{i}", "latency_ms": 9000.0, "environment": "staging"}
            for i in range(3)
        ],
    )
    add_events(
        aws, "sum", [{"ts": at(i), "user_id": f"u{i}", "latency_ms": 100.0} for i in range(3)]
    )
    everywhere = aws.alerts.add("latency_avg", ">", 500, "1h", min_events=3)
    prod = aws.alerts.add("latency_avg", ">", 800, "1h", min_events=3, environment="production")
    staging = aws.alerts.add(
        "latency_avg", ">", 5000, "1h", min_events=3, template="sum", environment="staging"
    )
    fired = aws.alerts.check(NOW, since=W).fired
    got = {(a.rule_id, a.template, a.value) for a in fired}
    assert got == {
        (everywhere.id, "qa", 4950.0),  # both environments: (3·900 + 3·9000) / 6
        (prod.id, "qa", 900.0),
    }
    assert not [a for a in fired if a.rule_id == staging.id]
    assert next(a for a in fired if a.rule_id == prod.id).environment == "production"


def test_check_looks_at_the_current_and_previous_window_by_default(aws):
    now = utcnow()
    length = timedelta(hours=1)
    current = window_bounds(window_number(now, length), length)[0]
    add_events(
        aws,
        "qa",
        [
            {"ts": current - timedelta(minutes=30), "user_id": "a", "error": True},  # previous
            {"ts": current - timedelta(hours=2), "user_id": "b", "error": True},  # older
        ],
    )
    aws.alerts.add("error_rate", ">", 0.5, "1h", min_events=1)
    result = aws.alerts.check(now)
    assert result.windows == 2
    assert [a.window_start for a in result.fired] == [current - length]
    assert len(aws.alerts.check(now, since=current - timedelta(hours=3)).fired) == 1
    with pytest.raises(ValidationError, match="since"):
        aws.alerts.check(now, since=now + timedelta(days=1))


def test_disabled_rules_do_not_fire_until_enabled(aws):
    add_events(aws, "qa", [{"ts": at(0), "user_id": "a", "latency_ms": 900.0}])
    rule = aws.alerts.add("latency_avg", ">", 500, "1h", min_events=1, enabled=False)
    assert aws.alerts.check(NOW, since=W).rules == 0
    aws.alerts.enable(rule.id, author="ben")
    assert len(aws.alerts.check(NOW, since=W).fired) == 1


# ---- after imports and flushes --------------------------------------------------------------------


def recent_hour() -> datetime:
    """The start of the hour two hours ago: complete, inside the lookback, not in the future."""
    length = timedelta(hours=1)
    return window_bounds(window_number(utcnow(), length), length)[0] - timedelta(hours=2)


def test_rules_run_after_an_import(aws, tmp_path):
    h = recent_hour()
    rule = aws.alerts.add("latency_p95", ">", 1000, "1h", min_events=3, template="qa")
    other = aws.alerts.add("latency_p95", ">", 1000, "1h", min_events=1, template="sum")
    lines = ["timestamp,template,user_id,latency_ms"] + [
        f"{(h + timedelta(minutes=i)).strftime('%Y-%m-%dT%H:%M:%SZ')},qa,u{i},{1500 + i}"
        for i in range(4)
    ]
    (tmp_path / "e.csv").write_text("\n".join(lines) + "\n")
    result = aws.metrics.import_csv(tmp_path / "e.csv", author="ana")
    (alert,) = aws.alerts.alerts()
    assert (alert.rule_id, alert.source, alert.window_start, alert.events) == (
        rule.id,
        "import",
        h,
        4,
    )
    assert result.rows_imported == 4
    assert not aws.alerts.alerts(rule_id=other.id)
    # the listener only looks at the rules of the imported templates (and the * rules)
    check = aws.alerts.on_metrics_written(
        MetricsWritten(
            source="import",
            rows=4,
            template_ids=[aws.templates.row("qa")["id"]],
            first=h,
            last=h + timedelta(minutes=3),
            written_at=utcnow(),
        )
    )
    assert check.rules == 1 and check.already_fired == 1 and check.fired == []


def test_windows_a_busy_file_kept_from_checking_are_checked_with_the_next_write(
    aws, tmp_path, monkeypatch, caplog
):
    from promptver.errors import DatabaseBusy

    h = recent_hour()
    rule = aws.alerts.add("latency_p95", ">", 1000, "1h", min_events=3, template="qa")
    real_read = aws.db.read
    busy = {"left": 1}

    def read(*args, **kwargs):  # the rules' read after the import finds the file busy, once
        if busy["left"]:
            busy["left"] -= 1
            raise DatabaseBusy("database busy: another promptver process is writing x")
        return real_read(*args, **kwargs)

    def csv(name: str, start: datetime, latencies: list[int]) -> Path:
        lines = ["timestamp,template,user_id,latency_ms"] + [
            f"{(start + timedelta(minutes=i)).strftime('%Y-%m-%dT%H:%M:%SZ')},qa,u{i},{v}"
            for i, v in enumerate(latencies)
        ]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
        return tmp_path / name

    slow = csv("slow.csv", h, [1500, 1600, 1700, 1800])
    monkeypatch.setattr(aws.db, "read", read)
    with caplog.at_level("WARNING", logger="promptver"):
        assert aws.metrics.import_csv(slow).rows_imported == 4  # the events are saved
    assert busy["left"] == 0 and aws.alerts.alerts() == []
    assert "not checked" in caplog.text and "Traceback" not in caplog.text
    # the next write (fast calls an hour later) checks its own window and the missed one
    aws.metrics.import_csv(csv("fast.csv", h + timedelta(hours=1), [100, 110, 120]))
    (alert,) = aws.alerts.alerts()
    assert (alert.rule_id, alert.window_start, alert.events) == (rule.id, h, 4)


def test_rules_run_after_a_tracking_flush(db_path):
    settings = Settings().with_overrides(
        performance_tracking__batch_size=1_000_000, performance_tracking__flush_interval=3600
    )
    ws = Workspace.open(db_path, settings=settings)
    try:
        ws.templates.create("qa", "Answer {q}.", author="ana")
        t = ws.templates.get("qa")
        p = Prompt(
            template_id=t.id,
            name=t.name,
            version=t.version,
            commit=t.commit,
            content=t.content,
            environment="production",
            user_id="u1",
        )
        ws.alerts.add("error_rate", ">=", 0.5, "1h", min_events=2, template="qa")
        h = recent_hour()
        ws.track(p, error=True, timestamp=h + timedelta(minutes=1))
        ws.track(p, error=False, timestamp=h + timedelta(minutes=2))
        assert ws.alerts.alerts() == []  # buffered, not written yet
        assert ws.metrics.flush() == 2
        (alert,) = ws.alerts.alerts()
        assert (alert.source, alert.value, alert.events) == ("track", 0.5, 2)
    finally:
        ws.close()


def test_old_events_do_not_fire_after_an_import_but_check_since_finds_them(aws, tmp_path):
    old = recent_hour() - timedelta(days=10)  # beyond alert_lookback_days (7)
    aws.alerts.add("latency_avg", ">", 100, "1h", min_events=1)
    (tmp_path / "old.csv").write_text(
        f"timestamp,template,user_id,latency_ms\n{old.strftime('%Y-%m-%dT%H:%M:%SZ')},qa,u1,900\n"
    )
    aws.metrics.import_csv(tmp_path / "old.csv")
    assert aws.alerts.alerts() == []
    fired = aws.alerts.check(since=old - timedelta(hours=1)).fired
    assert [a.window_start for a in fired] == [old]


# ---- acknowledging -------------------------------------------------------------------------------


def test_acknowledge_records_who_and_when_once(aws):
    add_events(aws, "qa", [{"ts": at(i), "user_id": f"u{i}", "error": True} for i in range(2)])
    add_events(aws, "sum", [{"ts": at(i), "user_id": f"u{i}", "error": True} for i in range(2)])
    aws.alerts.add("error_rate", ">", 0.5, "1h", min_events=1)
    a, b = sorted(aws.alerts.check(NOW, since=W).fired, key=lambda x: x.id)
    assert aws.alerts.open_count() == 2
    (done,) = aws.alerts.acknowledge(a.id, author="ben")
    assert (done.status, done.acknowledged_by) == ("acknowledged", "ben")
    assert abs((done.acknowledged_at - utcnow()).total_seconds()) < 60
    (again,) = aws.alerts.acknowledge([a.id], author="dara")
    assert (again.acknowledged_by, again.acknowledged_at) == ("ben", done.acknowledged_at)
    assert [x.id for x in aws.alerts.alerts(status="open")] == [b.id]
    assert [x.id for x in aws.alerts.alerts(status="acknowledged")] == [a.id]
    with pytest.raises(NotFound, match="#999"):
        aws.alerts.acknowledge([b.id, 999], author="ben")
    assert aws.alerts.get_alert(b.id).status == "open"  # nothing was acknowledged
    with pytest.raises(ValidationError, match="status"):
        aws.alerts.alerts(status="closed")


# ---- rules --------------------------------------------------------------------------------------


def test_rules_store_what_was_asked(aws):
    r = aws.alerts.add(
        "p95",
        "gt",
        "1500",
        " 24h ",
        min_events=20,
        template="qa",
        environment="production",
        name="slow answers",
        author="ana",
    )
    assert (r.metric, r.comparator, r.threshold, r.window, r.window_seconds) == (
        "latency_p95",
        ">",
        1500.0,
        "24h",
        86400,
    )
    assert (r.template, r.environment, r.min_events, r.enabled, r.created_by) == (
        "qa",
        "production",
        20,
        True,
        "ana",
    )
    assert r.describe() == "p95 latency > 1500 over 24h (qa, production, ≥ 20 events)"
    every = aws.alerts.add("error_rate", ">=", 0.05, "7d", template="*", environment="any")
    assert (every.template_id, every.environment) == (None, None)
    assert [x.id for x in aws.alerts.rules()] == [r.id, every.id]


def test_bad_rules_are_refused_with_every_field_named(aws):
    with pytest.raises(ValidationError) as exc:
        aws.alerts.add(
            "speed",
            "=",
            float("nan"),
            "90s",
            min_events=0,
            template="nope",
            environment="prod",
            name="x" * 101,
        )
    assert {p.field for p in exc.value.problems} == {
        "metric",
        "comparator",
        "threshold",
        "window",
        "min_events",
        "template",
        "environment",
        "name",
    }
    assert aws.alerts.rules() == []  # nothing half-written
    with pytest.raises(ValidationError, match="between 1 minute"):
        aws.alerts.add("error_rate", ">", 0.1, "400d")
    with pytest.raises(ValidationError, match="threshold"):
        aws.alerts.add("error_rate", ">", True, "1h")


def test_edit_disable_and_delete_keep_the_alerts_history(aws):
    add_events(aws, "qa", [{"ts": at(0), "user_id": "a", "latency_ms": 900.0}])
    rule = aws.alerts.add("latency_avg", ">", 500, "1h", min_events=1, author="ana")
    (alert,) = aws.alerts.check(NOW, since=W).fired
    edited = aws.alerts.update(rule.id, threshold=2000, window="2h", name="slow", author="ben")
    assert (edited.threshold, edited.window, edited.name, edited.updated_by) == (
        2000.0,
        "2h",
        "slow",
        "ben",
    )
    assert edited.created_by == "ana"
    kept = aws.alerts.get_alert(alert.id)
    assert (kept.threshold, kept.window) == (500.0, "1h")  # fired under the old condition
    assert aws.alerts.disable(rule.id).enabled is False
    with pytest.raises(ValidationError, match="not a field"):
        aws.alerts.update(rule.id, colour="red")
    deleted = aws.alerts.delete(rule.id)
    assert deleted.id == rule.id and aws.alerts.rules() == []
    orphan = aws.alerts.get_alert(alert.id)
    assert orphan.rule_exists is False and orphan.rule_id == rule.id
    for call in (aws.alerts.get, aws.alerts.delete, aws.alerts.enable):
        with pytest.raises(NotFound, match=f"#{rule.id}"):
            call(rule.id)
    with pytest.raises(ValidationError, match="not an id"):
        aws.alerts.get("abc")


def test_trend_link_shows_the_window(aws):
    add_events(aws, "qa", [{"ts": at(0), "user_id": "a", "latency_ms": 900.0}])
    aws.alerts.add("latency_avg", ">", 500, "1h", min_events=1, environment="production")
    (alert,) = aws.alerts.check(NOW, since=W).fired
    assert trend_params(alert, NOW) == {
        "template": "qa",
        "metric": "latency_avg",
        "period": "4d",
        "by": "version",
        "env": "production",
        "bucket": "hour",
    }
    week = alert.model_copy(
        update={"window_end": alert.window_start + timedelta(days=7), "environment": None}
    )
    assert trend_params(week, NOW)["bucket"] == "day"
    assert trend_params(week, NOW)["period"] == "24d"
    assert trend_params(week, NOW)["env"] == "any"


def test_a_check_that_finds_nothing_new_writes_nothing(aws):
    add_events(aws, "qa", [{"ts": at(0), "user_id": "a", "latency_ms": 900.0}])
    aws.alerts.add("latency_avg", ">", 500, "1h", min_events=1)
    aws.alerts.check(NOW, since=W)
    before = aws.db.data_version()
    again = aws.alerts.check(NOW, since=W)
    assert again.already_fired == 1 and again.fired == []
    assert aws.db.data_version() == before  # read-only: caches keyed on it stay valid


# ---- issue 22 item 9: values that show the comparison, backfill, groups ---------------------------


@pytest.mark.parametrize(
    ("metric", "value", "comparator", "threshold", "text"),
    [
        ("error_rate", 0.0901408, ">", 0.09, "9.01 % > 9.00 %"),
        ("error_rate", 0.0904, ">", 0.09, "9.04 % > 9.00 %"),
        ("error_rate", 0.1172, ">", 0.09, "11.72 % > 9.00 %"),
        ("error_rate", 0.08996, "<", 0.09, "8.996 % < 9.000 %"),
        ("error_rate", 0.09, ">=", 0.09, "9.00 % >= 9.00 %"),
        ("latency_p95", 2147.09, ">", 1500, "2,147 ms > 1,500 ms"),
        ("latency_p95", 1500.2, ">", 1500, "1,500.2 ms > 1,500.0 ms"),
        ("cost_per_request", 0.00213, ">", 0.002, "$0.00213 > $0.002"),
        ("quality_score", 0.5499, "<", 0.55, "0.5499 < 0.55"),
        ("tokens_out", 812.4, ">", 800, "812 > 800"),
    ],
)
def test_values_are_written_with_the_digits_the_comparison_needs(
    metric, value, comparator, threshold, text
):
    from promptver.alerts import condition_text

    assert condition_text(metric, value, comparator, threshold) == text


def test_windows_older_than_the_rule_are_marked_backfill(aws):
    """A rule created today that finds last week's windows (check --since) stores them as
    backfill; a rule that existed then does not (its alerts are ordinary)."""
    from promptver.versioning import demo_clock
    from tests.trends_helpers import Clock

    add_events(aws, "qa", [{"ts": at(i), "user_id": f"u{i}", "error": True} for i in range(3)])
    new = aws.alerts.add("error_rate", ">", 0.5, "1h", min_events=1, template="qa")
    with demo_clock(Clock(W - timedelta(days=1))):
        old = aws.alerts.add("error_rate", ">", 0.4, "1h", min_events=1, template="qa")
    fired = {a.rule_id: a for a in aws.alerts.check(NOW, since=W).fired}
    assert fired[new.id].backfill and fired[new.id].window_end <= new.created_at
    assert not fired[old.id].backfill
    groups = {g.rule_id: g for g in aws.alerts.groups()}
    assert (groups[new.id].backfill, groups[old.id].backfill) == (1, 0)


def test_alerts_group_per_rule_and_template_with_the_deployment_then_and_now(aws):
    """Three windows of one rule on qa and one on sum make two groups; the group says which
    deployment served its latest window and what is live now (a rollback since)."""
    from tests.trends_helpers import deploy_at, rollback_at

    aws.templates.update("qa", "Answer {q} briefly.", author="ana")
    first = deploy_at(aws, "qa", "1.0.0", "production", W - timedelta(days=3))
    second = deploy_at(aws, "qa", "1.1.0", "production", W - timedelta(days=1))
    events = [
        {"ts": W + timedelta(hours=h, minutes=i), "user_id": f"u{h}{i}", "error": True}
        for h in range(3)
        for i in range(2)
    ]
    add_events(aws, "qa", events)
    add_events(aws, "sum", [{"ts": at(i), "user_id": f"s{i}", "error": True} for i in range(2)])
    rule = aws.alerts.add("error_rate", ">", 0.5, "1h", min_events=1, environment="production")
    aws.alerts.check(NOW, since=W)
    back = rollback_at(aws, "qa", "production", W + timedelta(days=1))
    groups = aws.alerts.groups()
    assert [(g.template, g.count) for g in groups] == [("qa", 3), ("sum", 1)]
    qa = groups[0]
    alerts = aws.alerts.alerts(rule_id=rule.id, template="qa")
    assert qa.alert_ids == [a.id for a in alerts] and qa.open_ids == qa.alert_ids
    assert qa.latest.window_start == W + timedelta(hours=2)
    assert qa.first_window == W
    assert qa.environment == "production"
    assert qa.deployed.deployment_id == second.id and qa.deployed.version == "1.1.0"
    assert qa.live_now.deployment_id == back.id and qa.live_now.version == first.version
    assert groups[1].deployed is None and groups[1].live_now is None
    # acknowledged alerts leave the open groups
    aws.alerts.acknowledge(qa.open_ids, author="me")
    assert [g.template for g in aws.alerts.groups()] == ["sum"]
    assert [g.count for g in aws.alerts.groups(status=None)] == [3, 1]

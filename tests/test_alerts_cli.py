"""``promptver alerts …`` and ``promptver trends``: JSON shapes, human output, exit codes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from promptver.models import Alert, AlertCheck, AlertRule, TrendReport
from promptver.versioning import utcnow
from tests.trends_helpers import add_events

RULE_KEYS = set(AlertRule.model_fields)
ALERT_KEYS = set(Alert.model_fields)


@pytest.fixture
def slow(ws):
    """Template qa with slow calls in the hour two hours ago (and one fast call in staging)."""
    ws.templates.create("qa", "Answer {q}.", author="ana")
    h = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    add_events(
        ws,
        "qa",
        [
            {"ts": h + timedelta(minutes=i), "user_id": f"u{i}", "latency_ms": 2000.0 + i}
            for i in range(5)
        ]
        + [{"ts": h, "user_id": "s", "latency_ms": 10.0, "environment": "staging"}],
    )
    return h


def test_add_list_edit_switch_and_delete_rules(cli, slow):
    r = cli(
        "alerts",
        "add",
        "latency_p95",
        "gt",
        "1500",
        "--window",
        "24h",
        "--template",
        "qa",
        "--env",
        "production",
        "--name",
        "slow answers",
        "--min-events",
        "3",
        json=True,
    )
    assert r.code == 0, r.err
    rule = r.json()
    assert set(rule) == RULE_KEYS
    assert (rule["metric"], rule["comparator"], rule["threshold"], rule["window"]) == (
        "latency_p95",
        ">",
        1500.0,
        "24h",
    )
    assert (rule["template"], rule["environment"], rule["min_events"], rule["enabled"]) == (
        "qa",
        "production",
        3,
        True,
    )
    assert rule["created_by"] == "tester"
    human = cli("alerts", "add", "error_rate", ">=", "0.05", "--window", "7d", "--disabled")
    assert human.code == 0
    assert human.out.strip() == (
        "created rule #2: error rate >= 0.05 over 7d (every template, any environment, ≥ 10 events)"
    )
    listed = cli("alerts", "list", json=True).json()
    assert [x["id"] for x in listed] == [1, 2] and all(set(x) == RULE_KEYS for x in listed)
    assert [x["id"] for x in cli("alerts", "list", "--enabled", json=True).json()] == [1]
    assert "slow answers" in cli("alerts", "list").out
    edited = cli("alerts", "edit", "1", "--threshold", "2500", "--window", "1h", json=True)
    assert (edited.json()["threshold"], edited.json()["window"]) == (2500.0, "1h")
    assert cli("alerts", "disable", "1", json=True).json()["enabled"] is False
    assert cli("alerts", "enable", "#1", json=True).json()["enabled"] is True
    gone = cli("alerts", "delete", "2", json=True)
    assert gone.code == 0 and gone.json()["id"] == 2
    again = cli("alerts", "delete", "2")
    assert again.code == 1
    assert again.err.strip() == "error: alert rule #2 does not exist (promptver alerts list)"


def test_bad_rules_exit_1_with_one_line_naming_the_fields(cli, slow):
    r = cli("alerts", "add", "speed", "=", "x", "--window", "90s")
    assert r.code == 1 and r.out == ""
    assert r.err.count("\n") == 1 and r.err.startswith("error: invalid alert rule:")
    for field in ("metric:", "comparator:"):
        assert field in r.err
    r = cli("alerts", "add", "latency_avg", ">", "1", "--window", "90s", "--template", "nope")
    assert r.code == 1 and "window:" in r.err and "template:" in r.err
    assert cli("alerts", "add", "latency_avg", ">", "1").code == 2  # --window is required
    assert cli("alerts", "edit", "1").code == 2  # nothing to change
    assert cli("alerts", "frobnicate").code == 2


def test_check_fired_and_ack(cli, slow):
    cli(
        "alerts",
        "add",
        "latency_avg",
        ">",
        "1000",
        "--window",
        "1h",
        "--min-events",
        "5",
        "--env",
        "production",
    )
    r = cli("alerts", "check", "--since", "1d", json=True)
    assert r.code == 0, r.err
    check = r.json()
    assert set(check) == set(AlertCheck.model_fields)
    assert (check["source"], check["rules"], check["already_fired"]) == ("check", 1, 0)
    (alert,) = check["fired"]
    assert set(alert) == ALERT_KEYS
    assert (alert["template"], alert["value"], alert["events"], alert["status"]) == (
        "qa",
        2002.0,
        5,
        "open",
    )
    assert alert["window_start"] == slow.isoformat()
    # a second check stores nothing new; --fail-on-alert only fails when something fired
    again = cli("alerts", "check", "--since", "1d", "--fail-on-alert", json=True)
    assert again.code == 0 and again.json()["fired"] == [] and again.json()["already_fired"] == 1
    cli("alerts", "add", "latency_avg", ">", "1", "--window", "2h", "--min-events", "1")
    failing = cli("alerts", "check", "--since", "1d", "--fail-on-alert")
    assert failing.code == 1 and "new alert(s)" in failing.out and failing.err == ""
    since_iso = (slow - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert cli("alerts", "check", "--since", since_iso, json=True).code == 0
    assert cli("alerts", "check", "--since", "last tuesday").code == 2
    fired = cli("alerts", "fired", "--status", "open", json=True).json()
    assert len(fired) == 2 and all(set(a) == ALERT_KEYS for a in fired)
    table = cli("alerts", "fired").out
    assert "2,002 ms > 1000" in table and "open" in table
    done = cli("alerts", "ack", str(alert["id"]), "--author", "ben", json=True)
    assert done.code == 0
    assert (done.json()[0]["status"], done.json()[0]["acknowledged_by"]) == ("acknowledged", "ben")
    assert len(cli("alerts", "fired", "--status", "open", json=True).json()) == 1
    assert cli("alerts", "ack", "999").code == 1
    assert cli("alerts", "ack").code == 2
    rest = cli("alerts", "ack", "--all", json=True)
    assert rest.code == 0 and len(rest.json()) == 1
    assert cli("alerts", "ack", "--all").out.strip() == "no open alerts"
    assert cli("alerts", "fired", "--template", "nope").code == 1


def test_alerts_check_in_a_subprocess_never_prints_a_traceback(run_cli, ws):
    ws.templates.create("qa", "Answer {q}.", author="ana")
    r = run_cli("--json", "alerts", "check")
    assert r.code == 0 and '"fired": []' in r.out
    bad = run_cli("alerts", "add", "latency_avg", ">", "1", "--window", "0h")
    assert bad.code == 1 and "Traceback" not in bad.err
    assert bad.err.startswith("error: invalid alert rule: window:")


def test_trends_json_and_text(cli, slow):
    r = cli(
        "trends",
        "qa",
        "--metric",
        "latency_avg",
        "--metric",
        "p95",
        "--period",
        "3d",
        "--by",
        "environment",
        json=True,
    )
    assert r.code == 0, r.err
    report = r.json()
    assert set(report) == set(TrendReport.model_fields)
    assert report["metrics"] == ["latency_avg", "latency_p95"]
    assert (report["bucket"], report["by"], report["period"]) == ("hour", "environment", "3d")
    assert {(s["group"], s["metric"]) for s in report["series"]} == {
        ("production", "latency_avg"),
        ("staging", "latency_avg"),
        ("production", "latency_p95"),
        ("staging", "latency_p95"),
    }
    text = cli("trends", "qa", "--period", "3d").out
    assert text.startswith("qa: 3d to ") and "hour buckets" in text
    assert "not enough data for a trend" in text
    assert cli("trends", "nope").code == 1
    assert cli("trends", "qa", "--by", "user").code == 2
    bad = cli("trends", "qa", "--period", "soon")
    assert bad.code == 1 and "period" in bad.err

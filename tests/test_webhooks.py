"""Webhooks (CONTRACT "Webhooks"): outbox in the change's transaction, Standard Webhooks
signatures (verified with the ``standardwebhooks`` library), retries, the delivery log."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from promptver import outbox
from promptver.errors import ImportError_, ValidationError
from promptver.webhooks import MAX_ATTEMPTS, RETRY_DELAYS, WebhookService, sign
from tests.trends_helpers import add_events
from tests.webhook_helpers import Clock, free_port, receiver


@pytest.fixture
def svc(ws):
    return WebhookService.for_workspace(ws)


def _verify(secret: str, req) -> dict:
    """The library's own check (signature and a timestamp within 5 minutes of now)."""
    return Webhook(secret).verify(req.body, req.headers)


def _experiment(ws):
    ws.templates.create("qa", "Answer {q}.")
    ws.templates.update("qa", "Answer {q} briefly.")
    return ws.experiments.create(
        {
            "name": "brief",
            "template": "qa",
            "environment": "production",
            "variants": [
                {"name": "control", "ref": "1.0.0", "weight": 50},
                {"name": "brief", "ref": "1.1.0", "weight": 50},
            ],
            "metrics": ["quality_score"],
        }
    )


def test_every_event_type_arrives_signed(ws, svc):
    with receiver() as r:
        hook, secret = svc.add(r.url, ["*"])
        assert secret.startswith("whsec_")
        exp = _experiment(ws)  # 2 commits
        ws.deployments.deploy("qa", "1.0.0", "development")
        ws.deployments.promote("qa", "development")  # to staging
        ws.deployments.deploy("qa", "1.1.0", "development")
        ws.deployments.rollback("qa", "development")
        ws.deployments.deploy("qa", "1.0.0", "production", force=True, reason="test")
        ws.experiments.start(exp.id)
        ws.experiments.stop(exp.id)
        now = datetime.now(UTC)
        hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
        add_events(ws, "qa", [{"ts": hour + timedelta(minutes=10), "user_id": "u1", "error": 1}])
        ws.alerts.add("error", ">", 0.5, "1h", min_events=1, template="qa")
        assert ws.alerts.check(now, since=hour).fired  # the window two hours ago, any time of day
        with ws.db.transaction() as con:
            outbox.emit_eval_imported(
                con, {"dataset": "golden", "template": "qa", "version": "1.1.0"}
            )
        summary = svc.deliver()
        assert summary["delivered"] == summary["attempted"] == 11
        assert r.wait_for(lambda reqs: len(reqs) == 11)
    types = [req.json()["type"] for req in r.requests]
    assert sorted(set(types)) == sorted(outbox.EVENT_TYPES)
    assert types.count("commit.created") == 2 and types.count("deployment.created") == 5
    for req in r.requests:
        body = _verify(secret, req)
        assert set(body) == {"type", "timestamp", "data"}
        assert req.headers["webhook-id"].startswith("msg_")
        assert req.path == "/hook"
    deploys = [q.json()["data"] for q in r.requests if q.json()["type"] == "deployment.created"]
    assert [d["action"] for d in deploys].count("rollback") == 1
    assert {d["environment"] for d in deploys} == {"development", "staging", "production"}
    commit = next(q.json()["data"] for q in r.requests if q.json()["type"] == "commit.created")
    assert commit["template"] == "qa" and commit["version"] == "1.0.0"
    stopped = next(q.json() for q in r.requests if q.json()["type"] == "experiment.stopped")
    assert stopped["data"]["name"] == "brief" and stopped["data"]["status"] == "completed"


def test_signature_matches_the_contract_formula(ws, svc):
    import base64
    import hashlib
    import hmac

    with receiver() as r:
        hook, secret = svc.add(r.url, ["commit.created"])
        ws.templates.create("a", "Hi {x}")
        svc.deliver()
        assert r.wait_for(lambda reqs: len(reqs) == 1)
    req = r.requests[0]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{req.headers['webhook-id']}.{req.headers['webhook-timestamp']}.{req.body}"
    mac = base64.b64encode(hmac.new(key, signed.encode(), hashlib.sha256).digest()).decode()
    assert req.headers["webhook-signature"] == "v1," + mac


def test_subscriptions_get_only_their_events(ws, svc):
    with receiver() as r:
        svc.add(r.url, ["deployment.created"])
        ws.templates.create("a", "Hi {x}")
        assert svc.deliver()["attempted"] == 0
        ws.deployments.deploy("a", "1.0.0", "development")
        assert svc.deliver()["delivered"] == 1
    assert r.requests[0].json()["type"] == "deployment.created"


def test_no_subscription_writes_nothing(ws, svc):
    ws.templates.create("a", "Hi {x}")
    assert svc.deliveries() == []


def test_event_is_rolled_back_with_its_change(ws, svc):
    with receiver() as r:
        svc.add(r.url, ["*"])
        with pytest.raises(RuntimeError), ws.db.transaction():
            ws.templates.create("a", "Hi {x}")
            raise RuntimeError("abort")
        assert svc.deliveries() == []
        assert svc.deliver()["attempted"] == 0


def test_500_three_times_then_200_delivers_on_the_fourth_attempt_same_id(ws):
    clock = Clock(datetime.now(UTC))
    svc = WebhookService.for_workspace(ws, clock=clock)
    with receiver() as r:
        r.statuses = [500, 500, 500]
        hook, secret = svc.add(r.url, ["commit.created"])
        ws.templates.create("a", "Hi {x}")
        clock.now = datetime.now(UTC)  # after the commit: the event is due
        for i in range(3):
            assert svc.deliver() == {"attempted": 1, "delivered": 0, "retrying": 1, "failed": 0}
            assert svc.deliver()["attempted"] == 0  # not due before its delay
            clock.advance(RETRY_DELAYS[i])
        assert svc.deliver()["delivered"] == 1
        assert r.wait_for(lambda reqs: len(reqs) == 4)
        clock.advance(timedelta(days=3))
        assert svc.deliver(include_waiting=True)["attempted"] == 0  # never twice after a 2xx
    assert len({q.headers["webhook-id"] for q in r.requests}) == 1
    for q in r.requests:  # each attempt signed with its own timestamp
        ts = datetime.fromtimestamp(int(q.headers["webhook-timestamp"]), UTC)
        assert q.headers["webhook-signature"] == sign(secret, q.headers["webhook-id"], ts, q.body)
    (m,) = svc.deliveries()
    assert m["status"] == "delivered"
    assert [a["status_code"] for a in m["attempt_log"]] == [500, 500, 500, 200]


def test_retries_grow_and_last_more_than_a_day(ws):
    start = datetime.now(UTC)
    clock = Clock(start)
    svc = WebhookService.for_workspace(ws, clock=clock)
    with receiver() as r:
        r.statuses = [503] * 100
        svc.add(r.url, ["commit.created"])
        ws.templates.create("a", "Hi {x}")
        clock.now = datetime.now(UTC)
        while True:
            s = svc.deliver()
            (m,) = svc.deliveries()
            if m["status"] != "pending":
                break
            clock.now = m["next_attempt_at"]
    times = [a["at"] for a in m["attempt_log"]]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert s["failed"] == 1 and m["status"] == "failed"
    assert len(times) == MAX_ATTEMPTS == len(r.requests)
    assert all(b >= a for a, b in zip(gaps, gaps[1:], strict=False))  # growing delays
    assert times[-1] - times[0] >= timedelta(hours=24)


def test_unreachable_receiver_is_retried(ws, svc):
    url = f"http://127.0.0.1:{free_port()}/hook"
    svc.add(url, ["commit.created"])
    ws.templates.create("a", "Hi {x}")
    assert svc.deliver()["retrying"] == 1
    (m,) = svc.deliveries()
    assert m["attempt_log"][0]["status_code"] is None and m["attempt_log"][0]["error"]


def test_response_body_is_kept_to_1_kb(ws, svc):
    with receiver() as r:
        r.response_body = "x" * 5000
        svc.add(r.url, ["commit.created"])
        ws.templates.create("a", "Hi {x}")
        svc.deliver()
    (m,) = svc.deliveries()
    assert len(m["attempt_log"][0]["response_body"].encode()) <= 1024


def test_manual_redelivery_sends_the_same_id_again(ws, svc):
    with receiver() as r:
        svc.add(r.url, ["commit.created"])
        ws.templates.create("a", "Hi {x}")
        svc.deliver()
        (m,) = svc.deliveries()
        svc.redeliver(m["id"])
        assert svc.deliver()["delivered"] == 1
        assert r.wait_for(lambda reqs: len(reqs) == 2)
    assert r.requests[0].headers["webhook-id"] == r.requests[1].headers["webhook-id"] == m["id"]
    (m,) = svc.deliveries()
    assert [a["manual"] for a in m["attempt_log"]] == [False, True]


def test_slack_format_is_one_readable_line_with_a_link(ws):
    svc = WebhookService.for_workspace(ws, dashboard_url="http://pv.example:8501")
    with receiver() as r:
        svc.add(r.url, ["deployment.created"], format="slack")
        ws.templates.create("a", "Hi {x}")
        ws.deployments.deploy("a", "1.0.0", "development", author="ana & <bo>")
        svc.deliver()
    body = r.requests[0].json()
    assert set(body) == {"text"} and "\n" not in body["text"]
    assert body["text"] == (
        "promptver: ana &amp; &lt;bo&gt; deployed a to 1.0.0 in development "
        "<http://pv.example:8501/deployments|open in promptver>"
    )


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "http://", "x"]
)
def test_only_http_urls_are_accepted(svc, url):
    with pytest.raises(ValidationError) as e:
        svc.add(url, ["*"])
    assert "url" in str(e.value)
    assert svc.list() == []


def test_unknown_event_is_refused(svc):
    with pytest.raises(ValidationError, match="events"):
        svc.add("http://127.0.0.1:9/x", ["commit.made"])


def test_secret_is_not_in_the_database_file(ws, svc, db_path):
    hook, secret = svc.add("https://hooks.example.com/x", ["*"])
    ws.close()
    raw = db_path.read_bytes() + (
        db_path.with_name(db_path.name + ".wal").read_bytes()
        if db_path.with_name(db_path.name + ".wal").exists()
        else b""
    )
    assert secret.encode() not in raw and secret.removeprefix("whsec_").encode() not in raw
    key = db_path.with_name(db_path.name + ".webhook-key")
    assert key.exists() and stat.S_IMODE(os.stat(key).st_mode) == 0o600
    # the same key gives the same secret: deliveries after a restart still verify
    assert WebhookService.for_workspace(ws).keys.secret(hook["id"]) == secret


def test_removing_a_webhook_cancels_its_pending_deliveries(ws, svc):
    hook, _ = svc.add(f"http://127.0.0.1:{free_port()}/x", ["*"])
    ws.templates.create("a", "Hi {x}")
    svc.remove(hook["id"])
    assert svc.list() == []
    assert [m["status"] for m in svc.deliveries()] == ["cancelled"]
    assert svc.deliver(include_waiting=True)["attempted"] == 0


def test_send_test_reports_the_attempt(ws, svc):
    with receiver() as r:
        hook, secret = svc.add(r.url, ["commit.created"])
        m = svc.send_test(hook["id"])
        assert m["status"] == "delivered" and m["type"] == "webhook.test"
        assert _verify(secret, r.requests[0])["type"] == "webhook.test"


def test_cli_add_list_deliveries_deliver(cli):
    with receiver() as r:
        out = cli("webhook", "add", r.url, "--event", "commit.created", json=True)
        assert out.code == 0, out.err
        added = out.json()
        assert set(added) == {"id", "url", "events", "secret"}
        assert added["events"] == ["commit.created"] and added["secret"].startswith("whsec_")
        listed = cli("webhook", "list", json=True).json()
        assert [h["id"] for h in listed] == [added["id"]] and "secret" not in listed[0]
        assert added["secret"] not in cli("webhook", "list").out
        assert cli("template", "create", "a", "--content", "Hi {x}").code == 0
        d = cli("webhook", "deliver", json=True)
        assert d.code == 0 and d.json()["delivered"] == 1
        log = cli("webhook", "deliveries", added["id"], json=True).json()
        assert log[0]["status"] == "delivered" and log[0]["type"] == "commit.created"
        assert log[0]["attempts"][0]["status_code"] == 200
        _verify(added["secret"], r.requests[0])
    bad = cli("webhook", "add", "file:///x", "--event", "*")
    assert bad.code == 1 and bad.err.startswith("error: ") and "url" in bad.err


def test_events_survive_a_process_killed_right_after_the_deploy(db_path):
    """The receiver is down, the deploying process dies (SIGKILL) right after its commit: the
    event is delivered once the receiver is back, by a later delivery pass."""
    import subprocess
    import sys

    from promptver import Workspace
    from tests.conftest import ROOT

    port = free_port()  # nothing listens there yet: the receiver is down
    with Workspace.open(db_path) as w:
        w.templates.create("a", "Hi {x}")
        hook, secret = WebhookService.for_workspace(w).add(
            f"http://127.0.0.1:{port}/hook", ["deployment.created"]
        )
        assert WebhookService.for_workspace(w).deliver()["attempted"] == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROMPTVER_CRASH_POINT": "after-commit:1"}
    p = subprocess.Popen(
        [sys.executable, "-m", "promptver", "--db", str(db_path), "deploy", "a", "1.0.0"]
        + ["--env", "development"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stderr is not None
        line = p.stderr.readline()
        assert "promptver-crash-point after-commit" in line, line
    finally:
        p.kill()  # SIGKILL: no cleanup, no delivery
        p.wait(30)
    with Workspace.open(db_path) as w:
        assert w.deployments.history("a")[0].environment == "development"
        svc = WebhookService.for_workspace(w)
        assert svc.deliver()["retrying"] == 1  # still down: the attempt failed, nothing lost
        with receiver(port) as r:  # the receiver comes back on its address
            assert svc.deliver(include_waiting=True)["delivered"] == 1
            body = _verify(secret, r.requests[0])
    assert body["type"] == "deployment.created" and body["data"]["version"] == "1.0.0"
    assert len(r.requests) == 1


def test_body_is_the_contract_shape(ws, svc):
    with receiver() as r:
        svc.add(r.url, ["commit.created"])
        ws.templates.create("a", "Hi {x}")
        svc.deliver()
    body = json.loads(r.requests[0].body)
    assert list(body) == ["type", "timestamp", "data"]
    assert body["timestamp"].endswith("Z")
    datetime.fromisoformat(body["timestamp"])


def test_background_deliverer_sends_without_holding_the_file(ws, run_cli):
    """The dashboard's thread: while a receiver hangs, another process can use the file."""
    import threading

    from promptver.webhooks import BackgroundDeliverer

    with receiver() as r:
        r.gate = threading.Event()  # the receiver holds the request until released
        WebhookService.for_workspace(ws).add(r.url, ["commit.created"])
        d = BackgroundDeliverer.start(ws, interval=0.05)
        try:
            assert BackgroundDeliverer.start(ws) is d  # one per database and process
            ws.templates.create("a", "Hi {x}")
            assert r.arrived.wait(20)
            # the request is in flight (blocked in the receiver): the file must be free
            other = run_cli("template", "list", env={"PROMPTVER_BUSY_TIMEOUT": "5"})
            assert other.code == 0, other.err
            assert "a" in other.out
            r.gate.set()
            assert r.wait_for(lambda reqs: len(reqs) == 1)
        finally:
            d.stop()
    assert r.requests[0].json()["type"] == "commit.created"


def test_a_merging_sync_reports_its_merge_commit_only(ws, svc, tmp_path):
    from promptver.filesync import FileSync

    ws.templates.create("m", "One {a}\ntwo\nthree\n")
    FileSync(ws).export(tmp_path / "p")
    ws.templates.update("m", "One {a}, db\ntwo\nthree\n")
    f = tmp_path / "p" / "m.yaml"
    f.write_text(f.read_text().replace("three", "three, file"))
    with receiver() as r:
        svc.add(r.url, ["commit.created"])
        assert FileSync(ws).sync(tmp_path / "p").committed == ["m"]
        assert svc.deliver()["delivered"] == 1
    (event,) = [q.json()["data"] for q in r.requests]
    assert event["branch"] == "main" and len(event["parents"]) == 2 and event["version"] == "1.2.0"


def test_promptver_serve_delivers_in_the_background(db_path, tmp_path):
    import subprocess
    import sys

    from promptver import Workspace
    from tests.conftest import ROOT

    cfg = tmp_path / "promptver.yaml"
    cfg.write_text("webhooks:\n  poll_seconds: 0.2\n", encoding="utf-8")
    with receiver() as r:
        with Workspace.open(db_path) as w:
            WebhookService.for_workspace(w).add(r.url, ["commit.created"])
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PROMPTVER_CONFIG": str(cfg)}
        p = subprocess.Popen(
            [sys.executable, "-m", "promptver", "--db", str(db_path), "serve", "--port", "0"]
            + ["--no-access-log"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert p.stderr is not None
            assert "promptver API on" in p.stderr.readline()
            with Workspace.open(db_path) as w:  # a change made by another process
                w.templates.create("from-elsewhere", "Hi {x}")
            assert r.wait_for(lambda reqs: len(reqs) == 1, timeout=60)
        finally:
            p.terminate()
            p.wait(30)
    assert r.requests[0].json()["data"]["template"] == "from-elsewhere"


def test_deliver_now_waits_for_a_message_another_deliverer_holds(ws, svc):
    """The dashboard's thread may lease a message just as someone clicks Retry/Send test."""
    import threading

    with receiver() as r:
        r.gate = threading.Event()
        hook, _ = svc.add(r.url, ["commit.created"])
        ws.templates.create("a", "Hi {x}")
        (m,) = svc.deliveries()
        other = threading.Thread(target=WebhookService.for_workspace(ws).deliver)
        other.start()  # leases the message, then hangs in the receiver
        assert r.arrived.wait(20)
        threading.Timer(0.2, r.gate.set).start()
        summary = svc.deliver_now(m["id"])  # waits for the other attempt, sends nothing itself
        other.join(20)
    assert summary["delivered"] == 1 and len(r.requests) == 1


def test_cli_test_redeliver_and_remove(cli):
    with receiver() as r:
        hook = cli("webhook", "add", r.url, "--event", "*", "--format", "slack", json=True).json()
        t = cli("webhook", "test", hook["id"], json=True)
        assert t.code == 0 and t.json()["status"] == "delivered"
        assert set(r.requests[0].json()) == {"text"}
        again = cli("webhook", "redeliver", t.json()["id"], json=True)
        assert again.code == 0 and again.json()["delivered"] == 1
        assert r.wait_for(lambda reqs: len(reqs) == 2)
        log = cli("webhook", "deliveries", json=True).json()
        assert [a["manual"] for a in log[0]["attempts"]] == [False, True]
        gone = cli("webhook", "remove", hook["id"], json=True)
        assert gone.code == 0 and gone.json()["id"] == hook["id"]
        assert cli("webhook", "list", json=True).json() == []
        assert cli("webhook", "remove", hook["id"]).code == 1
    down = cli("webhook", "add", f"http://127.0.0.1:{free_port()}/x", "--event", "*", json=True)
    assert cli("webhook", "test", down.json()["id"]).code == 1  # not delivered: exit 1


def test_an_eval_import_reports_each_run_in_its_transaction(ws, svc, tmp_path):
    """``eval.imported`` comes from the evaluations' import hook (one event per run written);
    a refused file writes no event."""
    ws.templates.create("qa", "Answer {q}.")
    ws.templates.update("qa", "Answer {q} briefly.")
    head = "dataset,item_id,template,version,quality\n"
    good = tmp_path / "good.csv"
    good.write_text(head + "golden,a,qa,1.0.0,0.5\ngolden,a,qa,1.1.0,0.7\ngolden,b,qa,1.1.0,0.9\n")
    bad = tmp_path / "bad.csv"
    bad.write_text(head + "golden,a,qa,9.9.9,0.5\n")
    with receiver() as r:
        _, secret = svc.add(r.url, ["eval.imported"])
        with pytest.raises(ImportError_):
            ws.evals.import_csv(bad, author="ana")
        assert svc.deliver()["attempted"] == 0
        result = ws.evals.import_csv(good, author="ana")
        assert svc.deliver()["delivered"] == 2
        assert r.wait_for(lambda reqs: len(reqs) == 2)
    got = sorted((_verify(secret, q)["data"] for q in r.requests), key=lambda d: d["version"])
    commits = {
        v: ws.versions.resolve(ws.templates.row("qa")["id"], v).id for v in ("1.0.0", "1.1.0")
    }
    assert [(d["dataset"], d["template"], d["version"], d["commit"], d["rows"]) for d in got] == [
        ("golden", "qa", "1.0.0", commits["1.0.0"], 1),
        ("golden", "qa", "1.1.0", commits["1.1.0"], 2),
    ]
    assert {d["import_id"] for d in got} == {result.import_id}
    assert all(d["scores"] == ["quality"] for d in got)

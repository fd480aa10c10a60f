"""``/api/v1/webhooks``: subscriptions, the delivery log, redelivery and test sends over HTTP,
with the CLI's shapes, the token on every endpoint, and problems by field."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.api_helpers import (
    TOKEN,
    TOKEN_HASH,
    api_fixture,  # noqa: F401 - fixture
    fields,
    open_ws,
    problem,
    serve_fixture,  # noqa: F401 - fixture
)
from tests.webhook_helpers import receiver


def _times(value):
    """``value`` with every ISO 8601 text read as a datetime: the API writes UTC as ``Z``, the
    CLI's ``--json`` as ``+00:00``; both name the same instant."""
    if isinstance(value, dict):
        return {k: _times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_times(v) for v in value]
    if isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value[10] == "T":
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def test_create_list_test_deliveries_redeliver_delete(api, cli):
    with receiver() as r:
        created = api.post(
            "/webhooks",
            json={
                "url": r.url,
                "events": ["deployment.created", "*"],
                "format": "json",
                "description": "ci",
                "author": "ana",
            },
        )
        assert created.status_code == 201, created.text
        hook = created.json()
        wid = hook["id"]
        assert wid.startswith("wh_") and hook["secret"].startswith("whsec_")
        assert hook["url"] == r.url and hook["events"] == ["deployment.created", "*"]
        assert hook["description"] == "ci" and hook["created_by"] == "ana"

        listed = api.get("/webhooks")
        assert listed.status_code == 200
        assert [h["id"] for h in listed.json()] == [wid]
        assert "secret" not in listed.json()[0] and hook["secret"] not in listed.text
        assert _times(listed.json()) == _times(cli("webhook", "list", json=True).json())

        sent = api.post(f"/webhooks/{wid}/test")
        assert sent.status_code == 200, sent.text
        msg = sent.json()
        assert msg["type"] == "webhook.test" and msg["status"] == "delivered"
        assert [(a["attempt"], a["ok"], a["status_code"]) for a in msg["attempts"]] == [
            (1, True, 200)
        ]
        assert len(r.requests) == 1
        got = r.requests[0]
        assert got.headers["webhook-id"] == msg["id"]
        assert got.json()["type"] == "webhook.test" and got.json()["data"]["webhook"] == wid
        # the secret of the creation answer verifies what the receiver got
        from standardwebhooks.webhooks import Webhook

        assert Webhook(hook["secret"]).verify(got.body, got.headers)["type"] == "webhook.test"

        log = api.get(f"/webhooks/{wid}/deliveries")
        assert log.status_code == 200
        assert [m["id"] for m in log.json()] == [msg["id"]]
        assert log.json()[0]["attempts"][0]["response_body"] == "ok"
        assert _times(log.json()) == _times(cli("webhook", "deliveries", wid, json=True).json())

        r.statuses = [503]  # the receiver fails the redelivery: recorded, to retry
        again = api.post(f"/webhooks/deliveries/{msg['id']}/redeliver")
        assert again.status_code == 200, again.text
        assert again.json() == {
            "id": msg["id"],
            "attempted": 1,
            "delivered": 0,
            "retrying": 1,
            "failed": 0,
        }
        assert len(r.requests) == 2 and r.requests[1].headers["webhook-id"] == msg["id"]
        attempts = api.get(f"/webhooks/{wid}/deliveries", params={"limit": 1}).json()[0]
        assert [(a["attempt"], a["status_code"], a["manual"]) for a in attempts["attempts"]] == [
            (1, 200, False),
            (2, 503, True),
        ]
        assert attempts["status"] == "pending" and attempts["next_attempt_at"] is not None

        removed = api.delete(f"/webhooks/{wid}")
        assert removed.status_code == 200
        assert removed.json()["id"] == wid and "secret" not in removed.json()
        assert api.get("/webhooks").json() == []
        problem(api.delete(f"/webhooks/{wid}"), 404, "not-found")
        # the delivery log of a removed subscription stays
        assert [m["id"] for m in cli("webhook", "deliveries", json=True).json()] == [msg["id"]]


def test_every_endpoint_needs_the_token_when_tokens_are_configured(serve, db_path):
    ws = open_ws(db_path, server__token_hashes=[TOKEN_HASH])
    try:
        from promptver.webhooks import WebhookService

        hook, _ = WebhookService.for_workspace(ws).add("http://127.0.0.1:9/hook", ["*"])
        api = serve(ws)
        wid = hook["id"]
        calls = [
            ("GET", "/webhooks", None),
            ("POST", "/webhooks", {"url": "http://127.0.0.1:9/x", "events": ["*"]}),
            ("DELETE", f"/webhooks/{wid}", None),
            ("GET", f"/webhooks/{wid}/deliveries", None),
            ("POST", "/webhooks/deliveries/msg_nope/redeliver", None),
            ("POST", f"/webhooks/{wid}/test", None),
        ]
        for method, path, body in calls:
            r = api.request(method, path, json=body)
            problem(r, 401, "unauthorized")
            assert r.headers["www-authenticate"] == 'Bearer realm="promptver"'
            r = api.request(method, path, json=body, headers={"Authorization": "Bearer wrong"})
            problem(r, 401, "unauthorized")
        # nothing was added, removed or sent
        assert [h["id"] for h in WebhookService.for_workspace(ws).list()] == [wid]
        assert WebhookService.for_workspace(ws).deliveries(wid) == []
        auth = {"Authorization": f"Bearer {TOKEN}"}
        listed = api.get("/webhooks", headers=auth)
        assert listed.status_code == 200 and [h["id"] for h in listed.json()] == [wid]
        r = api.post(
            "/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["*"]}, headers=auth
        )
        assert r.status_code == 201, r.text
        assert r.json()["created_by"] == "api"
    finally:
        ws.close()


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({"url": "ftp://example.com/hook", "events": ["*"]}, "url", "http://"),
        ({"url": "http://", "events": ["*"]}, "url", "with a host"),
        ({"url": "https://example.com/h", "events": ["deploy.done"]}, "events", "deploy.done"),
        ({"url": "https://example.com/h", "events": []}, "events", "at least one"),
        (
            {"url": "https://example.com/h", "events": ["*"], "description": "x" * 201},
            "description",
            "200",
        ),
        ({"url": "https://example.com/h", "events": ["*"], "author": "a\nb"}, "author", "one line"),
    ],
)
def test_refused_subscriptions_name_the_field_and_store_nothing(api, ws, body, field, words):
    r = api.post("/webhooks", json=body)
    p = problem(r, 422, "validation-error")
    assert fields(p) == [field]
    assert words in p["problems"][0]["message"]
    assert api.get("/webhooks").json() == []


def test_request_shape_errors_name_the_field(api):
    r = api.post(
        "/webhooks", json={"url": "https://example.com/h", "events": ["*"], "format": "xml"}
    )
    assert fields(problem(r, 422, "invalid-request")) == ["format"]
    r = api.post("/webhooks", json={"events": ["*"]})
    assert fields(problem(r, 422, "invalid-request")) == ["url"]
    r = api.post("/webhooks", json={"url": "https://example.com/h", "events": "*"})
    assert fields(problem(r, 422, "invalid-request")) == ["events"]
    r = api.get("/webhooks/wh_nope/deliveries", params={"limit": 0})
    assert fields(problem(r, 422, "invalid-request")) == ["limit"]


def test_unknown_ids_are_404(api):
    for method, path in [
        ("DELETE", "/webhooks/wh_nope"),
        ("GET", "/webhooks/wh_nope/deliveries"),
        ("POST", "/webhooks/wh_nope/test"),
        ("POST", "/webhooks/deliveries/msg_nope/redeliver"),
    ]:
        p = problem(api.request(method, path), 404, "not-found")
        assert "nope" in p["detail"], (method, path)


def test_redelivery_of_a_removed_subscriptions_message_is_refused(api):
    with receiver() as r:
        wid = api.post("/webhooks", json={"url": r.url, "events": ["*"]}).json()["id"]
        mid = api.post(f"/webhooks/{wid}/test").json()["id"]
        assert api.delete(f"/webhooks/{wid}").status_code == 200
        p = problem(api.post(f"/webhooks/deliveries/{mid}/redeliver"), 422, "validation-error")
        assert "removed" in p["detail"]
        assert len(r.requests) == 1

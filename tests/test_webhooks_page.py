"""Settings → Webhooks under AppTest: add (secret shown once), refuse a bad URL, test-send,
the delivery log and a manual retry."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from promptver import Workspace
from promptver.webhooks import WebhookService
from tests.webhook_helpers import receiver

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/webhooks.py"


@pytest.fixture
def app(db_path, monkeypatch) -> AppTest:
    with Workspace.open(db_path) as w:
        w.mark("seeded", "test")  # no demo: an empty workspace
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _add(at: AppTest, url: str, fmt: str = "json") -> None:
    at.text_input[0].set_value(url)
    at.radio[0].set_value(fmt)
    at.button[0].click().run()
    assert not at.exception, at.exception


def test_add_shows_the_secret_once_and_lists_the_webhook(app, db_path):
    with receiver() as r:
        _add(app, r.url)
        secret = app.code[0].value
        assert secret.startswith("whsec_")
        assert any("shown **once**" in s.value for s in app.success)
        with Workspace.open(db_path) as w:
            (hook,) = WebhookService.for_workspace(w).list()
        assert hook["url"] == r.url and hook["events"] == ["*"]
        assert WebhookService.for_workspace(Workspace(db_path)).keys.secret(hook["id"]) == secret
        app.run()
        assert not [c for c in app.code if c.value.startswith("whsec_")]  # never again
        frame = app.dataframe[0].value
        assert list(frame["url"]) == [r.url]


def test_bad_url_is_refused_and_nothing_stored(app, db_path):
    _add(app, "file:///etc/passwd")
    assert any("url" in e.value for e in app.error)
    with Workspace.open(db_path) as w:
        assert WebhookService.for_workspace(w).list() == []


def test_send_test_and_retry_from_the_log(app, db_path):
    with receiver() as r:
        _add(app, r.url)
        app.button(key="whk_test").click().run()
        assert any("delivered (HTTP 200)" in s.value for s in app.success), app.error
        assert r.wait_for(lambda reqs: len(reqs) == 1)
        log = app.dataframe[1].value
        assert list(log["event"]) == ["webhook.test"] and list(log["status"]) == ["delivered"]
        app.button(key="whk_retry").click().run()
        assert not app.exception, app.exception
        assert r.wait_for(lambda reqs: len(reqs) == 2)
        assert r.requests[0].headers["webhook-id"] == r.requests[1].headers["webhook-id"]
        attempts = app.dataframe[2].value
        assert list(attempts["manual"]) == [False, True]


def test_remove(app, db_path):
    _add(app, "https://hooks.example.com/x")
    app.button(key="whk_remove").click().run()
    assert any("Removed webhook" in s.value for s in app.success)
    with Workspace.open(db_path) as w:
        assert WebhookService.for_workspace(w).list() == []


def test_the_dashboard_delivers_in_the_background(app, db_path):
    from promptver.webhooks import BackgroundDeliverer

    with receiver() as r:
        _add(app, r.url)
        app.run()
        w = Workspace.open(db_path)
        try:
            assert BackgroundDeliverer.running(w)
            w.templates.create("late", "Hi {x}")  # written elsewhere, sent by the dashboard
            assert r.wait_for(lambda reqs: any(q.json()["type"] == "commit.created" for q in reqs))
        finally:
            BackgroundDeliverer._running[str(w.db.path)].stop()
            w.close()

"""Settings → Webhooks in a real browser: add a webhook, copy its secret, send a test message
that a local receiver verifies with that secret."""

from __future__ import annotations

from playwright.sync_api import expect
from standardwebhooks.webhooks import Webhook

from tests.browser.conftest import FIRST_VISIT, shot, wait_idle
from tests.webhook_helpers import receiver


def test_add_a_webhook_and_send_a_test(page, app_url):
    with receiver() as r:
        page.goto(f"{app_url}/webhooks")
        page.get_by_role("heading", name="Settings → Webhooks").wait_for(timeout=FIRST_VISIT)
        wait_idle(page)
        page.locator(".st-key-whk_url input").fill(r.url)
        page.locator(".st-key-whk_desc input").fill("browser receiver")
        page.locator(".st-key-whk_add_btn button").click()
        secret_box = page.locator(".st-key-whk_secret")
        expect(secret_box).to_contain_text("whsec_")
        secret = secret_box.inner_text().strip()
        assert secret.startswith("whsec_")
        expect(page.get_by_text("shown once", exact=False)).to_be_visible()
        wait_idle(page)
        shot(page, "webhooks-added")
        page.locator(".st-key-whk_test button").click()
        expect(page.get_by_text("Test message delivered (HTTP 200)")).to_be_visible()
        assert r.wait_for(lambda reqs: len(reqs) >= 1)
        body = Webhook(secret).verify(r.requests[0].body, r.requests[0].headers)
        assert body["type"] == "webhook.test"
        wait_idle(page)
        shot(page, "webhooks-test-sent")

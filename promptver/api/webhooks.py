"""The webhook endpoints under ``/api/v1/webhooks`` (docs/webhooks.md, "HTTP API").

The same operations and JSON shapes as ``promptver webhook add | list | remove | deliveries |
redeliver | test --json``, over :class:`promptver.webhooks.WebhookService`. A subscription's
secret is in the answer to its creation only.

Every endpoint needs the token when ``server.token_hashes`` is set, the reads too: a
subscription's URL is often a credential itself (a Slack incoming-webhook URL lets anyone post
to the channel), and the delivery log holds the events' data and the receivers' answers.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Query
from starlette.routing import BaseRoute

from promptver.api import schemas as s
from promptver.api.routes import DEFAULT_AUTHOR, Endpoints, _problems
from promptver.workspace import Workspace


def _public(hook: dict[str, Any]) -> s.WebhookOut:
    return s.WebhookOut(
        id=hook["id"],
        url=hook["url"],
        events=hook["events"],
        format=hook["format"],
        description=hook["description"],
        created_at=hook["created_at"],
        created_by=hook["created_by"],
    )


def _delivery(m: dict[str, Any]) -> s.DeliveryOut:
    return s.DeliveryOut(
        id=m["id"],
        webhook_id=m["webhook_id"],
        type=m["type"],
        timestamp=m["timestamp"],
        status=m["status"],
        attempts=[
            s.DeliveryAttemptOut(
                attempt=x["attempt"],
                at=x["at"],
                ok=x["ok"],
                status_code=x["status_code"],
                error=x["error"],
                response_body=x["response_body"],
                manual=x["manual"],
            )
            for x in m.get("attempt_log", [])
        ],
        next_attempt_at=m["next_attempt_at"],
        delivered_at=m["delivered_at"],
    )


class WebhookEndpoints:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def _service(self) -> Any:
        from promptver.webhooks import WebhookService

        return WebhookService.for_workspace(self.ws)

    def list_hooks(self) -> list[s.WebhookOut]:
        """Subscriptions, without their secrets."""
        return [_public(h) for h in self._service().list()]

    def add(self, body: s.WebhookCreate) -> s.WebhookCreated:
        """Subscribe a URL; the answer holds the signing secret, shown this once."""
        hook, secret = self._service().add(
            body.url,
            body.events,
            format=body.format,
            description=body.description,
            author=body.author or DEFAULT_AUTHOR,
        )
        return s.WebhookCreated(**_public(hook).model_dump(), secret=secret)

    def remove(self, webhook_id: str) -> s.WebhookOut:
        """Stop a subscription: its pending deliveries are cancelled, its log stays."""
        return _public(self._service().remove(webhook_id))

    def deliveries(
        self, webhook_id: str, limit: int = Query(100, ge=1, le=10_000)
    ) -> list[s.DeliveryOut]:
        """The delivery log of a subscription: messages newest first, each with every attempt."""
        return [_delivery(m) for m in self._service().deliveries(webhook_id, limit=limit)]

    def redeliver(self, message_id: str) -> s.RedeliveryOut:
        """Send a message again now, with the same ``webhook-id``, whatever its status."""
        svc = self._service()
        m = svc.redeliver(message_id)
        return s.RedeliveryOut(id=m["id"], **svc.deliver_now(m["id"]))

    def send_test(self, webhook_id: str) -> s.DeliveryOut:
        """Send a ``webhook.test`` message now; the answer is its delivery with the attempt
        (``attempts[-1].ok`` says whether the receiver took it)."""
        return _delivery(self._service().send_test(webhook_id))


def add_webhook_routes(
    app: FastAPI, ws: Workspace, prefix: str = "/api/v1"
) -> list[tuple[BaseRoute, str]]:
    """Add the webhook endpoints; returns each route with its gate kind (see ``add_routes``).

    All of them are ``write``: they need the token when tokens are configured (module doc)."""
    e = WebhookEndpoints(ws)
    auth = [Depends(Endpoints(ws).authorize)]
    added: list[tuple[BaseRoute, str]] = []
    tags = ["webhooks"]
    common = (422, 409, 503)
    for path, endpoint, method, status, summary, codes in (
        ("/webhooks", e.list_hooks, "GET", 200, "List webhook subscriptions (no secrets)", ()),
        (
            "/webhooks",
            e.add,
            "POST",
            201,
            "Subscribe a URL to events (the answer holds the secret, shown once)",
            (413,),
        ),
        (
            "/webhooks/deliveries/{message_id}/redeliver",
            e.redeliver,
            "POST",
            200,
            "Send a delivery again now (same webhook-id)",
            (404, 413),
        ),
        (
            "/webhooks/{webhook_id}",
            e.remove,
            "DELETE",
            200,
            "Remove a subscription (pending deliveries are cancelled)",
            (404, 413),
        ),
        (
            "/webhooks/{webhook_id}/deliveries",
            e.deliveries,
            "GET",
            200,
            "Delivery log of a subscription: each message with every attempt",
            (404,),
        ),
        (
            "/webhooks/{webhook_id}/test",
            e.send_test,
            "POST",
            200,
            "Send a webhook.test message now",
            (404, 413),
        ),
    ):
        app.add_api_route(
            prefix + path,
            endpoint,
            methods=[method],
            status_code=status,
            tags=tags,
            summary=summary,
            dependencies=auth,
            responses=_problems(401, *codes, *common),
        )
        added.append((app.routes[-1], "write"))
    return added

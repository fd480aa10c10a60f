"""``webhook add | list | remove | deliveries | deliver | redeliver | test`` (docs/webhooks.md)."""

from __future__ import annotations

from typing import Any

from promptver.cli.context import Context, limit_arg, table


def register(sub: Any) -> None:
    wp = sub.add_parser("webhook", help="signed webhooks: subscriptions and deliveries")
    ws = wp.add_subparsers(dest="webhook_command", metavar="ACTION")
    ws.required = True

    p = ws.add_parser("add", help="subscribe a URL to events (prints the secret once)")
    p.add_argument("url", metavar="URL", help="http:// or https:// endpoint")
    p.add_argument(
        "--event",
        action="append",
        dest="events",
        required=True,
        metavar="E",
        help="commit.created, deployment.created, experiment.started, experiment.stopped, "
        "alert.fired, eval.imported, or * for all (repeat for several)",
    )
    p.add_argument("--format", choices=["json", "slack"], default="json")
    p.add_argument("--description", default="", help="a note shown in lists")
    p.add_argument("--author")
    p.set_defaults(handler=cmd_add)

    p = ws.add_parser("list", help="subscriptions (secrets are never shown again)")
    p.set_defaults(handler=cmd_list)

    p = ws.add_parser("remove", help="stop a subscription (pending deliveries are cancelled)")
    p.add_argument("id", metavar="ID")
    p.set_defaults(handler=cmd_remove)

    p = ws.add_parser("deliveries", help="delivery log: each message with every attempt")
    p.add_argument("id", metavar="ID", nargs="?", help="only this subscription")
    p.add_argument("--limit", type=limit_arg, default=100, metavar="N")
    p.set_defaults(handler=cmd_deliveries)

    p = ws.add_parser("deliver", help="one delivery pass over what is due (for cron)")
    p.add_argument(
        "--all", action="store_true", help="also try deliveries waiting for their next retry"
    )
    p.set_defaults(handler=cmd_deliver)

    p = ws.add_parser("redeliver", help="send a delivery again now (same webhook-id)")
    p.add_argument("message_id", metavar="MSG_ID")
    p.set_defaults(handler=cmd_redeliver)

    p = ws.add_parser("test", help="send a webhook.test event to a subscription now")
    p.add_argument("id", metavar="ID")
    p.set_defaults(handler=cmd_test)


def _service(ctx: Context) -> Any:
    from promptver.webhooks import WebhookService

    return WebhookService.for_workspace(ctx.ws)


def _public(hook: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": hook["id"],
        "url": hook["url"],
        "events": hook["events"],
        "format": hook["format"],
        "description": hook["description"],
        "created_at": hook["created_at"],
        "created_by": hook["created_by"],
    }


def cmd_add(ctx: Context) -> None:
    a = ctx.args
    hook, secret = _service(ctx).add(
        a.url, a.events, format=a.format, description=a.description, author=ctx.author
    )
    data = {"id": hook["id"], "url": hook["url"], "events": hook["events"], "secret": secret}
    ctx.emit(
        data,
        f"added webhook {hook['id']} → {hook['url']} ({', '.join(hook['events'])})\n"
        f"signing secret (shown once; store it now): {secret}",
    )


def cmd_list(ctx: Context) -> None:
    hooks = [_public(h) for h in _service(ctx).list()]
    ctx.emit(
        hooks,
        lambda: (
            table(
                [[h["id"], h["url"], ",".join(h["events"]), h["format"]] for h in hooks],
                ["ID", "URL", "EVENTS", "FORMAT"],
            )
            if hooks
            else "no webhooks (promptver webhook add URL --event E)"
        ),
    )


def cmd_remove(ctx: Context) -> None:
    hook = _service(ctx).remove(ctx.args.id)
    ctx.emit(_public(hook), f"removed webhook {hook['id']} ({hook['url']})")


def _delivery(m: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": m["id"],
        "webhook_id": m["webhook_id"],
        "type": m["type"],
        "timestamp": m["timestamp"],
        "status": m["status"],
        "attempts": [
            {
                "attempt": x["attempt"],
                "at": x["at"],
                "ok": x["ok"],
                "status_code": x["status_code"],
                "error": x["error"],
                "response_body": x["response_body"],
                "manual": x["manual"],
            }
            for x in m["attempt_log"]
        ],
        "next_attempt_at": m["next_attempt_at"],
        "delivered_at": m["delivered_at"],
    }


def cmd_deliveries(ctx: Context) -> None:
    items = [_delivery(m) for m in _service(ctx).deliveries(ctx.args.id, limit=ctx.args.limit)]

    def human() -> str:
        if not items:
            return "no deliveries yet"
        rows = []
        for m in items:
            last = m["attempts"][-1] if m["attempts"] else None
            rows.append(
                [
                    m["id"],
                    m["type"],
                    m["status"],
                    len(m["attempts"]),
                    (last["status_code"] or last["error"] or "") if last else "",
                    (last["at"].isoformat(timespec="seconds") if last else ""),
                ]
            )
        return table(rows, ["MESSAGE", "EVENT", "STATUS", "ATTEMPTS", "LAST ANSWER", "LAST TRY"])

    ctx.emit(items, human)


def cmd_deliver(ctx: Context) -> None:
    summary = _service(ctx).deliver(include_waiting=ctx.args.all)
    ctx.emit(
        summary,
        f"attempted {summary['attempted']}: {summary['delivered']} delivered, "
        f"{summary['retrying']} to retry, {summary['failed']} failed for good",
    )


def cmd_redeliver(ctx: Context) -> None:
    svc = _service(ctx)
    m = svc.redeliver(ctx.args.message_id)
    summary = svc.deliver_now(m["id"])
    ctx.emit(
        {"id": m["id"], **summary},
        f"redelivered {m['id']}: "
        + ("delivered" if summary["delivered"] else "not delivered (see webhook deliveries)"),
    )


def cmd_test(ctx: Context) -> int:
    m = _delivery(_service(ctx).send_test(ctx.args.id))
    last = m["attempts"][-1] if m["attempts"] else None
    ok = bool(last and last["ok"])
    ctx.emit(
        m,
        f"test message {m['id']}: "
        + (
            f"delivered (HTTP {last['status_code']})"
            if ok and last
            else f"not delivered ({(last or {}).get('status_code') or (last or {}).get('error')})"
        ),
    )
    return 0 if ok else 1

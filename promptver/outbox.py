"""The webhook outbox's write side: ``emit`` inside the transaction of the change it reports.

Services call :func:`emit` with the connection of their open transaction, right where they
write the change (a commit, a deployment, an experiment's start or stop, a fired alert, an
imported evaluation). When nobody subscribes to the event type this costs one small query and
writes nothing. Delivery happens later, elsewhere (promptver.webhooks); this module stays tiny
so that every service may import it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from promptver.store import webhooks as sql

COMMIT_CREATED = "commit.created"
DEPLOYMENT_CREATED = "deployment.created"
EXPERIMENT_STARTED = "experiment.started"
EXPERIMENT_STOPPED = "experiment.stopped"
ALERT_FIRED = "alert.fired"
EVAL_IMPORTED = "eval.imported"
#: every event type a subscription may name (``*`` subscribes to all)
EVENT_TYPES = (
    COMMIT_CREATED,
    DEPLOYMENT_CREATED,
    EXPERIMENT_STARTED,
    EXPERIMENT_STOPPED,
    ALERT_FIRED,
    EVAL_IMPORTED,
)
#: the short-lived branches of ``promptver sync`` (promptver.filesync): no events of their own
SYNC_BRANCH_PREFIX = "promptver-sync-"
#: sent only by "test-send" (Settings → Webhooks, ``webhook test``)
TEST_EVENT = "webhook.test"


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex


def emit(
    con: Any,
    event_type: str,
    data: dict[str, Any] | Callable[[], dict[str, Any]],
    at: datetime | None = None,
) -> int:
    """Queue ``event_type`` with ``data`` for every subscription to it, in the caller's open
    transaction (``con``): it is stored if and only if the change it reports is.

    ``data`` may be a function, called only when someone subscribes (so a lookup that only
    the event needs costs nothing otherwise). Returns the number of messages queued.
    """
    subs = sql.subscribers(con, event_type)
    if not subs:
        return 0
    if callable(data):
        data = data()
    when = at or datetime.now(UTC)
    body = json.dumps(data, default=str, ensure_ascii=False, sort_keys=True)
    sql.insert_messages(
        con, [(new_message_id(), wid, event_type, when, body, when) for wid in subs]
    )
    return len(subs)


def emit_experiment(
    con: Any,
    status: str,
    exp: Any,
    at: datetime,
    author: str,
    reason: str | None = None,
) -> None:
    """``experiment.started`` (``status`` "started") or ``experiment.stopped`` ("completed",
    "stopped") for experiment model ``exp``, in the transaction that changed its status."""
    event = EXPERIMENT_STARTED if status == "started" else EXPERIMENT_STOPPED

    def data() -> dict[str, Any]:
        return {
            "id": exp.id,
            "name": exp.name,
            "template_id": exp.template_id,
            "template": exp.template,
            "environment": exp.environment,
            "status": "running" if status == "started" else status,
            "variants": [{"name": v.name, "ref": v.ref, "weight": v.weight} for v in exp.variants],
            "author": author,
            "reason": reason,
        }

    emit(con, event, data, at=at)


def emit_alerts(con: Any, alerts: list[Any]) -> None:
    """One ``alert.fired`` per stored alert, in the transaction that stored them."""
    for a in alerts:
        emit(
            con,
            ALERT_FIRED,
            lambda a=a: {
                "id": a.id,
                "rule_id": a.rule_id,
                "rule": a.rule_name,
                "template": a.template,
                "template_id": a.template_id,
                "metric": a.metric,
                "comparator": a.comparator,
                "threshold": a.threshold,
                "value": a.value,
                "events": a.events,
                "window": a.window,
                "window_start": a.window_start.isoformat(),
                "window_end": a.window_end.isoformat(),
                "environment": a.environment,
                "message": f"{a.metric} {a.value:g} {a.comparator} {a.threshold:g}",
            },
            at=a.fired_at,
        )


def emit_eval_imported(con: Any, data: dict[str, Any], at: datetime | None = None) -> int:
    """``eval.imported``: call in the import's transaction with at least ``dataset``,
    ``template`` and ``version`` (and e.g. ``import_id``, ``rows``, ``metrics``)."""
    return emit(con, EVAL_IMPORTED, data, at=at)


def eval_import_hook(con: Any, result: Any) -> None:
    """The evaluations' import hook (``EvalService.add_import_hook``): one ``eval.imported``
    event per run the file wrote (a file may score several versions or datasets)."""
    for run in result.runs:
        emit_eval_imported(
            con,
            {
                "import_id": result.import_id,
                "file_name": result.file_name,
                "dataset": run["dataset"],
                "template": run["template"],
                "version": run["version"],
                "commit": run["commit_id"],
                "rows": run.get("rows"),
                "items": run.get("items"),
                "scores": list(result.scores),
            },
        )

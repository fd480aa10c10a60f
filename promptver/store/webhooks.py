"""SQL for webhook subscriptions, the outbox and the delivery log (promptver.webhooks)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb

Con = duckdb.DuckDBPyConnection

_HOOK_COLS = "id, url, events, format, description, created_at, created_by, removed_at"
_MSG_COLS = (
    "o.id, o.webhook_id, o.event_type, o.event_time, o.data, o.status, o.attempts,"
    " o.next_attempt_at, o.last_attempt_at, o.delivered_at, o.manual"
)


def _hook(r: tuple[Any, ...]) -> dict[str, Any]:
    keys = ("id", "url", "events", "format", "description", "created_at", "created_by")
    out = dict(zip(keys, r[:7], strict=True))
    out["events"] = list(out["events"])
    out["removed_at"] = r[7]
    return out


def _msg(r: tuple[Any, ...]) -> dict[str, Any]:
    keys = (
        "id",
        "webhook_id",
        "type",
        "timestamp",
        "data",
        "status",
        "attempts",
        "next_attempt_at",
        "last_attempt_at",
        "delivered_at",
        "manual",
    )
    out = dict(zip(keys, r, strict=True))
    out["data"] = json.loads(out["data"]) if isinstance(out["data"], str) else out["data"]
    return out


def insert_webhook(con: Con, row: dict[str, Any]) -> None:
    con.execute(
        "INSERT INTO webhooks (id, url, events, format, description, created_at, created_by)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            row["id"],
            row["url"],
            row["events"],
            row["format"],
            row["description"],
            row["created_at"],
            row["created_by"],
        ],
    )


def get_webhook(con: Con, webhook_id: str) -> dict[str, Any] | None:
    r = con.execute(f"SELECT {_HOOK_COLS} FROM webhooks WHERE id = ?", [webhook_id]).fetchone()
    return _hook(r) if r else None


def list_webhooks(con: Con, *, include_removed: bool = False) -> list[dict[str, Any]]:
    where = "" if include_removed else " WHERE removed_at IS NULL"
    rows = con.execute(f"SELECT {_HOOK_COLS} FROM webhooks{where} ORDER BY created_at, id")
    return [_hook(r) for r in rows.fetchall()]


def remove_webhook(con: Con, webhook_id: str, at: datetime) -> None:
    con.execute("UPDATE webhooks SET removed_at = ? WHERE id = ?", [at, webhook_id])
    con.execute(
        "UPDATE webhook_outbox SET status = 'cancelled', next_attempt_at = NULL"
        " WHERE webhook_id = ? AND status = 'pending'",
        [webhook_id],
    )


def subscribers(con: Con, event_type: str) -> list[str]:
    """Active subscriptions to ``event_type`` (or to ``*``)."""
    rows = con.execute(
        "SELECT id FROM webhooks WHERE removed_at IS NULL"
        " AND (list_contains(events, ?) OR list_contains(events, '*')) ORDER BY id",
        [event_type],
    ).fetchall()
    return [r[0] for r in rows]


def insert_messages(con: Con, rows: Sequence[tuple[Any, ...]]) -> None:
    """Rows of (id, webhook_id, event_type, event_time, data_json, next_attempt_at)."""
    con.executemany(
        "INSERT INTO webhook_outbox (id, webhook_id, event_type, event_time, data, status,"
        " next_attempt_at) VALUES (?, ?, ?, ?, ?, 'pending', ?)",
        list(rows),
    )


def claim_due(
    con: Con,
    now: datetime,
    lease_until: datetime,
    *,
    include_waiting: bool,
    limit: int,
    ids: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Pending messages due at ``now`` (all pending with ``include_waiting``; only ``ids`` when
    given) whose lease is free, leased to the caller until ``lease_until``; with the
    subscription's url and format."""
    due = "" if include_waiting else " AND o.next_attempt_at <= ?"
    params: list[Any] = [now]
    if not include_waiting:
        params.append(now)
    if ids is not None:
        due += " AND o.id IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(ids))
    rows = con.execute(
        f"SELECT {_MSG_COLS}, w.url, w.format FROM webhook_outbox o"
        " JOIN webhooks w ON w.id = o.webhook_id"
        " WHERE o.status = 'pending' AND (o.lease_until IS NULL OR o.lease_until <= ?)"
        f"{due} ORDER BY o.next_attempt_at, o.event_time, o.id LIMIT {int(limit)}",
        params,
    ).fetchall()
    out = []
    for r in rows:
        m = _msg(r[:11])
        m["url"], m["format"] = r[11], r[12]
        out.append(m)
    if out:
        con.execute(
            "UPDATE webhook_outbox SET lease_until = ? WHERE id IN (SELECT unnest(?))",
            [lease_until, [m["id"] for m in out]],
        )
    return out


def record_attempts(con: Con, results: Sequence[dict[str, Any]]) -> None:
    """Append each attempt to the log and move its message on (delivered, retry, failed): two
    set-based statements for the whole pass (one per row costs a millisecond each)."""
    if not results:
        return

    def col(key: str) -> list[Any]:
        return [r[key] for r in results]

    con.execute(
        "INSERT INTO webhook_attempts (message_id, webhook_id, attempted_at, attempt, ok,"
        " status_code, error, response_body, duration_ms, manual)"
        " SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::TIMESTAMPTZ[]),"
        " unnest(?::INTEGER[]), unnest(?::BOOLEAN[]), unnest(?::INTEGER[]),"
        " unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::DOUBLE[]), unnest(?::BOOLEAN[])",
        [
            col("message_id"),
            col("webhook_id"),
            col("attempted_at"),
            col("attempt"),
            col("ok"),
            col("status_code"),
            col("error"),
            col("response_body"),
            col("duration_ms"),
            col("manual"),
        ],
    )
    con.execute(
        "UPDATE webhook_outbox AS o SET status = u.status, attempts = u.attempt,"
        " next_attempt_at = u.next_at, last_attempt_at = u.at,"
        " delivered_at = CASE WHEN u.ok THEN u.at END, lease_until = NULL, manual = false"
        " FROM (SELECT unnest(?::VARCHAR[]) AS id, unnest(?::VARCHAR[]) AS status,"
        " unnest(?::INTEGER[]) AS attempt, unnest(?::TIMESTAMPTZ[]) AS next_at,"
        " unnest(?::TIMESTAMPTZ[]) AS at, unnest(?::BOOLEAN[]) AS ok) AS u"
        " WHERE o.id = u.id",
        [
            col("message_id"),
            col("new_status"),
            col("attempt"),
            col("next_attempt_at"),
            col("attempted_at"),
            col("ok"),
        ],
    )


def release(con: Con, ids: Sequence[str]) -> None:
    """Give back leased messages that were not attempted."""
    if ids:
        con.execute(
            "UPDATE webhook_outbox SET lease_until = NULL WHERE id IN (SELECT unnest(?))",
            [list(ids)],
        )


def get_message(con: Con, message_id: str) -> dict[str, Any] | None:
    r = con.execute(
        f"SELECT {_MSG_COLS} FROM webhook_outbox o WHERE o.id = ?", [message_id]
    ).fetchone()
    return _msg(r) if r else None


def requeue(con: Con, message_id: str, now: datetime) -> None:
    con.execute(
        "UPDATE webhook_outbox SET status = 'pending', next_attempt_at = ?, lease_until = NULL,"
        " manual = true WHERE id = ?",
        [now, message_id],
    )


def messages(con: Con, webhook_id: str | None = None, *, limit: int = 100) -> list[dict[str, Any]]:
    """Messages, newest first, each with its attempts (oldest first)."""
    where, params = ("WHERE o.webhook_id = ?", [webhook_id]) if webhook_id else ("", [])
    rows = con.execute(
        f"SELECT {_MSG_COLS} FROM webhook_outbox o {where}"
        f" ORDER BY o.event_time DESC, o.id DESC LIMIT {int(limit)}",
        params,
    ).fetchall()
    out = [_msg(r) for r in rows]
    if not out:
        return out
    by_id = {m["id"]: m for m in out}
    for m in out:
        m["attempt_log"] = []
    att = con.execute(
        "SELECT message_id, attempt, attempted_at, ok, status_code, error, response_body,"
        " duration_ms, manual FROM webhook_attempts WHERE message_id IN (SELECT unnest(?))"
        " ORDER BY id",
        [list(by_id)],
    ).fetchall()
    for a in att:
        by_id[a[0]]["attempt_log"].append(
            {
                "attempt": a[1],
                "at": a[2],
                "ok": a[3],
                "status_code": a[4],
                "error": a[5],
                "response_body": a[6],
                "duration_ms": a[7],
                "manual": a[8],
            }
        )
    return out


def counts(con: Con) -> dict[str, int]:
    rows = con.execute("SELECT status, count(*) FROM webhook_outbox GROUP BY status").fetchall()
    return {r[0]: r[1] for r in rows}


def has_pending(con: Con, now: datetime) -> bool:
    r = con.execute(
        "SELECT 1 FROM webhook_outbox WHERE status = 'pending' AND next_attempt_at <= ? LIMIT 1",
        [now],
    ).fetchone()
    return r is not None

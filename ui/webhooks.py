"""Rendering helpers of the Settings → Webhooks screen (session-state keys start with ``whk_``)."""

from __future__ import annotations

from typing import Any

import pandas as pd


def hooks_frame(hooks: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [
        {
            "id": h["id"],
            "url": h["url"],
            "events": ", ".join(h["events"]),
            "format": h["format"],
            "description": h["description"],
            "created": h["created_at"],
            "by": h["created_by"],
        }
        for h in hooks
    ]
    return pd.DataFrame(
        rows, columns=["id", "url", "events", "format", "description", "created", "by"]
    )


def deliveries_frame(items: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for m in items:
        last = m["attempt_log"][-1] if m["attempt_log"] else None
        rows.append(
            {
                "message": m["id"],
                "webhook": m["webhook_id"],
                "event": m["type"],
                "status": m["status"],
                "attempts": len(m["attempt_log"]),
                "last answer": (
                    str(last["status_code"])
                    if last and last["status_code"]
                    else (last["error"] if last else None)
                ),  # fmt: skip
                "last try": last["at"] if last else None,
                "next try": m["next_attempt_at"] if m["status"] == "pending" else None,
            }
        )
    cols = ["message", "webhook", "event", "status", "attempts", "last answer", "last try"]
    return pd.DataFrame(rows, columns=[*cols, "next try"])


def attempts_frame(m: dict[str, Any]) -> pd.DataFrame:
    rows = [
        {
            "attempt": a["attempt"],
            "at": a["at"],
            "ok": a["ok"],
            "HTTP status": a["status_code"],
            "error": a["error"],
            "response (first 1 KB)": a["response_body"],
            "manual": a["manual"],
        }
        for a in m["attempt_log"]
    ]
    return pd.DataFrame(
        rows,
        columns=["attempt", "at", "ok", "HTTP status", "error", "response (first 1 KB)", "manual"],
    )

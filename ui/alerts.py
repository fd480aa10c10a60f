"""Rendering helpers of the Alerts screen (session-state keys start with ``alr_``) and the
open-alerts link every screen shows in the sidebar."""

from __future__ import annotations

from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from promptver.alerts import condition_text, trend_params
from promptver.models import Alert, AlertGroup, AlertRule, DeploymentMarker
from promptver.trends import metric_label, value_text
from promptver.workspace import Workspace


def sidebar_badge(ws: Workspace, n: int | None = None) -> None:
    """A link to the Alerts screen while some alert waits for an acknowledgement (``n`` open
    alerts, counted here when not given). Every screen shows it: an alert can fire while one
    works elsewhere (after an import, a tracking flush or a check), and this is where one
    notices."""
    if n is None:
        n = ws.alerts.open_count()
    if n:
        st.sidebar.page_link(
            "pages/alerts.py",
            label=f"{n} open alert{'s' if n != 1 else ''}",
            icon=":material/notifications_active:",
            help="Fired alerts nobody has acknowledged yet",
        )


def threshold_text(metric: str, threshold: float) -> str:
    """``1500 ms``, ``5.0 %`` (rates are stored as fractions), ``$0.002``."""
    return value_text(metric, threshold)


def trend_url(alert: Alert) -> str:
    return "trends?" + urlencode(trend_params(alert))


def rule_text(a: Alert) -> str:
    return (a.rule_name or f"rule #{a.rule_id}") + ("" if a.rule_exists else " (deleted)")


def deployed_text(d: DeploymentMarker | None) -> str:
    """``1.1.1 (deploy 2026-11-25, ben.okafor)``; ``–`` when nothing was deployed."""
    if d is None:
        return "–"
    who = f", {d.author}" if d.author else ""
    return f"{d.version or d.commit[:10]} ({d.action} {d.at:%Y-%m-%d}{who})"


def group_sentence(g: AlertGroup) -> str:
    """What served the latest window and what is live now, in words (plain text)."""
    if g.environment is None:
        return "The rule watches every environment."
    if g.deployed is None and g.live_now is None:
        return f"Nothing was deployed to {g.environment} then."
    served = (
        f"When the latest window began, {deployed_text(g.deployed)} was live in {g.environment}."
        if g.deployed is not None
        else f"Nothing was live in {g.environment} when the latest window began."
    )
    now = g.live_now
    if now is None or (g.deployed is not None and now.deployment_id == g.deployed.deployment_id):
        return served + " It is still live: roll it back from the Deployments screen."
    what = "rolled back to" if now.action == "rollback" else "replaced by"
    who = f" by {now.author}" if now.author else ""
    return (
        served + f" Since then {g.environment} was {what} {now.version or now.commit[:10]} "
        f"on {now.at:%Y-%m-%d}{who}."
    )


def deployment_cell(g: AlertGroup) -> str:
    """``1.1.1, now 1.1.0 (rollback 12-01)``, ``1.0.0 (still live)``, ``–``: what served the
    latest window in the group's environment, and what replaced it since."""
    d, now = g.deployed, g.live_now
    if d is None and now is None:
        return "–"
    where = f" in {g.environment}" if g.latest.environment is None and g.environment else ""
    if d is not None and now is not None and d.deployment_id == now.deployment_id:
        return f"{d.version or d.commit[:10]}{where} (still live)"
    assert now is not None  # a deployment without one live now cannot be
    later = f"now {now.version or now.commit[:10]}{where} ({now.action} {now.at:%m-%d})"
    return later if d is None else f"{d.version or d.commit[:10]}, {later}"


def groups_frame(groups: list[AlertGroup]) -> pd.DataFrame:
    """One row per rule and template: the latest window and its value against the threshold,
    how many windows fired since when, and what was live."""
    rows = []
    for g in groups:
        a = g.latest
        windows = f"{g.count} × {a.window} since {g.first_window:%m-%d}"
        if len(g.open_ids) != g.count:
            windows += f" ({len(g.open_ids)} open)"
        if g.backfill:
            windows += f" · {g.backfill} backfill"
        rows.append(
            {
                "template": g.template,
                "rule": rule_text(a),
                "latest value": f"{metric_label(a.metric)} "
                + condition_text(a.metric, a.value, a.comparator, a.threshold),
                "latest window (UTC)": a.window_start,
                "windows": windows,
                "deployment": deployment_cell(g),
                "trend": trend_url(a),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "template",
            "rule",
            "latest value",
            "latest window (UTC)",
            "windows",
            "deployment",
            "trend",
        ],
    )


GROUP_COLUMNS = {
    "template": st.column_config.TextColumn("Template"),
    "rule": st.column_config.TextColumn("Rule"),
    "latest value": st.column_config.TextColumn(
        "Latest value", help="The latest window's value, the comparison and the threshold"
    ),
    "latest window (UTC)": st.column_config.DatetimeColumn(
        "Latest window (UTC)", format="YYYY-MM-DD HH:mm"
    ),
    "windows": st.column_config.TextColumn(
        "Windows", help="Windows this rule fired for on this template, since the first"
    ),
    "deployment": st.column_config.TextColumn(
        "Deployment",
        help="What was live in the rule's environment (for a rule on any environment: the "
        "last one) when the latest window began, and what replaced it since",
    ),
    "trend": st.column_config.LinkColumn(
        "Trend", display_text="Open", width="small", help="The Trends screen around this window"
    ),
}


def alerts_frame(alerts: list[Alert]) -> pd.DataFrame:
    rows = [
        {
            "id": a.id,
            "status": a.status,
            "value": condition_text(a.metric, a.value, a.comparator, a.threshold),
            "window start (UTC)": a.window_start,
            "events": a.events,
            "fired (UTC)": a.fired_at,
            "source": a.source + (" (backfill)" if a.backfill else ""),
            "acknowledged by": a.acknowledged_by or "–",
            "acknowledged (UTC)": a.acknowledged_at,
            "trend": trend_url(a),
        }
        for a in alerts
    ]
    return pd.DataFrame(rows)


ALERT_COLUMNS = {
    "id": st.column_config.NumberColumn("#", width="small", format="%d"),
    "status": st.column_config.TextColumn("Status", width="small"),
    "value": st.column_config.TextColumn("Value vs threshold"),
    "window start (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
    "fired (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
    "source": st.column_config.TextColumn(
        "Fired by",
        help="check, import or track; backfill: the window had ended before the rule was "
        "created (found looking back), so the rule never watched it live",
    ),
    "acknowledged (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
    "trend": st.column_config.LinkColumn(
        "Trend", display_text="Open trend", help="The Trends screen around this window"
    ),
}


def rules_frame(rules: list[AlertRule], open_counts: dict[int, int]) -> pd.DataFrame:
    rows = [
        {
            "id": r.id,
            "enabled": r.enabled,
            "name": r.name,
            "metric": metric_label(r.metric),
            "condition": f"{r.comparator} {threshold_text(r.metric, r.threshold)}",
            "window": r.window,
            "min events": r.min_events,
            "template": r.template or "* (every template)",
            "environment": r.environment or "any",
            "open alerts": open_counts.get(r.id, 0),
            "updated by": r.updated_by,
            "updated (UTC)": r.updated_at,
        }
        for r in rules
    ]
    return pd.DataFrame(rows)


RULE_COLUMNS = {
    "enabled": st.column_config.CheckboxColumn("On"),
    "updated (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
}

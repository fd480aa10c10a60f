"""Rendering helpers of the Alerts screen (session-state keys start with ``alr_``) and the
open-alerts link every screen shows in the sidebar."""

from __future__ import annotations

from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from promptver.alerts import trend_params
from promptver.models import Alert, AlertRule
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


def alerts_frame(alerts: list[Alert]) -> pd.DataFrame:
    rows = [
        {
            "id": a.id,
            "status": a.status,
            "template": a.template,
            "metric": metric_label(a.metric),
            "value": value_text(a.metric, a.value),
            "condition": f"{a.comparator} {threshold_text(a.metric, a.threshold)}",
            "window start (UTC)": a.window_start,
            "window": a.window,
            "environment": a.environment or "any",
            "events": a.events,
            "rule": (a.rule_name or f"rule #{a.rule_id}") + ("" if a.rule_exists else " (deleted)"),
            "fired (UTC)": a.fired_at,
            "acknowledged by": a.acknowledged_by or "",
            "acknowledged (UTC)": a.acknowledged_at,
            "trend": trend_url(a),
        }
        for a in alerts
    ]
    return pd.DataFrame(rows)


ALERT_COLUMNS = {
    "window start (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
    "fired (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
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

"""Rendering helpers for the Deployments screen: gate reports, log entries, safe Markdown."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from promptver.models import Deployment, GateReport, GateResult
from ui.common import MISSING, md, table_height

GATE_TITLES = {
    "syntax_validation": "Syntax",
    "variable_validation": "Variables",
    "performance_validation": "Performance",
    "security_validation": "Security",
    "require_previous": "Promotion order",
    "require_experiment_win": "Experiment win",
    "content": "Content",
    "eval": "Offline evaluation",
}
_STATUS = {
    "passed": ":green[:material/check_circle: passed]",
    "failed": ":red[:material/cancel: failed]",
    "overridden": ":orange[:material/warning: overridden]",
    "skipped": ":gray[:material/remove: not required]",
}


def when(d: Deployment) -> str:
    return d.created_at.strftime("%Y-%m-%d %H:%M UTC")


def gate_frame(gates: list[GateResult]) -> pd.DataFrame:
    """Every problem a validation gate found, as a table (severity, where, message)."""
    rows = []
    for g in gates:
        for p in g.problems:
            where = ", ".join(f"{k} {p[k]}" for k in ("line", "column") if p.get(k) is not None)
            rows.append(
                {
                    "check": GATE_TITLES.get(g.gate, g.gate),
                    "severity": p.get("severity"),
                    "where": where or p.get("field") or None,
                    "message": p.get("message"),
                }
            )
    return pd.DataFrame(rows, columns=["check", "severity", "where", "message"])


def show_gates(report: GateReport) -> None:
    """The validation report of a deployment: one line per gate, then the problems."""
    for g in report.gates:
        title = GATE_TITLES.get(g.gate, g.gate)
        st.markdown(f"{_STATUS[g.status]} &nbsp; **{title}** — {md(g.message)}")
    problems = gate_frame(report.gates)
    if len(problems):
        st.dataframe(
            problems,
            hide_index=True,
            width="stretch",
            height=table_height(len(problems)),
            placeholder=MISSING,
            column_config={
                "check": st.column_config.TextColumn("Check"),
                "severity": st.column_config.TextColumn("Severity"),
                "where": st.column_config.TextColumn("Where", width="medium"),
                "message": st.column_config.TextColumn("Message", width="large"),
            },
        )


def needs_force(report: GateReport) -> bool:
    return any(
        g is not None and g.status in ("failed", "overridden")
        for g in (report.gate("require_previous"), report.gate("eval"))
    )


def eval_gate(d: Deployment) -> dict | None:
    """The ``eval`` gate of a deployment's stored report (status, message, the comparison)."""
    for g in d.gate_report.get("gates") or []:
        if isinstance(g, dict) and g.get("gate") == "eval" and g.get("eval"):
            return g
    return None


def needs_reason(report: GateReport) -> bool:
    g = report.gate("require_experiment_win")
    return needs_force(report) or (g is not None and g.status in ("failed", "overridden"))


def entry_title(d: Deployment) -> str:
    """One line for the timeline (Markdown-safe)."""
    arrow = f" ← {md(d.replaced_label())}" if d.replaced_commit else " (first)"
    icon = ":material/undo:" if d.action == "rollback" else ":material/rocket_launch:"
    flags = ""
    if d.forced:
        flags += " · :orange[forced]"
    if d.evidence_override_reason:
        flags += " · :orange[no experiment win]"
    return (
        f"{icon} #{d.id} · **{md(d.environment)}** · {d.action} **{md(d.label())}**{arrow}"
        f" · {md(d.author)} · {when(d)}{flags}"
    )

"""Rendering helpers of the Home screen (session-state keys start with ``home_``).

Every item links to the screen that owns it with ``st.page_link`` and query parameters the
target reads (see each page's module docstring for its deep links):

- Templates ``?template=NAME`` (``&tab=new`` opens the form for a new one);
- History & Diff ``?template=NAME&from=REF&to=REF`` (a diff), ``?template=NAME`` (the graph);
- Deployments ``?template=NAME&env=ENV``;
- Experiments ``?experiment=ID&tab=results`` (or ``overview``, ``routing``, ``configure``);
- Trends ``?template=…&metric=…&period=…&by=…&env=…&bucket=…``;
- Alerts ``?alert=ID`` (or ``?tab=rules``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import streamlit as st

from promptver.alerts import condition_text
from promptver.alerts import trend_params as alert_trend_params
from promptver.models import (
    AlertGroup,
    Deployment,
    ExperimentProgress,
    LiveCell,
    RecentCommit,
    WorkspaceCounts,
)
from promptver.overview import trend_params as experiment_trend_params
from promptver.trends import metric_label
from ui.common import md

#: rows of the "what is live where" grid before it sends the reader to the Deployments screen
LIVE_ROWS = 25


@dataclass(frozen=True)
class Screen:
    page: str
    title: str
    icon: str
    what: str
    count: Callable[[WorkspaceCounts], str]


def _n(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _experiments(c: WorkspaceCounts) -> str:
    e = c.experiments
    parts = [
        f"{e.get('running', 0):,} running",
        f"{e.get('completed', 0) + e.get('stopped', 0):,} ended",
    ]
    if e.get("draft"):
        parts.append(_n(e["draft"], "draft"))
    return " · ".join(parts)


SCREENS = [
    Screen(
        "pages/templates.py",
        "Templates",
        ":material/description:",
        "Find, create and edit prompt templates; preview them with sample values.",
        lambda c: f"{_n(c.templates, 'template')} · {_n(c.versions, 'version')}",
    ),
    Screen(
        "pages/history.py",
        "History & Diff",
        ":material/account_tree:",
        "Every commit as a graph, the diff between any two versions, branches and merges.",
        lambda c: f"{_n(c.commits, 'commit')} · {_n(c.branches, 'branch', 'branches')}",
    ),
    Screen(
        "pages/deployments.py",
        "Deployments",
        ":material/rocket_launch:",
        "What is live in each environment; deploy, promote and roll back behind the gates.",
        lambda c: _n(c.deployments, "deployment"),
    ),
    Screen(
        "pages/experiments.py",
        "Experiments",
        ":material/science:",
        "A/B tests between versions or branches: configure, start, stop, read the results, "
        "export reports.",
        _experiments,
    ),
    Screen(
        "pages/metrics.py",
        "Metrics",
        ":material/monitoring:",
        "Latency, success, quality and cost per template, version and environment; import CSV "
        "files of results.",
        lambda c: _n(c.events, "event"),
    ),
    Screen(
        "pages/evaluations.py",
        "Evaluations",
        ":material/fact_check:",
        "Versions scored offline on fixed test cases, compared item by item.",
        lambda c: "paired comparisons · calibrated judges",
    ),
    Screen(
        "pages/trends.py",
        "Trends",
        ":material/show_chart:",
        "Metrics over time with trend lines, and what changed around each deployment.",
        lambda c: "last event " + (ago(c.last_event) if c.last_event else "none yet"),
    ),
    Screen(
        "pages/alerts.py",
        "Alerts",
        ":material/notifications:",
        "Rules that watch the metrics, and the alerts they fired.",
        lambda c: f"{c.open_alerts:,} open · {_n(c.rules, 'rule')}",
    ),
]


def ago(t: datetime, now: datetime | None = None) -> str:
    """``just now``, ``5 min ago``, ``3 h ago``, ``2 days ago``, then the date."""
    seconds = ((now or datetime.now(UTC)) - t).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86_400:
        return f"{int(seconds // 3600)} h ago"
    days = int(seconds // 86_400)
    if days < 30:
        return f"{days} day{'s' if days != 1 else ''} ago"
    return f"on {t:%Y-%m-%d}"


def when(t: datetime) -> str:
    return f"{t:%Y-%m-%d %H:%M} UTC"


def where_to_find(counts: WorkspaceCounts) -> None:
    """One card per screen: what it is for, how much it holds, a link."""
    st.subheader("Where to find what")
    per_row = 4
    for start in range(0, len(SCREENS), per_row):
        cols = st.columns(per_row)
        for col, s in zip(cols, SCREENS[start : start + per_row], strict=False):
            with col.container(border=True, height="stretch"):
                st.page_link(s.page, label=f"**{s.title}**", icon=s.icon, help=s.what)
                st.caption(s.what)
                st.caption(s.count(counts))
    st.caption(
        "Everything here is also scriptable: `promptver --help` lists the commands, and "
        "applications fetch the live prompt with `ws.get_prompt(name, env, user_id)`."
    )


def getting_started() -> None:
    """The path from nothing to a tested prompt, one link per step (an empty workspace)."""
    st.subheader("Getting started")
    steps = [
        (
            "pages/templates.py",
            "Create a template",
            ":material/add:",
            {"tab": "new"},
            "a prompt with {placeholders}; each save is a commit, each commit on main a version",
        ),
        (
            "pages/deployments.py",
            "Deploy a version",
            ":material/rocket_launch:",
            {},
            "to development, then staging and production; applications call ws.get_prompt()",
        ),
        (
            "pages/metrics.py",
            "Record results",
            ":material/monitoring:",
            {"tab": "import"},
            "track calls with ws.track() or import a CSV of latency, success, quality and cost",
        ),
        (
            "pages/experiments.py",
            "Configure an experiment",
            ":material/science:",
            {"tab": "configure"},
            "route users between two versions or a branch and read the winner",
        ),
        (
            "pages/alerts.py",
            "Set alert rules",
            ":material/notifications:",
            {"tab": "rules"},
            "be told when a metric crosses a threshold; Trends shows it over time",
        ),
    ]
    for i, (page, label, icon, params, what) in enumerate(steps, start=1):
        c1, c2 = st.columns([2, 5], vertical_alignment="center")
        c1.page_link(page, label=label, icon=icon, query_params=params or None)
        c2.caption(f"Step {i}: {what}")


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def live_grid(cells: list[LiveCell], envs: list[str]) -> None:
    """Template × environment: the live version of each, linking to the Deployments screen, the
    template to the Templates screen, a running experiment to its results."""
    names = list(dict.fromkeys(c.template for c in cells))
    by = {(c.template, c.environment): c for c in cells}
    widths = [2] + [1] * len(envs) + [2]
    head = st.columns(widths)
    head[0].caption("Template")
    for col, env in zip(head[1:], envs, strict=False):
        col.caption(md(env))
    head[-1].caption("Running experiment")
    for name in names[:LIVE_ROWS]:
        row = st.columns(widths, vertical_alignment="center")
        row[0].page_link(
            "pages/templates.py",
            label=md(name),
            query_params={"template": name},
            help="Open the template",
        )
        experiment = None
        for col, env in zip(row[1:], envs, strict=False):
            cell = by.get((name, env))
            d = cell.deployment if cell else None
            if cell is not None and cell.experiment_id:
                experiment = cell
            if d is None:
                col.caption("—")
                continue
            col.page_link(
                "pages/deployments.py",
                label=md(d.label()),
                icon=":material/undo:" if d.action == "rollback" else None,
                query_params={"template": name, "env": env},
                help=md(
                    f"{d.action} by {d.author}, {ago(d.created_at)}"
                    + (f" (replaced {d.replaced_label()})" if d.replaced_commit else "")
                    + (f": {d.note}" if d.note else "")
                ),
            )
            if d.action == "rollback":  # why it was rolled back, where the marker is
                col.caption(
                    ":material/undo: "
                    + (md(_shorten(d.note, 90)) if d.note else "rolled back, no reason given")
                )
        if experiment is not None:
            row[-1].page_link(
                "pages/experiments.py",
                label=md(f"{experiment.experiment_name} ({experiment.environment})"),
                icon=":material/science:",
                query_params={"experiment": experiment.experiment_id or "", "tab": "results"},
            )
    if len(names) > LIVE_ROWS:
        st.page_link(
            "pages/deployments.py",
            label=f"All {len(names):,} templates on the Deployments screen",
            icon=":material/arrow_forward:",
        )


def experiment_card(p: ExperimentProgress) -> None:
    """A running experiment: users against the minimum sample, the split check, links."""
    with st.container(border=True):
        since = f"running since {p.started_at:%Y-%m-%d}" if p.started_at else "running"
        st.markdown(
            f"**{md(p.name)}** · {md(p.template)} in {md(p.environment)} · {since}"
            f" · primary metric {md(p.primary_metric)}"
        )
        st.progress(
            p.progress,
            text=f"{p.smallest:,} of {p.minimum_sample_size:,} users in the smallest variant "
            f"({100 * p.progress:.0f} % of the minimum sample)",
        )
        st.caption(
            " · ".join(
                f"{md(v.name)}: {v.users:,} users, {v.events:,} events ({100 * v.share:.0f} % "
                "of traffic)"
                for v in p.variants
            )
        )
        if not p.srm_ok:
            st.error(
                "**Sample ratio mismatch**: users per variant are far from the configured split "
                f"(chi-square p = {p.srm_p_value:.2g}). Check the assignment and the tracking "
                "before trusting any result.",
                icon=":material/warning:",
            )
        links = st.container(horizontal=True)
        links.page_link(
            "pages/experiments.py",
            label="Results",
            icon=":material/query_stats:",
            query_params={"experiment": p.id, "tab": "results"},
        )
        links.page_link(
            "pages/trends.py",
            label="Trend by variant",
            icon=":material/show_chart:",
            query_params=experiment_trend_params(p),
        )


def ended_line(p: ExperimentProgress) -> None:
    verdict = (
        f":green[winner **{md(p.winner)}**]"
        if p.winner
        else ("stopped early, no winner" if p.status == "stopped" else "no winner")
    )
    ended = f"{p.stopped_at:%Y-%m-%d}" if p.stopped_at else "—"
    c1, c2 = st.columns([4, 1], vertical_alignment="center")
    c1.markdown(
        f"**{md(p.name)}** · {md(p.template)} in {md(p.environment)} · ended {ended} · {verdict}"
    )
    c2.page_link(
        "pages/experiments.py",
        label="Results",
        icon=":material/query_stats:",
        query_params={"experiment": p.id, "tab": "results"},
    )


def alert_group_line(g: AlertGroup) -> None:
    """One rule on one template: how many windows are open, the latest one's value against
    the threshold, and links to the alert, its trend and its deployment."""
    a = g.latest
    c1, c2, c3, c4 = st.columns([6, 1, 1, 1], vertical_alignment="center")
    env = f" in {md(a.environment)}" if a.environment else ""
    n = len(g.open_ids)
    since = (
        f" · {n} open windows since {g.first_window:%Y-%m-%d}"
        if n > 1
        else f" · {md(a.window)} window from {a.window_start:%Y-%m-%d %H:%M} UTC"
    )
    c1.markdown(
        f":red[:material/notifications_active:] **{md(a.template)}**{env} · "
        f"{md(metric_label(a.metric))} "
        f"{md(condition_text(a.metric, a.value, a.comparator, a.threshold))}"
        + (f" (latest: {a.window_start:%Y-%m-%d})" if n > 1 else "")
        + since
        + (" · :gray[backfill: before the rule existed]" if a.backfill else "")
    )
    c2.page_link(
        "pages/alerts.py",
        label="Alerts" if n > 1 else "Alert",
        icon=":material/notifications:",
        query_params={"alert": str(a.id)},
        help=f"{a.rule_name or 'The rule'} on {a.template} on the Alerts screen (acknowledge "
        "there)",
    )
    c3.page_link(
        "pages/trends.py",
        label="Trend",
        icon=":material/show_chart:",
        query_params=alert_trend_params(a),
        help="The metric over time around the latest window",
    )
    if g.environment is not None and g.live_now is not None:
        still = g.deployed is not None and g.live_now.deployment_id == g.deployed.deployment_id
        c4.page_link(
            "pages/deployments.py",
            label="Roll back…" if still else "Deployed",
            icon=":material/undo:" if still else ":material/rocket_launch:",
            query_params={"template": g.template, "env": g.environment},
            help=(
                f"{g.live_now.version or g.live_now.commit[:10]} is live in {g.environment}"
                + (
                    ""
                    if still
                    else f" since its {g.live_now.action} on {g.live_now.at:%Y-%m-%d}"
                    + (f" by {g.live_now.author}" if g.live_now.author else "")
                )
            ),
        )


def commit_line(c: RecentCommit) -> None:
    name = c.version or (f"⎇ {c.branch}" if c.branch else c.commit[:10])
    params = {"template": c.template}
    if c.parents:  # the diff this commit made (a merge: against its first parent)
        params |= {"from": c.parents[0][:12], "to": c.commit[:12]}
    st.page_link(
        "pages/history.py",
        label=md(f"{c.template} {name}: {c.message}"[:120]),
        icon=":material/commit:",
        query_params=params,
        help="The diff this commit made" if c.parents else "The template's history",
    )
    st.caption(f"{md(c.author)} · {ago(c.created_at)} · commit `{c.commit[:10]}`")


def deployment_line(d: Deployment) -> None:
    arrow = f" (was {d.replaced_label()})" if d.replaced_commit else " (first)"
    icon = ":material/undo:" if d.action == "rollback" else ":material/rocket_launch:"
    st.page_link(
        "pages/deployments.py",
        label=md(f"{d.template} → {d.environment}: {d.action} {d.label()}{arrow}"),
        icon=icon,
        query_params={"template": d.template, "env": d.environment},
        help=md(d.note) if d.note else None,
    )
    c1, c2 = st.columns([3, 1])
    c1.caption(f"{md(d.author)} · {ago(d.created_at)}")
    if d.replaced_commit:
        c2.page_link(
            "pages/history.py",
            label="Diff",
            query_params={
                "template": d.template,
                "from": d.replaced_commit[:12],
                "to": d.commit[:12],
            },
            help="What changed for users: the replaced version against this one",
        )

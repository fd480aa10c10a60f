"""Home: what is live where, experiments in flight, what needs attention, recent activity, and
where to find every capability. Everything comes from ``ws.overview.build()`` (one snapshot,
cached until the data change) and every item links to its screen."""

from __future__ import annotations

import streamlit as st

from promptver.models import Overview
from ui.common import cached, workspace
from ui.home import (
    alert_group_line,
    commit_line,
    deployment_line,
    ended_line,
    experiment_card,
    getting_started,
    live_grid,
    where_to_find,
)

ws = workspace()
o: Overview = cached(ws.overview.build)
c = o.counts

st.title("Home")
st.caption(
    "What is live where, what is being tested, what needs attention and what changed lately. "
    "Every item opens its screen; [where to find what](#where-to-find-what) maps them all."
)

m1, m2, m3, m4 = st.columns(4)
m1.metric("Templates", f"{c.templates:,}", help="Active templates (archived ones are hidden)")
m2.metric("Running experiments", c.experiments.get("running", 0))
m3.metric("Open alerts", c.open_alerts, help="Fired alerts nobody has acknowledged yet")
m4.metric(
    "Events",
    f"{c.events:,}",
    help="Tracked calls and imported results stored in this workspace",
)

if c.templates == 0:
    if c.archived_templates:
        st.info(
            f"All {c.archived_templates} templates are archived. Restore one on the "
            "Templates screen (turn on **Archived** to see them), or create a new one.",
            icon=":material/inventory_2:",
        )
    else:
        st.info(
            "This workspace has no template yet. Create the first one: a prompt with "
            "`{placeholders}`; every save becomes a version you can deploy and test. (The "
            "command `promptver demo` fills an empty database with example content.)",
            icon=":material/lightbulb:",
        )
    getting_started()
    where_to_find(c)
    st.stop()

# ---- what needs attention -------------------------------------------------------------------

st.subheader("Needs attention")
srm = [p for p in o.running if not p.srm_ok]
if not o.alert_groups and not srm:
    st.success(
        "Nothing needs attention: no open alerts, and every running experiment splits its "
        "users as configured.",
        icon=":material/check_circle:",
    )
for g in o.alert_groups:  # one line per rule and template, so one noisy rule takes one line
    alert_group_line(g)
if c.open_alerts > sum(len(g.open_ids) for g in o.alert_groups):
    st.page_link(
        "pages/alerts.py",
        label=f"All {c.open_alerts:,} open alerts",
        icon=":material/arrow_forward:",
    )
for p in srm:
    st.error(
        f"Sample ratio mismatch in the running experiment {p.name}: see its results.",
        icon=":material/warning:",
    )

# ---- what is live where ---------------------------------------------------------------------

st.subheader("What is live where")
if o.live:
    live_grid(o.live, o.environments)
    if not any(cell.deployment for cell in o.live):
        st.caption("Nothing is deployed yet: deploy a version on the Deployments screen.")
else:
    st.caption("No template yet, so nothing is live.")

# ---- experiments ----------------------------------------------------------------------------

st.subheader("Experiments")
for p in o.running:
    experiment_card(p)
if not o.running:
    st.info(
        "No experiment is running. Configure one to compare a branch or a new version with "
        "the live version on real traffic.",
        icon=":material/science:",
    )
    st.page_link(
        "pages/experiments.py",
        label="Configure an experiment",
        icon=":material/add:",
        query_params={"tab": "configure"},
    )
if o.ended:
    st.markdown("**Recently ended**")
    for p in o.ended:
        ended_line(p)

# ---- recent activity ------------------------------------------------------------------------

st.subheader("Recent activity")
left, right = st.columns(2, gap="large")
with left:
    st.markdown("**Commits**")
    if not o.commits:
        st.caption("No commits yet.")
    for commit in o.commits:
        commit_line(commit)
with right:
    st.markdown("**Deployments**")
    if not o.deployments:
        st.caption("No deployments yet.")
    for d in o.deployments:
        deployment_line(d)

where_to_find(c)

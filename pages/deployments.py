"""Deployments: what is live where, deploy and promote behind the gates, roll back, history.

Deep links: ``?template=NAME`` selects it; ``&env=ENV`` shows that environment's history."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from promptver import PromptverError
from promptver.models import Deployment, GateReport, LiveCell
from promptver.overview import deployment_trend_params
from ui.common import (
    MISSING,
    author,
    domain_errors,
    flash,
    no_templates,
    pick_template,
    show_error,
    table_height,
    take_param,
    workspace,
)
from ui.deployments import (
    entry_title,
    eval_gate,
    md,
    needs_force,
    needs_reason,
    show_gates,
    when,
)

ws = workspace()
deps = ws.deployments
envs = deps.environments

st.title("Deployments")
st.caption(
    f"What is live in each environment. Versions move along {' → '.join(envs)}; every deploy "
    "and rollback is recorded and never rewritten."
)

# ---- matrix ---------------------------------------------------------------------------------

cells: list[LiveCell] = deps.matrix()
names = list(dict.fromkeys(c.template for c in cells))
if not names:
    no_templates(ws, "then deploy it here")
    st.stop()

rows: dict[str, dict[str, str]] = {}
running: dict[str, list[str]] = {}
for c in cells:
    row = rows.setdefault(c.template, {"template": c.template})
    row[c.environment] = c.deployment.label() if c.deployment else None
    if c.experiment_name:
        running.setdefault(c.template, []).append(f"{c.experiment_name} ({c.environment})")
matrix = pd.DataFrame(list(rows.values()), columns=["template", *envs])
columns = {"template": st.column_config.TextColumn("Template", pinned=True, width="medium")}
if running:  # the column exists only when some template has a running experiment
    matrix["running experiment"] = [", ".join(running.get(n, [])) for n in matrix["template"]]
    columns["running experiment"] = st.column_config.TextColumn(
        "Running experiment",
        help="An experiment routes some users to its variants while it runs",
        width="medium",
    )
for env in envs:
    columns[env] = st.column_config.TextColumn(env)
st.dataframe(
    matrix,
    hide_index=True,
    width="stretch",
    height=table_height(len(matrix)),
    placeholder=MISSING,
    column_config=columns,
)

# ---- one template ---------------------------------------------------------------------------

name = pick_template(names, "dep_template", help="Deep link: add ?template=NAME to the address")
if st.query_params.get("template") != name:
    st.query_params["template"] = name

live: dict[str, LiveCell] = {c.environment: c for c in cells if c.template == name}


def _open(kind: str, env: str) -> None:
    st.session_state["dep_dialog"] = (kind, name, env)


for env, col in zip(envs, st.columns(len(envs)), strict=True):
    cell = live[env]
    d = cell.deployment
    with col.container(border=True):
        st.markdown(f"**{md(env)}**")
        if d is None:
            st.markdown("### —")
            st.caption("Nothing deployed")
        else:
            st.markdown(f"### {md(d.label())}")
            st.caption(f"#{d.id} {d.action} by {md(d.author)} · {when(d)}")
        if cell.experiment_name:
            st.caption(f":material/science: Running experiment: {md(cell.experiment_name)}")
        nxt = deps.next_environment(env)
        ahead = live[nxt].deployment if nxt is not None else None
        buttons = st.container(horizontal=True, gap="small")
        if nxt is not None and d is not None and (ahead is None or ahead.commit != d.commit):
            buttons.button(
                f"Promote to {nxt}",
                key=f"dep_promote_{env}",
                icon=":material/arrow_forward:",
                on_click=_open,
                args=("promote", env),
                help=f"Deploy what is live in {env} to {nxt}",
            )
        elif nxt is not None and d is not None:
            st.caption(f"Nothing to promote: {md(d.label())} is already live in {md(nxt)}.")
        buttons.button(
            "Roll back…",
            key=f"dep_rollback_{env}",
            icon=":material/undo:",
            disabled=d is None,
            on_click=_open,
            args=("rollback", env),
            help="Restore the version that was live before, or pick one",
        )


def _reason_inputs(report: GateReport, key: str) -> tuple[bool, str | None]:
    """Force and reason widgets, shown only when a rule needs them. Keyed by template, version
    and environment, so a reason typed for one deployment never carries over to another."""
    key = f"{key}_{report.template}_{report.commit[:12]}_{report.environment}"
    force = False
    reason = None
    if needs_force(report):
        force = st.checkbox(
            "Force (skip the promotion order)",
            key=f"{key}_force",
            help="Recorded in the history with your reason",
        )
    if needs_reason(report):
        reason = (
            st.text_input(
                "Reason (recorded)",
                key=f"{key}_reason",
                max_chars=500,
                placeholder="e.g. hotfix for incident 42",
            ).strip()
            or None
        )
    if force and reason is None:  # do not let the service refuse what the form can explain
        st.caption(":orange[Give a reason to force: it is recorded in the history.]")
        force = False
    return force, reason


# ---- deploy ---------------------------------------------------------------------------------

st.subheader("Deploy a version")
versions = deps.versions_of(name)
version_key = f"dep_version_{name}"
if (asked := take_param("version")) in [v.version for v in versions]:
    st.session_state[version_key] = asked  # a link asked for this version


def _not_live(env: str) -> list[str]:
    d = live[env].deployment
    return [v.version for v in versions if d is None or v.id != d.commit]


def _env_changed() -> None:
    # keep the chosen version unless it is already live in the new environment
    if st.session_state.get(version_key) not in _not_live(st.session_state["dep_env"]):
        st.session_state.pop(version_key, None)


# start where the newest version is not live yet (the next step of its rollout)
newest = versions[0].version if versions else None
start_env = next((e for e in envs if newest in _not_live(e)), envs[0])
c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
target = c2.segmented_control(
    "Environment",
    envs,
    default=start_env,
    key="dep_env",
    help="Where to deploy; the gates below are checked for this environment",
    required=True,
    on_change=_env_changed,
)
choices = [v.version for v in versions]
deployable = _not_live(target)
version = c1.selectbox(
    "Version",
    choices,
    index=choices.index(deployable[0]) if deployable else 0,
    key=version_key,
    help="Versions of main, newest first; the form starts on one that is not live here",
)
current = live[target].deployment
if current is not None and version in (current.version, current.commit):
    st.info(f"{md(version)} is already live in {md(target)}.", icon=":material/info:")
else:
    report = None
    with domain_errors():
        report = deps.check(name, version, target)
    if report is not None:
        gates_box = st.container()
        force, reason = _reason_inputs(report, "dep_deploy")
        if force or reason:
            try:
                report = deps.check(name, version, target, force=force, reason=reason)
            except PromptverError as exc:
                show_error(exc)
                report = None
        if report is not None:
            with gates_box:
                show_gates(report)
        note = st.text_input(
            "Note",
            key="dep_note",
            max_chars=1000,
            placeholder="What changes for users, and why now",
            help="Recorded in the history with the deployment",
        )
        if st.button(
            f"Deploy {version} to {target}",
            type="primary",
            key="dep_deploy",
            icon=":material/rocket_launch:",
            disabled=report is None or not report.ok,
        ):
            try:
                done = deps.deploy(
                    name, version, target, note=note, author=author(), force=force, reason=reason
                )
            except PromptverError as exc:
                show_error(exc)
            else:
                flash(f"Deployed {done.template} {done.label()} to {done.environment} (#{done.id})")
                st.rerun()


# ---- dialogs: promote and roll back ---------------------------------------------------------


def _close_dialog() -> None:
    st.session_state.pop("dep_dialog", None)


def _promote_dialog(template: str, env: str) -> None:
    nxt, commit = deps.promotion(template, env)
    report = deps.check(template, commit, nxt)
    st.markdown(
        f"Deploy **{md(report.version or commit[:10])}** from **{md(env)}** to "
        f"**{md(nxt)}** (live there: {md(report.live_version or '—')})."
    )
    gates_box = st.container()
    force, reason = _reason_inputs(report, "dep_promote")
    if force or reason:
        report = deps.check(template, commit, nxt, force=force, reason=reason)
    with gates_box:
        show_gates(report)
    note = st.text_input(
        "Note",
        key="dep_promote_note",
        help="Recorded in the history with the deployment",
        max_chars=1000,
    )
    a, b = st.columns(2)
    if a.button(f"Promote to {nxt}", type="primary", key="dep_promote_yes", disabled=not report.ok):
        done = deps.promote(template, env, note=note, author=author(), force=force, reason=reason)
        _close_dialog()
        flash(f"Promoted {done.template} {done.label()} to {done.environment} (#{done.id})")
        st.rerun()
    if b.button("Cancel", key="dep_promote_no"):
        _close_dialog()
        st.rerun()


def _rollback_dialog(template: str, env: str) -> None:
    options = ["previous", "named"]
    mode = st.radio(
        "Restore",
        options,
        key="dep_rb_mode",
        help="By default the version live before the current one comes back",
        format_func=lambda o: {
            "previous": "The version live before the current one",
            "named": "A version I pick",
        }[o],
    )
    to = None
    if mode == "named":
        to = st.selectbox(
            "Version",
            [v.version for v in deps.versions_of(template)],
            key="dep_rb_to",
            help="Any version of main; a rollback is exempt from the promotion order",
        )
    cur, restored = deps.rollback_plan(template, env, to)
    st.markdown(
        f"Roll back **{md(template)}** in **{md(env)}** from **{md(cur.label())}** to "
        f"**{md(restored.version or restored.id[:10])}**?"
    )
    diff = deps.rollback_diff(cur, restored)
    if diff:
        st.code(diff, language="diff", wrap_lines=True)
    note = st.text_input(
        "Reason (required)",
        key="dep_rb_note",
        max_chars=1000,
        placeholder="What went wrong, e.g. answers got longer and slower",
        help="Recorded in the history with the rollback and shown on Home",
    ).strip()
    if not note:
        st.caption("Give the reason for the rollback: whoever reads the history later needs it.")
    a, b = st.columns(2)
    if a.button(
        "Roll back", type="primary", key="dep_rb_yes", icon=":material/undo:", disabled=not note
    ):
        done = deps.rollback(template, env, to=to, note=note, author=author(), require_note=True)
        _close_dialog()
        flash(f"Rolled back {done.template} in {done.environment} to {done.label()} (#{done.id})")
        st.rerun()
    if b.button("Cancel", key="dep_rb_no"):
        _close_dialog()
        st.rerun()


pending = st.session_state.get("dep_dialog")
if pending and pending[1] == name:
    kind, template, env = pending

    @st.dialog(
        f"Promote from {env}" if kind == "promote" else f"Roll back {env}",
        width="large",
        on_dismiss=_close_dialog,
    )
    def _dialog() -> None:
        with domain_errors():
            (_promote_dialog if kind == "promote" else _rollback_dialog)(template, env)

    _dialog()
elif pending:
    _close_dialog()  # the template changed under an open dialog: drop it


# ---- timeline -------------------------------------------------------------------------------

st.subheader("History")
if (wanted_env := take_param("env")) in envs:  # deep link: that environment's history
    st.session_state["dep_scope"] = wanted_env
scope = st.segmented_control(
    "Show",
    ["all", *envs],
    default="all",
    key="dep_scope",
    required=True,
    help="The history of every environment, or of one",
)
limit = 50
history: list[Deployment] = deps.history(name, None if scope == "all" else scope, limit=limit + 1)
if not history:
    st.caption("No deployments yet.")
for d in history[:limit]:
    with st.expander(entry_title(d)):
        if d.note:
            st.markdown(f"**Note:** {md(d.note)}")
        if d.forced:
            st.markdown(f":orange[**Forced past the promotion order:**] {md(d.force_reason)}")
        if d.evidence_override_reason:
            st.markdown(
                f":orange[**Replaced the live version without an experiment win:**] "
                f"{md(d.evidence_override_reason)}"
            )
        if d.evidence_experiment_id:
            st.markdown(f"**Evidence:** won experiment `{md(d.evidence_experiment_id)}`")
        if (gate := eval_gate(d)) is not None:
            st.markdown(f"**Offline evaluation ({md(gate['status'])}):** {md(gate['message'])}")
        if d.action == "rollback":
            what = (
                "the version live before" if d.rollback_mode == "previous" else "a chosen version"
            )
            st.markdown(f"Rollback to {what}; replaced #{d.replaced_deployment_id}.")
        st.caption(f"commit `{d.commit[:12]}`")
        if d.replaced_commit is None:
            st.caption("First deployment here: nothing was replaced.")
        else:
            diff = deps.diff(d)
            st.code(diff or "(the text did not change)", language="diff", wrap_lines=True)
        links = st.container(horizontal=True)
        if d.replaced_commit is not None:
            links.page_link(
                "pages/history.py",
                label="Side-by-side diff",
                icon=":material/difference:",
                query_params={
                    "template": d.template,
                    "from": d.replaced_commit[:12],
                    "to": d.commit[:12],
                },
                help="The replaced version against this one on the History & Diff screen",
            )
        if gate is not None:
            links.page_link(
                "pages/evaluations.py",
                label="Evaluation",
                icon=":material/fact_check:",
                query_params={
                    "dataset": gate["eval"]["dataset"],
                    "template": d.template,
                    "version": d.version or d.commit[:12],
                },
                help="The paired comparison behind the eval gate",
            )
        links.page_link(
            "pages/trends.py",
            label="Trends around it",
            icon=":material/show_chart:",
            query_params=deployment_trend_params(d),
            help=md(
                f"The metrics of {d.template} in {d.environment} by version, from a week "
                "before this deployment"
            ),
        )
if len(history) > limit:
    st.caption(
        f"Showing the latest {limit}; the CLI lists everything: `promptver deployments {name}`."
    )

"""Experiments: list, configure, start and stop A/B experiments, and preview their routing.

Deep links: ``?experiment=ID`` selects one; ``&tab=results`` (or ``overview``, ``routing``,
``configure``) opens that tab."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from promptver import PromptverError
from promptver.experiments import dump_spec, to_spec
from promptver.models import BUILTIN_METRICS, Experiment
from promptver.overview import trend_params
from promptver.routing import Router, router_for, synthetic_split
from ui.common import author, cached, code, flash, no_templates, take_param, workspace
from ui.experiments import (
    STATUS,
    domain_errors,
    form_message,
    group_problems,
    md,
    percent,
    show_error,
    show_problems,
    split_chart,
    split_table,
    table,
    when,
)
from ui.reports import report_downloads
from ui.results import render_results

ws = workspace()
svc = ws.experiments

st.title("Experiments")
st.caption(
    "A/B tests of prompt variants on live traffic. Users are routed by a hash of their id, so "
    "each one always sees the same variant; a running experiment's variants and split are frozen."
)


# ---- the list -------------------------------------------------------------------------------

everything = svc.list()
by_id = {e.id: e for e in everything}

f1, f2 = st.columns([2, 3], vertical_alignment="bottom")
ALL_STATUSES = ["running", "draft", "completed", "stopped"]
# every status starts selected, so the control shows what the list shows (issue 22, item 17)
status_filter = f1.segmented_control(
    "Status",
    ALL_STATUSES,
    selection_mode="multi",
    default=ALL_STATUSES,
    key="exp_status_filter",
    format_func=lambda s: STATUS[s][0],
    help="Show experiments with the selected statuses",
)
shown = [e for e in everything if e.status in (status_filter or [])]
if everything and not status_filter:
    st.caption("No status selected: select one or more statuses to list their experiments.")


def _split_text(e: Experiment) -> str:
    total = sum(v.weight for v in e.variants)
    return " / ".join(f"{v.name} {100 * v.weight / total:.0f}%" for v in e.variants)


if shown:
    table(
        pd.DataFrame(
            [
                {
                    "name": e.name,
                    "status": STATUS[e.status][0],
                    "template": e.template,
                    "environment": e.environment,
                    "split": _split_text(e),
                    "coverage": f"{100 * e.coverage:.0f}%",
                    "primary metric": e.primary_metric.name,
                    "started": e.started_at,
                    "stopped": e.stopped_at,
                    "id": e.id,
                }
                for e in shown
            ]
        ),
        {
            # widths that fit the ten columns into the page (long splits show in full on hover)
            "name": st.column_config.TextColumn("name", width=120),
            "status": st.column_config.TextColumn("status", width=80),
            "template": st.column_config.TextColumn("template", width=95),
            "environment": st.column_config.TextColumn("environment", width=90),
            "split": st.column_config.TextColumn("split", width=150),
            "coverage": st.column_config.TextColumn("coverage", width=68),
            "primary metric": st.column_config.TextColumn("primary metric", width=100),
            "started": st.column_config.DatetimeColumn(
                "started (UTC)", format="YYYY-MM-DD HH:mm", width=115, help="—: not started yet"
            ),
            "stopped": st.column_config.DatetimeColumn(
                "stopped (UTC)", format="YYYY-MM-DD HH:mm", width=115, help="—: not stopped (yet)"
            ),
            "id": st.column_config.TextColumn(
                "id", width=95, help="Commands and links accept the id or the name"
            ),
        },
    )
elif everything:
    st.info("No experiment has these statuses. Clear the status filter to see all.")
else:
    st.info("No experiments yet. Configure the first one under **Configure**.")


def _label(eid: str) -> str:
    e = by_id[eid]
    return f"{e.name} · {e.template} in {e.environment}"


selected: Experiment | None = None
if everything:
    ids = [e.id for e in everything]
    wanted = st.query_params.get("experiment")
    if st.session_state.get("exp_pick") not in ids:
        st.session_state["exp_pick"] = wanted if wanted in ids else ids[0]
    pick = f2.selectbox(
        "Experiment",
        ids,
        format_func=_label,
        key="exp_pick",
        help="Deep link: add ?experiment=ID to the address",
    )
    if st.query_params.get("experiment") != pick:
        st.query_params["experiment"] = pick
    selected = by_id[pick]

TABS = ["Overview", "Results", "Routing preview", "Configure"]
# deep link: ?tab=results (the first word of a tab) opens that tab when the screen opens
wanted_tab = (take_param("tab") or "").lower()
tab_overview, tab_results, tab_routing, tab_config = st.tabs(
    TABS,
    key="exp_tab",
    default=next((t for t in TABS if t.lower().split()[0] == wanted_tab), None),
)


# ---- overview, start and stop -----------------------------------------------------------------


def variants_frame(e: Experiment) -> pd.DataFrame:
    total = sum(v.weight for v in e.variants)
    rows = []
    for i, v in enumerate(e.variants):
        rows.append(
            {
                "variant": v.name,
                "role": "control" if i == 0 else "treatment",
                "ref": v.ref,
                "commit": (v.commit or "")[:10],
                "share": percent(v.weight / total),
                "share of all users": percent(e.coverage * v.weight / total),
            }
        )
    return pd.DataFrame(rows)


def metrics_frame(e: Experiment) -> pd.DataFrame:
    return pd.DataFrame(
        [{"metric": m.name, "role": m.role, "better when": m.direction} for m in e.metrics]
    )


def settings_line(e: Experiment) -> str:
    return (
        f"α = {e.alpha:g} · minimum {e.minimum_sample_size:,} users per variant · "
        f"coverage {percent(e.coverage)} · salt {code(e.salt)}"
    )


def _start_dialog(e: Experiment) -> None:
    @st.dialog("Start experiment?")
    def dialog() -> None:
        st.markdown(f"Start **{md(e.name)}** on **{md(e.template)}** in **{md(e.environment)}**?")
        st.markdown(f"Split: {md(_split_text(e))}; coverage {percent(e.coverage)}.")
        st.caption(
            "Refs are resolved now and frozen: from here on the variants and the split "
            "cannot change. `get_prompt` starts routing users at once"
            + (f" (from {when(e.start_at)})" if e.start_at else "")
            + "."
        )
        other = svc.running(e.template_id, e.environment)
        if other is not None:
            st.warning(
                f"**{md(other.name)}** is already running on this template in "
                f"{md(e.environment)}; stop it first."
            )
        a, b = st.columns(2)
        if a.button("Start", type="primary", key="exp_start_yes"):
            try:
                started = svc.start(e.id, author=author())
            except PromptverError as exc:
                show_error(exc)
            else:
                st.session_state.pop("exp_confirm", None)
                flash(
                    f"Started {started.name}: routing {started.template} users in "
                    f"{started.environment}"
                )
                st.rerun()
        if b.button("Cancel", key="exp_start_no"):
            st.session_state.pop("exp_confirm", None)
            st.rerun()

    dialog()


def _stop_dialog(e: Experiment) -> None:
    @st.dialog("Stop experiment?")
    def dialog() -> None:
        early = e.end_at is not None and datetime.now(UTC) < e.end_at
        st.markdown(
            f"Stop **{md(e.name)}**? Routing ends at once and users get the deployed "
            "version again; the final results are frozen."
        )
        if early:
            st.info(
                f"It is planned to run until {when(e.end_at)}: stopping now is stopping "
                "early, which needs a reason."
            )
        reason = st.text_area(
            "Reason"
            + (" (required)" if early else " (optional: giving one marks it stopped early)"),
            key="exp_stop_reason",
            max_chars=500,
            placeholder="e.g. guardrail breached: latency rose 30 %",
        )
        a, b = st.columns(2)
        if a.button("Stop experiment", type="primary", key="exp_stop_yes"):
            try:
                stopped = svc.stop(e.id, reason=reason.strip() or None, author=author())
            except PromptverError as exc:
                show_error(exc)
            else:
                st.session_state.pop("exp_confirm", None)
                st.session_state.pop("exp_stop_reason", None)
                flash(f"{stopped.name} is now {STATUS[stopped.status][0].lower()}")
                st.rerun()
        if b.button("Cancel", key="exp_stop_no"):
            st.session_state.pop("exp_confirm", None)
            st.rerun()

    dialog()


def _delete_dialog(e: Experiment) -> None:
    @st.dialog("Delete draft?")
    def dialog() -> None:
        st.markdown(f"Delete the draft **{md(e.name)}**? This cannot be undone.")
        a, b = st.columns(2)
        if a.button("Delete", type="primary", key="exp_delete_yes"):
            with domain_errors():
                svc.delete(e.id, author=author())
                st.session_state.pop("exp_confirm", None)
                st.session_state.pop("exp_pick", None)
                st.query_params.pop("experiment", None)
                flash(f"Deleted draft {e.name}")
                st.rerun()
        if b.button("Cancel", key="exp_delete_no"):
            st.session_state.pop("exp_confirm", None)
            st.rerun()

    dialog()


def _live_line(d: Any) -> str:
    what = "rolled back to" if d.action == "rollback" else "deployed"
    return f"{what} {when(d.created_at)} by {d.author or 'unknown'}"


def _winner_variant(e: Experiment, results: Any) -> Any:
    """The variant the results name as the winner (None: no winner)."""
    return next((v for v in e.variants if v.name == results.winner), None)


def _deploy_dialog(e: Experiment, results: Any) -> None:
    @st.dialog("Deploy the winner?")
    def dialog() -> None:
        v = _winner_variant(e, results)
        if v is None or not v.commit:
            st.error("These results name no winner to deploy.")
            return
        t = ws.templates.get(e.template, v.commit)
        label = t.version or f"commit {v.commit[:10]}"
        st.markdown(
            f"Put **{md(v.name)}** ({md(label)}), the winner of **{md(e.name)}**, live for "
            f"**{md(e.template)}**."
        )
        envs = ws.settings.deployment.environments
        env = st.selectbox(
            "Environment",
            envs,
            index=envs.index(e.environment) if e.environment in envs else 0,
            key="exp_deploy_env",
            help="Where the experiment ran is the default; the deployment gates still apply",
        )
        live = ws.deployments.live(e.template, env)
        if live is None:
            st.caption(md(f"Nothing of {e.template} is live in {env} yet."))
        else:
            st.caption(
                md(
                    f"Live in {env} now: {live.version or 'commit ' + live.commit[:10]} "
                    f"({_live_line(live)})."
                )
            )
        note = st.text_input(
            "Note",
            value=f"winner of experiment {e.name}"[:500],
            key="exp_deploy_note",
            max_chars=500,
            help="Recorded with the deployment (shown in its history)",
        )
        blocked = False
        if live is not None and live.commit == v.commit:
            st.info(md(f"{label} is already live in {env}: nothing to deploy there."))
            blocked = True
        else:
            try:
                report = ws.deployments.check(e.template, v.commit, env)
            except PromptverError as exc:
                show_error(exc)
                blocked = True
            else:
                failed = [g for g in report.gates if g.status == "failed"]
                for g in failed:
                    st.error(md(f"{g.gate}: {g.message}"), icon=":material/block:")
                blocked = bool(failed)
        a, b = st.columns(2)
        if a.button("Deploy", type="primary", key="exp_deploy_yes", disabled=blocked):
            try:
                d = ws.deployments.deploy(
                    e.template, v.commit, env, note=note.strip(), author=author()
                )
            except PromptverError as exc:
                show_error(exc)
            else:
                st.session_state.pop("exp_confirm", None)
                flash(f"Deployed {v.name} ({label}) of {e.template} to {env}: deployment #{d.id}")
                st.rerun()
        if b.button("Cancel", key="exp_deploy_no"):
            st.session_state.pop("exp_confirm", None)
            st.rerun()

    dialog()


def _ask(action: str, eid: str) -> None:
    st.session_state["exp_confirm"] = (action, eid)


with tab_overview:
    if selected is None:
        st.info("Nothing to show yet: create an experiment under **Configure**.")
    else:
        e = selected
        label, color, icon = STATUS[e.status]
        st.subheader(md(e.name))
        st.badge(label, color=color, icon=icon)
        if e.hypothesis:
            st.markdown(f"**Hypothesis:** {md(e.hypothesis)}")
        if e.description:
            st.caption(md(e.description))
        ended = (
            f"**Stopped** {when(e.stopped_at)}"
            if e.stopped_at
            else f"**Planned end** {when(e.end_at, 'open')}"
        )
        st.markdown(
            f"**Template** {md(e.template)} · **Environment** {md(e.environment)} · "
            f"**Created** {when(e.created_at)} by {md(e.created_by or 'unknown')} · "
            f"**Started** {when(e.started_at, 'not yet')} · {ended}"
        )
        if e.stop_reason:
            st.markdown(f"**Reason for stopping:** {md(e.stop_reason)}")
        st.markdown("**Variants** (the first is the control)")
        table(variants_frame(e))
        st.markdown("**Metrics** (the first is the primary one)")
        table(metrics_frame(e))
        st.markdown(settings_line(e))
        if e.start_at or e.end_at:
            st.caption(
                f"Window of events that count: {when(e.start_at, 'start')} → "
                f"{when(e.end_at, 'stop')}"
            )
        elsewhere = st.container(horizontal=True)
        if e.status != "draft":
            elsewhere.page_link(
                "pages/trends.py",
                label="Trend by variant",
                icon=":material/show_chart:",
                query_params=trend_params(e),
                help=md(
                    f"{e.primary_metric.name} of {e.template} in {e.environment}, one line "
                    "per variant, since the experiment started"
                ),
            )
        elsewhere.page_link(
            "pages/history.py",
            label="Diff of the variants",
            icon=":material/difference:",
            query_params={
                "template": e.template,
                "from": e.variants[0].commit[:12] if e.variants[0].commit else e.variants[0].ref,
                "to": e.variants[1].commit[:12] if e.variants[1].commit else e.variants[1].ref,
            },
            help="The control against the first treatment on the History & Diff screen",
        )
        elsewhere.page_link(
            "pages/deployments.py",
            label="Deployments",
            icon=":material/rocket_launch:",
            query_params={"template": e.template, "env": e.environment},
            help=md(f"What is live for {e.template} in {e.environment}"),
        )
        b1, b2, b3, _ = st.columns([1, 1, 1, 3])
        if e.status == "draft":
            b1.button(
                "Start…",
                type="primary",
                key="exp_start",
                help="Start routing users to the variants (asks for confirmation)",
                on_click=_ask,
                args=("start", e.id),
            )
            b3.button(
                "Delete…",
                key="exp_delete",
                help="Delete this draft (asks for confirmation)",
                on_click=_ask,
                args=("delete", e.id),
            )
        elif e.status == "running":
            b1.button(
                "Stop…",
                type="primary",
                key="exp_stop",
                help="End routing and freeze the final results (asks for confirmation)",
                on_click=_ask,
                args=("stop", e.id),
            )
        b2.button(
            "Copy to a new draft",
            key="exp_copy",
            on_click=lambda eid=e.id: _load_form(by_id[eid], copy=True),
            help="Running experiments are frozen: change a copy instead",
        )
        with st.expander("History"):
            table(
                pd.DataFrame(
                    [
                        {"when (UTC)": h.at, "action": h.action, "by": h.author, "detail": h.detail}
                        for h in svc.history(e.id)
                    ]
                ),
                {
                    "when (UTC)": st.column_config.DatetimeColumn(
                        "when (UTC)", format="YYYY-MM-DD HH:mm"
                    )
                },
            )
        confirm = st.session_state.get("exp_confirm")
        if confirm and confirm[1] == e.id:
            dialogs = {"start": _start_dialog, "stop": _stop_dialog, "delete": _delete_dialog}
            if confirm[0] in dialogs:  # "deploy" opens from the Results tab
                dialogs[confirm[0]](e)


# ---- results --------------------------------------------------------------------------------

with tab_results:
    if selected is None:
        st.info("Results appear here once an experiment has run.")
    else:
        e = selected
        st.subheader(f"Results of {md(e.name)}")
        st.badge(STATUS[e.status][0], color=STATUS[e.status][1])
        start, end = e.window()
        st.markdown(
            f"Primary metric **{md(e.primary_metric.name)}** ({e.primary_metric.direction} is "
            f"better) · events from {when(start, 'the start')} to {when(end, 'now (running)')}"
        )
        st.markdown(settings_line(e))
        if e.status == "draft":
            st.info(
                "This experiment has not started: start it from **Overview**; results "
                "appear here as events arrive."
            )
        else:
            if e.status in ("completed", "stopped"):
                st.caption(
                    "Final results, frozen when the experiment stopped (turn an option "
                    "on to re-analyse the same events)."
                )
            action = st.container()
            shown = render_results(ws, e)
            if shown is not None:
                if e.status == "completed" and _winner_variant(e, shown) is not None:
                    action.button(
                        f"Deploy the winner ({md(shown.winner)})…",
                        type="primary",
                        icon=":material/rocket_launch:",
                        key="exp_deploy_winner",
                        help="Put the winning variant live (asks for the environment and a "
                        "note; the deployment gates apply)",
                        on_click=_ask,
                        args=("deploy", e.id),
                    )
                report_downloads(ws, e, shown)
                confirm = st.session_state.get("exp_confirm")
                if confirm and confirm == ("deploy", e.id):
                    _deploy_dialog(e, shown)


# ---- routing preview ------------------------------------------------------------------------


def routing_preview(router: Router, key: str) -> None:
    """Type a user id → variant and bucket; the split of synthetic users against the target."""
    user = st.text_input(
        "User id",
        key=f"{key}_user",
        placeholder="e.g. user-42",
        help="Any text; routing hashes md5(salt:user_id)",
    )
    if user:
        variant, bucket = router.route(user)
        c1, c2, c3 = st.columns(3)
        c1.metric("Variant", variant if variant is not None else "not in the experiment")
        c2.metric("Bucket", f"{bucket:.6f}")
        covered = router.coverage >= 1 or router.coverage_bucket(user) < router.coverage
        c3.metric(
            "Coverage",
            "inside" if covered else "outside",
            help=f"coverage bucket {router.coverage_bucket(user):.6f} must be below "
            f"{router.coverage:g}",
        )
    n = st.select_slider(
        "Synthetic users",
        [1_000, 10_000, 100_000],
        value=10_000,
        key=f"{key}_n",
        format_func=lambda x: f"{x:,}",
        help="Ids user-0, user-1, … assigned in one SQL statement",
    )
    frame = split_table(synthetic_split(router, n))
    table(frame)
    st.altair_chart(split_chart(frame), width="stretch")
    st.caption(
        f"Bars: observed share of {n:,} synthetic users; black ticks: the configured target."
    )


with tab_routing:
    if selected is None:
        st.info(
            "Create an experiment to preview its routing (the Configure tab also previews "
            "the experiment being configured)."
        )
    else:
        st.markdown(f"Routing of **{md(selected.name)}** (salt {code(selected.salt)})")
        routing_preview(router_for(selected), "exp_route")


# ---- configure ------------------------------------------------------------------------------

F = "exp_f_"  # prefix of the form's state keys
MAX_VARIANTS = 10


def _refs(template: str) -> tuple[list[str], dict[str, str]]:
    """Ref options of a template (versions on main, newest first, then branches) and labels."""
    tid = ws.templates.row(template)["id"]
    labels: dict[str, str] = {}
    mainline = ws.versions.log(tid, ws.versions.branch_head(tid), first_parent=True)
    for c in mainline:
        if c.version and c.version not in labels:
            labels[c.version] = f"{c.version} (latest)" if not labels else c.version
    for b in ws.versions.branches(tid):
        if b.name != "main":
            labels[b.name] = f"branch {b.name}"
    return list(labels), labels


def _load_form(e: Experiment | None, *, copy: bool = False) -> None:
    """Fill the form from an experiment (edit a draft, or copy any) or reset it."""
    s = st.session_state
    for k in [k for k in s if str(k).startswith(F)]:
        del s[k]
    s[F + "target"] = None if (e is None or copy) else e.id
    if e is None:
        return
    spec = to_spec(e)
    s[F + "name"] = f"{e.name} (copy)"[:100] if copy else e.name
    s[F + "description"] = e.description
    s[F + "hypothesis"] = e.hypothesis
    s[F + "template"] = e.template
    s[F + "env"] = e.environment
    s[F + "n"] = len(e.variants)
    total = sum(v.weight for v in e.variants)
    for i, v in enumerate(e.variants):
        s[f"{F}vname_{i}"] = v.name
        s[f"{F}ref_{i}"] = v.ref
        if i < len(e.variants) - 1:  # shares in whole percent; the last one is the rest
            s[f"{F}w_{i}"] = max(1, min(99, round(100 * v.weight / total)))
    s[F + "primary"] = e.metrics[0].name
    s[F + "secondary"] = [m.name for m in e.metrics[1:] if m.role == "secondary"]
    s[F + "guard"] = [m.name for m in e.metrics if m.role == "guardrail"]
    for m in e.metrics:
        s[f"{F}dir_{m.name}"] = m.direction
    s[F + "alpha"] = e.alpha
    s[F + "sample"] = e.minimum_sample_size
    s[F + "salt"] = "" if copy else spec.get("salt", "")
    s[F + "cov"] = max(1, round(100 * e.coverage))
    s[F + "engine"] = e.engine
    s[F + "allocation"] = e.allocation
    s[F + "cuped"] = e.cuped_lookback_days or 0
    for m in e.metrics:
        if m.role == "guardrail":
            s[f"{F}margin_{m.name}"] = round(100 * m.margin, 2) if m.margin else 0.0
    s[F + "has_start"] = e.start_at is not None
    s[F + "has_end"] = e.end_at is not None
    if e.start_at:
        s[F + "start"] = e.start_at.astimezone(UTC).replace(tzinfo=None)
    if e.end_at:
        s[F + "end"] = e.end_at.astimezone(UTC).replace(tzinfo=None)
    s["exp_tab"] = "Configure"


def _new_form() -> None:
    _load_form(None)


def form_shares(n: int) -> list[int]:
    """Each variant's share in percent: sliders for all but the last, which gets the rest, so
    the shares always add up to 100 (the rest may be ≤ 0 until a slider is lowered)."""
    s = st.session_state
    shares = [int(s.get(f"{F}w_{i}", 100 // n)) for i in range(n - 1)]
    return [*shares, 100 - sum(shares)]


def _variants_changed() -> None:
    """A new variant's slider starts at an equal share; when that would leave nothing for the
    last variant, every variant gets an equal share instead. Runs as the number's callback, so
    the sliders and the split summary of the same run already agree (never a negative rest)."""
    s = st.session_state
    n = int(s.get(F + "n", 2))
    for i in range(n - 1):
        s.setdefault(f"{F}w_{i}", 100 // n)
    if sum(int(s[f"{F}w_{i}"]) for i in range(n - 1)) > 99:
        _equal_split()


def form_spec() -> dict[str, Any]:
    """The experiment file fields the form currently describes (read from session state)."""
    s = st.session_state
    n = int(s.get(F + "n", 2))
    variants = [
        {
            "name": (s.get(f"{F}vname_{i}") or "").strip(),
            "ref": s.get(f"{F}ref_{i}"),
            "weight": share,
        }
        for i, share in enumerate(form_shares(n))
    ]
    primary = s.get(F + "primary")
    metrics: list[Any] = []
    guardrails: list[Any] = []

    def item(name: str) -> Any:
        if name in BUILTIN_METRICS:
            return name
        return {"name": name, "direction": s.get(f"{F}dir_{name}", "higher")}

    if primary:
        metrics.append(item(primary))
    metrics += [item(m) for m in s.get(F + "secondary", []) if m != primary]
    for m in s.get(F + "guard", []):
        if m == primary:
            continue
        g = item(m)
        margin = s.get(f"{F}margin_{m}") or 0
        if margin:
            g = {**(g if isinstance(g, dict) else {"name": g}), "margin": float(margin) / 100}
        guardrails.append(g)
    alpha, sample = s.get(F + "alpha", 0.05), s.get(F + "sample", 100)
    spec: dict[str, Any] = {
        "name": (s.get(F + "name") or "").strip(),
        "description": s.get(F + "description") or "",
        "hypothesis": s.get(F + "hypothesis") or "",
        "template": s.get(F + "template"),
        "environment": s.get(F + "env") or "production",
        "variants": variants,
        "metrics": metrics,
        # as typed (an empty box is None): the service refuses what is out of range
        "minimum_sample_size": int(sample) if sample is not None else None,
        "alpha": float(alpha) if alpha is not None else None,
        "coverage": int(s.get(F + "cov", 100)) / 100,
    }
    if guardrails:
        spec["guardrails"] = guardrails
    if (s.get(F + "salt") or "").strip():
        spec["salt"] = s[F + "salt"].strip()
    for key in ("start", "end"):
        value = s.get(F + key)
        if s.get(F + "has_" + key) and value is not None:
            spec[key] = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if s.get(F + "same_ok"):
        spec["allow_same_commit"] = True
    if s.get(F + "engine", "frequentist") != "frequentist":
        spec["engine"] = s[F + "engine"]
    if s.get(F + "allocation", "fixed") != "fixed":
        spec["allocation"] = s[F + "allocation"]
    if s.get(F + "cuped"):
        spec["cuped"] = {"lookback_days": int(s[F + "cuped"])}
    return {k: v for k, v in spec.items() if v not in ("", None)}


def _save() -> None:
    s = st.session_state
    target = s.get(F + "target")
    try:
        saved = (
            svc.update(target, form_spec(), author=author())
            if target
            else svc.create(form_spec(), author=author())
        )
    except PromptverError as exc:
        s[F + "error"] = exc
        return
    _load_form(None)
    s["exp_pick"] = saved.id
    st.query_params["experiment"] = saved.id
    s["exp_tab"] = "Overview"
    flash(f"Saved draft {saved.name}: start it from Overview")


def _equal_split() -> None:
    n = int(st.session_state.get(F + "n", 2))
    for i in range(n - 1):
        st.session_state[f"{F}w_{i}"] = 100 // n


with tab_config:
    templates = [t.name for t in ws.templates.list()]
    target_id = st.session_state.get(F + "target")
    target = by_id.get(target_id) if target_id else None
    if target_id and (target is None or target.status != "draft"):
        st.session_state[F + "target"] = target = None
    top1, top2, top3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    top1.markdown(
        f"Editing the draft **{md(target.name)}**"
        if target
        else "A **new experiment** (saved as a draft; start it from Overview)"
    )
    if (
        selected is not None
        and selected.status == "draft"
        and (target is None or target.id != selected.id)
    ):
        top2.button(
            "Edit selected draft",
            key="exp_edit_selected",
            on_click=lambda eid=selected.id: _load_form(by_id[eid]),
        )
    top3.button(
        "Clear form",
        key="exp_clear",
        help="Empty the form to configure a new experiment",
        on_click=_new_form,
    )
    if not templates:
        no_templates(ws, "then configure an experiment between its versions or branches")
    else:
        s = st.session_state
        # the form's problems are shown under their fields: each field gets a container below
        # it, filled once the whole form has been read (see the end of this block)
        slots: dict[str, Any] = {}
        c1, c2 = st.columns([3, 2])
        c1.text_input(
            "Name",
            key=F + "name",
            max_chars=100,
            placeholder="e.g. concise-vs-control",
            help="Free text, unique in this workspace; commands accept the name or id",
        )
        slots["name"] = c1.container()
        if s.get(F + "template") not in templates:
            s[F + "template"] = templates[0]
        template = c2.selectbox(
            "Template",
            templates,
            key=F + "template",
            help="The template whose versions or branches the variants compare",
        )
        slots["template"] = c2.container()
        environments = ws.settings.deployment.environments
        if s.get(F + "env") not in environments:
            s[F + "env"] = "production" if "production" in environments else environments[-1]
        e1, e2 = st.columns([2, 3])
        env = e1.selectbox(
            "Environment",
            environments,
            key=F + "env",
            help="Where get_prompt routes users while the experiment runs",
        )
        slots["environment"] = e1.container()
        e2.text_input(
            "Hypothesis",
            key=F + "hypothesis",
            max_chars=1000,
            placeholder="e.g. Shorter answers keep quality and cut cost",
            help="What you expect and why: shown with the results and in reports",
        )
        slots["hypothesis"] = e2.container()
        st.text_area(
            "Description",
            key=F + "description",
            max_chars=1000,
            height=68,
            help="Optional notes for whoever reads the results",
        )
        slots["description"] = st.container()

        st.markdown("**Variants** — the first is the control")
        options, labels = _refs(template)
        live = ws.deployments.live(template, env)
        live_ref = live.version if live is not None and live.version in labels else None
        if live_ref:
            labels[live_ref] += f" · live in {env}"
        else:
            st.caption(
                md(f"Nothing of {template} is live in {env} yet")
                + (f" (commit {live.commit[:10]} has no version)" if live is not None else "")
                + ": the control defaults to the latest version."
            )
        if F + "n" not in s:
            s[F + "n"] = 2
        n = st.number_input(
            "Number of variants",
            min_value=2,
            max_value=MAX_VARIANTS,
            step=1,
            key=F + "n",
            on_change=_variants_changed,
            help="The first variant is the control; each other one is compared with it",
        )
        slots["variants"] = st.container()
        # the control defaults to what users get now in the chosen environment; it follows
        # the environment until the analyst picks another ref
        default_control = live_ref or options[0]
        auto = s.get(F + "ref_0_auto")
        if s.get(F + "ref_0") not in options or (auto is not None and s[F + "ref_0"] == auto):
            s[F + "ref_0"] = s[F + "ref_0_auto"] = default_control
        for i in range(int(n)):
            if f"{F}vname_{i}" not in s:
                s[f"{F}vname_{i}"] = "control" if i == 0 else f"variant-{i}"
            if i and s.get(f"{F}ref_{i}") not in options:
                # a treatment defaults to a branch, then another version: one not taken yet,
                # so that a new variant does not start as a copy of another one
                branches = [o for o in options if labels[o].startswith("branch ")]
                pool = branches + [o for o in options if o not in branches]
                taken = {s.get(f"{F}ref_{j}") for j in range(i)}
                free = [o for o in pool if o not in taken]
                s[f"{F}ref_{i}"] = free[0] if free else pool[(i - 1) % len(pool)]
            if i < n - 1 and f"{F}w_{i}" not in s:
                s[f"{F}w_{i}"] = 100 // int(n)
        shares = form_shares(int(n))
        for i in range(int(n)):
            v1, v2, v3 = st.columns([2, 2, 3], vertical_alignment="top")
            v1.text_input(
                f"Variant {i + 1} name" + (" (control)" if i == 0 else ""),
                key=f"{F}vname_{i}",
                help="Shown in the results and reports; unique within the experiment",
                max_chars=100,
            )
            slots[f"variants[{i}].name"] = v1.container()
            ref = v2.selectbox(
                f"Variant {i + 1} ref",
                options,
                key=f"{F}ref_{i}",
                format_func=lambda o: labels.get(o, o),
                help="A version, or a branch (resolved and frozen at start)",
            )
            slots[f"variants[{i}].ref"] = v2.container()
            if i < n - 1:
                v3.slider(
                    f"Variant {i + 1} share of traffic (%)",
                    1,
                    99,
                    key=f"{F}w_{i}",
                    help="The last variant gets what the others leave, so the shares always "
                    "add up to 100 %",
                )
            else:
                s[F + "w_last"] = max(0, shares[i])  # the rest, from this run's sliders
                v3.slider(
                    f"Variant {i + 1} share of traffic (%): the rest",
                    0,
                    100,
                    key=F + "w_last",
                    disabled=True,
                    help="100 % minus the other variants' shares",
                )
            slots[f"variants[{i}].weight"] = v3.container()
            with domain_errors():
                t = ws.templates.get(template, ref)
                if i == 0 and live is not None and t.commit != live.commit:
                    st.warning(
                        md(
                            f"Variant 1 ref: the control is {t.version or 'branch ' + ref}, "
                            f"but {live.version or live.commit[:10]} is live in {env} "
                            f"({_live_line(live)}): the experiment would not compare against "
                            f"what users get now. Pick {live_ref or 'the live version'} as the "
                            "control unless this is what you mean."
                        ),
                        icon=":material/warning:",
                    )
                with st.expander(f"Content of variant {i + 1}", expanded=False):
                    st.caption(f"{md(t.version or 'branch ' + ref)} · commit {t.commit[:10]}")
                    st.code(t.content, language=None, wrap_lines=True)
        slots["same"] = st.container()
        names = [s.get(f"{F}vname_{i}") or f"variant {i + 1}" for i in range(int(n))]
        s1, s2 = st.columns([4, 1], vertical_alignment="center")
        s1.markdown(
            "Split: "
            + " · ".join(
                f"{md(nm)} **{sh} %**" if sh >= 1 else f"{md(nm)} **nothing left**"
                for nm, sh in zip(names, shares)
            )
        )
        s2.button(
            "Equal split",
            key="exp_equal",
            help="Give every variant the same share",
            on_click=_equal_split,
        )
        if shares[-1] < 1:
            st.error(
                f"The other variants take {100 - shares[-1]} %, leaving nothing for the last "
                "variant: lower a share (or press Equal split)."
            )

        st.markdown("**Metrics**")
        known = cached(svc.known_metrics)
        metric_names = list(known)
        if s.get(F + "primary") not in metric_names:
            s[F + "primary"] = "quality_score" if "quality_score" in known else metric_names[0]
        for k in ("secondary", "guard"):
            s[F + k] = [m for m in s.get(F + k, []) if m in metric_names]
        m1, m2, m3 = st.columns(3)
        primary = m1.selectbox(
            "Primary metric", metric_names, key=F + "primary", help="Decides the winner"
        )
        slots["metrics"] = m1.container()
        m2.multiselect(
            "Secondary metrics",
            [m for m in metric_names if m != primary],
            key=F + "secondary",
            help="Reported alongside the primary one",
        )
        slots["secondary"] = m2.container()
        m3.multiselect(
            "Guardrails",
            [m for m in metric_names if m != primary],
            key=F + "guard",
            help="Metrics that must not get worse (e.g. latency must not rise)",
        )
        slots["guardrails"] = m3.container()
        chosen = [primary, *s.get(F + "secondary", []), *s.get(F + "guard", [])]
        custom = [m for m in dict.fromkeys(chosen) if known.get(m) is None]
        if custom:
            dcols = st.columns(max(1, len(custom)))
            for col, m in zip(dcols, custom):
                if s.get(f"{F}dir_{m}") not in ("higher", "lower"):
                    s[f"{F}dir_{m}"] = "higher"
                col.segmented_control(
                    f"{md(m)}: better when",
                    ["higher", "lower"],
                    key=f"{F}dir_{m}",
                    help="Whether a higher or a lower value of this custom metric is better",
                )
        st.caption(
            "Directions: "
            + ", ".join(
                f"{md(m)} {known[m] or s.get(f'{F}dir_{m}', 'higher')} is better"
                for m in dict.fromkeys(chosen)
            )
        )

        st.markdown("**Statistics and traffic**")
        a1, a2, a3 = st.columns(3)
        stats = ws.settings.ab_testing.statistical_analysis
        s.setdefault(F + "alpha", float(stats.significance_level))
        s.setdefault(F + "sample", max(2, int(stats.minimum_sample_size)))
        s.setdefault(F + "cov", 100)
        s.setdefault(F + "cuped", 0)
        # no min_value / max_value: the widget would silently put back the previous value;
        # what is typed goes to the service, whose range error shows under the field
        a1.number_input(
            "Significance level α",
            step=0.01,
            format="%.3f",
            key=F + "alpha",
            help="The false-positive rate of each comparison, greater than 0 and at most 0.5; "
            "Holm's method adjusts across several",
        )
        slots["alpha"] = a1.container()
        a2.number_input(
            "Minimum sample (users per variant)",
            step=50,
            key=F + "sample",
            help="No winner is named before every variant has this many users (2 to 1,000,000,000)",
        )
        slots["minimum_sample_size"] = a2.container()
        a3.slider(
            "Coverage (% of users in the experiment)",
            1,
            100,
            key=F + "cov",
            help="The rest get the deployed version; raising it later never moves users "
            "between variants",
        )
        slots["coverage"] = a3.container()
        st.text_input(
            "Salt",
            key=F + "salt",
            max_chars=200,
            placeholder="default: the experiment id",
            help="Routing hashes md5(salt:user_id); a different salt reshuffles users",
        )
        slots["salt"] = st.container()
        b1, b2, b3 = st.columns(3)
        b1.selectbox(
            "Decision engine",
            ["frequentist", "bayesian"],
            key=F + "engine",
            help="frequentist: a treatment wins when its Holm-adjusted p-value is below α; "
            "bayesian: when its chance to win reaches 95 %",
        )
        slots["engine"] = b1.container()
        b2.selectbox(
            "Allocation",
            ["fixed", "bandit"],
            key=F + "allocation",
            help="bandit: Thompson sampling moves new users to the best variant, at most "
            "hourly (users keep their variant)",
        )
        slots["allocation"] = b2.container()
        b3.number_input(
            "CUPED lookback (days, 0 = off)",
            step=7,
            key=F + "cuped",
            help="Variance reduction with each user's mean of the metric over this many days "
            "before the start (1 to 365)",
        )
        slots["cuped"] = slots["cuped.lookback_days"] = b3.container()
        for g in s.get(F + "guard", []):
            s.setdefault(f"{F}margin_{g}", 0.0)
            st.number_input(
                f"Non-inferiority margin of guardrail {g} (%, 0 = none)",
                step=1.0,
                key=f"{F}margin_{g}",
                help="The guardrail passes when its one-sided bound stays within this many "
                "percent worse than the control",
            )
        d1, d2 = st.columns(2)
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(
            minute=0, second=0, microsecond=0, tzinfo=None
        )
        if d1.toggle(
            "Scheduled start",
            key=F + "has_start",
            help="Routing begins at this time (UTC) even if started earlier",
        ):
            s.setdefault(F + "start", tomorrow)
            d1.datetime_input(
                "Start (UTC)",
                key=F + "start",
                format="YYYY-MM-DD",
                help="Routing and the analysis window begin here (UTC)",
            )
        slots["start"] = d1.container()
        if d2.toggle(
            "Planned end",
            key=F + "has_end",
            help="Routing stops at this time (UTC); stopping earlier needs a reason",
        ):
            s.setdefault(F + "end", tomorrow + timedelta(days=14))
            d2.datetime_input(
                "End (UTC)",
                key=F + "end",
                format="YYYY-MM-DD",
                help="Routing stops here (UTC); stopping earlier needs a reason",
            )
        slots["end"] = d2.container()

        spec = form_spec()
        with st.expander("As an experiment file (YAML)"):
            st.caption("The same fields `promptver experiment create --file` reads.")
            st.code(dump_spec(spec), language="yaml")
        with st.expander("Routing preview of this configuration"):
            try:
                preview_router = Router.build(
                    spec.get("salt") or "preview",
                    [
                        (v["name"] or f"variant {i + 1}", v["weight"])
                        for i, v in enumerate(spec["variants"])
                    ],
                    spec["coverage"],
                )
            except PromptverError as exc:
                st.warning(f"Cannot preview yet: {md(exc.message)}")
            else:
                if not spec.get("salt"):
                    st.caption(
                        "Without a salt the experiment id is used once saved; this preview "
                        "uses the salt 'preview', so individual users may land elsewhere."
                    )
                routing_preview(preview_router, "exp_f_route")

        # every problem of the configuration, checked as the form changes, under its field
        problems = [
            p
            for p in svc.check(
                {k: v for k, v in spec.items() if k != "allow_same_commit"},
                existing=target.id if target else None,
            )
            # no name yet: the disabled button says so; a missing rest: the split error does
            if not (p.field == "name" and p.code == "required")
            and not (shares[-1] < 1 and p.field == f"variants[{int(n) - 1}].weight")
        ]
        same = [p for p in problems if p.code == "same_commit"]
        blocking = [p for p in problems if p.code != "same_commit" or not s.get(F + "same_ok")]
        for field, messages in group_problems(
            [p for p in problems if p.code != "same_commit"]
        ).items():
            show_problems(slots.get(field) or slots["salt"], messages)
        for field, messages in group_problems(same).items():
            show_problems(slots.get(field) or slots["same"], messages, warning=True)
        if same or s.get(F + "same_ok"):
            slots["same"].checkbox(
                "Compare the same commit on purpose (an A/A test)",
                key=F + "same_ok",
                help="Saves allow_same_commit: true; without it, two variants on the same "
                "commit are refused",
            )
        err = s.pop(F + "error", None)
        b1, b2 = st.columns([1, 4], vertical_alignment="center")
        b1.button(
            "Save draft" if target else "Create draft",
            type="primary",
            key="exp_save",
            on_click=_save,
            help="Save the configuration as a draft; nothing is routed until you start it",
            disabled=not spec.get("name") or shares[-1] < 1 or bool(blocking),
        )
        if not spec.get("name"):
            b2.caption("Name the experiment to save it.")
        elif blocking:
            b2.caption(
                f":red[:material/error: {len(blocking)} "
                f"problem{'s' if len(blocking) > 1 else ''} to fix, marked above.]"
            )
        if err is not None and not getattr(err, "problems", None):
            show_error(err)
        elif err is not None:
            b2.error(
                "Not saved: " + "  \n".join(md(form_message(p)) for p in err.problems),
                icon=":material/error:",
            )

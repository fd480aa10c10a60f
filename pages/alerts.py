"""Alerts: fired alerts (acknowledge them, open their trend) and the rules that fire them
(create, edit, switch on and off, delete).

Deep links: ``?alert=ID`` selects a fired alert (showing acknowledged ones too when it is one),
``?tab=rules`` opens the rules."""

from __future__ import annotations

import streamlit as st

from promptver.alerts import COMPARATORS, condition_text, trend_params
from promptver.errors import PromptverError
from promptver.models import Alert, AlertRule
from promptver.trends import METRICS, metric_label
from ui.alerts import (
    ALERT_COLUMNS,
    GROUP_COLUMNS,
    RULE_COLUMNS,
    alerts_frame,
    group_sentence,
    groups_frame,
    rule_text,
    rules_frame,
    threshold_text,
)
from ui.common import author, cached, domain_errors, flash, md, take_param, workspace

ws = workspace()
svc = ws.alerts
envs = ws.settings.deployment.environments

st.title("Alerts")
st.caption(
    "A rule watches a metric of a template (or of every template, each on its own) over "
    "fixed windows of time: 1h windows start on the hour, 24h windows at midnight UTC, 7d "
    "windows on Mondays. Rules run after every CSV import and tracking flush, and on **Check "
    "now**; a window fires at most once per rule and template."
)

rules: list[AlertRule] = svc.rules()
open_alerts: list[Alert] = svc.alerts(status="open", limit=10_000)

m1, m2, m3 = st.columns([1, 1, 2], vertical_alignment="bottom")
m1.metric("Open alerts", len(open_alerts))
m2.metric("Rules on", f"{sum(r.enabled for r in rules)} of {len(rules)}")
if m3.button(
    "Check now",
    key="alr_check",
    icon=":material/play_arrow:",
    help="Evaluate every enabled rule on its current and previous window",
    disabled=not any(r.enabled for r in rules),
):
    with domain_errors(), st.spinner("Checking every enabled rule…"):
        result = svc.check()
        flash(
            f"Checked {result.rules} rule(s): {len(result.fired)} new alert(s)"
            + (f", {result.already_fired} had fired before" if result.already_fired else "")
        )
        st.rerun()

opened_tab = "Rules" if take_param("tab") == "rules" else None
linked: Alert | None = None
if (wanted_alert := take_param("alert")) is not None:  # deep link: ?alert=ID
    try:
        linked = svc.get_alert(int(wanted_alert)) if wanted_alert.isdigit() else None
    except PromptverError:  # unknown, or not a valid id
        linked = None
    if linked is None:
        st.warning(f"Alert {md(wanted_alert)} does not exist (any more); the list shows the rest.")
    else:
        opened_tab = "Fired alerts"
        st.session_state["alr_status"] = "open" if linked.status == "open" else "all"
        st.session_state["alr_group"] = (linked.rule_id, linked.template_id)

tab_fired, tab_rules = st.tabs(["Fired alerts", "Rules"], key="alr_tab", default=opened_tab)

# ---- fired alerts, grouped per rule and template ----------------------------------------------


def _ack(ids: list[int], what: str) -> None:
    with domain_errors():
        done = svc.acknowledge(ids, author=author())
        flash(f"Acknowledged {len(done)} alert(s) {what}")
        st.rerun()


with tab_fired:
    status = st.segmented_control(
        "Show",
        ["open", "acknowledged", "all"],
        default="open",
        key="alr_status",
        help="Open alerts wait for someone to acknowledge them; acknowledged ones stay for the record",
        required=True,
    )
    groups = svc.groups(status=None if status == "all" else status)
    if not groups:
        st.info(
            "No open alerts."
            if status == "open"
            else "No alerts yet: rules fire when a window crosses their threshold."
        )
    else:
        st.caption(
            f"{sum(g.count for g in groups):,} alert(s) from {len(groups)} rule and template "
            "pair(s), the latest window first. Select rows to acknowledge them together; "
            "pick one below for its windows and its deployment."
        )
        event = st.dataframe(
            groups_frame(groups),
            hide_index=True,
            width="content",
            key="alr_groups",
            column_config=GROUP_COLUMNS,
            on_select="rerun",
            selection_mode="multi-row",
        )
        picked = [groups[i] for i in event.selection.rows if i < len(groups)]
        chosen_ids = [i for g in picked for i in g.open_ids]
        every_open = [i for g in groups for i in g.open_ids]
        bar = st.container(horizontal=True, vertical_alignment="center")
        if bar.button(
            f"Acknowledge {len(chosen_ids)} selected" if chosen_ids else "Acknowledge selected",
            key="alr_ack_rows",
            type="primary",
            icon=":material/done_all:",
            disabled=not chosen_ids,
            help="Acknowledge every open alert of the selected rows",
        ):
            _ack(chosen_ids, f"in {len(picked)} row(s)")
        if bar.button(
            "Acknowledge all",
            key="alr_ack_all",
            disabled=not every_open,
            help="Acknowledge every open alert at once",
        ):
            _ack([a.id for a in open_alerts], "")

        by_key = {(g.rule_id, g.template_id): g for g in groups}
        if len(picked) == 1:  # one selected row: show it below
            key = (picked[0].rule_id, picked[0].template_id)
            if st.session_state.get("alr_group_seen") != key:
                st.session_state["alr_group"] = key
                st.session_state["alr_group_seen"] = key
        if st.session_state.get("alr_group") not in by_key:
            st.session_state.pop("alr_group", None)
        choice = st.selectbox(
            "Rule and template",
            list(by_key),
            format_func=lambda k: (
                f"{by_key[k].template} · {rule_text(by_key[k].latest)} · "
                f"{by_key[k].count} window(s), latest "
                f"{by_key[k].latest.window_start:%Y-%m-%d %H:%M}"
            ),
            key="alr_group",
            help="One rule on one template: its windows, its trend and its deployment",
        )
        g = by_key[choice]
        a = g.latest
        st.markdown(
            f"**{md(g.template)}** · {md(metric_label(a.metric))} "
            f"{md(condition_text(a.metric, a.value, a.comparator, a.threshold))} over the "
            f"{md(a.window)} window from {a.window_start:%Y-%m-%d %H:%M} UTC "
            f"({a.events:,} events) · {g.count} window(s) since {g.first_window:%Y-%m-%d}"
            + (f", {g.backfill} of them backfill" if g.backfill else "")
        )
        st.caption(md(group_sentence(g)))
        links = st.container(horizontal=True, vertical_alignment="center")
        links.page_link(
            "pages/trends.py",
            label=f"Open the {metric_label(a.metric)} trend of {a.template}",
            icon=":material/show_chart:",
            query_params=trend_params(a),
        )
        if g.environment is not None and g.live_now is not None:
            still = g.deployed is not None and g.live_now.deployment_id == g.deployed.deployment_id
            links.page_link(
                "pages/deployments.py",
                label=(
                    f"Roll back {g.template} in {g.environment}…"
                    if still
                    else f"{g.template} in {g.environment}: deployments"
                ),
                icon=":material/undo:" if still else ":material/rocket_launch:",
                query_params={"template": g.template, "env": g.environment},
                help="The Deployments screen: the history of this environment and Roll back…",
            )
        if g.open_ids and links.button(
            f"Acknowledge its {len(g.open_ids)} open alert(s)",
            key="alr_ack_group",
            icon=":material/done:",
        ):
            _ack(g.open_ids, f"of {g.template} · {rule_text(a)}")
        members = {
            x.id: x for x in svc.alerts(rule_id=g.rule_id, template=g.template_id, limit=10_000)
        }
        st.dataframe(
            alerts_frame([members[i] for i in g.alert_ids if i in members]),
            hide_index=True,
            width="content",
            key="alr_alerts",
            column_config=ALERT_COLUMNS,
        )
        if linked is not None and linked.acknowledged_at is not None:
            st.caption(
                f"Alert #{linked.id} was acknowledged by {md(linked.acknowledged_by)} on "
                f"{linked.acknowledged_at:%Y-%m-%d %H:%M} UTC."
            )


# ---- rules ----------------------------------------------------------------------------------


def _open(kind: str, rule_id: int | None = None) -> None:
    st.session_state["alr_dialog"] = (kind, rule_id)


def _close() -> None:
    st.session_state.pop("alr_dialog", None)


custom = cached(ws.trends.custom_metrics)
METRIC_KEYS = [*METRICS, *(f"custom:{c}" for c in custom)]
TEMPLATES = ["*", *(t.name for t in ws.templates.list())]


def _rule_form(rule: AlertRule | None) -> None:
    """The create / edit form (inside the dialog)."""
    k = f"alr_form_{rule.id if rule else 'new'}"  # per rule: values never leak between forms
    metric_keys = list(METRIC_KEYS)
    if rule is not None and rule.metric not in metric_keys:
        metric_keys.append(rule.metric)
    templates = list(TEMPLATES)
    if rule is not None and rule.template and rule.template not in templates:
        templates.append(rule.template)
    name = st.text_input(
        "Name",
        value=rule.name if rule else "",
        key=f"{k}_name",
        max_chars=100,
        help="Optional: shown in the alert list instead of the condition",
    )
    c1, c2, c3 = st.columns([3, 1, 2])
    metric = c1.selectbox(
        "Metric",
        metric_keys,
        index=metric_keys.index(rule.metric) if rule else 1,
        format_func=lambda m: metric_label(m) + ("" if m in METRICS else " (custom)"),
        key=f"{k}_metric",
        help="What the rule watches in each window: rates are fractions, latency in ms, cost in $",
    )
    comparator = c2.selectbox(
        "Fires when",
        list(COMPARATORS),
        index=COMPARATORS.index(rule.comparator) if rule else 0,
        key=f"{k}_cmp",
        help="The comparison that fires the rule: > fires when the value is above the threshold",
    )
    threshold = c3.number_input(
        "Threshold",
        value=float(rule.threshold) if rule else 1500.0,
        format="%.6g",
        key=f"{k}_threshold",
        help="Rates are fractions: 5 % is 0.05. Latency in ms, cost in $.",
    )
    c4, c5 = st.columns(2)
    window = c4.text_input(
        "Window",
        value=rule.window if rule else "24h",
        key=f"{k}_window",
        help="A whole number and a unit: 15m, 1h, 24h, 7d. Windows are aligned (1h on the "
        "hour, 24h at midnight UTC, 7d on Mondays).",
    )
    min_events = c5.number_input(
        "Minimum events",
        min_value=1,
        value=int(rule.min_events) if rule else 20,
        step=1,
        key=f"{k}_min",
        help="A window with fewer events carrying the metric never fires",
    )
    c6, c7 = st.columns(2)
    template = c6.selectbox(
        "Template",
        templates,
        index=templates.index(rule.template) if rule and rule.template else 0,
        format_func=lambda t: "* (every template, each on its own)" if t == "*" else t,
        key=f"{k}_template",
        help="One template, or * for every template, each checked on its own",
    )
    env_options = ["*", *envs]
    environment = c7.selectbox(
        "Environment",
        env_options,
        index=env_options.index(rule.environment) if rule and rule.environment else 0,
        format_func=lambda e: "any" if e == "*" else e,
        key=f"{k}_env",
        help="Only the events of one environment, or any: all environments together",
    )
    enabled = st.toggle(
        "Enabled",
        value=rule.enabled if rule else True,
        key=f"{k}_enabled",
        help="A disabled rule never fires; the alerts it fired stay",
    )
    st.caption(
        f"Fires when the {md(metric_label(metric))} over a {md(window)} window is "
        f"{md(comparator)} {md(threshold_text(metric, threshold))} with at least "
        f"{int(min_events)} events."
    )
    a, b = st.columns(2)
    if a.button("Save", type="primary", key=f"{k}_save"):
        fields = {
            "metric": metric,
            "comparator": comparator,
            "threshold": threshold,
            "window": window,
            "min_events": int(min_events),
            "template": template,
            "environment": environment,
            "name": name,
            "enabled": enabled,
        }
        with domain_errors():
            if rule is None:
                saved = svc.add(author=author(), **fields)
                flash(f"Created rule #{saved.id}: {saved.describe()}")
            else:
                saved = svc.update(rule.id, author=author(), **fields)
                flash(f"Saved rule #{saved.id}: {saved.describe()}")
            _close()
            st.rerun()
    if b.button("Cancel", key=f"{k}_cancel"):
        _close()
        st.rerun()


def _delete_form(rule: AlertRule) -> None:
    fired = len(svc.alerts(rule_id=rule.id, limit=100_000))
    named = f" “{md(rule.name)}”" if rule.name else ""
    st.markdown(f"Delete rule **#{rule.id}**{named} ({md(rule.describe())})?")
    st.caption(
        f"The {fired} alert(s) it fired stay in the list, with the condition they fired under."
    )
    a, b = st.columns(2)
    if a.button("Delete", type="primary", key="alr_del_yes", icon=":material/delete:"):
        with domain_errors():
            svc.delete(rule.id)
            _close()
            st.session_state.pop("alr_rule", None)
            flash(f"Deleted rule #{rule.id}")
            st.rerun()
    if b.button("Cancel", key="alr_del_no"):
        _close()
        st.rerun()


with tab_rules:
    st.button(
        "New rule",
        key="alr_new",
        icon=":material/add_alert:",
        on_click=_open,
        args=("new",),
        type="primary",
    )
    if not rules:
        st.info("No rules yet: create one with **New rule**.")
    else:
        counts: dict[int, int] = {}
        for a in open_alerts:
            counts[a.rule_id] = counts.get(a.rule_id, 0) + 1
        st.dataframe(
            rules_frame(rules, counts),
            hide_index=True,
            width="stretch",
            key="alr_rules",
            column_config=RULE_COLUMNS,
        )
        rules_by_id = {r.id: r for r in rules}
        c1, c2, c3, c4 = st.columns([4, 1, 1, 1], vertical_alignment="bottom")
        chosen = c1.selectbox(
            "Rule",
            list(rules_by_id),
            format_func=lambda i: f"#{i} {rules_by_id[i].name or rules_by_id[i].describe()}",
            key="alr_rule",
            help="The rule the buttons on the right act on",
        )
        rule = rules_by_id[chosen]
        c2.button(
            "Edit",
            key="alr_edit",
            help="Change the rule; alerts it fired keep the condition they fired under",
            icon=":material/edit:",
            on_click=_open,
            args=("edit", rule.id),
        )
        if rule.enabled:
            if c3.button(
                "Disable",
                key="alr_disable",
                help="Stop evaluating the rule (its alerts stay)",
                icon=":material/notifications_off:",
            ):
                with domain_errors():
                    svc.disable(rule.id, author=author())
                    flash(f"Rule #{rule.id} is off")
                    st.rerun()
        elif c3.button(
            "Enable",
            key="alr_enable",
            help="Evaluate the rule again from its current window",
            icon=":material/notifications:",
        ):
            with domain_errors():
                svc.enable(rule.id, author=author())
                flash(f"Rule #{rule.id} is on")
                st.rerun()
        c4.button(
            "Delete…",
            key="alr_delete",
            icon=":material/delete:",
            on_click=_open,
            args=("delete", rule.id),
        )

pending = st.session_state.get("alr_dialog")
if pending:
    kind, rule_id = pending
    target = next((r for r in rules if r.id == rule_id), None)
    if kind != "new" and target is None:
        _close()  # the rule went away under an open dialog
    else:
        titles = {
            "new": "New alert rule",
            "edit": f"Edit rule #{rule_id}",
            "delete": "Delete rule?",
        }

        @st.dialog(titles[kind], width="large", on_dismiss=_close)
        def _dialog() -> None:
            if kind == "delete":
                _delete_form(target)  # type: ignore[arg-type]
            else:
                _rule_form(target)

        _dialog()

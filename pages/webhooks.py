"""Settings → Webhooks: subscribe URLs to events, send a test, read the delivery log and
send a delivery again."""

from __future__ import annotations

import streamlit as st

from promptver.outbox import EVENT_TYPES
from promptver.webhooks import WebhookService
from ui.common import author, code, domain_errors, flash, md, table, workspace
from ui.webhooks import attempts_frame, deliveries_frame, hooks_frame

ws = workspace()
svc = WebhookService.for_workspace(ws)

st.title("Settings → Webhooks")
st.caption(
    "promptver POSTs a signed JSON message (Standard Webhooks headers) to each subscribed URL "
    "when something happens: a commit, a deployment, an experiment starting or stopping, an "
    "alert, an imported evaluation. Messages are stored with the change itself and retried "
    "for more than a day until the receiver answers 2xx. See docs/webhooks.md."
)

new = st.session_state.pop("whk_new_secret", None)
if new is not None:
    st.success(f"Added webhook {code(new[0])}. Its signing secret is shown **once**: copy it now.")
    with st.container(key="whk_secret"):
        st.code(new[1], language=None)

with (
    st.expander("Add a webhook", expanded=not svc.list()),
    st.form("whk_add", clear_on_submit=False),
):
    url = st.text_input("URL", placeholder="https://example.com/hooks/promptver", key="whk_url")
    events = st.multiselect(
        "Events",
        ["*", *EVENT_TYPES],
        default=["*"],
        help="* subscribes to every event",
        key="whk_events",
    )
    fmt = st.radio(
        "Format",
        ["json", "slack"],
        horizontal=True,
        key="whk_format",
        help="slack: one readable line with a link to the screen (a Slack incoming webhook)",
    )
    description = st.text_input("Description (optional)", key="whk_desc")
    if st.form_submit_button("Add webhook", type="primary", key="whk_add_btn"):
        with domain_errors():
            hook, secret = svc.add(
                url, events, format=fmt, description=description, author=author()
            )
            st.session_state["whk_new_secret"] = (hook["id"], secret)
            st.rerun()

hooks = svc.list()
st.subheader("Subscriptions")
if not hooks:
    st.info("No webhooks yet.")
else:
    table(hooks_frame(hooks), key="whk_hooks")
    labels = {h["id"]: f"{h['id']} → {h['url']}" for h in hooks}
    chosen = st.selectbox("Webhook", list(labels), format_func=lambda i: labels[i], key="whk_pick")
    c1, c2, _ = st.columns([1, 1, 4])
    if c1.button("Send test", key="whk_test", icon=":material/send:"):
        with domain_errors():
            m = svc.send_test(chosen)
            last = m["attempt_log"][-1] if m["attempt_log"] else None
            if last and last["ok"]:
                st.success(f"Test message delivered (HTTP {last['status_code']}).")
            else:
                why = (last or {}).get("status_code") or (last or {}).get("error") or "no answer"
                st.error(f"Test message not delivered: {md(why)}")
    if c2.button("Remove", key="whk_remove", icon=":material/delete:"):
        with domain_errors():
            svc.remove(chosen)
            flash(f"Removed webhook {chosen}; its pending deliveries were cancelled.")
            st.rerun()

st.subheader("Delivery log")
items = svc.deliveries(limit=200)
if not items:
    st.caption("Nothing sent yet.")
else:
    table(deliveries_frame(items), key="whk_log")
    by_id = {m["id"]: m for m in items}
    pick = st.selectbox(
        "Delivery",
        list(by_id),
        format_func=lambda i: f"{i} · {by_id[i]['type']} · {by_id[i]['status']}",
        key="whk_msg",
    )
    m = by_id[pick]
    table(attempts_frame(m), key="whk_attempts")
    if st.button("Retry now", key="whk_retry", icon=":material/replay:"):
        with domain_errors():
            svc.redeliver(pick)
            s = svc.deliver_now(pick)
            flash(
                f"Delivered {pick} again."
                if s["delivered"]
                else f"{pick} was not delivered; see its attempts."
            )
            st.rerun()

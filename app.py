"""promptver dashboard: ``streamlit run app.py``."""

from pathlib import Path

import streamlit as st

from ui.common import require_login, show_flash, sidebar, storage_errors, workspace

# the favicon is a file served by the app itself: a Material icon there (or a page's icon, which
# Streamlit uses when none is set) is fetched from fonts.gstatic.com, and the app calls no other
# host (tests/browser/test_xss_browser.py); emoji render as boxes in a stock Chromium
st.set_page_config(
    page_title="promptver",
    page_icon=str(Path(__file__).parent / "ui" / "favicon.png"),
    layout="wide",
)
require_login()  # only with an [auth] section in .streamlit/secrets.toml

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/templates.py", title="Templates", icon=":material/description:"),
    st.Page("pages/history.py", title="History & Diff", icon=":material/account_tree:"),
    st.Page("pages/deployments.py", title="Deployments", icon=":material/rocket_launch:"),
    st.Page("pages/experiments.py", title="Experiments", icon=":material/science:"),
    st.Page("pages/metrics.py", title="Metrics", icon=":material/monitoring:"),
    st.Page("pages/evaluations.py", title="Evaluations", icon=":material/fact_check:"),
    st.Page("pages/trends.py", title="Trends", icon=":material/show_chart:"),
    st.Page("pages/alerts.py", title="Alerts", icon=":material/notifications:"),
    st.Page("pages/webhooks.py", title="Settings → Webhooks", icon=":material/webhook:"),
]

page = st.navigation(PAGES)
with storage_errors():
    ws = workspace()
    sidebar(ws)
    with ws.session():
        show_flash()
        page.run()

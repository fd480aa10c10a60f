"""promptver dashboard: ``streamlit run app.py``."""

import streamlit as st

from ui.common import require_login, show_flash, sidebar, storage_errors, workspace

# no page_icon: a Material icon there is fetched from fonts.gstatic.com (the app must not call
# other hosts; tests/browser/test_xss_browser.py), and emoji render as boxes in a stock Chromium
st.set_page_config(page_title="promptver", layout="wide")
require_login()  # only with an [auth] section in .streamlit/secrets.toml

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/templates.py", title="Templates", icon=":material/description:"),
    st.Page("pages/history.py", title="History & Diff", icon=":material/account_tree:"),
    st.Page("pages/deployments.py", title="Deployments", icon=":material/rocket_launch:"),
    st.Page("pages/experiments.py", title="Experiments", icon=":material/science:"),
    st.Page("pages/metrics.py", title="Metrics", icon=":material/monitoring:"),
    st.Page("pages/trends.py", title="Trends", icon=":material/show_chart:"),
    st.Page("pages/alerts.py", title="Alerts", icon=":material/notifications:"),
]

page = st.navigation(PAGES)
with storage_errors():
    ws = workspace()
    sidebar(ws)
    with ws.session():
        show_flash()
        page.run()

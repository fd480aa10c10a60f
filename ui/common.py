"""What every screen needs: the cached workspace, the sidebar, and error display.

One ``Workspace`` per database file is cached with ``st.cache_resource``; it holds no open
connection, so the CLI and applications can use the same file while the dashboard runs. Each
script run keeps the file open only for its own duration (``app.py`` wraps the page in
``ws.session()``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import streamlit as st

from promptver import PromptverError, Settings, Workspace
from promptver.config import default_author
from ui.alerts import sidebar_badge


@st.cache_resource(show_spinner=False)
def _workspace(path: str) -> Workspace:
    from promptver.demo import build_demo

    ws = Workspace.open(path)
    if ws.is_new:
        build_demo(ws)
    return ws


def settings() -> Settings:
    return Settings.load()


def _leave_pages_folder_mode() -> None:
    """Make a deep link opened first on a fresh server go through ``app.py``.

    Streamlit treats an app with a ``pages/`` folder as an old-style multipage app until
    ``app.py`` calls ``st.navigation``. On a fresh server, a first visit to ``/history?…`` would
    therefore run the page alone (no shared sidebar, file names as navigation). Switch that mode
    off and rerun: the rerun executes ``app.py``, whose ``st.navigation`` picks the same page.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - a future Streamlit without the old mode
        return
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def workspace() -> Workspace:
    """The workspace of the configured database (created with the demo content when new)."""
    _leave_pages_folder_mode()
    return _workspace(settings().storage.path)


def author() -> str:
    """The logged-in user when the app runs behind authentication, else the local user."""
    try:
        user = st.user
        if getattr(user, "is_logged_in", False):
            return str(user.get("email") or user.get("name") or default_author())
    except (AttributeError, KeyError):
        pass
    return default_author()


def sidebar(ws: Workspace) -> None:
    with st.sidebar:
        st.caption(f"Database: `{ws.path}`")
    sidebar_badge(ws)


def problems_frame(problems: list[Any]) -> pd.DataFrame:
    rows = []
    for p in problems:
        rows.append(
            {
                "severity": getattr(p, "severity", "error"),
                "where": p.location() if hasattr(p, "location") else "",
                "message": getattr(p, "message", str(p)),
            }
        )
    return pd.DataFrame(rows, columns=["severity", "where", "message"])


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md(text: object, *, keep_lines: bool = False) -> str:
    """Escape text for Streamlit Markdown (st.markdown, st.error, captions …).

    User-written text (names, messages, template text quoted in errors) must never become
    links, images, colour directives, LaTeX or emphasis. Line breaks become spaces, or hard
    line breaks with ``keep_lines``.
    """
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", "  \n" if keep_lines else " ")


def show_error(exc: PromptverError) -> None:
    """A domain error as an error box, with its problems as a table when it has several."""
    problems = getattr(exc, "problems", None) or []
    if len(problems) > 1:
        st.error(md(exc.message.split(":")[0] + f": {len(problems)} problems"))
        st.dataframe(problems_frame(problems), hide_index=True, width="stretch")
    else:
        st.error(md(exc.message))


@contextmanager
def domain_errors() -> Iterator[None]:
    """Show promptver's own errors in the page; anything else propagates (it is a bug)."""
    try:
        yield
    except PromptverError as exc:
        show_error(exc)


def flash(message: str, icon: str = "✅") -> None:
    """A message shown once after the next rerun (e.g. "saved 1.2.0")."""
    st.session_state["_flash"] = (message, icon)


def show_flash() -> None:
    item = st.session_state.pop("_flash", None)
    if item:
        st.success(md(item[0]), icon=item[1])

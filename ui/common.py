"""What every screen needs: the cached workspace, the sidebar, and error display.

One ``Workspace`` per database file is cached with ``st.cache_resource``; it holds no open
connection, so the CLI and applications can use the same file while the dashboard runs. Each
script run keeps the file open only for its own duration (``app.py`` wraps the page in
``ws.session()``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from promptver import PromptverError, Settings, Workspace
from promptver.config import default_author
from promptver.errors import DatabaseBusy, DatabaseError, SourceError
from ui.alerts import sidebar_badge

T = TypeVar("T")


@st.cache_resource(show_spinner="Opening the database (a new one is filled with the demo)…")
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


def cached(fn: Callable[..., T], *args: Any, ttl: float | None = None, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, answered from a cache until the database changes.

    For the heavy reads of the screens (``cached(ws.overview.build)``). The key is the
    database file, its :meth:`~promptver.store.db.Database.data_version` (which changes on every
    write by this process and on writes by other processes, as the file or its write-ahead log
    changes), the function's qualified name and the arguments, so a write is visible on the
    next run, and a run without writes costs one ``stat`` of the file. Reads that depend on the
    clock too (a window such as "the last 7 days") pass ``ttl`` (seconds): the answer is then
    also recomputed when that much time has passed. ``fn`` is a method of the workspace's
    services (or a function of its arguments); what it returns is copied out of the cache, so
    callers may change it. Errors are not cached.
    """
    ws = workspace()
    if not ttl and ws.source.external:
        ttl = 60.0  # the file's version says nothing of events written to an external source
    now = int(time.time() // ttl) if ttl else None
    name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"
    return _cached_call(
        fn, str(ws.path), ws.db.data_version(), name, args, tuple(sorted(kwargs.items())), now
    )


@st.cache_data(show_spinner=False, max_entries=512)
def _cached_call(
    _fn: Callable[..., T],
    db: str,
    version: tuple,
    name: str,
    args: tuple,
    kwargs: tuple,
    period: int | None,
) -> T:
    return _fn(*args, **dict(kwargs))


def take_param(name: str) -> str | None:
    """A one-shot query parameter (``?tab=results``): returned once, then removed from the
    address, so that it opens the screen the way a link asked but never overrides what the
    reader picks afterwards (nor comes back on a reload)."""
    value = st.query_params.get(name)
    if value is not None:
        del st.query_params[name]
    return value


#: session keys shared by every screen (set only through the helpers below)
AUTHOR_KEY = "common_author"
TEMPLATE_KEY = "common_template"


def author() -> str:
    """Who is working: the logged-in user (e-mail, else name, else subject) when the app runs
    behind Streamlit's login; else the name the analyst gave in the sidebar (kept for the
    browser session); else the local user (``$PROMPTVER_AUTHOR`` or the login name).

    Every write a page makes passes this as its ``author``.
    """
    user = st.user
    if user.get("is_logged_in"):
        for claim in ("email", "name", "preferred_username", "sub"):
            value = user.get(claim)
            if value:
                return str(value)
    return st.session_state.get(AUTHOR_KEY) or default_author()


def _remember_author() -> None:
    # printable text only (a name is shown in every history); 100 characters at most
    typed = str(st.session_state.get("common_author_input") or "")
    st.session_state[AUTHOR_KEY] = "".join(ch for ch in typed if ch.isprintable()).strip()[:100]


def author_box() -> None:
    """The sidebar field where the analyst says who they are (no login configured): what they
    save, deploy, roll back, start or import is recorded under that name. It lasts as long as
    the browser tab's session; empty means the local user."""
    if login_required():
        return  # the login says who it is
    if "common_author_input" not in st.session_state:  # widget state ends with its last run
        st.session_state["common_author_input"] = st.session_state.get(AUTHOR_KEY, "")
    st.text_input(
        "Your name",
        key="common_author_input",
        max_chars=100,
        placeholder=default_author(),
        on_change=_remember_author,
        help="Recorded as the author of what you save, deploy, roll back, start or import "
        f"from this browser tab. Empty: {default_author()}.",
    )


def pick_template(
    names: list[str], key: str, *, label: str = "Template", help: str | None = None
) -> str:
    """The template picker of a screen about one template.

    It opens at ``?template=NAME``, else at the template picked last on any screen (so going
    from Templates to History & Diff keeps it), else at the first; the pick is remembered for
    the other screens. The caller keeps ``?template=`` in step with the answer.
    """
    wanted = st.query_params.get("template")
    if wanted not in names:
        wanted = st.session_state.get(TEMPLATE_KEY)
    if key in st.session_state and st.session_state[key] not in names:
        del st.session_state[key]  # e.g. archived or renamed since it was picked
    name = st.selectbox(
        label,
        names,
        index=names.index(wanted) if wanted in names else 0,
        key=key,
        help=help,
    )
    st.session_state[TEMPLATE_KEY] = name
    return name


def login_required() -> bool:
    """Authentication mode: on when ``.streamlit/secrets.toml`` has an ``[auth]`` section
    (Streamlit's OIDC login; see docs/deployment-and-access.md)."""
    try:
        return "auth" in st.secrets
    except StreamlitSecretNotFoundError:  # no secrets file: a local, single-user dashboard
        return False


def _providers() -> list[str]:
    """Named providers of the ``[auth]`` section (``[auth.google]`` …); empty for one default."""
    section = st.secrets["auth"]
    return [k for k, v in section.items() if isinstance(v, Mapping)]


def require_login() -> None:
    """In authentication mode, stop the run with a login screen until the user is logged in;
    once logged in, show who it is (and a log-out button) in the sidebar."""
    if not login_required():
        return
    if st.user.get("is_logged_in"):
        with st.sidebar:
            st.caption(f"Signed in as {md(author())}")
            st.button("Log out", key="auth_logout", on_click=st.logout)
        return
    st.title("promptver")
    st.info(
        "Sign in to see and change prompts, deployments and experiments.",
        icon=":material/lock:",
    )
    providers = _providers()
    if not providers:
        st.button("Log in", key="auth_login", type="primary", on_click=st.login)
    for name in providers:
        st.button(
            f"Log in with {md(name)}",
            key=f"auth_login_{name}",
            type="primary",
            on_click=st.login,
            args=(name,),
        )
    st.stop()


@contextmanager
def storage_errors() -> Iterator[None]:
    """A busy or damaged database file, anywhere in a run, as an error box with what to do
    (never a traceback): the CLI or an application may hold the file for a moment."""
    try:
        yield
    except (DatabaseBusy, DatabaseError) as exc:
        st.error(md(exc.message), icon=":material/lock_clock:")
        if isinstance(exc, DatabaseBusy):
            st.button("Try again", key="storage_retry", type="primary")
    except SourceError as exc:  # the configured event source (events:) cannot answer
        st.error(md(exc.message), icon=":material/cloud_off:")
        st.button("Try again", key="source_retry", type="primary")


def sidebar(ws: Workspace) -> None:
    with st.sidebar:
        author_box()
        st.caption(f"Database: `{ws.path}`")
        if ws.source.external:
            st.caption(f"Events: {md(ws.source.describe())}")
    sidebar_badge(ws, cached(ws.alerts.open_count))
    background_delivery(ws)


def background_delivery(ws: Workspace) -> None:
    """Deliver webhooks from this process (a background thread) once the workspace has a
    subscription: one thread per database, started on the first run that sees one (checked
    again only after a write, through :func:`cached`)."""
    from promptver.webhooks import BackgroundDeliverer, WebhookService

    if BackgroundDeliverer.running(ws):
        return
    if cached(WebhookService.for_workspace(ws).count):
        BackgroundDeliverer.start(ws)


def no_templates(ws: Workspace, then: str = "") -> None:
    """The empty state of a screen that needs a template: what to do next, with a link.

    ``then`` says what the screen does once there is one (e.g. "then deploy it here")."""
    archived = ws.templates.list(include_archived=True)
    if archived:
        st.info(
            f"Every template is archived ({len(archived)}). Restore one on the Templates "
            "screen" + (f", {then}" if then else "") + ".",
            icon=":material/inventory_2:",
        )
        st.page_link(
            "pages/templates.py",
            label=f"Restore {archived[0].name}",
            icon=":material/unarchive:",
            query_params={"template": archived[0].name},
        )
        return
    st.info(
        "There is no template yet: create one on the Templates screen"
        + (f", {then}" if then else "")
        + ".",
        icon=":material/lightbulb:",
    )
    st.page_link(
        "pages/templates.py",
        label="Create a template",
        icon=":material/add:",
        query_params={"tab": "new"},
    )


#: how a missing value reads in a table (instead of "None")
MISSING = "—"
_ROW_PX = 35  # Streamlit's default row (and header) height


def table_height(rows: int, limit: int = 15) -> int | str:
    """A table's height: all its rows when there are few (no empty space below, nothing
    hidden), else ``limit`` rows that scroll."""
    return "content" if rows <= limit else _ROW_PX * (limit + 1) + 3


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


#: rows a table shows before it scrolls; shorter tables are exactly as tall as their rows
TABLE_ROWS = 25
_ROW_PX = 35  # Streamlit's default row height (and header row)


def table(
    data: Any,
    *,
    key: str | None = None,
    column_config: Mapping[str, Any] | None = None,
    column_order: list[str] | None = None,
    max_rows: int = TABLE_ROWS,
    placeholder: str = "–",
    width: str | int = "stretch",
) -> Any:
    """A read-only table sized to its content, for every screen.

    As tall as its rows (no inner scroll bar above empty space) up to ``max_rows``, then a
    fixed height that scrolls; missing values read ``placeholder`` instead of "None"; no index
    column. Columns size to their content unless ``column_config`` sets a width: give long
    text columns a width and short labels so that the table fits beside the sidebar instead of
    clipping its last columns. ``data`` may be a DataFrame or a pandas ``Styler`` (cell
    colours).
    """
    rows = len(data.data if type(data).__name__ == "Styler" else data)
    height: str | int = "content" if rows <= max_rows else _ROW_PX * (max_rows + 1) + 3
    return st.dataframe(
        data,
        hide_index=True,
        width=width,
        height=height,
        column_config=column_config,
        column_order=column_order,
        key=key,
        placeholder=placeholder,
    )


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md(text: object, *, keep_lines: bool = False) -> str:
    """Escape text for Streamlit Markdown (st.markdown, st.error, captions …).

    User-written text (names, messages, template text quoted in errors) must never become
    links, images, colour directives, LaTeX or emphasis. Line breaks become spaces, or hard
    line breaks with ``keep_lines``.
    """
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", "  \n" if keep_lines else " ")


def code(text: object) -> str:
    """User text as an inline code span for Markdown: shown exactly as written.

    Backslash escapes are not processed inside code spans (``md`` would show its backslashes
    there), so the span is fenced with one backtick more than the longest run inside it.
    """
    s = str(text).replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {s} {fence}" if s.strip() else "` `"


def show_error(exc: PromptverError) -> None:
    """A domain error as an error box, with its problems as a table when it has several."""
    problems = getattr(exc, "problems", None) or []
    if len(problems) > 1:
        st.error(md(exc.message.split(":")[0] + f": {len(problems)} problems"))
        st.dataframe(
            problems_frame(problems),
            hide_index=True,
            width="stretch",
            height=table_height(len(problems)),
            placeholder=MISSING,
            column_config={
                "severity": st.column_config.TextColumn("Severity"),
                "where": st.column_config.TextColumn("Where", width="medium"),
                "message": st.column_config.TextColumn("Message", width="large"),
            },
        )
    else:
        st.error(md(exc.message))


@contextmanager
def domain_errors() -> Iterator[None]:
    """Show promptver's own errors in the page; anything else propagates (it is a bug)."""
    try:
        yield
    except PromptverError as exc:
        show_error(exc)


def flash(message: str, icon: str = ":material/check_circle:") -> None:
    """A message shown once after the next rerun (e.g. "saved 1.2.0")."""
    st.session_state["_flash"] = (message, icon)


def show_flash() -> None:
    item = st.session_state.pop("_flash", None)
    if item:
        st.success(md(item[0]), icon=item[1])


def import_with_progress(
    file_name: str,
    run: Callable[[Callable[[float, str], None]], Any],
    done_label: Callable[[Any], str],
) -> Any:
    """Run an import (``run(progress)``) in a status box with a progress bar.

    Returns the import's result, or the :class:`PromptverError` that refused it (already shown
    under the box), so the caller can remember the refusal for the file.
    """
    with st.status(f"Importing {md(file_name)}…", expanded=True) as status:
        bar = st.progress(0.0, text="starting")
        try:
            result = run(lambda f, m: bar.progress(min(1.0, f), text=m))
        except PromptverError as exc:
            status.update(label="Import refused", state="error")
            st.error(md(exc.message))
            return exc
        status.update(label=done_label(result), state="complete", expanded=False)
        return result

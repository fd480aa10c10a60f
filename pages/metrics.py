"""Metrics: performance figures, CSV import (preview, validation, progress), recent events.

Deep links: ``?template=NAME&env=ENV`` filter the figures and the recent events;
``?tab=import`` opens the CSV import."""

from __future__ import annotations

import shutil
import tempfile
import time as _time
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from promptver import PromptverError
from promptver.errors import ImportError_
from promptver.metrics.service import DIMENSIONS, WINDOWS
from ui.common import (
    author,
    cached,
    code,
    domain_errors,
    import_with_progress,
    md,
    table,
    take_param,
    workspace,
)
from ui.metrics import (
    ATTEMPT_COLUMNS,
    EVENT_COLUMNS,
    EVENT_GROUPS,
    HISTORY_COLUMNS,
    PROBLEM_COLUMNS,
    RECORD_COLUMNS,
    attempts_frame,
    bad_cells,
    event_columns,
    events_frame,
    highlight,
    history_frame,
    preview_frame,
    problems_frame,
    records_frame,
)

ws = workspace()
MAX_MB = ws.settings.uploads.max_upload_mb

st.title("Metrics")
st.caption(
    "Latency, success, quality, cost and tokens of every call, from `track()` in your "
    "application or from CSV files. Figures are computed in the database."
)

# deep links: ?template=NAME&env=ENV filter both tables, ?tab=import opens the import
if (wanted := take_param("template")) in {t.name for t in ws.templates.list(include_archived=True)}:
    st.session_state["met_template"] = st.session_state["met_ev_template"] = wanted
if (wanted := take_param("env")) in ws.settings.deployment.environments:
    st.session_state["met_env"] = st.session_state["met_ev_env"] = wanted
tab_perf, tab_import, tab_events, tab_history = st.tabs(
    ["Performance", "Import CSV", "Recent events", "Import history"],
    key="met_tab",
    default="Import CSV" if take_param("tab") == "import" else None,
)


def template_names() -> list[str]:
    return [t.name for t in ws.templates.list(include_archived=True)]


def window_picker(key: str) -> tuple[str | None, datetime | None, datetime | None]:
    """A window select (24h, 7d, 30d, all, custom); returns (window, start, end)."""
    labels = {
        "24h": "Last 24 hours",
        "7d": "Last 7 days",
        "30d": "Last 30 days",
        "all": "All time",
        "custom": "Custom range",
    }
    choice = st.selectbox(
        "Window",
        [*WINDOWS, "custom"],
        index=1,
        key=key,
        format_func=labels.get,
        help="Events whose time falls in this window (UTC)",
    )
    if choice != "custom":
        return choice, None, None
    today = datetime.now(UTC).date()
    picked = st.date_input(
        "From – to (UTC)",
        value=(today - timedelta(days=7), today),
        key=f"{key}_range",
        help="Both days included",
        max_value=today,
    )
    if not isinstance(picked, tuple) or len(picked) != 2:
        st.caption("Pick the last day of the range; until then the range ends today.")
        picked = (picked[0] if isinstance(picked, tuple) and picked else today, today)
    start = datetime.combine(picked[0], time.min, tzinfo=UTC)
    end = datetime.combine(picked[1], time.max, tzinfo=UTC)
    return None, start, end


# short labels and fixed widths: fifteen columns fit beside the sidebar at 1500 px (helps say
# what a short label means)
FIGURE_COLUMNS = {
    "requests": st.column_config.NumberColumn("Requests", format="localized", width=66),
    "users": st.column_config.NumberColumn("Users", format="localized", width=54),
    "latency_avg": st.column_config.NumberColumn(
        "Avg ms", format="%.0f", width=62, help="Mean latency (ms)"
    ),
    "latency_p50": st.column_config.NumberColumn(
        "p50 ms", format="%.0f", width=62, help="Median latency (ms)"
    ),
    "latency_p95": st.column_config.NumberColumn(
        "p95 ms", format="%.0f", width=62, help="95th percentile of latency (ms)"
    ),
    "success_rate": st.column_config.NumberColumn("Success", format="percent", width=62),
    "error_rate": st.column_config.NumberColumn("Errors", format="percent", width=56),
    "quality_mean": st.column_config.NumberColumn(
        "Quality", format="%.3f", width=60, help="Mean quality score"
    ),
    "cost_per_request": st.column_config.NumberColumn(
        "$ / req.", format="%.5f", width=68, help="Mean cost per request (US dollars)"
    ),
    "tokens_in_avg": st.column_config.NumberColumn(
        "Tok. in", format="%.0f", width=56, help="Mean input tokens per request"
    ),
    "tokens_out_avg": st.column_config.NumberColumn(
        "Tok. out", format="%.0f", width=62, help="Mean output tokens per request"
    ),
}
DIMENSION_COLUMNS = {
    "template": st.column_config.TextColumn("Template", width=130),
    "version": st.column_config.TextColumn("Version", width=58),
    "variant": st.column_config.TextColumn("Variant", width=66),
    "environment": st.column_config.TextColumn("Environment", width=92),
}
PREVIEW_COLUMNS = {
    "position": st.column_config.NumberColumn("#", format="%d", width=40),
    "name": st.column_config.TextColumn("Column", width=140),
    "role": st.column_config.TextColumn("Role", width=120),
    "type": st.column_config.TextColumn("Type", width=80),
    "description": st.column_config.TextColumn("What it holds", width="large"),
}


# ---- performance ----------------------------------------------------------------------------

with tab_perf:
    c1, c2, c3, c4 = st.columns([2, 2, 2, 3], vertical_alignment="bottom")
    with c1:
        window, start, end = window_picker("met_window")
    template = c2.selectbox(
        "Template",
        ["All", *template_names()],
        key="met_template",
        help="Only this template's events",
    )
    env = c3.selectbox(
        "Environment",
        ["All", *ws.settings.deployment.environments],
        key="met_env",
        help="Only this environment's events",
    )
    by = c4.multiselect(
        "Group by",
        list(DIMENSIONS),
        default=list(DIMENSIONS),
        key="met_by",
        help="Figures per combination of these",
    )
    with domain_errors():
        # cached until the data change, and for a minute: the windows end now
        figures = cached(
            ws.metrics.figures,
            window,
            start=start,
            end=end,
            template=None if template == "All" else template,
            environment=None if env == "All" else env,
            by=by,
            ttl=60,
        )
        if not figures:
            st.info(
                "No events in this window. Import a CSV under **Import CSV**, or call "
                "`ws.track(prompt, latency_ms=…, success=…)` from your application."
            )
        else:
            frame = pd.DataFrame([f.model_dump() for f in figures])
            shown = [d for d in ("template", "version", "variant", "environment") if d in by]
            frame = frame[[*shown, *FIGURE_COLUMNS]]
            table(
                frame,
                key="met_figures",
                column_config={**DIMENSION_COLUMNS, **FIGURE_COLUMNS},
            )
            if template != "All":
                split = st.segmented_control(
                    "Series",
                    ["version", "variant", "environment"],
                    default="version",
                    key="met_split",
                    help="One line per version, variant or environment",
                )
                bucket = "hour" if window == "24h" else "day"
                series = cached(
                    ws.metrics.timeseries,
                    window,
                    bucket=bucket,
                    split=split,
                    start=start,
                    end=end,
                    template=template,
                    environment=None if env == "All" else env,
                    ttl=60,
                )
                ts = pd.DataFrame(series)
                if not ts.empty:
                    ts["series"] = ts["series"].fillna("–")
                    measure = st.segmented_control(
                        "Measure",
                        [
                            "requests",
                            "latency_p50",
                            "latency_p95",
                            "success_rate",
                            "quality_mean",
                            "cost_per_request",
                        ],
                        default="requests",
                        key="met_measure",
                        help="What the chart plots per bucket",
                    )
                    chart = (
                        alt.Chart(ts)
                        .mark_line(point=True)
                        .encode(
                            x=alt.X("bucket:T", title=f"{bucket} (UTC)"),
                            y=alt.Y(f"{measure or 'requests'}:Q", title=measure),
                            color=alt.Color("series:N", title=split or ""),
                            tooltip=[
                                "bucket:T",
                                "series:N",
                                "requests:Q",
                                "latency_p50:Q",
                                "success_rate:Q",
                            ],
                        )
                    )
                    st.altair_chart(chart, width="stretch")


# ---- import ---------------------------------------------------------------------------------


def spool(upload) -> Path:
    """Copy the upload to a temporary file once (the import streams from a path)."""
    folder = Path(tempfile.gettempdir()) / "promptver-uploads"
    folder.mkdir(exist_ok=True)
    path = folder / f"{upload.file_id}.csv"
    if not path.exists():
        # uploads older than a day are leftovers of finished sessions
        for old in folder.glob("*.csv"):
            try:
                if _time.time() - old.stat().st_mtime > 86_400:
                    old.unlink()
            except OSError:  # another session removed it first
                pass
        upload.seek(0)
        with path.open("wb") as out:
            shutil.copyfileobj(upload, out, 1 << 20)
    return path


def show_warnings(warnings) -> None:
    """What an accepted file should know; it is imported all the same. The per-version
    deployment warnings go in one box, as a list."""
    early = [w for w in warnings if w.code == "before_deployment"]
    for w in warnings:
        if w.code != "before_deployment":
            st.warning(md(w.message), icon=":material/warning:")
    if early:
        n = sum(w.rows for w in early)
        st.warning(
            f"{n:,} event{'s' if n != 1 else ''} came before their version was deployed "
            "where they ran (figures per version and deployment include them):\n"
            + "\n".join(f"- {md(w.message)}" for w in early),
            icon=":material/history:",
        )


def show_refusal(name: str, refused: PromptverError, path: Path, names: list[str]) -> None:
    """The refusal: a summary, the problem list (with a download), the rows it names with the
    bad cells marked."""
    problems = getattr(refused, "problems", None) or []
    if not problems:
        st.error(md(refused.message))
        return
    total = getattr(refused, "total_problems", len(problems))
    shown = (
        "one problem"
        if total == 1
        else f"{total} problems"
        if total <= len(problems)
        else f"more than {len(problems)} problems (the first are listed)"
    )
    st.error(
        f"{md(name)} cannot be imported: {shown}. Nothing was imported; fix the file and "
        "upload it again. The attempt is listed under **Import history**."
    )
    records = ws.metrics.problem_records(refused)
    table(problems_frame(records), key="met_problems", column_config=PROBLEM_COLUMNS)
    st.download_button(
        "Download the problem list (CSV)",
        data=ws.metrics.problems_csv(records),
        file_name=f"{Path(name).stem}-problems.csv",
        mime="text/csv",
        key="met_problems_csv",
        icon=":material/download:",
        help="Line, column and reason of each problem, to fix the file in a spreadsheet",
    )
    cells = bad_cells(records)
    found = ws.metrics.records_at(path, sorted(cells)) if cells else {}
    if found:
        st.markdown("**Rows with problems** (the cells named above are marked)")
        frame = records_frame(names, list(found), list(found.values()))
        table(highlight(frame, cells), key="met_bad_rows", column_config=RECORD_COLUMNS)


with tab_import:
    if ws.source.external:
        # the analysis reads the configured source: an import into the file would be ignored
        st.info(
            f"Events live in the {md(ws.source.describe())} (setting `events.source: "
            f"{ws.source.kind}`): load them there. Imports into the promptver file are refused "
            "while an external source is configured.",
            icon=":material/cloud:",
        )
    else:
        st.markdown(
            "Upload a comma-separated UTF-8 file with a header row: `timestamp`, `template` and "
            "`user_id`, plus at least one metric. A file is imported whole or not at all; rows "
            "whose `event_id` is already stored are skipped."
        )
        st.download_button(
            "Download an example CSV",
            data=ws.metrics.example_csv(),
            file_name="example_events.csv",
            mime="text/csv",
            key="met_example",
            help="A valid file for the demo templates: copy its header row",
            icon=":material/download:",
        )
        upload = st.file_uploader(
            f"Metric events CSV (up to {MAX_MB} MB)",
            type=["csv"],
            key="met_upload",
            help="Columns timestamp, template and user_id, and at least one metric; see the example CSV",
            max_upload_size=MAX_MB,
        )
        if upload is not None:
            if upload.size > MAX_MB * 1024 * 1024:
                st.error(
                    f"{md(upload.name)} is {upload.size / 1024 / 1024:.1f} MB, more than the "
                    f"{MAX_MB} MB allowed (setting uploads.max_upload_mb). Split the file or "
                    "import it with `promptver metrics import FILE.csv`."
                )
            else:
                path = spool(upload)
                preview = ws.metrics.preview_csv(path, file_name=upload.name)
                checks = st.session_state.setdefault("met_checked", {})
                if upload.file_id not in checks:
                    with st.spinner("Checking every row…"), domain_errors():
                        try:
                            # the upload is the reader's attempt: a refusal goes to the history
                            checks[upload.file_id] = ws.metrics.import_csv(
                                path,
                                file_name=upload.name,
                                author=author(),
                                dry_run=True,
                                log_refusal=True,
                            )
                        except ImportError_ as exc:
                            checks[upload.file_id] = exc
                # None: the check itself failed (shown above), e.g. the file was busy
                checked = checks.get(upload.file_id)
                marked = bad_cells(
                    ws.metrics.problem_records(checked) if isinstance(checked, ImportError_) else []
                )
                st.subheader("Columns")
                if preview.columns:
                    table(
                        pd.DataFrame([c.model_dump() for c in preview.columns]),
                        key="met_columns",
                        column_config=PREVIEW_COLUMNS,
                    )
                    st.subheader("First rows")
                    first = preview_frame(preview)
                    table(
                        highlight(first, marked) if marked else first,
                        key="met_first_rows",
                        column_config=RECORD_COLUMNS,
                    )
                else:
                    st.caption("The header row cannot be read: the problems are listed below.")
                st.subheader("Validation")
                done = st.session_state.get("met_done", {}).get(upload.file_id)
                if checked is None:
                    pass
                elif isinstance(checked, PromptverError):
                    show_refusal(upload.name, checked, path, [c.name for c in preview.columns])
                elif done is not None:
                    st.success(
                        f"Imported {done.rows_imported:,} events from {md(done.file_name)} "
                        f"({done.rows_skipped_duplicate:,} already stored, skipped) in "
                        f"{done.seconds:.2f} s."
                    )
                    cols = st.columns(4)
                    cols[0].metric("Events imported", f"{done.rows_imported:,}")
                    cols[1].metric("Skipped (already stored)", f"{done.rows_skipped_duplicate:,}")
                    cols[2].metric("Templates", len(done.templates))
                    cols[3].metric("Custom metrics", len(done.custom_metrics))
                    if done.first is not None:
                        st.caption(
                            f"Events from {done.first:%Y-%m-%d %H:%M} to "
                            f"{done.last:%Y-%m-%d %H:%M} UTC for "
                            f"{md(', '.join(done.templates))}; import id {code(done.import_id)}."
                        )
                    show_warnings(done.warnings)
                else:
                    st.success(
                        f"All {checked.rows_in_file:,} rows are valid: "
                        f"{checked.rows_imported:,} new events, "
                        f"{checked.rows_skipped_duplicate:,} already stored."
                    )
                    show_warnings(checked.warnings)
                    if checked.warnings:
                        st.caption("These are warnings: the file can be imported as it is.")
                    if st.button(
                        f"Import {checked.rows_imported:,} events",
                        type="primary",
                        key="met_import",
                        disabled=checked.rows_in_file == 0,
                    ):
                        result = import_with_progress(
                            upload.name,
                            lambda progress: ws.metrics.import_csv(
                                path, file_name=upload.name, author=author(), progress=progress
                            ),
                            lambda r: f"Imported {r.rows_imported:,} events",
                        )
                        if isinstance(result, PromptverError):
                            checks[upload.file_id] = result
                        else:
                            st.session_state.setdefault("met_done", {})[upload.file_id] = result
                            st.rerun()

    # ---- recent events --------------------------------------------------------------------------


with tab_events:
    e1, e2, e3, e4, e5 = st.columns([2, 2, 2, 2, 1], vertical_alignment="bottom")
    ev_template = e1.selectbox(
        "Template",
        ["All", *template_names()],
        key="met_ev_template",
        help="Only this template's events",
    )
    tref = None if ev_template == "All" else ev_template
    ev_env = e2.selectbox(
        "Environment",
        ["All", *ws.settings.deployment.environments],
        key="met_ev_env",
        help="Only this environment's events",
    )
    ev_version = e3.selectbox(
        "Version",
        ["All", *cached(ws.metrics.distinct, "version", tref)],
        key="met_ev_version",
        help="Only events served by this version",
    )
    ev_user = e4.text_input(
        "User id",
        key="met_ev_user",
        placeholder="exact user id",
        help="One user's events (an exact match)",
    )
    ev_limit = e5.number_input(
        "Rows",
        min_value=10,
        max_value=5000,
        value=200,
        step=50,
        key="met_ev_limit",
        help="How many of the newest events to show",
    )
    more = st.multiselect(
        "More columns",
        list(EVENT_GROUPS),
        default=[],
        key="met_ev_more",
        help="Columns shown besides time, template, version, environment, user and the "
        "built-in metrics",
        placeholder="Experiment, tokens, custom metrics, ids",
    )
    with domain_errors():
        events = cached(
            ws.metrics.events,
            int(ev_limit),
            template=tref,
            environment=None if ev_env == "All" else ev_env,
            version=None if ev_version == "All" else ev_version,
            user_id=ev_user.strip() or None,
        )
        if events:
            table(
                events_frame(events),
                key="met_events",
                column_config=EVENT_COLUMNS,
                column_order=event_columns(more),
            )
            st.caption(f"{len(events):,} most recent events matching the filters.")
        else:
            st.info("No events match these filters.")


# ---- history --------------------------------------------------------------------------------

with tab_history:
    history = ws.metrics.imports(200)
    attempts = ws.metrics.attempts(200)
    st.subheader("Imports")
    if history:
        table(history_frame(history), key="met_history", column_config=HISTORY_COLUMNS)
        st.caption(
            "Purging old events (`promptver metrics purge`) keeps these records; "
            "'still stored' counts what is left of each import."
        )
    else:
        st.info("No CSV has been imported yet.")
    st.subheader("Refused files")
    if attempts:
        table(attempts_frame(attempts), key="met_attempts", column_config=ATTEMPT_COLUMNS)
        labels = {
            a.id: f"{a.attempted_at:%Y-%m-%d %H:%M} · {a.file_name} · {a.attempted_by}"
            for a in attempts
        }
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        picked = c1.selectbox(
            "Problem list of",
            list(labels),
            format_func=labels.get,
            key="met_attempt",
            help="Every problem found in that file, as a CSV with line, column and reason",
        )
        attempt = next(a for a in attempts if a.id == picked)
        c2.download_button(
            "Download the problem list",
            data=ws.metrics.problems_csv(attempt.problems),
            file_name=f"{Path(attempt.file_name).stem}-problems.csv",
            mime="text/csv",
            key="met_attempt_csv",
            icon=":material/download:",
        )
        st.caption(
            "A refused file wrote nothing: these records are a separate log of the attempts "
            "(at most the first 20 problems of each are kept)."
        )
    else:
        st.caption("No file has been refused.")

"""Evaluations: offline scores of versions on datasets, compared item by item.

Deep links: ``?dataset=NAME`` (and ``&template=NAME&version=V`` to preselect the candidate)
open the comparison; ``?tab=import`` opens the upload. Widget keys start with ``ev_``.
"""

from __future__ import annotations

import shutil
import tempfile
import time as _time
from pathlib import Path

import pandas as pd
import streamlit as st

from promptver import PromptverError
from promptver.errors import ImportError_
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
from ui.evals import (
    COMPARISON_COLUMNS,
    calibrated_frame,
    comparison_frame,
    diff_histogram,
    items_frame,
    output_diff,
    report_downloads,
    runs_frame,
    scatter_chart,
)
from ui.metrics import PROBLEM_COLUMNS, problems_frame

ws = workspace()
MAX_MB = ws.settings.uploads.max_upload_mb

st.title("Evaluations")
st.caption(
    "Scores of prompt versions on fixed test cases, from an LLM judge or from people. Two "
    "versions are compared item by item (a paired design), and a judge's scores are calibrated "
    "with the human labels where there are some."
)

want_dataset = take_param("dataset")
want_template = take_param("template")
want_version = take_param("version")
tab_compare, tab_import = st.tabs(
    ["Compare", "Import CSV"],
    key="ev_tab",
    default="Import CSV" if take_param("tab") == "import" else None,
)


def spool(upload) -> Path:
    """Copy the upload to a temporary file once (the import reads from a path)."""
    folder = Path(tempfile.gettempdir()) / "promptver-uploads"
    folder.mkdir(exist_ok=True)
    path = folder / f"eval-{upload.file_id}.csv"
    if not path.exists():
        for old in folder.glob("eval-*.csv"):  # leftovers of finished sessions
            try:
                if _time.time() - old.stat().st_mtime > 86_400:
                    old.unlink()
            except OSError:
                pass
        upload.seek(0)
        with path.open("wb") as out:
            shutil.copyfileobj(upload, out, 1 << 20)
    return path


# ---- import --------------------------------------------------------------------------------

with tab_import:
    st.markdown(
        "Upload a comma-separated UTF-8 file with a header row: `dataset`, `item_id`, "
        "`template`, `version` (a version, branch or commit prefix) and at least one numeric "
        "score. A column `NAME_human` holds people's label of score `NAME` where there is one; "
        "`output` keeps the answer for the side-by-side view. Several rows of one item and "
        "version are repeated samples. A file is imported whole or not at all, and only once."
    )
    upload = st.file_uploader(
        f"Eval results CSV (up to {MAX_MB} MB)",
        type=["csv"],
        key="ev_upload",
        max_upload_size=MAX_MB,
    )
    if upload is not None:
        if upload.size > MAX_MB * 1024 * 1024:
            st.error(
                f"{md(upload.name)} is {upload.size / 1024 / 1024:.1f} MB, more than the "
                f"{MAX_MB} MB allowed (setting uploads.max_upload_mb); import it with "
                "`promptver eval import FILE.csv`."
            )
        else:
            path = spool(upload)
            checks = st.session_state.setdefault("ev_checked", {})
            if upload.file_id not in checks:
                with st.spinner("Checking every row…"), domain_errors():
                    try:
                        checks[upload.file_id] = ws.evals.import_csv(
                            path, file_name=upload.name, author=author(), dry_run=True
                        )
                    except ImportError_ as exc:
                        checks[upload.file_id] = exc
            checked = checks.get(upload.file_id)
            done = st.session_state.get("ev_done", {}).get(upload.file_id)
            if checked is None:
                pass
            elif isinstance(checked, PromptverError):
                problems = checked.problems
                st.error(
                    f"{md(upload.name)} cannot be imported: "
                    + (f"{len(problems)} problems" if len(problems) > 1 else md(checked.message))
                )
                if problems:
                    table(
                        problems_frame(ws.metrics.problem_records(checked)),
                        key="ev_problems",
                        column_config=PROBLEM_COLUMNS,
                    )
            elif done is not None:
                st.success(
                    f"Imported {done.rows_imported:,} rows from {md(done.file_name)} in "
                    f"{done.seconds:.2f} s: "
                    + ", ".join(
                        f"{md(r['dataset'])} · {md(r['template'])} "
                        f"{md(r['version'] or r['commit_id'][:10])}"
                        for r in done.runs
                    )
                )
            else:
                st.success(
                    f"All {checked.rows_imported:,} rows are valid: "
                    + ", ".join(
                        f"{md(r['dataset'])} · {md(r['template'])} "
                        f"{md(r['version'] or r['commit_id'][:10])}"
                        for r in checked.runs
                    )
                )
                if st.button(
                    f"Import {checked.rows_imported:,} rows", type="primary", key="ev_import"
                ):
                    result = import_with_progress(
                        upload.name,
                        lambda progress: ws.evals.import_csv(
                            path, file_name=upload.name, author=author(), progress=progress
                        ),
                        lambda _: "Imported",
                    )
                    if isinstance(result, PromptverError):
                        checks[upload.file_id] = result
                    else:
                        st.session_state.setdefault("ev_done", {})[upload.file_id] = result
                        if result.runs:
                            st.session_state["ev_dataset"] = result.runs[0]["dataset"]
                        st.rerun()


# ---- compare -------------------------------------------------------------------------------

with tab_compare:
    datasets = cached(ws.evals.datasets)
    if not datasets:
        st.info(
            "No evaluations yet. Upload scored outputs under **Import CSV**, or run "
            "`promptver eval import FILE.csv`."
        )
        st.stop()
    names = [d.dataset for d in datasets]
    if want_dataset is None and want_template is not None:  # the first dataset it is scored on
        want_dataset = next((d.dataset for d in datasets if want_template in d.templates), None)
    if want_dataset in names:
        st.session_state["ev_dataset"] = want_dataset
    c1, c2 = st.columns([3, 2])
    dataset = c1.selectbox("Dataset", names, key="ev_dataset")
    info = next(d for d in datasets if d.dataset == dataset)
    if want_template in info.templates:
        st.session_state["ev_template"] = want_template
    template = c2.selectbox("Template", info.templates, key="ev_template")
    runs = cached(ws.evals.runs, dataset, template=template)
    # one entry per commit (its runs are pooled), newest first
    versions: dict[str, str] = {}
    for r in runs:
        versions.setdefault(r.commit, r.label)
    if len(versions) < 2:
        st.info(
            f"Only one version of {md(template)} is evaluated on {md(dataset)}: import scores "
            "of another version to compare them."
        )
        table(runs_frame(runs), key="ev_runs")
        st.stop()

    def order(commit: str) -> tuple:
        """Versions in semantic order, commits off main after them."""
        label = versions[commit]
        parts = label.split(".")
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            return (0, *map(int, parts))
        return (1, label)

    commits = sorted(versions, key=order)
    labels = {c: f"{versions[c]} · {c[:10]}" for c in commits}
    if want_version:
        for c in commits:
            if want_version in (versions[c], c[: len(want_version)]):
                st.session_state["ev_candidate"] = c
    b1, b2, b3 = st.columns(3)
    candidate = b2.selectbox(
        "Candidate", commits, key="ev_candidate", format_func=labels.get, index=len(commits) - 1
    )
    # the baseline: by default the version just before the candidate
    others = [c for c in commits if c != candidate]
    before = [c for c in others if order(c) < order(candidate)]
    baseline = b1.selectbox(
        "Baseline",
        others,
        key="ev_baseline",
        format_func=labels.get,
        index=others.index(before[-1]) if before else 0,
    )
    with domain_errors():
        cmp = cached(ws.evals.compare, dataset, baseline, candidate, template=template)
        base_l, cand_l = versions[baseline], versions[candidate]
        st.subheader(f"{md(cand_l)} against {md(base_l)}")
        table(comparison_frame(cmp), key="ev_comparison", column_config=COMPARISON_COLUMNS)
        st.caption(
            f"Paired over the items scored for both versions (samples of an item averaged); "
            f"{(1 - cmp.alpha) * 100:g} % intervals; p-values Holm-adjusted across metrics."
        )
        cal = calibrated_frame(cmp)
        if not cal.empty:
            st.subheader("Calibrated with human labels")
            st.caption(
                "Prediction-powered means: the judge's mean plus the mean of human − judge on "
                "the labelled items, on the human scale (Angelopoulos et al., 2023)."
            )
            table(cal, key="ev_calibrated")
        metric = b3.selectbox(
            "Metric for the charts", [m.name for m in cmp.metrics], key="ev_metric"
        )
        items = cached(
            ws.evals.paired, dataset, baseline, candidate, metric=metric, template=template
        )
        if items:
            g1, g2 = st.columns(2)
            g1.altair_chart(scatter_chart(items, metric, base_l, cand_l), width="stretch")
            g2.altair_chart(diff_histogram(items, metric), width="stretch")
        with st.expander("Power: how many items would detect a difference?"):
            chosen = cmp.metric(metric)
            if chosen is not None and chosen.sd_diff:
                wanted = st.number_input(
                    f"Difference in {metric} to detect",
                    min_value=0.0,
                    value=float(f"{chosen.sd_diff / 4:.2g}"),
                    format="%.4g",
                    key="ev_power_diff",
                    help="In the metric's unit; planned from the spread of the differences seen",
                )
                if wanted > 0:
                    pw = cached(
                        ws.evals.power,
                        dataset,
                        baseline,
                        candidate,
                        metric=metric,
                        difference=wanted,
                        template=template,
                    )
                    st.markdown(
                        f"**{pw.items_needed:,} paired items** detect a difference of "
                        f"{wanted:g} with power {pw.power:g} at alpha {pw.alpha:g} (standard "
                        f"deviation of the differences {pw.sd_diff:.4g}); the {pw.items_now:,} "
                        f"items here give power {pw.power_now or 0:.2f}."
                    )
            else:
                st.caption("The differences do not vary: there is nothing to plan from.")
        st.subheader("Regressions")
        if not cmp.regressions:
            st.success("No item is worse with the candidate.")
        else:
            st.caption(
                f"{len(cmp.regressions)} items where the candidate is worse, worst first "
                "(measured in standard deviations of that metric's differences)."
            )
            table(
                pd.DataFrame(
                    [
                        {
                            "item": r.item_id,
                            "metric": r.metric,
                            "baseline": r.baseline,
                            "candidate": r.candidate,
                            "diff": r.diff,
                        }
                        for r in cmp.regressions
                    ]
                ),
                key="ev_regressions",
            )
            for r in cmp.regressions[:5]:
                if r.baseline_output is None and r.candidate_output is None:
                    continue
                with st.expander(f"Item {md(r.item_id)} · {md(r.metric)} {r.diff:+.4g}"):
                    output_diff(r.baseline_output, r.candidate_output, base_l, cand_l)
        st.subheader("Items")
        table(items_frame(items), key="ev_items")
        report_downloads(cmp)
    with st.expander("Runs of this dataset"):
        table(runs_frame(runs), key="ev_runs")
    st.caption(
        f"Dataset {code(dataset)}: {info.items:,} items, scores {md(', '.join(info.metrics))}."
    )

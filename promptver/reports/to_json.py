"""The JSON report: the contract's results object plus the configuration and metadata.

Layout (``schema_version`` "1.0", documented in docs/reports.md)::

    {"schema_version", "kind", "generated_at", "generator",
     "experiment":  the experiment's configuration and lifecycle fields,
     "variants":    [{name, role, ref, weight, share, commit, version, …, content,
                      diff_against_control (with config_summary)}],
     "results":     the contract's results object on the primary metric, with every extra
                    (``metrics`` holds every metric of the experiment),
     "results_frozen", "analysis_options",
     "deployments": the template's deployment log, newest first, each with "during_experiment",
     "history":     the experiment's lifecycle events, oldest first,
     "notes"}

Times are ISO 8601 in UTC; undefined numbers are ``null`` (never NaN).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from promptver.chat_render import describe_config_change
from promptver.reports.gather import Report, VariantInfo

KIND = "promptver.experiment-report"


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat()


def _variant(v: VariantInfo) -> dict[str, Any]:
    c, d = v.commit, v.diff
    return {
        "name": v.spec.name,
        "role": "control" if v.is_control else "treatment",
        "ref": v.spec.ref,
        "weight": v.spec.weight,
        "share": v.share,
        "commit": c.id if c else v.spec.commit,
        "version": c.version if c else None,
        "resolved_at_report_time": v.resolved_now,
        "commit_message": c.message if c else None,
        "commit_author": c.author if c else None,
        "commit_created_at": _iso(c.created_at) if c else None,
        "variables": list(c.variables) if c else None,
        "content": (c.content if c.kind == "text" else None) if c else None,
        "kind": c.kind if c else None,
        "messages": c.messages if c else None,
        "config": c.config if c else None,
        "diff_against_control": None
        if d is None
        else {
            "identical": d.identical,
            "lines_added": d.lines_added,
            "lines_removed": d.lines_removed,
            **d.as_dict(),
            # what differs in the model configuration, for people ("model a → b, …")
            "config_summary": describe_config_change(d.config_changes, limit=len(d.config_changes))
            if d.config_changes
            else None,
        },
    }


def document(report: Report) -> dict[str, Any]:
    """The report as a JSON-ready dict."""
    e = report.experiment
    experiment = e.model_dump(mode="json")
    experiment["weights"] = e.weights()
    return {
        "schema_version": report.schema_version,
        "kind": KIND,
        "generated_at": _iso(report.generated_at),
        "generator": report.generator,
        "experiment": experiment,
        "variants": [_variant(v) for v in report.variants],
        "results": report.results.model_dump(mode="json"),
        "results_frozen": report.frozen,
        "analysis_options": report.options,
        "deployments": [
            {**d.model_dump(mode="json"), "during_experiment": report.during(d)}
            for d in report.deployments
        ],
        "history": [h.model_dump(mode="json") for h in report.history],
        "notes": report.notes,
    }


def report_json(report: Report) -> bytes:
    """The JSON report of a gathered report, UTF-8, indented.

    Raises:
        ValueError: a number is not finite (the results never hold one; this guards the
            promise that the file is strict JSON).
    """
    text = json.dumps(document(report), indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")

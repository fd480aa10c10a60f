"""The CSV report: one row per variant × metric, with every figure of both.

RFC 4180: comma-separated, CRLF line ends, fields quoted when they hold a comma, quote or line
break (the ``csv`` module), a header row. The file starts with a UTF-8 byte order mark so that
spreadsheet programs read non-ASCII names correctly.

Spreadsheet programs run a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula (and tab
or carriage return can hide such a start), so an experiment or variant named ``=HYPERLINK(…)``
could act when the file is opened. Following OWASP's CSV-injection guidance, every *text* cell
that starts with one of these characters (or their full-width forms) gets a leading single
quote. Numbers are written as numbers, never quoted or prefixed, so ``-0.0123`` stays a negative
number; only cells that hold text are ever neutralised.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from promptver.csv_cells import FORMULA_START, neutralise  # noqa: F401 (re-exported)
from promptver.models.results import ComparisonResult, GuardrailCheck, MetricResult, PowerResult
from promptver.reports.gather import Report

COLUMNS = [
    "experiment_id",
    "experiment",
    "status",
    "template",
    "environment",
    "metric",
    "role",
    "direction",
    "binary",
    "method",
    "alpha",
    "variant",
    "is_control",
    "weight",
    "ref",
    "commit",
    "version",
    "users",
    "metric_users",
    "events",
    "mean",
    "std",
    "se",
    "ci_level",
    "ci_low",
    "ci_high",
    "bootstrap_ci_low",
    "bootstrap_ci_high",
    "control",
    "diff",
    "diff_ci_level",
    "diff_ci_low",
    "diff_ci_high",
    "diff_bootstrap_ci_low",
    "diff_bootstrap_ci_high",
    "diff_bca_ci_low",
    "diff_bca_ci_high",
    "relative_lift",
    "relative_lift_ci_low",
    "relative_lift_ci_high",
    "relative_lift_bootstrap_ci_low",
    "relative_lift_bootstrap_ci_high",
    "p_value",
    "p_value_adjusted",
    "significant",
    "effect_size",
    "t_stat",
    "df",
    "alternative",
    "verdict",
    "guardrail_p_value",
    "guardrail_worse",
    "mde",
    "mde_relative",
    "target_lift",
    "users_needed_control",
    "users_needed_treatment",
    "days_to_target",
    "quantile",
    "quantile_value",
    "quantile_ci_low",
    "quantile_ci_high",
    "quantile_diff",
    "quantile_diff_ci_low",
    "quantile_diff_ci_high",
    "winsorize_cap",
    "srm_p_value",
    "srm_ok",
    "sample_size_ok",
    "minimum_sample_size",
    "winner",
    "window_start",
    "window_end",
    "computed_at",
    "variant_note",
    "comparison_note",
]


def cell(value: Any) -> str | int | float:
    """One value as written: numbers as numbers, booleans as true/false, times in ISO 8601,
    missing as an empty cell, text neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as exactly this float
    if isinstance(value, datetime):
        return value.isoformat()
    return neutralise(str(value))


def _comparison(c: ComparisonResult | None) -> dict[str, Any]:
    if c is None:
        return {}
    return {
        "control": c.control,
        "diff": c.diff,
        "diff_ci_level": c.confidence,
        "diff_ci_low": c.ci_low,
        "diff_ci_high": c.ci_high,
        "diff_bootstrap_ci_low": c.bootstrap_ci_low,
        "diff_bootstrap_ci_high": c.bootstrap_ci_high,
        "diff_bca_ci_low": c.bootstrap_bca_ci_low,
        "diff_bca_ci_high": c.bootstrap_bca_ci_high,
        "relative_lift": c.relative_lift,
        "relative_lift_ci_low": c.relative_lift_ci_low,
        "relative_lift_ci_high": c.relative_lift_ci_high,
        "relative_lift_bootstrap_ci_low": c.bootstrap_relative_lift_ci_low,
        "relative_lift_bootstrap_ci_high": c.bootstrap_relative_lift_ci_high,
        "p_value": c.p_value,
        "p_value_adjusted": c.p_value_adjusted,
        "significant": c.significant,
        "effect_size": c.effect_size,
        "t_stat": c.t_stat,
        "df": c.df,
        "alternative": c.alternative,
        "verdict": c.verdict,
        "comparison_note": c.message,
    }


def _power(p: PowerResult | None) -> dict[str, Any]:
    if p is None:
        return {}
    return {
        "mde": p.mde,
        "mde_relative": p.mde_relative,
        "target_lift": p.target_lift,
        "users_needed_control": p.users_needed_control,
        "users_needed_treatment": p.users_needed_treatment,
        "days_to_target": p.days_to_target,
    }


def _guardrail(g: GuardrailCheck | None) -> dict[str, Any]:
    return {} if g is None else {"guardrail_p_value": g.p_value, "guardrail_worse": g.worse}


def rows(report: Report) -> list[dict[str, Any]]:
    """The report's rows as dicts of raw values (before CSV formatting)."""
    e, r = report.experiment, report.results
    commits = {v.spec.name: v for v in report.variants}
    out = []
    for m in report.metrics:
        out += _metric_rows(report, m, commits)
    for row in out:
        row.update(
            {
                "experiment_id": e.id,
                "experiment": e.name,
                "status": e.status,
                "template": e.template,
                "environment": e.environment,
                "alpha": r.alpha,
                "method": r.method,
                "srm_p_value": r.srm.p_value,
                "srm_ok": r.srm.ok,
                "sample_size_ok": r.sample_size_ok,
                "minimum_sample_size": r.minimum_sample_size,
                "winner": r.winner,
                "window_start": r.window_start,
                "window_end": r.window_end,
                "computed_at": r.computed_at,
            }
        )
    return out


def _metric_rows(report: Report, m: MetricResult, commits: dict[str, Any]) -> list[dict[str, Any]]:
    r = report.results
    comparisons = {c.treatment: c for c in m.comparisons}
    power = {p.treatment: p for p in m.power}
    guards = {g.treatment: g for g in r.guardrails if g.metric == m.metric}
    quantile = {v.name: v for v in m.quantile.variants} if m.quantile else {}
    qdiff = {c.treatment: c for c in m.quantile.comparisons} if m.quantile else {}
    out = []
    for i, v in enumerate(m.variants):
        info = commits.get(v.name)
        commit = info.commit if info is not None else None
        row: dict[str, Any] = {
            "metric": m.metric,
            "role": m.role,
            "direction": m.direction,
            "binary": m.binary,
            "variant": v.name,
            "is_control": i == 0,
            "weight": v.weight,
            "ref": info.spec.ref if info is not None else None,
            "commit": commit.id if commit else None,
            "version": commit.version if commit else None,
            "users": v.users,
            "metric_users": v.metric_users,
            "events": v.events,
            "mean": v.mean,
            "std": v.std,
            "se": v.se,
            "ci_level": 1 - r.alpha,
            "ci_low": v.ci_low,
            "ci_high": v.ci_high,
            "bootstrap_ci_low": v.bootstrap_ci_low,
            "bootstrap_ci_high": v.bootstrap_ci_high,
            "variant_note": v.message,
            "winsorize_cap": m.winsorized.cap if m.winsorized else None,
        }
        row.update(_comparison(comparisons.get(v.name)))
        row.update(_power(power.get(v.name)))
        row.update(_guardrail(guards.get(v.name)))
        if m.quantile is not None:
            q = quantile.get(v.name)
            d = qdiff.get(v.name)
            row.update(
                {
                    "quantile": m.quantile.quantile,
                    "quantile_value": q.value if q else None,
                    "quantile_ci_low": q.bootstrap_ci_low if q else None,
                    "quantile_ci_high": q.bootstrap_ci_high if q else None,
                    "quantile_diff": d.diff if d else None,
                    "quantile_diff_ci_low": d.bootstrap_ci_low if d else None,
                    "quantile_diff_ci_high": d.bootstrap_ci_high if d else None,
                }
            )
        out.append(row)
    return out


def report_csv(report: Report) -> bytes:
    """The CSV report of a gathered report (UTF-8 with a byte order mark, CRLF line ends)."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(COLUMNS)
    for row in rows(report):
        writer.writerow([cell(row.get(c)) for c in COLUMNS])
    return buf.getvalue().encode("utf-8-sig")

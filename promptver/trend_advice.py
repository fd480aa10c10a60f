"""The plain-language findings of a trend report, and the names shown for its series.

:func:`recommendations` writes the short findings of a :class:`~promptver.models.TrendReport`,
most urgent first (worsening trends, changes for the worse after deployments, improvements,
then what is stable or too thin), saying whether a worsening version is still live.
:func:`change_tally` is a change point's headline, :func:`series_name` a series' label.
"""

from __future__ import annotations

from collections.abc import Iterable

from promptver.metric_defs import metric_def, p_text, pct_text, value_text
from promptver.models.trends import (
    ChangeMetric,
    ChangePoint,
    DeploymentMarker,
    TrendReport,
    TrendSeries,
)
from promptver.trend_fits import MIN_FIT_BUCKETS, MIN_P95_EVENTS

#: a relative change of a percentile at least this large counts as large when it is not tested
LARGE_UNTESTED = 0.2


def large_untested(m: ChangeMetric) -> bool:
    """An untested change of a percentile that moved by :data:`LARGE_UNTESTED` or more with
    enough events on both sides: worth counting next to the tested ones."""
    return (
        m.verdict == "not tested"
        and m.relative_change is not None
        and min(m.events_before, m.events_after) >= MIN_P95_EVENTS
        and abs(m.relative_change) >= LARGE_UNTESTED
    )


def change_tally(cp: ChangePoint) -> str:
    """The headline of a change point: ``1 worse, 1 better``, plus the large changes that were
    not tested (``1 large change not tested``), or ``no significant change``."""
    worse = sum(m.verdict == "worse" for m in cp.metrics)
    better = sum(m.verdict == "better" for m in cp.metrics)
    untested = sum(large_untested(m) for m in cp.metrics)
    parts = [f"{worse} worse, {better} better"] if worse or better else []
    if untested:
        parts.append(f"{untested} large change{'s' if untested != 1 else ''} not tested")
    return ", ".join(parts) or "no significant change"


# ---- recommendations -------------------------------------------------------------------------


def deployed_text(d: DeploymentMarker) -> str:
    label = d.version or d.commit[:10]
    if d.action == "rollback":
        return f"{d.environment} was rolled back to {label}"
    return f"{label} was deployed to {d.environment}"


def series_name(s: TrendSeries, by: str | None, environment: str | None) -> str:
    """``qa-basic``, ``qa-basic 1.2.0``, ``qa-basic variant concise``, ``qa-basic in staging``
    (plus `` in ENV`` when the analysis is limited to one environment)."""
    name = s.template
    if s.group is not None:
        if by == "version":
            name += f" {s.group}"
        elif by == "variant":
            name += f" variant {s.group}"
        elif by == "environment":
            return f"{name} in {s.group}"
    elif by is not None:
        name += f" (no {by})"
    if environment is not None:
        name += f" in {environment}"
    return name


def _live(report: TrendReport, template_id: str, env: str) -> DeploymentMarker | None:
    return next(
        (d for d in report.live if (d.template_id, d.environment) == (template_id, env)), None
    )


def _what_happened(d: DeploymentMarker) -> str:
    """``production was rolled back to 1.1.0 on 2026-12-01 by dara.kim``, or for a deploy
    ``1.2.0 replaced it in production on … by …``."""
    who = f" by {d.author}" if d.author else ""
    label = d.version or d.commit[:10]
    if d.action == "rollback":
        return f"{d.environment} was rolled back to {label} on {d.at:%Y-%m-%d}{who}"
    return f"{label} replaced it in {d.environment} on {d.at:%Y-%m-%d}{who}"


def _no_longer_live(
    report: TrendReport, template_id: str, version: str | None, envs: Iterable[str]
) -> tuple[list[DeploymentMarker], list[str]]:
    """Of ``envs`` where ``version`` of a template was deployed: the live deployments that
    replaced it since, and the environments where it is still live."""
    gone: list[DeploymentMarker] = []
    still: list[str] = []
    for env in envs:
        now = _live(report, template_id, env)
        if now is None:
            continue
        if now.version == version:
            still.append(env)
        else:
            gone.append(now)
    return gone, still


def _fate(
    s: TrendSeries, report: TrendReport
) -> tuple[str | None, list[DeploymentMarker], list[str]]:
    """The version a worsening series measures (by version, or the one deployed where its
    line starts), what replaced it since and where it is still live."""
    by, f = report.by, s.fit
    version = s.group if by == "version" else f.since_version
    if version is None or (by != "version" and f.since_at is None):
        return version, [], []
    if by == "environment":
        envs = [s.group] if s.group is not None else []
    elif f.since_environment is not None:
        envs = [f.since_environment]
    elif report.environment is not None:
        envs = [report.environment]
    else:  # every environment the version went to
        envs = sorted(
            {
                d.environment
                for d in report.deployments
                if d.template_id == s.template_id and d.version == version
            }
        )
    gone, still = _no_longer_live(report, s.template_id, version, envs)
    return version, gone, still


def _trend_sentence(s: TrendSeries, report: TrendReport) -> str:
    by, environment = report.by, report.environment
    f = s.fit
    up = (f.slope_per_day or 0) > 0
    if f.pct_per_day is not None:
        amount = f"{'up' if up else 'down'} {pct_text(f.pct_per_day)} %/day"
    else:
        amount = f"{'up' if up else 'down'} {value_text(s.metric, abs(f.slope_per_day or 0))}/day"
    if f.since_at is not None:
        label = f.since_version or "?"
        if by == "version" and s.group == label:
            since = f"since its deployment to {f.since_environment}"
        elif f.since_version is not None:
            since = f"since {label} was deployed to {f.since_environment}"
        else:
            since = f"since the deployment of {f.since_environment}"
    else:
        since = "over the period"
    text = f"{series_name(s, by, environment)}: {s.label} {amount} {since} ({p_text(f.p_value)})."
    if f.verdict != "worse":
        return text + " Improving."
    version, gone, still = _fate(s, report)
    if gone and not still:
        return (
            text
            + f" {version} is no longer live: "
            + "; ".join(_what_happened(d) for d in gone)
            + "."
        )
    if gone:
        text += (
            f" {version} is still live in {' and '.join(still)}, but "
            + "; ".join(_what_happened(d) for d in gone)
            + "."
        )
    return (
        text
        + " Investigate"
        + (", or roll back." if f.since_at is not None else " before it crosses an alert.")
    )


def _change_sentence(
    cp: ChangePoint, verdict: str, report: TrendReport | None = None
) -> str | None:
    d = cp.deployment
    hits = [m for m in cp.metrics if m.verdict == verdict]
    if verdict == "worse":
        # a percentile moving a lot with enough events is worth saying even though untested
        hits += [
            m
            for m in cp.metrics
            if large_untested(m)
            and m.relative_change is not None
            and ((m.relative_change > 0) == (m.direction == "lower"))
        ]
    if not hits:
        return None
    parts = []
    for m in hits[:3]:
        change = ""
        if m.diff is not None and metric_def(m.metric).unit == "rate":
            # a rate moving from 1 % to 3 % is "+2 points", not "+200 %"
            change = f" {'+' if m.diff > 0 else '−'}{abs(m.diff) * 100:.1f} points"
        elif m.relative_change is not None:
            sign = "+" if m.relative_change > 0 else "−"
            change = f" {sign}{pct_text(100 * m.relative_change)} %"
        test = p_text(m.p_value_adjusted) if m.p_value_adjusted is not None else "not tested"
        parts.append(
            f"{m.label} {value_text(m.metric, m.before)} → {value_text(m.metric, m.after)}"
            f"{change} ({test})"
        )
    when = f"{d.at:%Y-%m-%d %H:%M} UTC"
    head = f"{d.template}: after {deployed_text(d)} ({when}), "
    tail = (
        " Observational: compare the versions in an experiment before concluding."
        if verdict == "worse"
        else " Observational."
    )
    now = _live(report, d.template_id, d.environment) if report is not None else None
    if now is not None and now.deployment_id != d.deployment_id and now.version != d.version:
        tail = f" Since then {_what_happened(now)}." + tail
    return head + "; ".join(parts) + "." + tail


def recommendations(report: TrendReport) -> list[str]:
    """Short plain-language findings, most urgent first: worsening trends (steepest first),
    changes for the worse after deployments, improvements, then what is stable or too thin."""
    by, env = report.by, report.environment
    # versions still live first: a trend of one already rolled back is history
    worse = sorted(
        (s for s in report.series if s.fit.verdict == "worse"),
        key=lambda s: (bool((f := _fate(s, report))[1]) and not f[2], -abs(s.fit.pct_per_day or 0)),
    )
    better = sorted(
        (s for s in report.series if s.fit.verdict == "better"),
        key=lambda s: -abs(s.fit.pct_per_day or 0),
    )
    out = [_trend_sentence(s, report) for s in worse]
    out += [t for cp in report.change_points if (t := _change_sentence(cp, "worse", report))]
    out += [_trend_sentence(s, report) for s in better]
    out += [t for cp in report.change_points if (t := _change_sentence(cp, "better", report))]
    stable: dict[str, list[str]] = {}
    thin: dict[str, list[str]] = {}
    for s in report.series:
        name = series_name(s, by, env)
        if s.fit.verdict == "stable":
            stable.setdefault(name, []).append(s.label)
        elif s.fit.verdict == "unknown" and s.points:
            thin.setdefault(name, []).append(s.label)
    for name, labels in stable.items():
        out.append(f"{name}: no significant trend in {', '.join(labels)} (p ≥ {report.alpha:g}).")
    for name, labels in thin.items():
        out.append(
            f"{name}: not enough data for a trend in {', '.join(labels)} "
            f"({MIN_FIT_BUCKETS} {report.bucket} buckets with at least "
            f"{report.min_bucket_events} events are needed, 20 for p95)."
        )
    if not report.series:
        out.append(
            "No events in this period: import a CSV on the Metrics screen or track calls "
            "with ws.track()."
        )
    return out

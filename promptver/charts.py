"""Altair charts of experiment results, for the dashboard and the exported reports.

The builders here are pure (pandas in, an Altair chart out), so the results view on the
Experiments screen (``ui/results.py``) and the reports (``promptver.reports``) draw the same
pictures. :func:`to_svg` renders a chart offline to an SVG string with ``vl-convert-python``
(Vega-Lite compiled and rendered in an embedded JavaScript engine: no browser, no network), then
checks the SVG against an allow-list so that a report can inline it safely.
"""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime

import altair as alt
import pandas as pd

from promptver.errors import PromptverError
from promptver.models.deployments import Deployment
from promptver.models.results import MetricResult

VERDICT_COLORS = {
    "better": "#2e7d32",
    "worse": "#c62828",
    "inconclusive": "#757575",
    "not tested": "#bdbdbd",
}
KIND_ORDER = ["analytic", "bootstrap (percentile)", "bootstrap (BCa)"]
#: height of one comparison's row in the forest plots (three interval lanes)
LANES_PX = 66
#: colours of the per-variant interval lanes (analytic, bootstrap)
MEAN_KINDS = ["analytic", "bootstrap (percentile)"]


# ---- forest plots of effects ------------------------------------------------------------------


def forest_frame(m: MetricResult, scale: str = "abs") -> pd.DataFrame:
    """Long-format intervals of one metric's comparisons for the forest plot.

    ``scale="abs"``: the difference with the analytic, percentile and BCa intervals;
    ``scale="rel"``: the relative lift with the delta-method and bootstrap intervals.
    """
    rows = []
    for c in m.comparisons:
        if scale == "abs":
            est = c.diff
            kinds = [
                ("analytic", c.ci_low, c.ci_high),
                ("bootstrap (percentile)", c.bootstrap_ci_low, c.bootstrap_ci_high),
                ("bootstrap (BCa)", c.bootstrap_bca_ci_low, c.bootstrap_bca_ci_high),
            ]
        else:
            est = c.relative_lift
            kinds = [
                ("analytic", c.relative_lift_ci_low, c.relative_lift_ci_high),
                (
                    "bootstrap (percentile)",
                    c.bootstrap_relative_lift_ci_low,
                    c.bootstrap_relative_lift_ci_high,
                ),
            ]
        label = c.treatment if scale == "abs" else f"{m.metric} · {c.treatment}"
        for kind, lo, hi in kinds:
            if est is None or lo is None or hi is None:
                continue
            rows.append(
                {
                    "comparison": label,
                    "metric": m.metric,
                    "treatment": c.treatment,
                    "interval": kind,
                    "estimate": est,
                    "low": lo,
                    "high": hi,
                    "verdict": c.verdict,
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "comparison",
            "metric",
            "treatment",
            "interval",
            "estimate",
            "low",
            "high",
            "verdict",
        ],
    )


def forest_chart(frame: pd.DataFrame, title: str, axis_format: str = ",.4~g") -> alt.LayerChart:
    """Intervals as rules (one row per comparison, one lane per kind), the estimate as a dot."""
    y = alt.Y("comparison:N", title=None, sort=None, axis=alt.Axis(labelLimit=260))
    lane = alt.YOffset("interval:N", sort=KIND_ORDER, scale=alt.Scale(domain=KIND_ORDER))
    base = alt.Chart(frame)
    rules = base.mark_bar(height=5, cornerRadius=2).encode(
        x=alt.X("low:Q", title=title, axis=alt.Axis(format=axis_format, tickCount=8)),
        x2="high:Q",
        y=y,
        yOffset=lane,
        color=alt.Color(
            "interval:N",
            sort=KIND_ORDER,
            title="interval",
            scale=alt.Scale(domain=KIND_ORDER, range=["#1565c0", "#ef6c00", "#8e24aa"]),
            legend=alt.Legend(orient="top"),
        ),
        tooltip=[
            "comparison",
            "interval",
            alt.Tooltip("estimate:Q", format=axis_format),
            alt.Tooltip("low:Q", format=axis_format),
            alt.Tooltip("high:Q", format=axis_format),
        ],
    )
    points = base.mark_point(filled=True, size=70, shape="diamond", opacity=1).encode(
        x="estimate:Q",
        y=y,
        yOffset=lane,
        fill=alt.Fill(
            "verdict:N",
            title="verdict",
            scale=alt.Scale(domain=list(VERDICT_COLORS), range=list(VERDICT_COLORS.values())),
            legend=alt.Legend(orient="top"),
        ),
        stroke=alt.value("white"),
        tooltip=["comparison", "verdict", alt.Tooltip("estimate:Q", format=axis_format)],
    )
    zero = (
        alt.Chart(pd.DataFrame({"x": [0.0]}))
        .mark_rule(strokeDash=[4, 4], color="#424242")
        .encode(x="x:Q")
    )
    return (
        alt.layer(zero, rules, points)
        .properties(height=forest_height(frame))
        .resolve_scale(color="independent")
    )


def forest_height(frame: pd.DataFrame) -> int:
    """Height of a forest plot in pixels: a row of three interval lanes per comparison, plus the
    legends and the axis (Streamlit fits the whole chart, legends included, into this height)."""
    rows = max(1, frame["comparison"].nunique()) if len(frame) else 1
    return LANES_PX * rows + 170


# ---- per-variant means ------------------------------------------------------------------------


def means_frame(m: MetricResult) -> pd.DataFrame:
    """Long-format per-variant means of one metric with their analytic and bootstrap intervals."""
    rows = []
    for i, v in enumerate(m.variants):
        for kind, lo, hi in (
            ("analytic", v.ci_low, v.ci_high),
            ("bootstrap (percentile)", v.bootstrap_ci_low, v.bootstrap_ci_high),
        ):
            if v.mean is None or lo is None or hi is None:
                continue
            rows.append(
                {
                    "variant": v.name,
                    "role": "control" if i == 0 else "treatment",
                    "interval": kind,
                    "mean": v.mean,
                    "low": lo,
                    "high": hi,
                }
            )
    return pd.DataFrame(rows, columns=["variant", "role", "interval", "mean", "low", "high"])


def means_chart(frame: pd.DataFrame, title: str, axis_format: str = ",.4~g") -> alt.LayerChart:
    """Each variant's mean per event (a dot) with its analytic and bootstrap intervals (lanes)."""
    y = alt.Y("variant:N", title=None, sort=None, axis=alt.Axis(labelLimit=260))
    lane = alt.YOffset("interval:N", sort=MEAN_KINDS, scale=alt.Scale(domain=MEAN_KINDS))
    base = alt.Chart(frame)
    bars = base.mark_bar(height=5, cornerRadius=2).encode(
        x=alt.X(
            "low:Q",
            title=title,
            scale=alt.Scale(zero=False),
            axis=alt.Axis(format=axis_format, tickCount=8),
        ),
        x2="high:Q",
        y=y,
        yOffset=lane,
        color=alt.Color(
            "interval:N",
            sort=MEAN_KINDS,
            title="interval",
            scale=alt.Scale(domain=MEAN_KINDS, range=["#1565c0", "#ef6c00"]),
            legend=alt.Legend(orient="top"),
        ),
    )
    points = base.mark_point(filled=True, size=60, shape="diamond", opacity=1).encode(
        x="mean:Q", y=y, yOffset=lane, color=alt.value("#212121")
    )
    rows = max(1, frame["variant"].nunique()) if len(frame) else 1
    return alt.layer(bars, points).properties(height=44 * rows)


# ---- the deployment timeline --------------------------------------------------------------------


def _iso(t: datetime) -> str:
    """A timestamp as ISO 8601 in UTC, which Vega parses as UTC."""
    return pd.Timestamp(t).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def timeline_frame(deployments: Sequence[Deployment]) -> pd.DataFrame:
    """One row per deployment or rollback: when, where, what went live."""
    rows = [
        {
            "at": _iso(d.created_at),
            "environment": d.environment,
            "action": d.action,
            "label": d.label(),
            "id": d.id,
        }
        for d in deployments
    ]
    return pd.DataFrame(rows, columns=["at", "environment", "action", "label", "id"])


def timeline_chart(
    frame: pd.DataFrame,
    environments: Sequence[str],
    window: tuple[datetime | None, datetime | None],
) -> alt.LayerChart:
    """Deployments over time, one row per environment, the experiment's window shaded.

    Args:
        frame: from :func:`timeline_frame`.
        environments: rows in promotion order (environments of the frame not listed come after).
        window: the experiment's [start, end] (``end`` None: still running, shaded to the last
            deployment or the start); nothing is shaded without a start.
    """
    order = list(environments) + sorted(set(frame["environment"]) - set(environments))
    x = alt.X(
        "at:T",
        title="deployed (UTC)",
        scale=alt.Scale(type="utc", padding=24),
        # no fixed format: Vega picks dates or times by the span shown
        axis=alt.Axis(labelAngle=0, tickCount=6, labelOverlap=True),
    )
    y = alt.Y("environment:N", title=None, sort=order, scale=alt.Scale(domain=order))
    layers: list[alt.Chart] = []
    start, end = window
    if start is not None:
        stop = end or start
        band = pd.DataFrame({"start": [_iso(start)], "end": [_iso(max(start, stop))]})
        layers.append(
            alt.Chart(band)
            .mark_rect(color="#fff3e0", stroke="#ef6c00", strokeDash=[3, 3])
            .encode(x=alt.X("start:T", scale=alt.Scale(type="utc")), x2="end:T")
        )
    base = alt.Chart(frame)
    layers.append(
        base.mark_point(filled=True, size=90, opacity=1).encode(
            x=x,
            y=y,
            shape=alt.Shape(
                "action:N",
                title="action",
                scale=alt.Scale(domain=["deploy", "rollback"], range=["circle", "triangle-down"]),
                legend=alt.Legend(orient="top"),
            ),
            color=alt.Color(
                "action:N",
                title="action",
                scale=alt.Scale(domain=["deploy", "rollback"], range=["#1565c0", "#c62828"]),
                legend=alt.Legend(orient="top"),
            ),
        )
    )
    layers.append(
        base.mark_text(dy=-11, fontSize=10, color="#424242").encode(x=x, y=y, text="label:N")
    )
    return alt.layer(*layers).properties(height=max(1, len(order)) * 44)


# ---- rendering to SVG -------------------------------------------------------------------------


class ChartError(PromptverError):
    """A chart could not be rendered to a safe SVG."""


SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
#: what a chart may contain: shapes, text, groups and their definitions; no scripts, no foreign
#: objects, no images or links (which could load or open something), no animations
_ALLOWED_TAGS = frozenset(
    {
        "svg",
        "g",
        "path",
        "rect",
        "line",
        "text",
        "tspan",
        "circle",
        "ellipse",
        "polygon",
        "polyline",
        "title",
        "desc",
        "defs",
        "clipPath",
        "linearGradient",
        "radialGradient",
        "stop",
    }
)
_URL_RE = re.compile(r"url\(\s*(['\"]?)(.*?)\1\s*\)", re.IGNORECASE)
_counter = itertools.count(1)


def _local(name: str) -> tuple[str, str]:
    """``{ns}local`` → (ns, local)."""
    if name.startswith("{"):
        ns, _, local = name[1:].partition("}")
        return ns, local
    return "", name


def safe_svg(svg: str, *, prefix: str | None = None, title: str | None = None) -> str:
    """Check an SVG against the allow-list and make its ids unique; returns the serialised SVG.

    The SVG is parsed (it must be well-formed XML, so no text can smuggle markup), every element
    must be an allowed SVG shape, no attribute may be an event handler, and every reference
    (``href``, ``url(…)``) must point inside the SVG (``#id``). Ids get ``prefix`` so that several
    charts inlined in one page cannot capture each other's clip paths. ``title`` becomes the
    SVG's accessible ``<title>``. Text is re-escaped by the serialiser.

    Raises:
        ChartError: the SVG is not well-formed or contains something outside the allow-list.
    """
    prefix = prefix or f"c{next(_counter)}-"
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as exc:
        raise ChartError(f"the chart renderer returned malformed SVG ({exc})") from None

    def internal(ref: str) -> str:
        if not ref.startswith("#") or len(ref) < 2:
            raise ChartError(f"the chart refers to something outside itself: {ref[:80]!r}")
        return "#" + prefix + ref[1:]

    for el in root.iter():
        ns, tag = _local(el.tag)
        if ns != SVG_NS or tag not in _ALLOWED_TAGS:
            raise ChartError(f"the chart holds a <{tag}> element, which reports do not allow")
        for name, value in list(el.attrib.items()):
            _, attr = _local(name)
            low = attr.lower()
            if low.startswith("on"):
                raise ChartError(f"the chart holds an event handler ({attr})")
            if low == "id":
                el.set(name, prefix + value)
            elif low == "href":
                el.set(name, internal(value.strip()))
            elif "url(" in value.lower():
                el.set(name, _URL_RE.sub(lambda m: f"url({internal(m.group(2).strip())})", value))
            if low == "style" and ("@import" in value.lower() or "expression(" in value.lower()):
                raise ChartError("the chart holds a style that imports or evaluates something")
    if title:
        t = ET.Element(f"{{{SVG_NS}}}title")
        t.text = title
        root.insert(0, t)
        root.set("role", "img")
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    return ET.tostring(root, encoding="unicode")


def to_svg(chart: alt.TopLevelMixin, *, title: str | None = None, prefix: str | None = None) -> str:
    """Render an Altair chart to a checked, self-contained SVG string (offline).

    Raises:
        ChartError: the renderer failed or its output is not safe to inline.
    """
    import vl_convert as vlc  # imported here: it starts a JavaScript engine on first use

    try:
        # the builders here are fixed code whose specs the tests validate against the schema;
        # skipping the validation halves the cost of turning a chart into a spec
        svg = vlc.vegalite_to_svg(chart.to_dict(validate=False), allowed_base_urls=[])
    except (ValueError, RuntimeError) as exc:  # vl-convert reports failures as ValueError
        raise ChartError(f"the chart could not be rendered: {exc}") from None
    return safe_svg(svg, prefix=prefix, title=title)

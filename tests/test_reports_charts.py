"""promptver.charts: the chart builders shared by the dashboard and the reports, and the offline
SVG rendering with its allow-list."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import altair as alt
import pandas as pd
import pytest

from promptver.charts import (
    ChartError,
    means_chart,
    means_frame,
    safe_svg,
    timeline_chart,
    timeline_frame,
    to_svg,
)
from promptver.models import Deployment, MetricResult, VariantResult

SVG = "http://www.w3.org/2000/svg"
PAYLOAD = '<script>alert("x")</script> & <b onmouseover=alert(1)>'


def _svg(body: str, extra: str = "") -> str:
    return f'<svg xmlns="{SVG}" xmlns:xlink="http://www.w3.org/1999/xlink"{extra}>{body}</svg>'


@pytest.mark.parametrize(
    "body",
    [
        "<script>alert(1)</script>",
        '<foreignObject><div xmlns="http://www.w3.org/1999/xhtml">x</div></foreignObject>',
        '<image xlink:href="http://evil.example/x.png" width="1" height="1"/>',
        '<a href="http://evil.example"><text>x</text></a>',
        '<rect onclick="alert(1)" width="1" height="1"/>',
        '<rect fill="url(http://evil.example/p.svg#x)" width="1" height="1"/>',
        '<rect style="fill: url(//evil.example/a)" width="1" height="1"/>',
        '<animate attributeName="href" to="javascript:alert(1)"/>',
        '<use href="data:image/svg+xml,x"/>',
    ],
)
def test_the_allow_list_refuses_anything_that_runs_or_loads(body):
    with pytest.raises(ChartError):
        safe_svg(_svg(body))


def test_malformed_svg_is_refused():
    with pytest.raises(ChartError, match="malformed"):
        safe_svg("<svg><text>a < b</text></svg>")


def test_ids_and_internal_references_get_a_prefix_and_text_stays_escaped():
    body = (
        '<defs><clipPath id="clip1"><rect width="1" height="1"/></clipPath></defs>'
        '<g clip-path="url(#clip1)"><text>a &lt;b&gt; &amp; c</text></g>'
    )
    out = safe_svg(_svg(body), prefix="k-", title="T <i>")
    assert 'id="k-clip1"' in out and 'clip-path="url(#k-clip1)"' in out
    assert "a &lt;b&gt; &amp; c" in out and "<title>T &lt;i&gt;</title>" in out
    root = ET.fromstring(out)
    assert root.tag == f"{{{SVG}}}svg" and root.get("role") == "img"


def test_to_svg_renders_user_text_as_escaped_text():
    frame = pd.DataFrame({"name": [PAYLOAD, "plain"], "v": [1.0, 2.0]})
    chart = alt.Chart(frame).mark_bar().encode(x="v:Q", y=alt.Y("name:N", title=PAYLOAD))
    out = to_svg(chart.properties(title=PAYLOAD), title=PAYLOAD)
    root = ET.fromstring(out)
    texts = [el.text for el in root.iter() if el.tag in (f"{{{SVG}}}text", f"{{{SVG}}}title")]
    assert PAYLOAD in texts  # the label is the literal text …
    tags = {el.tag.split("}")[1] for el in root.iter()}
    assert "script" not in tags and "b" not in tags  # … never elements
    assert not [a for el in root.iter() for a in el.attrib if a.lower().startswith("on")]


def test_to_svg_refuses_external_data():
    chart = alt.Chart(alt.UrlData("http://127.0.0.1:9/data.csv")).mark_point().encode(x="a:Q")
    with pytest.raises(ChartError, match="could not be rendered"):
        to_svg(chart)


def _metric() -> MetricResult:
    def v(name, mean, lo, hi, blo, bhi):
        return VariantResult(
            name=name,
            users=10,
            events=12,
            mean=mean,
            std=1.0,
            ci_low=lo,
            ci_high=hi,
            weight=0.5,
            metric_users=10,
            bootstrap_ci_low=blo,
            bootstrap_ci_high=bhi,
        )

    return MetricResult(
        metric="quality_score",
        direction="higher",
        role="primary",
        binary=False,
        variants=[v("control", 0.5, 0.4, 0.6, 0.41, 0.59), v("b", None, None, None, None, None)],
        comparisons=[],
    )


def test_means_frame_holds_both_intervals_and_skips_undefined_means():
    frame = means_frame(_metric())
    assert list(frame.variant) == ["control", "control"]
    assert list(frame.interval) == ["analytic", "bootstrap (percentile)"]
    assert list(frame.low) == [0.4, 0.41] and list(frame.high) == [0.6, 0.59]
    means_chart(frame, "quality_score").to_dict()  # validates against the Vega-Lite schema
    out = to_svg(means_chart(frame, "quality_score"))
    assert "<svg" in out and "control" in out


def test_timeline_frame_and_chart():
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    deps = [
        Deployment(
            id=i + 1,
            template_id="t",
            template="qa",
            environment=env,
            action=action,
            commit=f"{i}" * 64,
            version=version,
            created_at=t0 + timedelta(days=i),
        )
        for i, (env, action, version) in enumerate(
            [
                ("staging", "deploy", "1.0.0"),
                ("production", "deploy", "1.0.0"),
                ("production", "rollback", None),
            ]
        )
    ]
    frame = timeline_frame(deps)
    assert list(frame["at"]) == [
        "2026-03-01T00:00:00.000000Z",
        "2026-03-02T00:00:00.000000Z",
        "2026-03-03T00:00:00.000000Z",
    ]
    assert list(frame.label) == ["1.0.0", "1.0.0", "2222222222"]
    chart = timeline_chart(frame, ["development", "staging", "production"], (t0, None))
    chart.to_dict()  # validates against the Vega-Lite schema
    out = to_svg(chart)
    root = ET.fromstring(out)
    labels = [el.text for el in root.iter() if el.tag == f"{{{SVG}}}text"]
    assert {"development", "staging", "production", "1.0.0", "2222222222"} <= set(labels)

"""A finished experiment full of hostile text, for the report tests (unit, CLI, page, browser).

Every user-written field carries markup or formula payloads: the experiment's name, description,
hypothesis and stop reason, the variants' names, the treatment's template text (with backtick
runs that would close a short Markdown fence) and its commit message.
"""

from __future__ import annotations

import numpy as np

from tests.experiments_helpers import make_branch, seed_lab

NAME = '=HYPERLINK("http://evil.example")<script>alert(1)</script>'
DESCRIPTION = (
    "<img src=x onerror=alert(2)> [click](javascript:alert(3)) ![px](http://evil.example/p.png)\n"
    '<a href="http://evil.example">a</a> | pipe | @SUM(1+1)\n# not a heading'
)
HYPOTHESIS = (
    '+cmd <iframe src="http://evil.example"></iframe> **bold** <style>@import url(http://evil'
    ".example/x.css)</style>"
)
SALT = "pipe|salt ``` <i>x</i>"
STOP_REASON = "=1+1 </td><script>alert(4)</script>"
CONTROL = "-1+1"
TREATMENT = "<b onmouseover=alert(5)>@evil</b>"
BRANCH = "payload"
TEMPLATE_TEXT = (
    "Answer {question} </pre><script>alert(6)</script> using {context}.\n"
    "````\n```\n~~~\n[x](javascript:alert(7)) <!-- c --> &amp; &lt;\n=cmd|' /C calc'!A0"
)
PAYLOADS = [NAME, TREATMENT, "<script>alert(1)</script>", "<script>alert(6)</script>"]


def build_hostile(ws, n: int = 160, stop: bool = True, seed: int = 11):
    """qa-basic with a payload branch; an experiment on it with ``n`` users per arm, routed by
    ``get_prompt`` and tracked; stopped (final results frozen) unless ``stop`` is False.

    Returns the experiment as stored after the last step.
    """
    seed_lab(ws)
    make_branch(ws, "qa-basic", BRANCH, TEMPLATE_TEXT)
    ws.deployments.deploy("qa-basic", "1.0.0", "staging", author="dana", note="<b>first</b>")
    ws.deployments.deploy("qa-basic", "1.1.0", "production", author="eve")
    exp = ws.experiments.create(
        {
            "name": NAME,
            "description": DESCRIPTION,
            "hypothesis": HYPOTHESIS,
            "template": "qa-basic",
            "environment": "production",
            "variants": [
                {"name": CONTROL, "ref": "1.0.0", "weight": 50},
                {"name": TREATMENT, "ref": BRANCH, "weight": 50},
            ],
            "metrics": ["quality_score", "latency_ms", {"name": "cost_usd", "guardrail": True}],
            "minimum_sample_size": 50,
            "alpha": 0.05,
            "salt": SALT,
        },
        author="<i>ana</i>",
    )
    ws.experiments.start(exp.id, author="ana")
    ws.deployments.deploy("qa-basic", "1.0.0", "production", author="eve", note="mid-test")
    rng = np.random.default_rng(seed)
    for i in range(2 * n):
        p = ws.get_prompt("qa-basic", env="production", user_id=f"user-{i}")
        better = p.variant == TREATMENT
        ws.track(
            p,
            quality_score=float(np.clip(rng.normal(0.62 + (0.06 if better else 0), 0.1), 0, 1)),
            latency_ms=float(rng.lognormal(6.3 + (0.1 if better else 0), 0.3)),
            cost_usd=float(rng.gamma(2, 0.001)),
        )
    ws.metrics.flush()
    if stop:
        ws.experiments.stop(exp.id, reason=STOP_REASON, author="ana")
    return ws.experiments.get(exp.id)

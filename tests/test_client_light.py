"""The remote client is light (no database, statistics or web server in the process) and the
endpoint it reads, ``GET /prompts/{ref}/live``, answers what ``get_prompt`` answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.api_helpers import api_fixture, problem, serve_fixture  # noqa: F401 - fixtures
from tests.experiments_helpers import seed_lab, spec

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "pandas", "scipy", "statsmodels", "duckdb", "fastapi", "uvicorn", "streamlit")

PROBE = """
import json, sys, httpx
import promptver.client
from promptver.client import Client

LIVE = {"template_id": "t1", "name": "qa", "version": "1.0.0", "commit": "c" * 64,
        "content": "Hi {name}", "variables": ["name"], "metadata": {}, "environment": "prod",
        "user_id": None, "variant": None, "experiment_id": None, "max_render_chars": 1000,
        "kind": "text", "chat_messages": None, "config": {}}
calls = []
def answer(request):
    calls.append(str(request.url))
    return httpx.Response(200, json=LIVE)
c = Client("http://prompts.invalid", transport=httpx.MockTransport(answer), ttl=60)
texts = [c.get_prompt("qa", "prod").text(name="Ada") for _ in range(3)]
c.close(timeout=0)
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1:]))
print(json.dumps({"texts": texts, "calls": calls, "heavy": heavy}))
"""


def test_import_and_a_cached_get_prompt_load_nothing_heavy():
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *HEAVY],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    got = json.loads(out.stdout)
    assert got["texts"] == ["Hi Ada"] * 3
    assert got["calls"] == ["http://prompts.invalid/api/v1/prompts/qa/live?env=prod"]
    assert got["heavy"] == []


def test_live_answers_what_get_prompt_answers(ws, api):
    seed_lab(ws)
    ws.deployments.deploy("qa-basic", "1.1.0", "production", author="t")
    exp = ws.experiments.create(spec(), author="t")
    ws.experiments.start(exp.id, author="t")
    for user in ("u1", "u2", "u3", None):
        params = {"env": "production"} | ({"user_id": user} if user else {})
        r = api.get("/prompts/qa-basic/live", params=params)
        assert r.status_code == 200, r.text
        want = ws.get_prompt("qa-basic", "production", user_id=user).model_dump(mode="json")
        assert r.json() == want


def test_live_refusals_are_problems_naming_what_is_wrong(ws, api):
    seed_lab(ws)
    assert (
        "production"
        in problem(
            api.get("/prompts/qa-basic/live", params={"env": "production"}), 404, "not-found"
        )["detail"]
    )
    problem(api.get("/prompts/nope/live", params={"env": "production"}), 404, "not-found")
    body = problem(api.get("/prompts/qa-basic/live"), 422, "invalid-request")
    assert [p["field"] for p in body["problems"]] == ["env"]
    body = problem(
        api.get("/prompts/qa-basic/live?env=production&user_id="), 422, "validation-error"
    )
    assert [p["field"] for p in body["problems"]] == ["user_id"]

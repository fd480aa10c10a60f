"""The HTTP API, endpoint by endpoint, through a real server on loopback.

Each test starts uvicorn on a free port over a fresh database and calls it with httpx. Error
bodies are checked as RFC 9457 problems, and their ``detail`` against what the CLI prints for
the same operation on the same file.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from promptver.versioning import utcnow
from tests.api_helpers import (
    EXPERIMENT,
    api_fixture,  # noqa: F401 - fixture
    fields,
    open_ws,
    problem,
    seed,
    serve_fixture,  # noqa: F401 - fixture
)

VARS = {"question": "Why?", "context": "Because."}


def assert_close(a, b, path: str = "") -> None:
    """Equal JSON values, numbers within 1e-9 relative (DuckDB's parallel sums may differ in
    the last bits between two runs of the same analysis)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), (path, a, b)
    else:
        assert a == b, (path, a, b)


def cli_error(result) -> str:
    """The message of a CLI ``error: …`` line."""
    assert result.code == 1, (result.code, result.out, result.err)
    return result.err.strip().removeprefix("error: ")


# ---- templates ------------------------------------------------------------------------------


def test_templates_create_list_get_update(api, cli):
    assert api.get("/prompts").json() == []
    r = api.post(
        "/prompts",
        json={
            "name": "qa",
            "content": "Answer {question} using {context}.",
            "category": "support",
            "tags": ["faq"],
            "description": "first",
            "author": "ana",
            "message": "start",
        },
    )
    assert r.status_code == 201, r.text
    t = r.json()
    assert r.headers["location"] == f"/api/v1/prompts/{t['id']}"
    # the contract's create shape, plus the rest of the template
    assert {k: t[k] for k in ("name", "version", "variables")} == {
        "name": "qa",
        "version": "1.0.0",
        "variables": ["question", "context"],
    }
    assert len(t["commit"]) == 64 and t["created_by"] == "ana"

    listed = api.get("/prompts").json()
    assert [x["name"] for x in listed] == ["qa"]
    assert api.get("/prompts", params={"category": "other"}).json() == []
    assert len(api.get("/prompts", params={"tag": "faq"}).json()) == 1
    assert len(api.get("/prompts", params={"search": "using"}).json()) == 1

    r = api.put("/prompts/qa", json={"content": "Answer {question} briefly.", "author": "ben"})
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["variables"]) == ("1.1.0", ["question"])
    r = api.put("/prompts/qa", json={"content": "Fix {question}.", "bump": "major"})
    assert r.json()["version"] == "2.0.0"

    head = api.get("/prompts/qa").json()
    assert (head["version"], head["content"]) == ("2.0.0", "Fix {question}.")
    old = api.get("/prompts/qa", params={"version": "1.0.0"}).json()
    assert old["content"] == "Answer {question} using {context}."
    by_id = api.get(f"/prompts/{t['id']}").json()
    assert by_id["commit"] == head["commit"]

    # the same template as the CLI shows it (datetimes aside: both are ISO 8601 in UTC)
    shown = cli("template", "show", "qa", json=True).json()
    for key in ("id", "name", "version", "commit", "content", "variables", "tags", "category"):
        assert shown[key] == head[key]


def test_template_errors_are_problems_with_the_cli_messages(api, cli):
    api.post("/prompts", json={"name": "qa", "content": "Answer {question}."})

    body = problem(
        api.post("/prompts", json={"name": "qa", "content": "x"}), 422, "validation-error"
    )
    assert fields(body) == ["name"]
    assert body["detail"] == cli_error(cli("template", "create", "qa", "--content", "x"))

    body = problem(
        api.post("/prompts", json={"name": "bad", "content": "Hi {name!r}"}),
        422,
        "validation-error",
    )
    assert body["problems"][0]["field"] == "content"
    assert body["problems"][0]["line"] == 1 and body["problems"][0]["column"]
    assert body["detail"] == cli_error(cli("template", "create", "bad", "--content", "Hi {name!r}"))

    body = problem(api.get("/prompts/nope"), 404, "not-found")
    assert body["detail"] == "unknown template 'nope'"
    assert body["detail"] == cli_error(cli("template", "show", "nope"))
    body = problem(api.get("/prompts/qa", params={"version": "9.9.9"}), 404, "not-found")
    assert body["detail"] == cli_error(cli("template", "show", "qa", "--version", "9.9.9"))

    head = api.get("/prompts/qa").json()["commit"]
    api.put("/prompts/qa", json={"content": "Answer {question} now."})
    body = problem(
        api.put("/prompts/qa", json={"content": "Other {question}.", "expected_head": head}),
        409,
        "conflict",
    )
    assert "moved" in body["detail"] or "head" in body["detail"]
    body = problem(api.put("/prompts/qa", json={}), 422, "validation-error")
    assert fields(body) == ["content"]
    body = problem(
        api.put("/prompts/qa", json={"content": "Answer {question} now."}), 422, "validation-error"
    )
    assert body["detail"].startswith("nothing to commit")

    # request validation: the body's schema, by field
    # neither content (text) nor messages (chat): the service names what is missing
    body = problem(api.post("/prompts", json={"name": "x"}), 422, "validation-error")
    assert fields(body) == ["content"] and "messages" in body["detail"]
    body = problem(
        api.post("/prompts", json={"name": "x", "content": "y", "nope": 1}), 422, "invalid-request"
    )
    assert fields(body) == ["nope"]
    body = problem(
        api.post("/prompts", content=b'{"name": ', headers={"content-type": "application/json"}),
        422,
        "invalid-request",
    )
    assert "not valid JSON" in body["detail"]
    body = problem(
        api.put("/prompts/qa", json={"bump": "huge", "content": "a"}), 422, "invalid-request"
    )
    assert fields(body) == ["bump"]

    # a lone surrogate escape is valid JSON syntax but not Unicode text: refused, by field
    for url, raw in (
        ("/prompts", '{"name": "s", "content": "Hi \\ud800 {x}"}'),
        ("/prompts/qa/render", '{"variables": {"question": "a\\udc00"}}'),
    ):
        body = problem(
            api.post(url, content=raw, headers={"content-type": "application/json"}),
            422,
            "invalid-request",
        )
        assert "lone surrogate" in body["detail"]
    assert fields(body) == ["variables.question"]
    # a proper pair is fine
    r = api.post(
        "/prompts/qa/render",
        content='{"variables": {"question": "\\ud83d\\ude00"}}',
        headers={"content-type": "application/json"},
    )
    assert r.json()["text"] == "Answer 😀 now."

    # unknown endpoints and methods are problems too
    body = problem(api.get("/nowhere"), 404, "not-found")
    assert "no such endpoint" in body["detail"]
    body = problem(api.delete("/prompts"), 405, "method-not-allowed")
    assert "DELETE" in body["detail"]


def test_names_with_slashes_and_ids_are_refs(api):
    r = api.post("/prompts", json={"name": "team/support/qa", "content": "Hi {name}."})
    assert r.status_code == 201
    tid = r.json()["id"]
    assert api.get("/prompts/team/support/qa").json()["id"] == tid
    assert api.get("/prompts/team%2Fsupport%2Fqa").json()["id"] == tid
    r = api.post("/prompts/team/support/qa/render", json={"variables": {"name": "Ada"}})
    assert r.json()["text"] == "Hi Ada."
    r = api.put("/prompts/team/support/qa", json={"content": "Hello {name}."})
    assert r.json()["version"] == "1.1.0"
    r = api.post("/prompts/team/support/qa/deploy", json={"version": "1.0.0", "env": "staging"})
    assert r.status_code == 201
    assert [d["version"] for d in api.get("/prompts/team/support/qa/deployments").json()] == [
        "1.0.0"
    ]


# ---- rendering ------------------------------------------------------------------------------


def test_render_matches_the_cli(api, ws, cli):
    seed(ws)
    r = api.post("/prompts/qa-basic/render", json={"variables": VARS})
    assert r.status_code == 200
    out = r.json()
    assert out == {
        "text": "Answer Why? briefly using Because..",
        "version": "1.1.0",
        "commit": ws.templates.get("qa-basic").commit,
        "variant": None,
    }
    argv = ["render", "qa-basic", "--var", "question=Why?", "--var", "context=Because."]
    assert out == cli(*argv, json=True).json()

    old = api.post("/prompts/qa-basic/render", json={"variables": VARS, "version": "1.0.0"})
    assert old.json() == cli(*argv, "--version", "1.0.0", json=True).json()
    branch = api.post(
        "/prompts/qa-basic/render", json={"variables": VARS, "version": "concise-tone"}
    )
    assert branch.json()["text"] == "Answer Why? in one sentence using Because.."

    # nothing deployed yet: the same 404 as the CLI and get_prompt
    body = problem(
        api.post("/prompts/qa-basic/render", json={"variables": VARS, "env": "production"}),
        404,
        "not-found",
    )
    assert body["detail"] == cli_error(cli(*argv, "--env", "production"))

    assert (
        api.post(
            "/prompts/qa-basic/deploy", json={"version": "1.0.0", "env": "production"}
        ).status_code
        == 201
    )
    live = api.post(
        "/prompts/qa-basic/render", json={"variables": VARS, "env": "production", "user_id": "u1"}
    )
    assert live.json()["version"] == "1.0.0"
    assert live.json() == cli(*argv, "--env", "production", "--user-id", "u1", json=True).json()


def test_render_errors(api, ws, cli):
    seed(ws)
    url = "/prompts/qa-basic/render"
    body = problem(
        api.post(url, json={"variables": VARS, "version": "1.0.0", "env": "production"}),
        422,
        "validation-error",
    )
    assert fields(body) == ["version"]
    body = problem(
        api.post(url, json={"variables": VARS, "user_id": "u1"}), 422, "validation-error"
    )
    assert fields(body) == ["user_id"]
    body = problem(api.post(url, json={"variables": {"question": "q"}}), 422, "render-error")
    assert body["detail"] == "missing variable: context"
    assert body["detail"] == cli_error(cli("render", "qa-basic", "--var", "question=q"))
    body = problem(api.post(url, json={"variables": {**VARS, "extra": 1}}), 422, "render-error")
    assert body["detail"].startswith("unknown variable: extra")
    r = api.post(url, json={"variables": {**VARS, "extra": 1}, "strict": False})
    assert r.status_code == 200
    # JSON numbers and booleans fill placeholders as text
    r = api.post(url, json={"variables": {"question": 42, "context": True}})
    assert r.json()["text"] == "Answer 42 briefly using True."

    api.post("/prompts/qa-basic/deploy", json={"version": "1.1.0", "env": "production"})
    body = problem(api.post(url, json={"variables": VARS, "env": "prod"}), 404, "not-found")
    assert "did you mean 'production'?" in body["detail"]
    body = problem(
        api.post(url, json={"variables": VARS, "env": "production", "user_id": ""}),
        422,
        "validation-error",
    )
    assert fields(body) == ["user_id"]
    body = problem(
        api.post(url, json={"variables": {"question": {"a": 1}}}), 422, "invalid-request"
    )
    assert fields(body)[0].startswith("variables.question")
    problem(api.post("/prompts/nope/render", json={}), 404, "not-found")


# ---- deployments ----------------------------------------------------------------------------


def test_deploy_rollback_and_history(api, ws, cli):
    seed(ws)
    d = api.post(
        "/prompts/qa-basic/deploy", json={"version": "1.0.0", "env": "production", "note": "first"}
    )
    assert d.status_code == 201, d.text
    first = d.json()
    assert (first["version"], first["environment"], first["action"]) == (
        "1.0.0",
        "production",
        "deploy",
    )
    assert (first["author"], first["note"]) == ("api", "first")

    body = problem(
        api.post("/prompts/qa-basic/deploy", json={"version": "1.0.0", "env": "production"}),
        422,
        "validation-error",
    )
    assert "already live" in body["detail"]
    assert body["detail"] == cli_error(cli("deploy", "qa-basic", "1.0.0", "--env", "production"))

    second = api.post(
        "/prompts/qa-basic/deploy",
        json={"version": "1.1.0", "env": "production", "author": "ben"},
    ).json()
    assert second["replaced_version"] == "1.0.0" and second["author"] == "ben"
    render = {"variables": VARS, "env": "production"}
    # the server's own deploy reaches its get_prompt cache at once
    assert api.post("/prompts/qa-basic/render", json=render).json()["version"] == "1.1.0"

    back = api.post("/prompts/qa-basic/rollback", json={"env": "production"})
    assert back.status_code == 201
    assert (back.json()["action"], back.json()["version"]) == ("rollback", "1.0.0")
    assert api.post("/prompts/qa-basic/render", json=render).json()["version"] == "1.0.0"
    to = api.post("/prompts/qa-basic/rollback", json={"env": "production", "to": "1.1.0"}).json()
    assert (to["version"], to["rollback_mode"]) == ("1.1.0", "named")
    api.post("/prompts/qa-basic/deploy", json={"version": "1.0.0", "env": "staging"})

    history = api.get("/prompts/qa-basic/deployments").json()
    assert [(h["environment"], h["version"]) for h in history] == [
        ("staging", "1.0.0"),
        ("production", "1.1.0"),
        ("production", "1.0.0"),
        ("production", "1.1.0"),
        ("production", "1.0.0"),
    ]
    assert [h["id"] for h in history] == [
        h["id"] for h in cli("deployments", "qa-basic", json=True).json()
    ]
    prod = api.get("/prompts/qa-basic/deployments", params={"env": "production"}).json()
    assert len(prod) == 4
    assert len(api.get("/prompts/qa-basic/deployments", params={"limit": 2}).json()) == 2

    body = problem(
        api.get("/prompts/qa-basic/deployments", params={"limit": 0}), 422, "invalid-request"
    )
    assert body["problems"][0]["in"] == "query" and fields(body) == ["limit"]
    twice = api.get("/prompts/qa-basic/deployments", params=[("env", "staging"), ("env", "x")])
    assert fields(problem(twice, 422, "invalid-request")) == ["env"]
    big = api.get("/prompts/qa-basic/deployments", params={"limit": 10**23})
    assert fields(problem(big, 422, "invalid-request")) == ["limit"]
    problem(api.get("/prompts/qa-basic/deployments", params={"env": "nope"}), 404, "not-found")
    body = problem(
        api.post("/prompts/qa-basic/deploy", json={"version": "7.0.0", "env": "staging"}),
        404,
        "not-found",
    )
    assert body["detail"] == cli_error(cli("deploy", "qa-basic", "7.0.0", "--env", "staging"))
    body = problem(
        api.post(
            "/prompts/qa-basic/deploy", json={"version": "1.1.0", "env": "staging", "force": True}
        ),
        422,
        "validation-error",
    )
    assert "reason" in body["detail"]
    problem(api.post("/prompts/qa-basic/rollback", json={"env": "development"}), 404, "not-found")


def test_a_refused_deployment_lists_the_gates_problems(serve, db_path):
    ws = open_ws(db_path, deployment__rules={"production": {"require_previous": True}})
    try:
        seed(ws)
        api = serve(ws)
        body = problem(
            api.post("/prompts/qa-basic/deploy", json={"version": "1.1.0", "env": "production"}),
            422,
            "deployment-refused",
        )
        assert body["problems"] and "staging" in body["detail"]
        assert api.get("/prompts/qa-basic/deployments").json() == []
    finally:
        ws.close()


# ---- experiments ----------------------------------------------------------------------------


def test_experiment_lifecycle_routing_events_and_results(api, ws, cli):
    seed(ws)
    api.post("/prompts/qa-basic/deploy", json={"version": "1.1.0", "env": "production"})
    r = api.post("/prompts/qa-basic/experiments", json={**EXPERIMENT, "author": "eve"})
    assert r.status_code == 201, r.text
    exp = r.json()
    eid = exp["id"]
    assert (exp["status"], exp["template"], exp["created_by"]) == ("draft", "qa-basic", "eve")
    assert [v["name"] for v in exp["variants"]] == ["control", "concise"]
    assert api.get(f"/experiments/{eid}").json()["id"] == eid
    assert api.get(f"/experiments/{exp['name']}").json()["id"] == eid
    assert [e["id"] for e in api.get("/experiments").json()] == [eid]
    assert api.get("/experiments", params={"status": "running"}).json() == []

    started = api.post(f"/experiments/{eid}/start")
    assert started.status_code == 200 and started.json()["status"] == "running"
    body = problem(api.post(f"/experiments/{eid}/start"), 409, "conflict")
    assert body["detail"] == cli_error(cli("experiment", "start", eid))

    # users are routed as the CLI's route command says, and events go in attributed (inside
    # the experiment's window, which opened when it started)
    stamp = utcnow().isoformat()
    events = []
    seen = set()
    for i in range(24):
        user = f"u{i}"
        out = api.post(
            "/prompts/qa-basic/render",
            json={"variables": VARS, "env": "production", "user_id": user},
        ).json()
        assert out["variant"] == cli("route", eid, user, json=True).json()["variant"]
        seen.add(out["variant"])
        events.append(
            {
                "timestamp": stamp,
                "template": "qa-basic",
                "user_id": user,
                "experiment": eid,
                "variant": out["variant"],
                "quality_score": 0.4 + (0.3 if out["variant"] == "concise" else 0) + i / 100,
                "latency_ms": 100 + i,
                "event_id": f"e{i}",
            }
        )
    assert seen == {"control", "concise"}
    r = api.post("/events", json={"events": events})
    assert r.status_code == 200, r.text
    assert r.json()["rows_imported"] == 24

    res = api.get(f"/experiments/{eid}/results")
    assert res.status_code == 200, res.text
    results = res.json()
    for key in (
        "experiment_id",
        "status",
        "metric",
        "alpha",
        "variants",
        "comparisons",
        "srm",
        "sample_size_ok",
        "winner",
    ):
        assert key in results
    assert (results["metric"], results["status"]) == ("quality_score", "running")
    assert sum(v["users"] for v in results["variants"]) == 24
    on_cli = cli("experiment", "results", eid, json=True).json()
    # the same analysis as the CLI's
    assert_close(results["variants"], on_cli["variants"])
    assert_close(results["comparisons"], on_cli["comparisons"])
    lat = api.get(f"/experiments/{eid}/results", params={"metric": "latency_ms"}).json()
    assert lat["metric"] == "latency_ms"
    problem(
        api.get(f"/experiments/{eid}/results", params={"metric": "nope"}), 422, "validation-error"
    )

    stopped = api.post(f"/experiments/{eid}/stop", json={"author": "eve"})
    assert stopped.json()["status"] == "completed"
    problem(api.post(f"/experiments/{eid}/stop"), 409, "conflict")
    assert api.get(f"/experiments/{eid}/results").json()["status"] == "completed"
    # routing ended: everyone gets the deployed version again
    out = api.post(
        "/prompts/qa-basic/render", json={"variables": VARS, "env": "production", "user_id": "u1"}
    ).json()
    assert (out["variant"], out["version"]) == (None, "1.1.0")


def test_experiment_errors(api, ws, cli, tmp_path):
    seed(ws)
    ws.templates.create("other", "Hi {name}.")
    url = "/prompts/qa-basic/experiments"
    one = {**EXPERIMENT, "variants": EXPERIMENT["variants"][:1]}
    body = problem(api.post(url, json=one), 422, "validation-error")
    assert "variants" in fields(body)
    # the same message as the CLI for the same experiment file
    import json

    path = tmp_path / "exp.json"
    path.write_text(json.dumps({**one, "template": "qa-basic"}))
    assert body["detail"] == cli_error(cli("experiment", "create", "--file", str(path)))

    body = problem(
        api.post(url, json={**EXPERIMENT, "metrics": ["nope_metric"]}), 422, "validation-error"
    )
    assert any(f and f.startswith("metrics") for f in fields(body))
    body = problem(api.post(url, json={**EXPERIMENT, "template": "other"}), 422, "validation-error")
    assert fields(body) == ["template"]
    assert api.post(url, json={**EXPERIMENT, "template": "qa-basic"}).status_code == 201
    body = problem(
        api.post(url, json={**EXPERIMENT, "name": "Concise-VS-control"}), 422, "validation-error"
    )
    assert fields(body) == ["name"]
    problem(api.post("/prompts/nope/experiments", json=EXPERIMENT), 404, "not-found")
    body = problem(api.post(url, json={**EXPERIMENT, "alpha": "high"}), 422, "invalid-request")
    assert fields(body) == ["alpha"]
    problem(api.post("/experiments/nope/start"), 404, "not-found")
    problem(api.post("/experiments/nope/stop"), 404, "not-found")
    problem(api.get("/experiments/nope/results"), 404, "not-found")
    problem(api.get("/experiments/nope"), 404, "not-found")
    body = problem(api.get("/experiments", params={"status": "paused"}), 422, "validation-error")
    assert fields(body) == ["status"]


# ---- health, busy, bugs ---------------------------------------------------------------------


def test_health_reports_version_and_database(api, ws, db_path):
    from promptver import __version__

    r = api.get("/health")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok" and h["version"] == __version__ and h["auth"] is False
    assert h["database"]["path"] == str(db_path) and h["database"]["ok"] is True
    assert h["database"]["migrations"] >= 4 and h["database"]["size_bytes"] > 0

    db_path.rename(db_path.with_suffix(".moved"))
    r = api.get("/health")
    assert r.status_code == 503
    h = r.json()
    assert h["status"] == "unavailable" and h["database"]["exists"] is False
    assert "does not exist" in h["database"]["detail"]
    assert not db_path.exists()  # the probe did not create an empty file


HOLDER = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
sys.stdin.readline()
"""


def test_a_busy_database_is_409_with_retry_after(serve, db_path):
    ws = open_ws(db_path, storage__busy_timeout=0.3)
    holder = None
    try:
        seed(ws)
        ws.deployments.deploy("qa-basic", "1.1.0", "production")
        api = serve(ws)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(db_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout.readline().strip() == "held"
        r = api.post("/prompts", json={"name": "new", "content": "Hi {x}."})
        body = problem(r, 409, "database-busy")
        assert body["detail"].startswith("database busy")
        assert r.headers["retry-after"] == "1"
        problem(api.get("/prompts"), 409, "database-busy")
        # render's cache is cold: it waits for the file in a worker thread, then gives up too
        render = {"variables": {"question": "q", "context": "c"}, "env": "production"}
        problem(api.post("/prompts/qa-basic/render", json=render), 409, "database-busy")
        h = api.get("/health")
        assert h.status_code == 503 and "busy" in h.json()["database"]["detail"]
        holder.communicate("\n", timeout=30)
        holder = None
        assert api.post("/prompts", json={"name": "new", "content": "Hi {x}."}).status_code == 201
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        ws.close()


def test_a_bug_is_a_500_problem_and_the_server_goes_on(api, ws, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(ws.templates, "list", broken)
    body = problem(api.get("/prompts"), 500, "internal-error")
    assert "RuntimeError" in body["detail"] and "secret" not in body["detail"]
    assert api.get("/health").status_code == 200


def test_docs_pages_are_not_offered(api):
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        problem(api.get(path), 404, "not-found")
    r = api.get("/openapi.json")
    assert r.status_code == 200 and "cdn" not in r.text.lower()


# ---- concurrency ----------------------------------------------------------------------------


def test_many_threads_render_while_deployments_change(api, ws):
    seed(ws)
    api.post("/prompts/qa-basic/deploy", json={"version": "1.0.0", "env": "production"})
    errors: list[str] = []
    versions: set[str] = set()
    lock = threading.Lock()

    def reader(n: int) -> None:
        import httpx

        with httpx.Client(base_url=str(api.base_url), timeout=60) as c:
            for i in range(30):
                r = c.post(
                    "/prompts/qa-basic/render",
                    json={"variables": VARS, "env": "production", "user_id": f"u{n}-{i}"},
                )
                with lock:
                    if r.status_code != 200:
                        errors.append(r.text)
                    else:
                        versions.add(r.json()["version"])

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for i in range(4):
        if i % 2 == 0:
            r = api.post("/prompts/qa-basic/deploy", json={"version": "1.1.0", "env": "production"})
        else:
            r = api.post("/prompts/qa-basic/rollback", json={"env": "production"})
        assert r.status_code == 201, r.text
    for t in threads:
        t.join()
    assert errors == []
    assert versions <= {"1.0.0", "1.1.0"}
    final = api.post("/prompts/qa-basic/render", json={"variables": VARS, "env": "production"})
    assert final.json()["version"] == "1.0.0"


def test_the_database_opens_from_many_threads_at_once(ws):
    """Request threads open and close their own connections; a connect racing the close of
    the last one used to fail as "Unique file handle conflict" (reported as a damaged file)."""
    from promptver.errors import PromptverError

    errors: list[str] = []

    def work() -> None:
        for _ in range(600):  # open and close as fast as possible: the race is at the edges
            try:
                with ws.db.read():
                    pass
            except PromptverError as exc:
                errors.append(exc.message)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_cache_only_blocks_raise_before_touching_anything(ws):
    from promptver.store.db import WouldBlock

    ws.templates.create("qa", "Hi {x}.")
    ws.deployments.deploy("qa", "1.0.0", "production")
    with ws.db.cache_only(), pytest.raises(WouldBlock):
        ws.get_prompt("qa", "production", "u1")  # nothing cached yet: it needs the file
    p = ws.get_prompt("qa", "production", "u1")  # normal calls are unaffected
    with ws.db.cache_only():
        assert ws.get_prompt("qa", "production", "u2").commit == p.commit  # from the cache
        with pytest.raises(WouldBlock):
            ws.templates.get("qa")
    assert ws.templates.get("qa").version == "1.0.0"


def test_render_of_a_live_prompt_is_served_from_the_cache_on_the_event_loop(api, ws):
    seed(ws)
    api.post("/prompts/qa-basic/deploy", json={"version": "1.1.0", "env": "production"})
    calls: list[tuple[str, bool]] = []
    real = ws.get_prompt

    def spy(*args, **kwargs):
        calls.append((threading.current_thread().name, ws.db._state.cache_only > 0))
        return real(*args, **kwargs)

    ws.get_prompt = spy  # type: ignore[method-assign]
    body = {"variables": VARS, "env": "production", "user_id": "u1"}
    assert api.post("/prompts/qa-basic/render", json=body).json()["version"] == "1.1.0"
    # a cold cache: tried on the loop without the file, then run in a worker thread
    assert [c[1] for c in calls] == [True, False] and calls[0][0] != calls[1][0]
    loop_thread = calls[0][0]
    calls.clear()
    assert api.post("/prompts/qa-basic/render", json=body).json()["version"] == "1.1.0"
    assert calls == [(loop_thread, True)]  # warm: answered on the loop, no thread hop


def test_concurrent_writes_all_land_or_conflict_cleanly(api):
    results: list[int] = []

    def create(n: int) -> None:
        import httpx

        with httpx.Client(base_url=str(api.base_url), timeout=60) as c:
            r = c.post("/prompts", json={"name": f"t{n}", "content": "Hi {x}."})
            results.append(r.status_code)
            if r.status_code != 201:
                problem(r, 409, "conflict")

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) <= {201, 409}
    created = {t["name"] for t in api.get("/prompts").json()}
    assert len(created) == results.count(201) >= 1

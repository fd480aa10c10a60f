"""``/api/v1/evals``: import (token, body cap, problems by line), lists and the comparison."""

from __future__ import annotations

from tests.api_helpers import (
    TOKEN,
    TOKEN_HASH,
    api_fixture,  # noqa: F401 - fixture
    open_ws,
    problem,
    serve_fixture,  # noqa: F401 - fixture
)

H = "dataset,item_id,template,version,quality"


def _seed(ws):
    ws.templates.create("qa", "Answer {q}.", author="ana")
    ws.templates.update("qa", "Answer {q} briefly.", author="ana")


def _csv(n: int = 20) -> bytes:
    rows = [H]
    for i in range(n):
        rows.append(f"golden,i{i},qa,1.0.0,{0.5 + (i % 5) / 10}")
        rows.append(f"golden,i{i},qa,1.1.0,{0.55 + (i % 5) / 10 + (i % 2) / 50}")
    return ("\n".join(rows) + "\n").encode()


def test_import_lists_and_compare(api, ws, cli):
    _seed(ws)
    csv_headers = {"Content-Type": "text/csv"}
    r = api.post("/evals", content=_csv(), params={"file_name": "golden.csv"}, headers=csv_headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["rows_imported"] == 40 and len(body["runs"]) == 2
    again = api.post("/evals", content=_csv(), headers=csv_headers)
    p = problem(again, 422, "validation-error")
    assert "already imported" in p["detail"]
    bad = api.post("/evals", content=f"{H}\ngolden,a,qa,1.0.0,x\n".encode(), headers=csv_headers)
    p = problem(bad, 422, "validation-error")
    assert p["problems"][0]["line"] == 2 and p["problems"][0]["field"] == "quality"

    assert api.get("/evals").json()[0]["dataset"] == "golden"
    runs = api.get("/evals/runs", params={"dataset": "golden"}).json()
    assert len(runs) == 2 and {r["file_name"] for r in runs} == {"golden.csv"}
    items = api.get("/evals/items", params={"dataset": "golden", "version": "1.1.0"}).json()
    assert len(items) == 20
    cmp = api.get(
        "/evals/compare", params={"dataset": "golden", "baseline": "1.0.0", "candidate": "1.1.0"}
    )
    assert cmp.status_code == 200
    assert cmp.json() == cli("eval", "compare", "golden", "1.0.0", "1.1.0", json=True).json()
    missing = api.get(
        "/evals/compare", params={"dataset": "nope", "baseline": "1.0.0", "candidate": "1.1.0"}
    )
    problem(missing, 404, "not-found")


def test_import_needs_the_token_and_fits_the_events_cap(serve, db_path):
    ws = open_ws(db_path, server__token_hashes=[TOKEN_HASH], server__max_events_mb=1)
    try:
        _seed(ws)
        api = serve(ws)
        r = api.post("/evals", content=_csv())
        assert r.status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        r = api.post("/evals", content=_csv(), headers=auth)
        assert r.status_code == 201, r.text
        big = _csv() + b"golden,x,qa,1.0.0,0.5\n" * 60_000  # > 1 MB
        r = api.post("/evals", content=big, headers=auth)
        assert r.status_code == 413
        with ws.db.read() as con:
            assert con.execute("SELECT count(*) FROM eval_rows").fetchone()[0] == 40
        assert api.get("/evals").status_code == 200  # reads need no token
    finally:
        ws.close()

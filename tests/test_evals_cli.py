"""``promptver eval …``: contract shapes, exit codes, one-line errors, report files."""

from __future__ import annotations

import json

import pytest

H = "dataset,item_id,template,version,output,quality,quality_human,latency_ms"


@pytest.fixture
def evfile(cli, tmp_path):
    assert cli("template", "create", "qa", "--content", "Answer {q}.").code == 0
    assert cli("template", "update", "qa", "--content", "Answer {q} briefly.").code == 0
    lines = [H]
    for i in range(30):
        b = 0.5 + (i % 7) / 20
        lines.append(f"golden,i{i},qa,1.0.0,=base {i},{b},{b - 0.1 if i < 12 else ''},{100 + i}")
        c = b + (0.05 if i % 3 else -0.02)
        lines.append(
            f"golden,i{i},qa,1.1.0,<b>cand</b> {i},{c},{c - 0.1 if i < 12 else ''},{95 + i}"
        )
    f = tmp_path / "golden.csv"
    f.write_text("\n".join(lines) + "\n")
    return f


def test_import_list_compare_json_shapes(cli, evfile):
    r = cli("eval", "import", str(evfile), json=True)
    assert r.code == 0, r.err
    data = r.json()
    assert set(data) == {"import_id", "rows_imported", "runs"}
    assert data["rows_imported"] == 60
    assert {x["version"] for x in data["runs"]} == {"1.0.0", "1.1.0"}

    again = cli("eval", "import", str(evfile))
    assert again.code == 1
    assert again.err.startswith("error: ") and "already imported" in again.err
    assert again.err.count("\n") == 1 and "Traceback" not in again.err

    ds = cli("eval", "list", json=True).json()
    assert ds[0]["dataset"] == "golden" and ds[0]["items"] == 30
    runs = cli("eval", "list", "golden", json=True).json()
    assert len(runs) == 2 and {r["items"] for r in runs} == {30}

    cmp = cli("eval", "compare", "golden", "1.0.0", "1.1.0", json=True)
    assert cmp.code == 0, cmp.err
    out = cmp.json()
    assert list(out) == [
        "dataset",
        "template",
        "baseline",
        "candidate",
        "alpha",
        "metrics",
        "regressions",
    ]
    q = out["metrics"][0]
    for key in (
        "name",
        "items",
        "baseline_mean",
        "candidate_mean",
        "diff",
        "ci_low",
        "ci_high",
        "p_value",
        "p_value_adjusted",
        "wilcoxon_p_value",
        "wins",
        "ties",
        "losses",
        "significant",
        "calibrated",
    ):
        assert key in q
    assert set(out["metrics"][0]["calibrated"]) >= {
        "baseline_mean",
        "baseline_ci_low",
        "baseline_ci_high",
        "candidate_mean",
        "candidate_ci_low",
        "candidate_ci_high",
        "labelled_items",
    }
    assert out["metrics"][1]["name"] == "latency_ms" and out["metrics"][1]["wins"] == 30
    assert set(out["regressions"][0]) == {"item_id", "metric", "baseline", "candidate", "diff"}

    human = cli("eval", "compare", "golden", "1.0.0", "1.1.0")
    assert human.code == 0 and "quality" in human.out and "regressions" in human.out

    one = cli("eval", "compare", "golden", "1.0.0", "1.1.0", "--metric", "latency_ms", json=True)
    assert [m["name"] for m in one.json()["metrics"]] == ["latency_ms"]

    items = cli("eval", "items", "golden", "1.1.0", "--limit", "5", json=True).json()
    assert len(items) == 5 and items[0]["samples"] == 1

    p = cli(
        "eval",
        "power",
        "golden",
        "1.0.0",
        "1.1.0",
        "--metric",
        "quality",
        "--difference",
        "0.01",
        json=True,
    )
    assert p.code == 0 and p.json()["items_needed"] > 2


def test_errors_exit_1_and_usage_exit_2(cli, evfile):
    bad = cli("eval", "compare", "nope", "1.0.0", "1.1.0")
    assert bad.code == 1 and bad.err.startswith("error: no evaluation on dataset 'nope'")
    assert cli("eval", "compare", "golden").code == 2
    assert cli("eval", "power", "golden", "1.0.0", "1.1.0", "--metric", "q").code == 2
    broken = evfile.parent / "broken.csv"
    broken.write_text(f"{H}\ngolden,a,qa,1.0.0,x,oops,,1\n")
    r = cli("eval", "import", str(broken))
    assert r.code == 1 and "line 2, column quality" in r.err


@pytest.mark.parametrize("fmt", ["html", "md", "csv", "json"])
def test_report_formats_escape_user_text(cli, evfile, tmp_path, fmt):
    assert cli("eval", "import", str(evfile)).code == 0
    path = tmp_path / f"cmp.{fmt}"
    r = cli("eval", "report", "golden", "1.0.0", "1.1.0", "--output", str(path), json=True)
    assert r.code == 0, r.err
    assert r.json()["format"] == fmt
    text = path.read_bytes().decode("utf-8-sig")
    assert "golden" in text
    if fmt == "html":
        assert "<b>cand</b>" not in text and "&lt;b&gt;cand&lt;/b&gt;" in text
    if fmt == "md":
        assert "quality" in text
    if fmt == "json":
        doc = json.loads(text)
        assert doc["kind"] == "promptver.eval-comparison" and doc["metrics"][0]["name"] == "quality"
    if fmt == "csv":
        assert text.splitlines()[0].startswith("dataset,template,baseline,candidate,metric")
    # an existing file is not replaced without --force
    again = cli("eval", "report", "golden", "1.0.0", "1.1.0", "--output", str(path))
    assert again.code == 1

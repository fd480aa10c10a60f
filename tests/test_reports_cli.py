"""``promptver report EXPERIMENT --format html|md|csv|json --output PATH``."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest

from tests.reports_helpers import NAME, build_hostile


@pytest.fixture(scope="module")
def _built(tmp_path_factory):
    """The experiment's database, built once; each test gets a copy."""
    from promptver import Settings, Workspace

    path = tmp_path_factory.mktemp("cli") / "built.duckdb"
    with Workspace.open(path, settings=Settings()) as ws:
        e = build_hostile(ws, n=60)
    return path, e


@pytest.fixture
def exp(_built, db_path):
    path, e = _built
    shutil.copyfile(path, db_path)  # the CLI opens the test's own file
    return e


def test_writes_each_format_to_a_file(cli, exp, tmp_path):
    for fmt in ("html", "md", "csv", "json"):
        out = tmp_path / f"r.{fmt}"
        r = cli("report", exp.id, "--format", fmt, "--output", str(out))
        assert r.code == 0, r.err
        assert r.out.startswith(f"wrote {out} ({fmt}, ")
        assert out.stat().st_size > 500
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["experiment"]["name"] == NAME and doc["schema_version"] == "1.0"
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text("utf-8-sig"))))
    assert len(rows) == 6  # 2 variants × 3 metrics
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_format_from_the_extension_and_json_summary(cli, exp, tmp_path):
    out = tmp_path / "Report.MD"
    r = cli("report", NAME, "--output", str(out), json=True)  # by name
    assert r.code == 0, r.err
    summary = r.json()
    assert summary == {
        "path": str(out),
        "format": "md",
        "bytes": out.stat().st_size,
        "experiment_id": exp.id,
    }
    assert out.read_text().startswith("# Experiment report: ")


def test_refuses_to_overwrite_without_force(cli, exp, tmp_path):
    out = tmp_path / "r.json"
    out.write_text("keep me")
    r = cli("report", exp.id, "--output", str(out))
    assert r.code == 1 and r.err == f"error: {out} already exists: use --force to overwrite it\n"
    assert out.read_text() == "keep me"
    r = cli("report", exp.id, "--output", str(out), "--force")
    assert r.code == 0, r.err
    assert json.loads(out.read_text())["experiment"]["id"] == exp.id


def test_stdout_with_a_dash(cli, exp):
    r = cli("report", exp.id, "--format", "csv", "--output", "-")
    assert r.code == 0, r.err
    assert r.out.lstrip("\ufeff").startswith("experiment_id,experiment,")
    r = cli("report", exp.id, "--format", "json")  # '-' is the default
    assert json.loads(r.out)["results"]["experiment_id"] == exp.id


def test_stdout_gets_the_exact_bytes_in_a_real_process(run_cli, exp, db_path):
    from promptver import Workspace
    from promptver.reports import report_csv

    r = run_cli("report", exp.id, "--format", "csv")
    assert r.code == 0, r.err
    with Workspace.open(db_path) as ws:
        expected = report_csv(ws, exp.id).decode("utf-8")
    # the frozen results make the rows identical; only the line ends differ in text mode
    assert r.out.splitlines() == expected.splitlines()


def test_analysis_options_reach_the_report(cli, exp):
    r = cli("report", exp.id, "--format", "json", "--sequential", "--resamples", "300")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["results"]["method"] == "sequential" and doc["results_frozen"] is False
    assert doc["analysis_options"] == {"sequential": True, "resamples": 300}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "pdf"], "unknown report format 'pdf'"),
        (["--output", "x.txt"], "cannot tell the format from 'x.txt'"),
        ([], "give --format html|md|csv|json when writing to stdout"),
        (["--format", "csv", "--resamples", "5"], "--resamples must be between 100"),
    ],
)
def test_usage_errors_exit_2(cli, exp, args, message):
    r = cli("report", exp.id, *args)
    assert r.code == 2 and r.err.startswith("error: ") and message in r.err, r.err


def test_domain_errors_exit_1_and_write_nothing(cli, exp, tmp_path):
    r = cli("report", "no-such-experiment", "--format", "md")
    assert r.code == 1 and r.err.startswith("error: unknown experiment")
    missing = tmp_path / "nowhere" / "r.html"
    r = cli("report", exp.id, "--output", str(missing))
    assert r.code == 1 and "does not exist" in r.err
    assert not missing.parent.exists()
    r = cli("report", exp.id, "--format", "md", "--output", str(tmp_path))
    assert r.code == 1 and "is a directory" in r.err

"""The experiment commands and ``route`` (contract shapes, exit codes, one-line errors)."""

from __future__ import annotations

import json

import pytest

from tests.experiments_helpers import make_branch
from tests.test_routing import ref_bucket, ref_variant

EXP_YAML = """\
name: concise-vs-control
template: qa-basic            # name or id
environment: production
variants:                     # first is the control
  - {name: control, ref: "1.0.0", weight: 50}
  - {name: concise, ref: concise-tone, weight: 50}
metrics: [quality_score, latency_ms]
minimum_sample_size: 100
alpha: 0.05
salt: optional-string
start: 2026-11-01T00:00:00Z
"""


@pytest.fixture
def exp_file(ws, qa, tmp_path):
    make_branch(ws, "qa-basic", "concise-tone", "Answer {question} in one line using {context}.")
    path = tmp_path / "exp.yaml"
    path.write_text(EXP_YAML, encoding="utf-8")
    return path


def test_create_start_route_stop_list_show(cli, exp_file) -> None:
    r = cli("experiment", "create", "--file", str(exp_file), json=True)
    assert r.code == 0, r.err
    created = r.json()
    eid = created["id"]
    assert created["name"] == "concise-vs-control" and created["status"] == "draft"
    assert [v["name"] for v in created["variants"]] == ["control", "concise"]
    assert created["salt"] == "optional-string"
    assert created["start_at"].startswith("2026-11-01T00:00:00")

    r = cli("experiment", "start", "concise-vs-control", json=True)
    assert r.code == 0, r.err
    assert r.json()["status"] == "running" and r.json()["started_at"]

    for ref in (eid, "concise-vs-control"):
        r = cli("route", ref, "user-42", json=True)
        assert r.code == 0, r.err
        out = r.json()
        assert set(out) == {"variant", "bucket"}  # the contract's shape, exactly
        assert out["bucket"] == ref_bucket("optional-string", "user-42")
        assert out["variant"] == ref_variant(
            "optional-string", "user-42", [("control", 50), ("concise", 50)]
        )
    human = cli("route", eid, "user-42")
    assert human.code == 0 and str(out["variant"]) in human.out

    r = cli("experiment", "list", json=True)
    assert r.code == 0 and [e["id"] for e in r.json()] == [eid]
    assert "concise-vs-control" in cli("experiment", "list").out
    r = cli("experiment", "show", eid, json=True)
    shown = r.json()
    assert shown["id"] == eid and shown["results"] is None
    assert [h["action"] for h in shown["history"]] == ["created", "started"]

    r = cli("experiment", "stop", eid, "--reason", "found a bug", json=True)
    assert r.code == 0, r.err
    assert r.json()["status"] == "stopped" and r.json()["stop_reason"] == "found a bug"
    r = cli("experiment", "list", "--status", "running", json=True)
    assert r.json() == []


def test_unicode_user_ids_route_like_the_formula(cli, exp_file) -> None:
    eid = cli("experiment", "create", "--file", str(exp_file), json=True).json()["id"]
    for user in ("Ünïcødé-用户", "😀", "user with spaces"):
        out = cli("route", eid, user, json=True).json()
        assert out["bucket"] == ref_bucket("optional-string", user)


def test_create_from_json_and_stdin(cli, exp_file) -> None:
    import yaml

    data = yaml.safe_load(EXP_YAML)
    data["start"] = "2026-11-01T00:00:00Z"
    r = cli(
        "experiment",
        "create",
        "--file",
        "-",
        json=True,
        stdin=json.dumps(data | {"name": "from-stdin"}),
    )
    assert r.code == 0, r.err
    path = exp_file.with_suffix(".json")
    path.write_text(json.dumps(data | {"name": "from-json"}), encoding="utf-8")
    assert cli("experiment", "create", "--file", str(path), json=True).json()["name"] == "from-json"


def test_invalid_file_is_one_error_line_naming_the_field(cli, exp_file) -> None:
    exp_file.write_text(
        EXP_YAML.replace("weight: 50}\n  - {name: concise", "weight: 0}\n  - {name: concise"),
        encoding="utf-8",
    )
    r = cli("experiment", "create", "--file", str(exp_file))
    assert r.code == 1
    assert r.err.startswith("error: ") and r.err.count("\n") == 1
    assert "variants[0].weight" in r.err
    assert cli("experiment", "list", json=True).json() == []


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("experiment", "create", "--file", "missing.yaml"), 1, "file not found"),
        (("experiment", "create"), 2, "--file"),
        (("experiment", "start", "nope"), 1, "unknown experiment 'nope'"),
        (("route", "nope", "u1"), 1, "unknown experiment 'nope'"),
        (("route", "only-one-arg"), 2, "USER_ID"),
        (("experiment", "list", "--status", "paused"), 2, "invalid choice"),
    ],
)
def test_errors_and_usage(cli, exp_file, args, code, fragment) -> None:
    r = cli(*args)
    assert r.code == code
    assert r.err.startswith("error: ") and fragment in r.err


def test_stopping_before_the_planned_end_needs_a_reason(cli, exp_file) -> None:
    exp_file.write_text(EXP_YAML + "end: 2099-01-01T00:00:00Z\n", encoding="utf-8")
    eid = cli("experiment", "create", "--file", str(exp_file), json=True).json()["id"]
    assert cli("experiment", "start", eid).code == 0
    r = cli("experiment", "stop", eid)
    assert r.code == 1 and "reason: " in r.err and "give a reason" in r.err
    r = cli("experiment", "stop", eid, "--reason", "enough data", json=True)
    assert r.json()["status"] == "stopped"


def test_second_running_experiment_is_refused(cli, exp_file) -> None:
    cli("experiment", "create", "--file", str(exp_file))
    exp_file.write_text(
        EXP_YAML.replace("name: concise-vs-control", "name: second"), encoding="utf-8"
    )
    cli("experiment", "create", "--file", str(exp_file))
    assert cli("experiment", "start", "concise-vs-control").code == 0
    r = cli("experiment", "start", "second")
    assert r.code == 1 and "environment:" in r.err and "already running" in r.err


def test_edit_show_as_file_and_delete(cli, exp_file, tmp_path) -> None:
    eid = cli("experiment", "create", "--file", str(exp_file), json=True).json()["id"]
    r = cli("experiment", "show", eid, "--as-file")
    assert r.code == 0
    copy = tmp_path / "copy.yaml"
    copy.write_text(r.out.replace("name: concise-vs-control", "name: copy"), encoding="utf-8")
    c = cli("experiment", "create", "--file", str(copy), json=True).json()
    original = cli("experiment", "show", eid, json=True).json()
    for key in (
        "variants",
        "metrics",
        "alpha",
        "minimum_sample_size",
        "salt",
        "coverage",
        "start_at",
        "end_at",
        "environment",
        "template_id",
    ):
        assert c[key] == original[key], key
    copy.write_text(r.out.replace("weight: 50.0", "weight: 25.0", 1), encoding="utf-8")
    assert (
        cli("experiment", "edit", eid, "--file", str(copy), json=True).json()["variants"][0][
            "weight"
        ]
        == 25.0
    )
    assert cli("experiment", "start", eid).code == 0
    r = cli("experiment", "edit", eid, "--file", str(exp_file))
    assert r.code == 1 and "create a new experiment" in r.err
    r = cli("experiment", "delete", eid)
    assert r.code == 1 and "only drafts" in r.err
    assert cli("experiment", "delete", c["id"], json=True).json() == {
        "id": c["id"],
        "deleted": True,
    }


def test_real_process_prints_no_traceback(run_cli, exp_file) -> None:
    r = run_cli("--json", "experiment", "create", "--file", str(exp_file))
    assert r.code == 0, r.err
    r = run_cli("--json", "route", "concise-vs-control", "u1")
    assert r.code == 0 and set(json.loads(r.out)) == {"variant", "bucket"}
    r = run_cli("experiment", "stop", "concise-vs-control")
    assert r.code == 1 and "Traceback" not in r.err and r.err.startswith("error: ")

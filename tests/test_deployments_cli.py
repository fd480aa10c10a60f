"""The deployment commands and ``render --env`` (shapes pinned to the contract)."""

from __future__ import annotations

import pytest


@pytest.fixture
def qa3(cli):
    assert cli("template", "create", "qa", "--content", "Answer {question}.").code == 0
    assert cli("template", "update", "qa", "--content", "Answer {question} briefly.").code == 0
    assert cli("template", "update", "qa", "--content", "Answer {question} well.").code == 0


def test_deploy_and_rollback_print_the_deployment_record(cli, qa3):
    r = cli("deploy", "qa", "1.0.0", "--env", "production", "--note", "first", json=True)
    assert r.code == 0, r.err
    d = r.json()
    assert (d["version"], d["environment"], d["action"], d["note"]) == (
        "1.0.0",
        "production",
        "deploy",
        "first",
    )
    assert d["author"] == "tester" and d["replaced_version"] is None
    assert {"id", "commit", "template", "created_at", "gate_report", "forced"} <= set(d)
    d2 = cli("deploy", "qa", "1.2.0", "--env", "production", "--author", "ben", json=True).json()
    assert (d2["replaced_version"], d2["author"]) == ("1.0.0", "ben")
    r = cli("rollback", "qa", "--env", "production", "-m", "too slow", json=True)
    assert r.code == 0, r.err
    rb = r.json()
    assert (
        rb["action"],
        rb["version"],
        rb["environment"],
        rb["replaced_version"],
        rb["rollback_mode"],
        rb["note"],
    ) == ("rollback", "1.0.0", "production", "1.2.0", "previous", "too slow")
    rb2 = cli("rollback", "qa", "--env", "production", "--to", "1.1.0", json=True).json()
    assert (rb2["version"], rb2["rollback_mode"]) == ("1.1.0", "named")


def test_deployments_lists_records_newest_first(cli, qa3):
    cli("deploy", "qa", "1.0.0", "--env", "staging")
    cli("deploy", "qa", "1.0.0", "--env", "production")
    cli("deploy", "qa", "1.1.0", "--env", "staging")
    items = cli("deployments", "qa", json=True).json()
    assert [(i["version"], i["environment"]) for i in items] == [
        ("1.1.0", "staging"),
        ("1.0.0", "production"),
        ("1.0.0", "staging"),
    ]
    assert [i["id"] for i in items] == sorted((i["id"] for i in items), reverse=True)
    only = cli("deployments", "qa", "--env", "staging", json=True).json()
    assert [i["version"] for i in only] == ["1.1.0", "1.0.0"]
    assert len(cli("deployments", "qa", "--limit", "1", json=True).json()) == 1
    human = cli("deployments", "qa").out.splitlines()
    assert human[0].split() == [
        "ID",
        "DATE",
        "(UTC)",
        "ENVIRONMENT",
        "ACTION",
        "VERSION",
        "REPLACED",
        "AUTHOR",
        "FLAGS",
        "NOTE",
    ]
    assert human[2].split()[0] == f"#{items[0]['id']}"
    assert (
        "no deployments of qa in development yet"
        in cli("deployments", "qa", "--env", "development").out
    )


def test_force_and_reason_are_recorded(cli, qa3, tmp_path):
    (tmp_path / "promptver.yaml").write_text(
        "deployment:\n  rules:\n    production: {require_previous: true}\n"
    )
    r = cli("deploy", "qa", "1.1.0", "--env", "production")
    assert r.code == 1
    assert r.err.startswith(
        "error: deployment of qa 1.1.0 to production refused: require_previous: production requires"
    )
    assert cli("deploy", "qa", "1.1.0", "--env", "production", "--force").code == 1
    d = cli(
        "deploy", "qa", "1.1.0", "--env", "production", "--force", "--reason", "hotfix", json=True
    ).json()
    assert (d["forced"], d["force_reason"]) == (True, "hotfix")
    out = cli("deployments", "qa").out
    assert "forced" in out


def test_dry_run_shows_the_gates_and_writes_nothing(cli, qa3, tmp_path):
    (tmp_path / "promptver.yaml").write_text(
        "deployment:\n  rules:\n    production: {require_previous: true}\n"
    )
    r = cli("deploy", "qa", "1.1.0", "--env", "production", "--dry-run")
    assert r.code == 1
    assert r.out.splitlines()[0] == "refused: qa 1.1.0 to production"
    assert "FAILED     require_previous" in r.out
    ok = cli("deploy", "qa", "1.1.0", "--env", "staging", "--dry-run", json=True)
    assert ok.code == 0 and ok.json()["ok"] is True
    assert cli("deployments", "qa", json=True).json() == []


def test_environments(cli, tmp_path):
    data = cli("environments", json=True).json()
    assert [e["name"] for e in data] == ["development", "staging", "production"]
    assert data[2]["previous"] == "staging" and data[0]["next"] == "staging"
    out = cli("environments").out
    assert "production" in out and "REQUIRE WIN" in out


def test_promote(cli, qa3):
    cli("deploy", "qa", "1.2.0", "--env", "development")
    d = cli("promote", "qa", "--from", "development", json=True).json()
    assert (d["environment"], d["version"]) == ("staging", "1.2.0")
    r = cli("promote", "qa", "--from", "production")
    assert (r.code, r.err) == (
        1,
        "error: production is the last environment; there is nothing to promote to\n",
    )


def test_render_env_uses_what_is_deployed(cli, qa3):
    cli("deploy", "qa", "1.1.0", "--env", "production")
    r = cli(
        "render", "qa", "--env", "production", "--user-id", "u1", "--var", "question=Why", json=True
    )
    assert r.code == 0, r.err
    assert r.json() == {
        "text": "Answer Why briefly.",
        "version": "1.1.0",
        "commit": r.json()["commit"],
        "variant": None,
    }
    assert len(r.json()["commit"]) == 64
    assert (
        cli("render", "qa", "--env", "production", "--var", "question=Q").out
        == "Answer Q briefly.\n"
    )
    # without --env: head of main, as before
    assert cli("render", "qa", "--var", "question=Q", json=True).json()["version"] == "1.2.0"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["render", "qa", "--env", "staging", "--var", "question=Q"],
            1,
            "error: nothing is deployed for template 'qa' in staging; deploy a version first "
            "(promptver deploy qa VERSION --env staging)",
        ),
        (
            ["render", "qa", "--env", "live", "--var", "question=Q"],
            1,
            "error: unknown environment 'live': environments are development, staging, production",
        ),
        (
            ["render", "qa", "--env", "production", "--version", "1.0.0"],
            2,
            "error: argument --version: not allowed with argument --env",
        ),
        (["render", "qa", "--user-id", "u1"], 2, "error: --user-id needs --env"),
        (
            ["deploy", "qa", "4.0.0", "--env", "production"],
            1,
            "error: template 'qa' has no version 4.0.0 (latest is 1.2.0)",
        ),
        (["deploy", "qa", "1.0.0"], 2, "error: the following arguments are required: --env"),
        (
            ["deploy", "qa", "1.0.0", "--env", "prod"],
            1,
            "error: unknown environment 'prod': did you mean 'production'?",
        ),
        (
            ["rollback", "qa", "--env", "production"],
            1,
            "error: nothing is deployed for 'qa' in production, so there is nothing to roll back",
        ),
        (["deployments", "nope"], 1, "error: unknown template 'nope'"),
    ],
)
def test_errors_are_one_line(cli, qa3, args, code, message):
    r = cli(*args)
    assert r.code == code
    assert r.err.startswith(message), r.err
    assert len(r.err.strip().splitlines()) == 1


def test_the_console_script_deploys_and_fails_without_a_traceback(run_cli, cli, qa3):
    ok = run_cli("--json", "deploy", "qa", "1.0.0", "--env", "development")
    assert ok.code == 0, ok.err
    bad = run_cli("rollback", "qa", "--env", "development")
    assert bad.code == 1
    assert bad.err.startswith("error: qa 1.0.0 is the first deployment in development")
    assert "Traceback" not in bad.err

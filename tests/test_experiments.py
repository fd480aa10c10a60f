"""Experiments: file validation (every mistake names its field), lifecycle rules, assign()."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from promptver.errors import Conflict, NotFound, ValidationError
from promptver.experiments import dump_spec, load_spec, to_spec
from promptver.routing import Router
from tests.experiments_helpers import (  # noqa: F401 - fixtures are used by name
    add_custom_metric_event,
    lab_fixture,
    make_branch,
    shared_lab_fixture,
    spec,
)
from tests.test_routing import ref_variant


def experiment_count(ws) -> int:
    with ws.db.read() as con:
        return con.execute("SELECT count(*) FROM experiments").fetchone()[0]


def variant_rows(ws) -> int:
    with ws.db.read() as con:
        return con.execute("SELECT count(*) FROM experiment_variants").fetchone()[0]


def refused(ws, s, field: str, fragment: str = "") -> ValidationError:
    """Create must fail naming ``field`` (and saying ``fragment``), writing nothing."""
    before = experiment_count(ws), variant_rows(ws)
    with pytest.raises(ValidationError) as err:
        ws.experiments.create(s)
    message = str(err.value)
    assert f"{field}: " in message, message
    assert fragment.lower() in message.lower(), message
    assert any(p.field == field for p in err.value.problems)
    assert (experiment_count(ws), variant_rows(ws)) == before
    assert any(p.field == field for p in ws.experiments.check(s))
    return err.value


# ---- creating and validating ----------------------------------------------------------------


def test_create_a_valid_experiment(lab) -> None:
    e = lab.experiments.create(
        spec(description="Shorter answers", hypothesis="Quality holds"), author="ana"
    )
    assert e.status == "draft"
    assert e.name == "concise-vs-control" and e.template == "qa-basic"
    assert e.environment == "production"
    assert [(v.name, v.ref, v.weight) for v in e.variants] == [
        ("control", "1.0.0", 50),
        ("concise", "concise-tone", 50),
    ]
    assert e.variants[0].commit == lab.templates.get("qa-basic", "1.0.0").commit
    assert e.variants[1].commit == lab.versions.branch_head(e.template_id, "concise-tone")
    assert [(m.name, m.direction, m.role) for m in e.metrics] == [
        ("quality_score", "higher", "primary"),
        ("latency_ms", "lower", "secondary"),
    ]
    assert e.salt == e.id  # the contract's default
    assert e.coverage == 1.0 and e.alpha == 0.05 and e.minimum_sample_size == 100
    assert e.created_by == "ana" and e.created_at is not None
    assert e.started_at is None and e.stopped_at is None
    assert lab.experiments.check(spec(name="other")) == []
    assert [h.action for h in lab.experiments.history(e.id)] == ["created"]


def test_defaults_and_optional_fields(lab) -> None:
    e = lab.experiments.create(
        {
            "name": "Défaut — 😀 test",
            "template": lab.templates.row("qa-basic")["id"],
            "variants": [{"name": "A", "ref": "1.0.0"}, {"name": "B", "ref": "1.1.0"}],
            "metrics": "success",
            "salt": "my salt",
            "coverage": 0.25,
            "start": "2026-11-01",
            "end": "2026-11-15T12:00:00+02:00",
            "guardrails": ["latency_ms", {"name": "cost_usd"}],
        }
    )
    assert e.environment == "production"  # default
    assert [v.weight for v in e.variants] == [1.0, 1.0]  # no weights: an equal split
    assert [(m.name, m.role, m.direction) for m in e.metrics] == [
        ("success", "primary", "higher"),
        ("latency_ms", "guardrail", "lower"),
        ("cost_usd", "guardrail", "lower"),
    ]
    assert e.salt == "my salt" and e.coverage == 0.25
    assert e.start_at == datetime(2026, 11, 1, tzinfo=UTC)
    assert e.end_at == datetime(2026, 11, 15, 10, 0, tzinfo=UTC)
    assert e.template == "qa-basic"


def test_inline_guardrail_and_custom_metric_direction(lab) -> None:
    tid = lab.templates.row("qa-basic")["id"]
    add_custom_metric_event(lab, tid, "thumbs_up")
    add_custom_metric_event(lab, tid, "escalations")
    e = lab.experiments.create(
        spec(
            metrics=[
                "quality_score",
                {"name": "thumbs_up"},
                {"name": "escalations", "direction": "lower", "guardrail": True},
                {"name": "latency_ms", "guardrail": True},
            ]
        )
    )
    assert [(m.name, m.direction, m.role) for m in e.metrics] == [
        ("quality_score", "higher", "primary"),
        ("thumbs_up", "higher", "secondary"),
        ("escalations", "lower", "guardrail"),
        ("latency_ms", "lower", "guardrail"),
    ]
    assert set(lab.experiments.known_metrics()) >= {"thumbs_up", "escalations", "latency_ms"}


LONG = "x" * 101


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"name": None}, "name", "required"),
        ({"name": "   "}, "name", "required"),
        ({"name": LONG}, "name", "at most 100"),
        ({"name": "two\nlines"}, "name", "line break"),
        ({"name": "bell\x07"}, "name", "control"),
        ({"name": 42}, "name", "must be text"),
        ({"description": "d" * 1001}, "description", "at most 1000"),
        ({"hypothesis": ["a"]}, "hypothesis", "must be text"),
        ({"template": None}, "template", "required"),
        ({"template": "no-such-template"}, "template", "unknown template"),
        ({"template": 7}, "template", "template name or id"),
        ({"environment": "prod"}, "environment", "unknown environment"),
        ({"variants": None}, "variants", "at least two"),
        ({"variants": "control"}, "variants", "must be a list"),
        (
            {"variants": [{"name": "control", "ref": "1.0.0", "weight": 1}]},
            "variants",
            "at least two",
        ),
        ({"variants": []}, "variants", "at least two"),
        (
            {"variants": [{"name": f"v{i}", "ref": "1.0.0", "weight": 1} for i in range(21)]},
            "variants",
            "at most 20",
        ),
        (
            {"variants": ["control", {"name": "b", "ref": "1.0.0", "weight": 1}]},
            "variants[0]",
            "must be a mapping",
        ),
        (
            {
                "variants": [
                    {"name": "control", "ref": "1.0.0", "weight": 50},
                    {"name": "control", "ref": "1.1.0", "weight": 50},
                ]
            },
            "variants[1].name",
            "duplicate",
        ),
        (
            {
                "variants": [
                    {"name": "Control", "ref": "1.0.0", "weight": 50},
                    {"name": "control", "ref": "1.1.0", "weight": 50},
                ]
            },
            "variants[1].name",
            "ignoring case",
        ),
        (
            {
                "variants": [
                    {"ref": "1.0.0", "weight": 50},
                    {"name": "b", "ref": "1.1.0", "weight": 50},
                ]
            },
            "variants[0].name",
            "required",
        ),
        (
            {
                "variants": [
                    {"name": "a", "weight": 50},
                    {"name": "b", "ref": "1.1.0", "weight": 50},
                ]
            },
            "variants[0].ref",
            "required",
        ),
        (
            {
                "variants": [
                    {"name": "a", "ref": "9.9.9", "weight": 50},
                    {"name": "b", "ref": "1.1.0", "weight": 50},
                ]
            },
            "variants[0].ref",
            "no version 9.9.9",
        ),
        (
            {
                "variants": [
                    {"name": "a", "ref": "1.0.0", "weight": 50},
                    {"name": "b", "ref": "no-such-branch", "weight": 50},
                ]
            },
            "variants[1].ref",
            "unknown ref",
        ),
        (
            {
                "variants": [
                    {"name": "a", "ref": 1234567, "weight": 50},
                    {"name": "b", "ref": "1.1.0", "weight": 50},
                ]
            },
            "variants[0].ref",
            "quote",
        ),
        (
            {
                "variants": [
                    {"name": "a", "ref": "1.0.0", "weight": 0},
                    {"name": "b", "ref": "1.1.0", "weight": 50},
                ]
            },
            "variants[0].weight",
            "positive",
        ),
        (
            {
                "variants": [
                    {"name": "a", "ref": "1.0.0", "weight": 50},
                    {"name": "b", "ref": "1.1.0", "weight": -5},
                ]
            },
            "variants[1].weight",
            "positive",
        ),
        (
            {
                "variants": [
                    {"name": "a", "ref": "1.0.0", "weight": "50"},
                    {"name": "b", "ref": "1.1.0", "weight": 50},
                ]
            },
            "variants[0].weight",
            "positive number",
        ),
        (
            {
                "variants": [
                    {"name": "a", "ref": "1.0.0", "weight": float("nan")},
                    {"name": "b", "ref": "1.1.0", "weight": 50},
                ]
            },
            "variants[0].weight",
            "positive number",
        ),
        (
            {
                "variants": [
                    {"name": "a", "ref": "1.0.0", "weight": float("inf")},
                    {"name": "b", "ref": "1.1.0", "weight": 50},
                ]
            },
            "variants[0].weight",
            "positive number",
        ),
        (
            {
                "variants": [
                    {"name": "a", "ref": "1.0.0", "weight": True},
                    {"name": "b", "ref": "1.1.0", "weight": 50},
                ]
            },
            "variants[0].weight",
            "positive number",
        ),
        (
            {
                "variants": [
                    {"name": "a", "ref": "1.0.0", "weight": 50},
                    {"name": "b", "ref": "1.1.0"},
                ]
            },
            "variants[1].weight",
            "every variant",
        ),
        (
            {
                "variants": [
                    {"name": "a", "ref": "1.0.0", "wieght": 50},
                    {"name": "b", "ref": "1.1.0", "weight": 50},
                ]
            },
            "variants[0].wieght",
            "did you mean 'weight'",
        ),
        ({"metrics": None}, "metrics", "at least one metric"),
        ({"metrics": []}, "metrics", "at least one metric"),
        ({"metrics": 5}, "metrics", "must be a list"),
        ({"metrics": ["quality_score", "thumbs_up"]}, "metrics[1]", "unknown metric 'thumbs_up'"),
        ({"metrics": ["qualty_score"]}, "metrics[0]", "did you mean 'quality_score'"),
        ({"metrics": ["quality_score", {"direction": "higher"}]}, "metrics[1].name", "required"),
        (
            {"metrics": ["quality_score", {"name": "latency_ms", "direction": "up"}]},
            "metrics[1].direction",
            "'higher' or 'lower'",
        ),
        (
            {"metrics": ["quality_score", {"name": "latency_ms", "direction": "higher"}]},
            "metrics[1].direction",
            "lower is better",
        ),
        (
            {"metrics": [{"name": "latency_ms", "guardrail": True}]},
            "metrics[0].guardrail",
            "primary",
        ),
        (
            {"metrics": ["quality_score", {"name": "latency_ms", "guardrail": "yes"}]},
            "metrics[1].guardrail",
            "true or false",
        ),
        (
            {"metrics": ["quality_score", {"name": "latency_ms", "role": "guardrail"}]},
            "metrics[1].role",
            "unknown field",
        ),
        ({"metrics": ["quality_score", "quality_score"]}, "metrics[1]", "duplicate metric"),
        ({"metrics": ["quality_score", ["latency_ms"]]}, "metrics[1]", "metric name or a mapping"),
        ({"guardrails": ["latency_ms", "quality_score"]}, "guardrails[1]", "duplicate metric"),
        ({"guardrails": ["nope"]}, "guardrails[0]", "unknown metric"),
        (
            {"guardrails": [{"name": "cost_usd", "guardrail": True}]},
            "guardrails[0].guardrail",
            "unknown field",
        ),
        ({"guardrails": 3}, "guardrails", "must be a list"),
        ({"alpha": 0}, "alpha", "greater than 0"),
        ({"alpha": 0.6}, "alpha", "at most 0.5"),
        ({"alpha": -0.05}, "alpha", "significance level"),
        ({"alpha": "0.05"}, "alpha", "significance level"),
        ({"minimum_sample_size": 0}, "minimum_sample_size", "from 2"),
        ({"minimum_sample_size": 1}, "minimum_sample_size", "from 2"),
        ({"minimum_sample_size": 10.5}, "minimum_sample_size", "whole number"),
        ({"minimum_sample_size": 2_000_000_000}, "minimum_sample_size", "1,000,000,000"),
        ({"coverage": 0}, "coverage", "greater than 0"),
        ({"coverage": 1.5}, "coverage", "at most 1"),
        ({"coverage": 50}, "coverage", "0.25 = 25 %"),
        ({"salt": "s" * 201}, "salt", "at most 200"),
        ({"salt": "tab\tsalt"}, "salt", "control character"),
        ({"start": "next tuesday"}, "start", "ISO 8601"),
        ({"end": "2026-13-45"}, "end", "ISO 8601"),
        ({"start": "2026-11-10T00:00:00Z", "end": "2026-11-01T00:00:00Z"}, "end", "after start"),
        ({"start": "2026-11-10T00:00:00Z", "end": "2026-11-10T00:00:00Z"}, "end", "after start"),
        ({"bogus": 1}, "bogus", "unknown field"),
        ({"metric": ["quality_score"]}, "metric", "did you mean 'metrics'"),
    ],
)
def test_every_mistake_names_its_field(shared_lab, changes, field, fragment) -> None:
    refused(shared_lab, spec(**changes), field, fragment)


def test_all_problems_are_reported_at_once(lab) -> None:
    err = refused(lab, spec(template="nope", alpha=2, coverage=0, metrics=["x"]), "template")
    fields = {p.field for p in err.problems}
    assert {"template", "alpha", "coverage", "metrics[0]"} <= fields


def test_archived_template_is_refused(lab) -> None:
    lab.templates.archive("qa-basic")
    refused(lab, spec(), "template", "archived")


def test_custom_metric_is_known_only_once_events_carry_it(lab) -> None:
    s = spec(metrics=["quality_score", {"name": "thumbs_up", "direction": "higher"}])
    refused(lab, s, "metrics[1]", "custom metrics become known once imported")
    add_custom_metric_event(lab, lab.templates.row("qa-basic")["id"], "thumbs_up")
    assert lab.experiments.create(s).metrics[1].name == "thumbs_up"


def test_names_are_unique_ignoring_case_and_cannot_be_another_id(lab) -> None:
    e = lab.experiments.create(spec())
    refused(lab, spec(), "name", "already exists")
    refused(lab, spec(name="CONCISE-vs-Control"), "name", "already exists")
    refused(lab, spec(name=e.id), "name", "is the id of another experiment")
    assert lab.experiments.create(spec(name="x" * 100)).name == "x" * 100


def test_a_name_or_an_id_finds_the_experiment(lab) -> None:
    e = lab.experiments.create(spec(name="Tone Test"))
    assert lab.experiments.get(e.id).id == e.id
    assert lab.experiments.get("Tone Test").id == e.id
    assert lab.experiments.get("tone test").id == e.id
    with pytest.raises(NotFound, match="unknown experiment 'nope'"):
        lab.experiments.get("nope")
    with pytest.raises(NotFound):
        lab.experiments.get("")


# ---- files ----------------------------------------------------------------------------------


def test_yaml_and_json_files(lab, tmp_path) -> None:
    yml = tmp_path / "exp.yaml"
    yml.write_text(
        "name: concise-vs-control\ntemplate: qa-basic\nenvironment: production\nvariants:\n"
        '  - {name: control, ref: "1.0.0", weight: 50}\n'
        "  - {name: concise, ref: concise-tone, weight: 50}\n"
        "metrics: [quality_score, latency_ms]\nminimum_sample_size: 100\nalpha: 0.05\n"
        "salt: optional-string\nstart: 2026-11-01T00:00:00Z\n",
        encoding="utf-8",
    )
    e = lab.experiments.create_from_file(yml)
    assert e.salt == "optional-string" and e.start_at == datetime(2026, 11, 1, tzinfo=UTC)
    js = tmp_path / "exp.json"
    js.write_text(
        '{"name": "j", "template": "qa-basic", "variants": [{"name": "a", "ref": '
        '"1.0.0", "weight": 1}, {"name": "b", "ref": "1.1.0", "weight": 1}], '
        '"metrics": ["success"]}',
        encoding="utf-8",
    )
    assert lab.experiments.create_from_file(js).name == "j"


def test_unreadable_files_name_the_position(tmp_path) -> None:
    with pytest.raises(ValidationError, match="line 3, column 1"):
        load_spec("name: a\nvariants: [unclosed\n", "x.yaml")
    with pytest.raises(ValidationError, match="line 1, column 10"):
        load_spec('{"name": }', "x.json")
    with pytest.raises(ValidationError, match="mapping"):
        load_spec("- a\n- b\n", "x.yaml")


def test_to_spec_round_trips(lab) -> None:
    add_custom_metric_event(lab, lab.templates.row("qa-basic")["id"], "thumbs_down")
    e = lab.experiments.create(
        spec(
            description="d",
            hypothesis="h",
            salt="s1",
            coverage=0.5,
            start="2026-11-01T00:00:00Z",
            end="2026-12-01T00:00:00Z",
            metrics=["quality_score", {"name": "thumbs_down", "direction": "lower"}],
            guardrails=["latency_ms"],
        )
    )
    again = to_spec(e)
    assert again["salt"] == "s1"
    copy = lab.experiments.create(load_spec(dump_spec(again | {"name": "copy"})))
    assert to_spec(copy) == again | {"name": "copy"}
    assert [m.model_dump() for m in copy.metrics] == [m.model_dump() for m in e.metrics]
    default_salt = lab.experiments.create(spec(name="third"))
    assert "salt" not in to_spec(default_salt)


# ---- lifecycle ------------------------------------------------------------------------------


def test_lifecycle_draft_running_completed(lab) -> None:
    e = lab.experiments.create(spec())
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    started = lab.experiments.start(e.id, author="ben", now=t0)
    assert started.status == "running" and started.started_at == t0
    stopped = lab.experiments.stop(e.id, author="chen", now=t0 + timedelta(days=7))
    assert stopped.status == "completed"
    assert stopped.stopped_at == t0 + timedelta(days=7) and stopped.stop_reason is None
    log = lab.experiments.history(e.id)
    assert [(h.action, h.author) for h in log] == [
        ("created", "unknown"),
        ("started", "ben"),
        ("completed", "chen"),
        ("results frozen", "chen"),
    ]
    frozen = lab.experiments.stored_results(e.id)  # the statistics engine's final results
    assert frozen["experiment_id"] == e.id and frozen["status"] == "completed"
    assert frozen["winner"] is None  # no events at all


def test_stopping_early_needs_a_reason_before_the_planned_end(lab) -> None:
    e = lab.experiments.create(spec(end="2099-01-01T00:00:00Z"))
    lab.experiments.start(e.id)
    with pytest.raises(ValidationError) as err:
        lab.experiments.stop(e.id)
    assert "reason: " in str(err.value) and "2099" in str(err.value)
    assert lab.experiments.get(e.id).status == "running"
    with pytest.raises(ValidationError, match="reason: must be at most 500"):
        lab.experiments.stop(e.id, reason="r" * 501)
    out = lab.experiments.stop(e.id, reason="quality dropped for enterprise users")
    assert out.status == "stopped" and out.stop_reason == "quality dropped for enterprise users"


def test_a_reason_marks_the_stop_as_early(lab) -> None:
    e = lab.experiments.create(spec())
    lab.experiments.start(e.id)
    assert lab.experiments.stop(e.id, reason="bug in variant").status == "stopped"


@pytest.mark.parametrize("status", ["running", "completed", "stopped"])
def test_only_drafts_start(lab, status) -> None:
    e = lab.experiments.create(spec())
    lab.experiments.start(e.id)
    if status != "running":
        lab.experiments.stop(e.id, reason="x" if status == "stopped" else None)
    with pytest.raises(Conflict) as err:
        lab.experiments.start(e.id)
    text = str(err.value)
    assert ("already running" in text) if status == "running" else ("create a new one" in text)


@pytest.mark.parametrize("status", ["draft", "completed"])
def test_only_running_experiments_stop(lab, status) -> None:
    e = lab.experiments.create(spec())
    if status == "completed":
        lab.experiments.start(e.id)
        lab.experiments.stop(e.id)
    with pytest.raises(Conflict, match=f"is {status}, not running"):
        lab.experiments.stop(e.id)


def test_one_running_experiment_per_template_and_environment(lab) -> None:
    a = lab.experiments.create(spec(name="a"))
    b = lab.experiments.create(spec(name="b"))
    c = lab.experiments.create(spec(name="c", environment="staging"))
    lab.experiments.start(a.id)
    with pytest.raises(ValidationError) as err:
        lab.experiments.start(b.id)
    assert "environment: experiment 'a'" in str(err.value)
    assert "already running" in str(err.value)
    assert lab.experiments.get(b.id).status == "draft"
    assert lab.experiments.start(c.id).status == "running"  # another environment is fine
    lab.experiments.stop(a.id)
    assert lab.experiments.start(b.id).status == "running"


def test_concurrent_starts_leave_exactly_one_running(lab) -> None:
    ids = [lab.experiments.create(spec(name=f"race-{i}")).id for i in range(4)]
    barrier = threading.Barrier(len(ids))
    outcomes: list[str] = []

    def go(eid: str) -> None:
        barrier.wait()
        try:
            lab.experiments.start(eid)
            outcomes.append("started")
        except (Conflict, ValidationError):
            outcomes.append("refused")

    threads = [threading.Thread(target=go, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("started") == 1
    assert len(lab.experiments.list(status="running")) == 1


def test_start_checks_again(lab) -> None:
    e = lab.experiments.create(spec(end="2026-11-10T00:00:00Z"))
    with pytest.raises(ValidationError, match="end: the planned end"):
        lab.experiments.start(e.id, now=datetime(2026, 11, 11, tzinfo=UTC))
    lab.experiments.update(e.id, spec(end=None))
    lab.templates.archive("qa-basic")
    with pytest.raises(ValidationError, match="template: template 'qa-basic' is archived"):
        lab.experiments.start(e.id)
    lab.templates.restore("qa-basic")
    with lab.db.transaction() as con:
        con.execute("DELETE FROM branches WHERE name = 'concise-tone'")
    with pytest.raises(ValidationError, match=r"variants\[1\].ref: unknown ref 'concise-tone'"):
        lab.experiments.start(e.id)
    assert lab.experiments.get(e.id).status == "draft"


def test_refs_resolve_again_at_start_then_freeze(lab) -> None:
    e = lab.experiments.create(spec())
    newer = lab.templates.update(
        "qa-basic", "Answer {question} in 10 words using {context}.", branch="concise-tone"
    ).commit
    assert e.variants[1].commit != newer
    started = lab.experiments.start(e.id)
    assert started.variants[1].commit == newer
    assert "concise-tone now" in lab.experiments.history(e.id)[-1].detail
    lab.templates.update("qa-basic", "Changed again {question} {context}.", branch="concise-tone")
    assert lab.experiments.get(e.id).variants[1].commit == newer  # frozen while running


def test_running_experiments_are_frozen(lab) -> None:
    e = lab.experiments.create(spec())
    lab.experiments.start(e.id)
    for changes, field in (
        (
            {
                "variants": [
                    {"name": "control", "ref": "1.0.0", "weight": 70},
                    {"name": "concise", "ref": "concise-tone", "weight": 30},
                ]
            },
            "variants",
        ),
        ({"coverage": 0.5}, "coverage"),
        ({"salt": "new"}, "salt"),
        ({"metrics": ["latency_ms"]}, "metrics"),
        ({"name": "renamed"}, "name"),
    ):
        with pytest.raises(Conflict) as err:
            lab.experiments.update(e.id, spec(**changes))
        assert field in str(err.value) and "create a new experiment" in str(err.value)
    same = lab.experiments.update(
        e.id, spec(hypothesis="Shorter is as good", description="Tone test")
    )
    assert same.hypothesis == "Shorter is as good" and same.description == "Tone test"
    assert same.status == "running"
    assert lab.experiments.history(e.id)[-1].detail == "description, hypothesis"


def test_drafts_can_be_edited_and_deleted(lab) -> None:
    e = lab.experiments.create(spec())
    edited = lab.experiments.update(
        e.id,
        spec(
            name="renamed",
            coverage=0.5,
            variants=[
                {"name": "control", "ref": "1.0.0", "weight": 1},
                {"name": "newer", "ref": "1.1.0", "weight": 3},
            ],
        ),
    )
    assert edited.name == "renamed" and edited.coverage == 0.5
    assert [(v.name, v.weight) for v in edited.variants] == [("control", 1), ("newer", 3)]
    assert "coverage" in lab.experiments.history(e.id)[-1].detail
    with pytest.raises(ValidationError, match=r"variants\[1\].weight"):
        lab.experiments.update(
            e.id,
            spec(
                variants=[
                    {"name": "a", "ref": "1.0.0", "weight": 1},
                    {"name": "b", "ref": "1.1.0", "weight": 0},
                ]
            ),
        )
    assert lab.experiments.get(e.id).variants[1].name == "newer"  # nothing half-written
    lab.experiments.delete(e.id)
    with pytest.raises(NotFound):
        lab.experiments.get(e.id)
    ran = lab.experiments.create(spec(name="ran"))
    lab.experiments.start(ran.id)
    with pytest.raises(Conflict, match="only drafts"):
        lab.experiments.delete(ran.id)


def test_list_filters_and_orders(lab) -> None:
    a = lab.experiments.create(spec(name="a"))
    b = lab.experiments.create(spec(name="b"))
    lab.experiments.start(a.id)
    assert [e.name for e in lab.experiments.list()] == ["a", "b"]  # running first
    assert [e.name for e in lab.experiments.list(status="draft")] == ["b"]
    assert [e.name for e in lab.experiments.list(template="qa-basic")] == ["a", "b"]
    with pytest.raises(ValidationError, match="status"):
        lab.experiments.list(status="paused")
    with pytest.raises(NotFound):
        lab.experiments.list(template="nope")
    assert b.id in {e.id for e in lab.experiments.list()}


def test_freeze_results_is_a_separate_step_the_stats_engine_plugs_into(lab) -> None:
    e = lab.experiments.create(spec())
    lab.experiments.start(e.id)
    with pytest.raises(Conflict, match="only when it ends"):
        lab.experiments.freeze_results(e.id)
    seen = []

    def provider(exp):
        seen.append((exp.id, exp.status, exp.stopped_at is not None))
        return {"experiment_id": exp.id, "winner": None}

    lab.experiments.results_provider = provider
    lab.experiments.stop(e.id)
    assert seen == [(e.id, "completed", True)]
    assert lab.experiments.stored_results(e.id) == {"experiment_id": e.id, "winner": None}
    assert lab.experiments.history(e.id)[-1].action == "results frozen"


# ---- routing through the service ------------------------------------------------------------


def test_route_any_status_by_id_or_name(lab) -> None:
    e = lab.experiments.create(spec(salt="fixed-salt"))
    variants = [("control", 50), ("concise", 50)]
    for user in ("u1", "ü-用户", "42"):
        expected = ref_variant("fixed-salt", user, variants)
        assert lab.experiments.route(e.id, user)[0] == expected
        assert lab.experiments.route("concise-vs-control", user)[0] == expected
    with pytest.raises(ValidationError, match="user_id"):
        lab.experiments.route(e.id, "")


def test_assign_routes_only_while_running(lab) -> None:
    assert lab.experiments.assign("qa-basic", "production", "u1") is None
    e = lab.experiments.create(spec())
    assert lab.experiments.assign("qa-basic", "production", "u1") is None  # a draft
    lab.experiments.start(e.id)
    live = lab.experiments.get(e.id)
    router = Router.from_experiment(live)
    commits = {v.name: v.commit for v in live.variants}
    for i in range(200):
        user = f"user-{i}"
        a = lab.experiments.assign("qa-basic", "production", user)
        assert a is not None
        assert (a.variant, a.bucket) == router.route(user)
        assert a.commit == commits[a.variant] and a.experiment_id == e.id
        assert a.experiment == "concise-vs-control"
        assert a.ref == {"control": "1.0.0", "concise": "concise-tone"}[a.variant]
        assert lab.experiments.assign(live.template_id, "production", user) == a  # id works too
    assert lab.experiments.assign("qa-basic", "staging", "u1") is None
    assert lab.experiments.assign("no-such-template", "production", "u1") is None
    lab.experiments.stop(e.id)
    assert lab.experiments.assign("qa-basic", "production", "u1") is None  # at once


def test_assign_respects_coverage_and_the_window(lab) -> None:
    e = lab.experiments.create(
        spec(coverage=0.3, start="2026-11-05T00:00:00Z", end="2026-11-20T00:00:00Z")
    )
    lab.experiments.start(e.id, now=datetime(2026, 11, 1, tzinfo=UTC))
    inside = datetime(2026, 11, 10, tzinfo=UTC)
    users = [f"user-{i}" for i in range(2000)]
    got = [lab.experiments.assign("qa-basic", "production", u, now=inside) for u in users]
    expected = [ref_variant(e.salt, u, [("control", 50), ("concise", 50)], 0.3) for u in users]
    assert [a.variant if a else None for a in got] == expected
    assert 0.25 < sum(a is not None for a in got) / len(users) < 0.35
    covered = users[[a is not None for a in got].index(True)]
    for when in (datetime(2026, 11, 4, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)):
        assert lab.experiments.assign("qa-basic", "production", covered, now=when) is None


def test_assign_cache_ttl_and_invalidation(lab, monkeypatch) -> None:
    from promptver import Workspace
    from promptver import experiments as module

    clock = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    e = lab.experiments.create(spec())
    assert lab.experiments.assign("qa-basic", "production", "u1") is None  # cached: nothing runs
    other = Workspace.open(lab.path)  # a second workspace in this process on the same file
    try:
        other.experiments.start(e.id)
        assert lab.experiments.assign("qa-basic", "production", "u1") is not None  # at once
        # a change made behind promptver's back (as by another process) shows after the TTL
        with lab.db.transaction() as con:
            con.execute("DELETE FROM experiment_running")
        assert lab.experiments.assign("qa-basic", "production", "u1") is not None
        clock[0] += lab.settings.cache.ttl_seconds + 0.01
        assert lab.experiments.assign("qa-basic", "production", "u1") is None
    finally:
        other.close()


def test_assign_without_cache(lab) -> None:
    from promptver import Workspace

    ws = Workspace.open(lab.path, settings=lab.settings.with_overrides(cache__ttl_seconds=0))
    try:
        e = ws.experiments.create(spec())
        ws.experiments.start(e.id)
        assert ws.experiments.assign("qa-basic", "production", "u1") is not None
        with ws.db.transaction() as con:
            con.execute("DELETE FROM experiment_running")
        assert ws.experiments.assign("qa-basic", "production", "u1") is None
    finally:
        ws.close()


def test_branch_helper_made_a_branch(lab) -> None:
    tid = lab.templates.row("qa-basic")["id"]
    assert "concise-tone" in [b.name for b in lab.versions.branches(tid)]
    assert make_branch  # imported for other modules too

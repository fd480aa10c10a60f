"""Hostile input at the service layer (issue 23): every writer — CLI, HTTP API, dashboard, files —
passes through these checks, and reads survive what older versions stored."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from promptver.errors import ValidationError
from promptver.limits import MAX_JSON_BYTES, MAX_JSON_DEPTH, TOO_DEEP


def nested(depth: int, leaf: Any = "x") -> dict[str, Any]:
    """``{"k": {"k": … leaf}}`` with ``depth`` mappings."""
    value: Any = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def depth_of(value: Any) -> int:
    best, stack = 0, [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list):
            best = max(best, d + 1)
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return best


def counts(ws: Any) -> dict[str, int]:
    with ws.db.read() as con:
        return {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("templates", "commits", "branches", "versions")
        }


# ---- item 1: depth and size of JSON values ------------------------------------------------------


def test_metadata_at_the_depth_limit_is_accepted(ws):
    t = ws.templates.create("ok", "hi {x}", metadata=nested(MAX_JSON_DEPTH))
    assert depth_of(t.metadata) == MAX_JSON_DEPTH
    assert ws.templates.get("ok").metadata == nested(MAX_JSON_DEPTH)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 260, 100_000])
def test_deep_metadata_is_refused_on_create_and_nothing_is_written(ws, depth):
    before = counts(ws)
    with pytest.raises(ValidationError) as e:
        ws.templates.create("deep", "hi {x}", metadata=nested(depth))
    assert "metadata" in e.value.message and f"more than {MAX_JSON_DEPTH} levels" in e.value.message
    assert counts(ws) == before


def test_deep_and_large_metadata_are_refused_on_update_and_merge(ws):
    ws.templates.create("t", "hi {x}")
    before = counts(ws)
    with pytest.raises(ValidationError, match=r"metadata: is nested more than 32 levels"):
        ws.templates.update("t", "hello {x}", metadata=nested(40))
    big = {"blob": "a" * MAX_JSON_BYTES}
    with pytest.raises(ValidationError, match=r"metadata: is larger than 64 KB"):
        ws.templates.update("t", "hello {x}", metadata=big)
    assert counts(ws) == before
    # a merge whose resolution metadata is too deep
    ws.versions.create_branch("t", "b")
    ws.templates.update("t", "hello {x}", branch="b", metadata={"a": 1})
    ws.templates.update("t", "hey {x}", metadata={"a": 2})
    before = counts(ws)
    with pytest.raises(ValidationError, match=r"resolution_metadata: is nested more than 32"):
        ws.versions.merge(
            "t", "b", resolution="hey {x}", resolution_metadata=nested(33), message="m"
        )
    assert counts(ws) == before


def test_metadata_must_be_json(ws):
    from datetime import date

    for bad, where in (
        ({"when": date(2026, 1, 1)}, "metadata.when"),
        ({"x": float("nan")}, "metadata.x"),
        ({1: "a"}, "metadata"),
        ({"s": {1, 2}}, "metadata.s"),
    ):
        with pytest.raises(ValidationError) as e:
            ws.templates.create("m", "hi", metadata=bad)
        assert where in e.value.message


def test_shared_subtrees_cannot_make_the_size_check_slow():
    """A YAML alias graph: 40 levels of 2 references to one list is 2**40 leaves when written
    out; the check stops at the size limit instead of walking it all."""
    import time

    from promptver.limits import json_problem

    v: Any = ["lol"]
    for _ in range(30):
        v = [v, v]
    v = {"a": v}
    t0 = time.process_time()
    p = json_problem(v, "metadata")
    assert p is not None and p.code in {"limit.size", "limit.depth"}
    assert time.process_time() - t0 < 1.0


def _store_old_commit(ws: Any, name: str, metadata: dict[str, Any]) -> None:
    """Write a commit the way versions before the limit did: no depth check."""

    import sys

    tid = ws.templates.row(name)["id"]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4000))  # deeper than today's reader can parse
    try:
        _insert_old_commit(ws, tid, metadata)
    finally:
        sys.setrecursionlimit(limit)


def _insert_old_commit(ws: Any, tid: str, metadata: dict[str, Any]) -> None:
    from promptver.models import Commit
    from promptver.store import templates as sql
    from promptver.versioning import expected_id, utcnow

    with ws.db.transaction() as con:
        head = sql.get_branch(con, tid, "main").head
        c = Commit(
            id="",
            template_id=tid,
            parents=[head],
            content="old {x}",
            variables=["x"],
            metadata=metadata,
            message="stored by an old version",
            author="old",
            created_at=utcnow(),
        )
        c.id = expected_id(c)
        sql.insert_commit(con, c)
        assert sql.move_branch(con, tid, "main", head, c.id)
        sql.insert_version(con, tid, (1, 1, 0), c.id, utcnow())


@pytest.mark.parametrize("depth", [260, 1500])
def test_reads_survive_deep_metadata_stored_by_older_versions(ws, cli, depth):
    ws.templates.create("good", "fine {x}")
    ws.templates.create("poisoned", "hi {x}")
    _store_old_commit(ws, "poisoned", nested(depth))

    listed = {t.name: t for t in ws.templates.list()}
    assert set(listed) == {"good", "poisoned"}
    shown = ws.templates.get("poisoned")
    for t in (listed["poisoned"], shown):
        assert t.content == "old {x}" and t.version == "1.1.0"
        assert depth_of(t.metadata) <= MAX_JSON_DEPTH
        assert TOO_DEEP in json.dumps(t.metadata)
        t.model_dump(mode="json")  # what the HTTP API serialises
        json.loads(t.model_dump_json())

    r = cli("template", "list")
    assert r.code == 0 and "poisoned" in r.out and "good" in r.out, r.err
    r = cli("template", "list", json=True)
    assert r.code == 0 and {t["name"] for t in r.json()} == {"good", "poisoned"}
    r = cli("template", "show", "poisoned", json=True)
    assert r.code == 0, r.err
    assert r.json()["content"] == "old {x}" and TOO_DEEP in r.out
    # history and a new commit on top still work; the new commit carries the readable metadata
    assert [c.message for c in ws.versions.log(shown.id, shown.commit)][0] == (
        "stored by an old version"
    )
    t = ws.templates.update("poisoned", "new {x}")
    assert depth_of(ws.templates.get("poisoned").metadata) <= MAX_JSON_DEPTH
    assert t.version == "1.2.0"
    # fsck checks the stored text: it still hashes to the stored id, or (too deep for the
    # parser) fsck says it cannot check it instead of failing
    report = ws.versions.fsck()
    if depth < 1000:
        assert report.ok, report.problems
    else:
        assert [(p.kind, "too deeply" in p.message) for p in report.problems] == [
            ("bad_metadata", True)
        ]


# ---- item 4: a trailing newline is not part of a name ------------------------------------------


@pytest.fixture
def t1(ws):
    ws.templates.create("t", "Answer {question}.")
    return ws


def test_template_name_with_trailing_newline_is_refused(ws, cli):
    with pytest.raises(ValidationError, match="template name"):
        ws.templates.create("evil\n", "hi")
    r = cli("template", "create", "evil\n", "--content", "hi")
    assert r.code == 1 and r.err.startswith("error: ")
    assert ws.templates.list() == []


def test_branch_name_with_trailing_newline_is_refused(t1):
    from promptver.versioning import branch_name_problems

    with pytest.raises(ValidationError, match="branch name"):
        t1.versions.create_branch("t", "evil\n")
    for name in ("evil\n", "abcdef12\n", "1.0.0\n", "main\n"):
        assert branch_name_problems(name), name
    assert [b.name for b in t1.versions.branches(t1.templates.row("t")["id"])] == ["main"]


def test_refs_with_surrounding_blanks_name_the_same_commit(t1):
    """A ref is read stripped (as typed on a command line), so "1.0.0\n" names what "1.0.0"
    names — never a different or a new object."""
    from promptver.versioning import parse_version

    assert parse_version("1.0.0\n") is None
    assert parse_version("1.0.0") == (1, 0, 0)
    head = t1.templates.get("t").commit
    for ref in ("1.0.0\n", f"{head[:10]}\n", "main\n"):
        assert t1.templates.get("t", ref).commit == head


def test_metric_names_with_trailing_newline_are_refused_or_read_stripped(t1):
    from promptver.trends import canonical_metric

    t1.deployments.deploy("t", "1.0.0", "production")
    p = t1.get_prompt("t", env="production", user_id="u1")
    with pytest.raises(ValidationError, match="evil"):
        t1.track(p, latency_ms=5, **{"evil\n": 1.0})
    with pytest.raises(ValidationError, match="Evil"):
        t1.track(p, latency_ms=5, **{"Evil": 1.0})
    # typed names are stripped before the rule applies: the stored name has no newline
    assert canonical_metric("custom:evil\n") == "custom:evil"
    rule = t1.alerts.add("custom:evil\n", ">", 1, "1h")
    assert rule.metric == "custom:evil"


def test_csv_custom_metric_column_is_read_stripped(t1, tmp_path):
    from promptver.metrics.csv_import import CUSTOM_NAME_RE

    assert CUSTOM_NAME_RE.match("evil\n") is None
    f = tmp_path / "e.csv"
    f.write_text('timestamp,template,user_id,"evil\n"\n2026-01-01T00:00:00Z,t,u1,1\n')
    r = t1.metrics.import_csv(f, author="a")
    assert r.custom_metrics == ["evil"]


def test_sql_identifiers_and_windows_with_trailing_newline_are_refused():
    from promptver.metric_defs import CUSTOM_NAME_RE, DURATION_RE
    from promptver.metrics.service import WINDOW_RE
    from promptver.store.routing import _IDENT_RE

    assert _IDENT_RE.match("user_id\n") is None
    assert CUSTOM_NAME_RE.match("evil\n") is None
    for rx in (WINDOW_RE, DURATION_RE):
        assert rx.match("1h") is not None
        assert rx.match("1h\n\n") is not None  # surrounding blanks were always allowed
        assert rx.match("1h\nx") is None


def test_environment_names_in_settings_follow_the_name_rule():
    from promptver.config import Settings
    from promptver.errors import ConfigError

    assert Settings.model_validate({"deployment": {"environments": ["dev", "prod-eu"]}})
    for bad in ("production\n", "", "prod eu", "a" * 101):
        with pytest.raises((ConfigError, ValueError), match="environment"):
            Settings.model_validate({"deployment": {"environments": ["dev", bad]}})


# ---- item 3: metric values are bounded; overflowing sums are said, never "not worse" -----------

BOUNDS = [
    ("latency_ms", 86_400_000, 86_400_001),
    ("cost_usd", 1e6, 1.5e6),
    ("tokens_in", 1_000_000_000, 1_000_000_001),
    ("tokens_out", 1_000_000_000, 2e9),
    ("thumbs", -1e15, -1.01e15),
    ("thumbs", 1e15, 1e308),
]


@pytest.mark.parametrize(("metric", "ok", "bad"), BOUNDS)
def test_track_bounds_each_metric(t1, metric, ok, bad):
    t1.deployments.deploy("t", "1.0.0", "production")
    p = t1.get_prompt("t", env="production", user_id="u1")
    t1.track(p, **{metric: ok})
    with pytest.raises(ValidationError, match=metric) as e:
        t1.track(p, **{metric: bad})
    assert "at most" in e.value.message or "between" in e.value.message
    assert t1.metrics.flush() == 1


@pytest.mark.parametrize(("metric", "ok", "bad"), BOUNDS)
def test_csv_import_bounds_each_metric(t1, tmp_path, metric, ok, bad):
    from promptver.errors import ImportError_

    f = tmp_path / "e.csv"
    f.write_text(
        f"timestamp,template,user_id,{metric}\n"
        f"2026-01-01T00:00:00Z,t,u1,{ok!r}\n"
        f"2026-01-01T00:00:01Z,t,u2,{bad!r}\n"
    )
    with pytest.raises(ImportError_) as e:
        t1.metrics.import_csv(f, author="a")
    assert f"line 3, column {metric}: " in e.value.message
    assert "at most" in e.value.message or "between" in e.value.message
    assert t1.metrics.summary().events == 0
    f.write_text(f"timestamp,template,user_id,{metric}\n2026-01-01T00:00:00Z,t,u1,{ok!r}\n")
    assert t1.metrics.import_csv(f, author="a").rows_imported == 1


def _insert_raw(ws: Any, exp: Any, rows: list[tuple[str, str, float]]) -> None:
    """Store events the way a version without bounds did (no validation), at the moment the
    experiment started: inside its window whatever the machine's speed (an event stamped a
    second before now fell before the start on a fast machine)."""
    at = ws.experiments.get(exp.id).started_at
    with ws.db.transaction() as con:
        for user, variant, latency in rows:
            con.execute(
                "INSERT INTO metric_events (ts, template_id, user_id, experiment_id, variant,"
                " latency_ms, quality_score) VALUES (?, ?, ?, ?, ?, ?, 0.5)",
                [at, exp.template_id, user, exp.id, variant, latency],
            )


def test_overflowing_sums_are_reported_and_the_guardrail_is_not_ok(t1):
    # the statistics on their own: sums that overflowed
    import numpy as np

    from promptver.stats import MetricStats, compare, summarise

    with np.errstate(over="ignore"):  # what the SQL sums give
        huge = MetricStats.from_values([1e308, 1e308, 5.0])
    assert not math.isfinite(float(huge.sum_x2))
    s = summarise(huge, name="b")
    assert s.std is None and s.ci_low is None and "cannot be computed" in s.message
    c = compare(MetricStats.from_values([1.0, 2.0, 3.0]), huge)
    assert c.p_value is None and "cannot be computed" in c.message
    assert "zero variance" not in c.message

    # end to end: two events of 1e308 stored by an older version disable nothing
    t1.versions.create_branch("t", "b")
    t1.templates.update("t", "Answer {question} now.", branch="b")
    exp = t1.experiments.create(
        {
            "name": "e",
            "template": "t",
            "variants": [
                {"name": "control", "ref": "1.0.0", "weight": 50},
                {"name": "treat", "ref": "b", "weight": 50},
            ],
            "metrics": ["quality_score"],
            "guardrails": ["latency_ms"],
            "minimum_sample_size": 2,
        }
    )
    t1.experiments.start(exp.id)
    rows = [(f"c{i}", "control", 100.0 + i) for i in range(20)]
    rows += [(f"t{i}", "treat", 100.0 + i) for i in range(18)]
    rows += [("t18", "treat", 1e308), ("t19", "treat", 1e308)]
    _insert_raw(t1, exp, rows)
    r = t1.experiment_results(exp.id, "latency_ms")
    text = " ".join(r.messages) + " ".join(v.message or "" for v in r.variants)
    text += " ".join(c.message or "" for c in r.comparisons)
    assert "cannot be computed" in text and "zero variance" not in text
    (g,) = r.guardrails
    assert g.metric == "latency_ms" and g.status == "cannot compute" and g.p_value is None
    assert r.winner is None


# ---- item 7: free text and files are capped ------------------------------------------------------

HUGE = "a" * 5_000_000  # 5 MB


def _exp_spec() -> dict[str, Any]:
    return {
        "name": "e",
        "template": "t",
        "variants": [
            {"name": "control", "ref": "1.0.0", "weight": 50},
            {"name": "treat", "ref": "b", "weight": 50},
        ],
        "metrics": ["quality_score"],
    }


def test_a_5_mb_author_is_refused_by_every_writer(t1, tmp_path):
    from promptver.limits import MAX_AUTHOR

    t1.versions.create_branch("t", "b")
    t1.templates.update("t", "Answer {question} now.", branch="b")
    exp = t1.experiments.create(_exp_spec())
    f = tmp_path / "e.csv"
    f.write_text("timestamp,template,user_id,latency_ms\n2026-01-01T00:00:00Z,t,u1,5\n")
    rule = t1.alerts.add("latency_avg", ">", 1, "1h")
    writers = {
        "template create": lambda a: t1.templates.create("t2", "x", author=a),
        "template update": lambda a: t1.templates.update("t", "y {question}", author=a),
        "archive": lambda a: t1.templates.archive("t", author=a),
        "branch": lambda a: t1.versions.create_branch("t", "b2", author=a),
        "merge": lambda a: t1.versions.merge("t", "b", author=a),
        "deploy": lambda a: t1.deployments.deploy("t", "1.0.0", "production", author=a),
        "experiment create": lambda a: t1.experiments.create(
            {**_exp_spec(), "name": "e2"}, author=a
        ),
        "experiment start": lambda a: t1.experiments.start(exp.id, author=a),
        "import": lambda a: t1.metrics.import_csv(f, author=a),
        "alert rule": lambda a: t1.alerts.add("latency_avg", ">", 2, "1h", author=a),
        "alert update": lambda a: t1.alerts.update(rule.id, threshold=3, author=a),
    }
    before = counts(t1)
    for what, write in writers.items():
        for bad in (HUGE, "x" * (MAX_AUTHOR + 1), "two\nlines"):
            with pytest.raises(ValidationError) as e:
                write(bad)
            assert "author" in e.value.message, what
            assert len(e.value.message) < 300, what
    assert counts(t1) == before
    assert t1.deployments.history("t") == []
    assert t1.experiments.get(exp.id).status == "draft"
    assert t1.metrics.summary().events == 0
    assert [r.id for r in t1.alerts.rules()] == [rule.id]
    # at the limit it is fine
    t1.templates.update("t", "y {question}", author="x" * MAX_AUTHOR)


def test_commit_messages_and_import_names_are_capped(t1, tmp_path):
    from promptver.limits import MAX_MESSAGE

    before = counts(t1)
    with pytest.raises(ValidationError, match=r"message: must be at most 1,000 characters"):
        t1.templates.update("t", "y {question}", message="m" * (MAX_MESSAGE + 1))
    with pytest.raises(ValidationError, match=r"message"):
        t1.templates.create("t3", "x", message=HUGE)
    assert counts(t1) == before
    f = tmp_path / "e.csv"
    f.write_text("timestamp,template,user_id,latency_ms\n2026-01-01T00:00:00Z,t,u1,5\n")
    with pytest.raises(ValidationError, match="file_name"):
        t1.metrics.import_csv(f, author="a", file_name="n" * 300)
    assert t1.metrics.summary().events == 0


def test_template_content_has_a_hard_ceiling_whatever_the_settings():
    from promptver.config import Settings

    with pytest.raises(ValueError, match="max_chars"):
        Settings.model_validate({"templates": {"max_chars": 10_000_000}})


# YAML files: aliases refused, nesting and size bounded --------------------------------------------

BILLION_LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
)
# many small aliases nested 2 wide and 30 deep: 2**30 leaves once written out
HANG = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 31))
DEEP_YAML = "[" * 5000 + "]" * 5000
DEEP_JSON = '{"name": ' + "[" * 100_000 + "]" * 100_000 + "}"


def test_hostile_yaml_sizes():
    assert len(BILLION_LAUGHS.encode()) < 330 and len(HANG.encode()) < 700


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BILLION_LAUGHS, "aliases"),
        (HANG, "aliases"),
        ("a: &x 1\nb: *x\n", "aliases"),
        ("base: &b {k: 1}\nother:\n  <<: *b\n", "aliases"),
        (DEEP_YAML, "nested more than"),
    ],
    ids=["billion-laughs", "hang", "alias", "merge-key", "deep"],
)
def test_yaml_loader_refuses_aliases_and_deep_nesting(text, expected):
    import time

    from promptver.limits import load_yaml

    t0 = time.process_time()
    with pytest.raises(ValidationError, match=expected) as e:
        load_yaml(text, "f.yaml")
    assert "f.yaml" in e.value.message and "line" in e.value.message
    assert time.process_time() - t0 < 1  # CPU time: the machine may be shared


def test_yaml_loader_keeps_ordinary_files():
    from promptver.limits import load_yaml

    assert load_yaml("a: &unused 1\nb: [1, {c: d}]\n") == {"a": 1, "b": [1, {"c": "d"}]}


@pytest.mark.parametrize(
    "text", [BILLION_LAUGHS, HANG, DEEP_YAML, DEEP_JSON], ids=["laughs", "hang", "yaml", "json"]
)
def test_hostile_experiment_files_are_refused_quickly(t1, tmp_path, text):
    import time

    f = tmp_path / ("exp.json" if text is DEEP_JSON else "exp.yaml")
    f.write_text(text)
    t0 = time.process_time()
    with pytest.raises(ValidationError):
        t1.experiments.create_from_file(f)
    assert time.process_time() - t0 < 5
    assert t1.experiments.list() == []


def test_large_files_are_refused_before_parsing(t1, tmp_path):
    from promptver.errors import PromptverError

    f = tmp_path / "big.yaml"
    f.write_text("name: e\ndescription: " + "x" * 2_000_000 + "\n")
    with pytest.raises(PromptverError, match="larger than 1,000,000"):
        t1.experiments.create_from_file(f)


@pytest.mark.parametrize(
    "text",
    [BILLION_LAUGHS, HANG, DEEP_YAML, DEEP_JSON, "k: " + "x" * 70_000],
    ids=["laughs", "hang", "yaml", "json", "70kb"],
)
def test_hostile_metadata_files_on_the_cli_are_one_line_errors(t1, cli, tmp_path, text):
    import time

    f = tmp_path / "meta.yaml"
    f.write_text(text)
    t0 = time.process_time()
    r = cli("template", "create", "t9", "--content", "hi", "--metadata-file", str(f))
    assert r.code == 1, r.err
    assert r.err.startswith("error: ") and r.err.count("\n") == 1, r.err[:500]
    assert "Traceback" not in r.err
    assert time.process_time() - t0 < 10  # CPU time: the machine may be shared
    assert [t.name for t in t1.templates.list()] == ["t"]


def test_yaml_prescan_ignores_brackets_in_quotes_and_comments():
    from promptver.limits import load_yaml

    text = (
        "a: '" + "[" * 100 + "'\nb: \"" + "{" * 100 + '"\n# ' + "[" * 100 + "\nc: [[1], {d: [2]}]\n"
    )
    assert load_yaml(text) == {"a": "[" * 100, "b": "{" * 100, "c": [[1], {"d": [2]}]}


def test_deep_or_huge_experiment_specs_are_refused_by_the_service(t1):
    for bad, expected in (
        ({**_exp_spec(), "description": nested(100_000)}, "more than 32 levels"),
        ({**_exp_spec(), "variants": [{"name": "x" * 70_000}] * 2}, "larger than 64 KB"),
    ):
        problems = t1.experiments.check(bad)
        assert [(p.field, expected in p.message) for p in problems] == [("experiment", True)]
        with pytest.raises(ValidationError, match=expected):
            t1.experiments.create(bad)
    assert t1.experiments.list() == []

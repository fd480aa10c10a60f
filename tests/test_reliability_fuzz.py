"""Hostile input, generated: the CSV importer, the experiment-file parser and the renderer.

Property-based (hypothesis), with bounded example counts so the file runs in well under a minute.
For every generated input, only promptver's own errors (``PromptverError`` subclasses) may
escape, and a refused input writes nothing: the counts of events, imports, experiments, templates
and commits stay the same. An accepted input writes exactly what it reports.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptver import Settings, Workspace
from promptver.errors import PromptverError
from promptver.experiments import FILE_FIELDS, load_spec
from promptver.templating import parse, parse_schema, render, validate

#: examples per property (RELIABILITY.md quotes the total)
EXAMPLES = {
    "csv_bytes": 100,
    "csv_near_valid": 120,
    "experiment_structures": 100,
    "experiment_near_valid": 80,
    "experiment_text": 100,
    "template_save": 80,
    "render_schema": 200,
    "validate": 150,
}


def fuzz(name: str) -> settings:
    """Bounded, reproducible settings for one property (no example database on disk)."""
    return settings(
        max_examples=EXAMPLES[name],
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,
        print_blob=True,  # a failure prints the @reproduce_failure line to replay it
    )


@pytest.fixture(scope="module")
def fws(tmp_path_factory) -> Workspace:
    """One workspace for the module: a template with two versions and a branch, events with a
    custom metric, and one experiment (so names and refs can clash)."""
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.duckdb"
    ws = Workspace.open(path, settings=Settings())
    ws.templates.create("qa-basic", "Answer {question} using {context}.", author="fuzz")
    ws.templates.update("qa-basic", "Answer {question} briefly using {context}.", author="fuzz")
    ws.versions.create_branch("qa-basic", "concise", author="fuzz")
    csv_path = path.with_suffix(".seed.csv")
    csv_path.write_text(
        "timestamp,template,user_id,event_id,latency_ms,thumbs_up\n"
        "2026-01-01T00:00:00Z,qa-basic,u1,seed-1,120,1\n"
        "2026-01-01T00:01:00Z,qa-basic,u2,seed-2,180,0\n"
    )
    ws.metrics.import_csv(csv_path, author="fuzz")
    ws.experiments.create(VALID_SPEC, author="fuzz")
    yield ws
    ws.close()


TABLES = (
    "metric_events",
    "imports",
    "experiments",
    "experiment_variants",
    "templates",
    "commits",
    "branches",
    "versions",
)
COUNTS = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in TABLES)


def counts(ws: Workspace) -> tuple[int, ...]:
    """Rows in every table a refused input could have touched (one query)."""
    with ws.db.read() as con:
        return tuple(con.execute(COUNTS).fetchone())


# ---- the CSV importer -----------------------------------------------------------------------

HEADER = ["timestamp", "template", "user_id", "event_id", "latency_ms", "success", "quality_score"]
_row_counter = iter(range(10**9))


def valid_rows(n: int) -> list[list[str]]:
    k = next(_row_counter)
    return [
        [
            f"2026-01-0{1 + i % 9}T0{i % 10}:00:00Z",
            "qa-basic",
            f"u{i}",
            f"fz{k}-{i}",
            str(100 + i),
            str(i % 2),
            str((i % 10) / 10),
        ]
        for i in range(n)
    ]


def to_csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


nasty_cells = st.one_of(
    st.sampled_from(
        [
            "",
            "NaN",
            "nan",
            "inf",
            "-inf",
            "1e999",
            "-1",
            "2",
            "TRUE",
            "yes",
            "9" * 40,
            "0x10",
            "1_000",
            "2999-01-01T00:00:00Z",
            "2026-13-45T99:99:99",
            "not a date",
            "qa-basic",
            "missing-template",
            "1.0.0",
            "9.9.9",
            '"',
            "a,b",
            "\x00",
            "\ufeff",
            "=cmd|' /C calc'!A0",
            "<img src=x onerror=alert(1)>",
        ]
    ),
    st.text(max_size=12),
)


@st.composite
def near_valid_csv(draw) -> bytes:
    """A valid file with a few mutations: cells, columns, rows, bytes."""
    header = list(HEADER)
    rows = valid_rows(draw(st.integers(0, 6)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(
                [
                    "cell",
                    "cell",
                    "cell",
                    "drop_col",
                    "dup_col",
                    "rename_col",
                    "extra_col",
                    "short_row",
                    "long_row",
                    "dup_row",
                    "blank_line",
                ]
            )
        )
        if kind == "cell" and rows:
            r = draw(st.integers(0, len(rows) - 1))
            c = draw(st.integers(0, len(header) - 1))
            if c < len(rows[r]):
                rows[r][c] = draw(nasty_cells)
        elif kind == "drop_col" and len(header) > 1:
            c = draw(st.integers(0, len(header) - 1))
            header.pop(c)
            for row in rows:
                if c < len(row):
                    row.pop(c)
        elif kind == "dup_col":
            c = draw(st.integers(0, len(header) - 1))
            header.append(header[c])
            for row in rows:
                row.append(row[c] if c < len(row) else "")
        elif kind == "rename_col":
            c = draw(st.integers(0, len(header) - 1))
            header[c] = draw(
                st.one_of(
                    st.sampled_from(
                        ["Timestamp", "experiment", "variant", "version", "environment", "x y"]
                    ),
                    st.text(max_size=8),
                )
            )
        elif kind == "extra_col":
            header.append(draw(st.sampled_from(["custom_metric", "notes", "cost_usd", "error"])))
            for row in rows:
                row.append(draw(nasty_cells))
        elif kind == "short_row" and any(rows):  # not a blank line: it has no cell to drop
            draw(st.sampled_from([row for row in rows if row])).pop()
        elif kind == "long_row" and rows:
            rows[draw(st.integers(0, len(rows) - 1))].append("extra")
        elif kind == "dup_row" and rows:
            rows.append(list(rows[draw(st.integers(0, len(rows) - 1))]))
        elif kind == "blank_line":
            rows.insert(draw(st.integers(0, len(rows))), [])
    data = to_csv([header, *rows])
    byte_op = draw(st.sampled_from(["none", "none", "truncate", "bom", "latin1", "semicolon"]))
    if byte_op == "truncate" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif byte_op == "bom":
        data = b"\xef\xbb\xbf" + data
    elif byte_op == "latin1":
        data = data.replace(b"u1", "ü1".encode("latin-1"))
    elif byte_op == "semicolon":
        data = data.replace(b",", b";")
    return data


def import_bytes(ws: Workspace, tmp: Path, data: bytes, name: str) -> None:
    """Import ``data``; a refusal must be one of our errors and leave every count unchanged."""
    with ws.session():  # one open of the file per example (the checks are what cost)
        _import_bytes(ws, tmp, data, name)


def _import_bytes(ws: Workspace, tmp: Path, data: bytes, name: str) -> None:
    before = counts(ws)
    path = tmp / name
    path.write_bytes(data)
    try:
        preview = ws.metrics.preview_csv(path, file_name=name)
        assert preview is not None
    except PromptverError:
        pass
    try:
        dry = ws.metrics.import_csv(path, file_name=name, author="fuzz", dry_run=True)
    except PromptverError:
        dry = None
    assert counts(ws) == before, "a dry run wrote something"
    try:
        result = ws.metrics.import_csv(path, file_name=name, author="fuzz")
    except PromptverError:
        assert counts(ws) == before, "a refused import wrote something"
        return
    after = counts(ws)
    assert after[0] == before[0] + result.rows_imported
    assert after[1] == before[1] + 1
    assert after[2:] == before[2:]
    assert dry is not None and dry.rows_imported == result.rows_imported


@fuzz("csv_bytes")
@given(data=st.one_of(st.binary(max_size=400), st.binary(max_size=40).map(lambda b: b * 20)))
def test_csv_import_of_any_bytes_raises_only_our_errors_and_writes_nothing(
    fws, tmp_path_factory, data
):
    import_bytes(fws, tmp_path_factory.mktemp("bytes"), data, "bytes.csv")


@fuzz("csv_near_valid")
@given(data=near_valid_csv())
def test_csv_import_of_near_valid_files_is_whole_or_nothing(fws, tmp_path_factory, data):
    import_bytes(fws, tmp_path_factory.mktemp("near"), data, "near.csv")


def test_the_near_valid_generator_is_sometimes_valid_and_sometimes_not(fws, tmp_path):
    """A sanity check of the generator above: unmutated files import, broken ones do not."""
    import_bytes(fws, tmp_path, to_csv([HEADER, *valid_rows(3)]), "ok.csv")
    before = counts(fws)
    bad = to_csv([HEADER, *valid_rows(2), ["2026-01-01T00:00:00Z", "qa-basic", "u", "x", "-5"]])
    with pytest.raises(PromptverError):
        fws.metrics.import_csv(_write(tmp_path / "bad.csv", bad))
    assert counts(fws) == before


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---- the experiment-file parser -------------------------------------------------------------

VALID_SPEC: dict[str, Any] = {
    "name": "fuzz-base",
    "template": "qa-basic",
    "environment": "production",
    "variants": [
        {"name": "control", "ref": "1.0.0", "weight": 50},
        {"name": "concise", "ref": "concise", "weight": 50},
    ],
    "metrics": ["quality_score", {"name": "thumbs_up", "direction": "higher"}],
    "minimum_sample_size": 100,
    "alpha": 0.05,
}

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["1.0.0", "concise", "qa-basic", "production", "2026-01-01T00:00:00Z"]),
)
json_values = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(["name", "ref", "weight", "direction"]), st.text(max_size=8)),
            children,
            max_size=4,
        ),
    ),
    max_leaves=12,
)
spec_keys = st.one_of(st.sampled_from(list(FILE_FIELDS)), st.text(max_size=10))


def serialise(spec: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(spec, allow_nan=True, default=str)
    return yaml.safe_dump(spec, allow_unicode=True)


def create_from_text(ws: Workspace, text: str, source: str) -> None:
    with ws.session():  # one open of the file per example
        _create_from_text(ws, text, source)


def _create_from_text(ws: Workspace, text: str, source: str) -> None:
    before = counts(ws)
    try:
        spec = load_spec(text, source)
        ws.experiments.check(spec)
        exp = ws.experiments.create(spec, author="fuzz")
    except PromptverError:
        assert counts(ws) == before, "a refused experiment file wrote something"
        return
    after = counts(ws)
    assert after[2] == before[2] + 1 and after[3] == before[3] + len(exp.variants)
    ws.experiments.delete(exp.id, author="fuzz")  # keep names free for the next examples


@fuzz("experiment_structures")
@given(
    spec=st.one_of(st.dictionaries(spec_keys, json_values, max_size=8), json_values),
    fmt=st.sampled_from(["json", "yaml"]),
)
def test_experiment_files_of_any_structure_raise_only_our_errors(fws, spec, fmt):
    try:
        text = serialise(spec, fmt)
    except (ValueError, yaml.YAMLError):  # not representable: nothing to test
        return
    create_from_text(fws, text, f"exp.{fmt}")


@fuzz("experiment_near_valid")
@given(
    field=st.sampled_from([*FILE_FIELDS, "variants.0", "variants.1", "metrics.0", "extra"]),
    value=json_values,
    fmt=st.sampled_from(["json", "yaml"]),
)
def test_near_valid_experiment_files_are_created_whole_or_refused(fws, field, value, fmt):
    spec = json.loads(json.dumps(VALID_SPEC))
    spec["name"] = f"fuzz-{abs(hash((field, repr(value)))) % 10**9}"
    if "." in field:
        key, index = field.split(".")
        spec[key][int(index)] = value
    else:
        spec[field] = value
    try:
        text = serialise(spec, fmt)
    except (ValueError, yaml.YAMLError):
        return
    create_from_text(fws, text, f"exp.{fmt}")


@fuzz("experiment_text")
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.text(alphabet=st.sampled_from(list("{}[]:,-'\"\n #&*!|>%@`name")), max_size=120),
    )
)
def test_experiment_files_of_any_text_raise_only_our_errors(fws, text):
    create_from_text(fws, text, "exp.yaml")


# ---- templates and the renderer -------------------------------------------------------------


@fuzz("template_save")
@given(
    content=st.one_of(
        st.text(max_size=120),
        st.text(alphabet=st.sampled_from(list("{}ab_.0[]!:x \n<>$`")), max_size=60),
    ),
    metadata=st.one_of(st.none(), st.dictionaries(st.text(max_size=10), json_values, max_size=3)),
    name=st.one_of(st.sampled_from(["qa-basic", "fuzz-t", "a/b", "x" * 101]), st.text(max_size=12)),
)
def test_saving_any_template_text_raises_only_our_errors(fws, content, metadata, name):
    with fws.session():
        _save(fws, content, metadata, name)


def _save(fws: Workspace, content: str, metadata: Any, name: str) -> None:
    before = counts(fws)
    try:
        fws.templates.update("qa-basic", content, metadata=metadata, author="fuzz")
    except PromptverError:
        assert counts(fws) == before
    else:
        assert counts(fws)[5] == before[5] + 1
    before = counts(fws)
    try:
        fws.templates.create(name, content, metadata=metadata, author="fuzz")
    except PromptverError:
        assert counts(fws) == before
    else:
        assert counts(fws)[4] == before[4] + 1
        fws.templates.archive(name, author="fuzz")


any_value = st.one_of(
    st.text(max_size=20),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.just(object()),
)


@fuzz("render_schema")
@given(
    text=st.text(alphabet=st.sampled_from(list("{}abx_ .\n")), max_size=40),
    metadata=st.one_of(
        st.dictionaries(st.text(max_size=6), json_values, max_size=3),
        st.fixed_dictionaries(
            {
                "variables": st.dictionaries(
                    st.sampled_from(["a", "b", "x", "ab"]),
                    st.one_of(
                        json_values,
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "type": st.one_of(
                                    st.sampled_from(["str", "int", "float"]), json_leaf
                                ),
                                "required": json_leaf,
                                "default": json_leaf,
                                "description": json_leaf,
                            },
                        ),
                    ),
                    max_size=3,
                )
            }
        ),
    ),
    values=st.dictionaries(st.sampled_from(["a", "b", "x", "ab", "zz"]), any_value, max_size=4),
    strict=st.booleans(),
)
def test_rendering_with_any_schema_and_values_raises_only_our_errors(
    text, metadata, values, strict
):
    schema, problems = parse_schema(metadata)  # never raises: problems are returned
    assert isinstance(problems, list)
    try:
        out = render(parse(text), values, strict=strict, schema=schema, max_chars=10_000)
    except PromptverError:
        return
    assert isinstance(out, str) and len(out) <= 10_000


@fuzz("validate")
@given(
    content=st.text(max_size=300),
    metadata=st.one_of(st.none(), st.dictionaries(st.text(max_size=8), json_values, max_size=3)),
)
def test_validation_reports_problems_for_any_text_and_never_raises(content, metadata):
    report = validate(content, metadata)
    for p in [*report.errors, *report.warnings]:
        assert p.message
        if p.offset is not None:
            assert 0 <= p.offset <= len(content)


def test_example_counts_are_bounded():
    assert sum(EXAMPLES.values()) <= 1500 and not math.isnan(sum(EXAMPLES.values()))

"""CSV import: every rule of the contract's "Metric events CSV" section, with failing files.

Each broken file must be refused with an error naming the line, the column and the reason, and
must leave the event count (and the import history) exactly as it was.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from promptver.errors import ImportError_
from tests.metrics_helpers import add_experiment, count, imports_count, rows, write

ROOT = Path(__file__).resolve().parents[1]
H = "timestamp,template,user_id,latency_ms"
OK = "2026-01-05T10:00:00Z,qa-basic,u1,100"


def _populate(ws, folder: Path):
    """qa-basic (1.0.0, 1.1.0), summarize (1.0.0), an experiment on each, 3 events stored."""
    with ws.session():
        if not ws.templates.list():
            ws.templates.create("qa-basic", "Answer {question} using {context}.", author="ana")
            ws.templates.update(
                "qa-basic", "Answer {question} briefly using {context}.", author="ben"
            )
        ws.templates.create("summarize", "Summarise {text}.", author="ana")
        add_experiment(ws, "qa-basic", "tone-test", [("control", "1.0.0"), ("concise", "1.1.0")])
        add_experiment(ws, "summarize", "sum-test", [("control", "1.0.0"), ("short", "1.0.0")])
        seed = write(
            folder / "seed.csv",
            "event_id,timestamp,template,user_id,latency_ms\n"
            "s1,2026-01-01T00:00:00Z,qa-basic,u1,10\n"
            "s2,2026-01-01T00:00:01Z,qa-basic,u2,20\n"
            "s3,2026-01-01T00:00:02Z,summarize,u3,30\n",
        )
        ws.metrics.import_csv(seed, author="seed")
    return ws


@pytest.fixture
def mws(ws, tmp_path):
    return _populate(ws, tmp_path)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One workspace for every broken file: each refusal must leave it exactly as it was."""
    from promptver import Settings, Workspace

    folder = tmp_path_factory.mktemp("broken")
    ws = Workspace.open(folder / "shared.duckdb", settings=Settings())
    yield _populate(ws, folder)
    ws.close()


@pytest.fixture(params=["one-pass", "detailed"])
def mode(request, monkeypatch):
    """Run a test through the one-pass import (valid files) and through the detailed path."""
    from promptver.metrics import csv_import

    if request.param == "detailed":
        monkeypatch.setattr(csv_import, "_import_in_one_pass", lambda *a, **k: None)
    return request.param


def future(days: int = 30) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


# (id, file content, substrings the error must contain)
BROKEN: list[tuple[str, str | bytes, list[str]]] = [
    # -- encodings
    ("empty-file", b"", ["line 1", "the file is empty"]),
    # a quote inside an unquoted name: the header scan and the csv module disagree on where the
    # line ends (found by tests/test_reliability_fuzz.py: it raised _csv.Error)
    (
        "quote-inside-header-name",
        'timestamp,templ"ate\nx",user_id\n' + OK + "\n",
        ["line 1", "the header line is broken"],
    ),
    ("utf16-bom", (H + "\n" + OK + "\n").encode("utf-16"), ["line 1", "UTF-16"]),
    ("utf16-no-bom", (H + "\n" + OK + "\n").encode("utf-16-le"), ["line 1", "UTF-16"]),
    (
        "latin1-header",
        "timestamp,template,user_id,latency_ms,caf\u00e9\n".encode("latin-1"),
        ["line 1", "not valid UTF-8"],
    ),
    (
        "latin1-row",
        (H + "\n" + OK + "\n2026-01-05T10:00:00Z,qa-basic,Jos\u00e9,1\n").encode("latin-1"),
        ["line 3", "not valid UTF-8"],
    ),
    # -- delimiters and header problems
    (
        "semicolons",
        H.replace(",", ";") + "\n" + OK.replace(",", ";") + "\n",
        ["line 1", "semicolon-separated", "must be comma-separated"],
    ),
    ("tabs", H.replace(",", "\t") + "\n" + OK.replace(",", "\t") + "\n", ["tab-separated"]),
    ("header-only", H + "\n", ["line 2", "no data rows"]),
    ("header-only-blank-lines", H + "\n\n\n", ["no data rows"]),
    (
        "duplicate-column",
        H + ",latency_ms\n" + OK + ",5\n",
        ["line 1", "column latency_ms", "duplicate column name 'latency_ms' (columns 4 and 5)"],
    ),
    (
        "upper-case-header",
        "Timestamp,template,user_id,latency_ms\n" + OK + "\n",
        ["line 1", "rename 'Timestamp' to 'timestamp'"],
    ),
    (
        "missing-user-id-column",
        "timestamp,template,latency_ms\n2026-01-05,qa-basic,1\n",
        ["line 1", "required column 'user_id' is missing"],
    ),
    (
        "no-metric-column",
        "timestamp,template,user_id\n2026-01-05,qa-basic,u1\n",
        ["line 1", "no metric column"],
    ),
    ("empty-column-name", H + ",\n" + OK + ",1\n", ["line 1", "column 5 has no name"]),
    (
        "bad-custom-name",
        H + ",thumbs up\n" + OK + ",1\n",
        ["line 1", "'thumbs up' is not a known column", "not a valid custom metric name"],
    ),
    (
        "non-numeric-unknown-column",
        H + ",notes\n" + OK + ",3\n" + OK + ",great answer\n",
        ["line 3", "column notes", "'notes' is not a known column", "non-numeric", "great answer"],
    ),
    (
        "experiment-without-variant-column",
        H + ",experiment\n" + OK + ",tone-test\n",
        ["line 1", "column 'variant' is required with column 'experiment'"],
    ),
    # -- ragged rows and quoting
    (
        "too-many-values",
        H + "\n" + OK + "\n" + OK + ",7\n",
        ["line 3", "the row has 5 values but the header has 4 columns"],
    ),
    (
        "too-few-values",
        H + "\n" + OK + "\n2026-01-05T10:00:00Z,qa-basic\n",
        ["line 3", "header has 4 columns"],
    ),
    (
        "unterminated-quote",
        H + "\n" + OK + '\n2026-01-05T10:00:00Z,"qa-basic,u1,1\n' + OK + "\n",
        ["line 3", "quoted value is not closed"],
    ),
    (
        "text-after-closing-quote",
        H + '\n2026-01-05T10:00:00Z,"qa"-basic,u1,1\n',
        ["line 2", "quote"],
    ),
    (
        "mixed-line-breaks",
        (H + "\r\n" + OK + "\r\n" + OK + "\n" + OK + "\r\n").encode(),
        ["line 3", "ends with LF but the header ends with CRLF"],
    ),
    # -- numbers
    (
        "not-a-number",
        H + "\n" + OK + "\n2026-01-05T10:00:00Z,qa-basic,u1,12ms\n",
        ["line 3", "column latency_ms", "'12ms' is not a number"],
    ),
    (
        "decimal-comma",
        H + ",cost_usd\n" + OK + ',"0,5"\n',
        ["line 2", "column cost_usd", "'0,5' is not a number"],
    ),
    (
        "nan",
        H + "\n2026-01-05T10:00:00Z,qa-basic,u1,NaN\n",
        ["line 2", "column latency_ms", "NaN is not a valid value"],
    ),
    (
        "inf",
        H + ",cost_usd\n" + OK + ",inf\n",
        ["line 2", "column cost_usd", "infinity is not a valid value"],
    ),
    ("overflow-is-inf", H + "\n2026-01-05T10:00:00Z,qa-basic,u1,1e999\n", ["line 2", "infinity"]),
    ("nan-custom", H + ",thumbs\n" + OK + ",nan\n", ["line 2", "column thumbs", "NaN"]),
    (
        "negative-latency",
        H + "\n2026-01-05T10:00:00Z,qa-basic,u1,-5\n",
        ["line 2", "column latency_ms", "must be ≥ 0"],
    ),
    (
        "quality-above-one",
        H + ",quality_score\n" + OK + ",1.5\n",
        ["line 2", "column quality_score", "between 0 and 1"],
    ),
    ("negative-cost", H + ",cost_usd\n" + OK + ",-0.01\n", ["column cost_usd", "must be ≥ 0"]),
    (
        "fractional-tokens",
        H + ",tokens_in\n" + OK + ",12.5\n",
        ["line 2", "column tokens_in", "whole number"],
    ),
    ("negative-tokens", H + ",tokens_out\n" + OK + ",-3\n", ["column tokens_out", "≥ 0"]),
    (
        "boolean-yes",
        H + ",success\n" + OK + ",yes\n",
        ["line 2", "column success", "'yes' is not a boolean"],
    ),
    ("boolean-2", H + ",error\n" + OK + ",2\n", ["column error", "not a boolean"]),
    # -- dates
    (
        "us-date",
        H + "\n01/05/2026,qa-basic,u1,1\n",
        ["line 2", "column timestamp", "'01/05/2026' is not an ISO 8601 timestamp"],
    ),
    ("epoch-seconds", H + "\n1767607200,qa-basic,u1,1\n", ["not an ISO 8601 timestamp"]),
    (
        "named-zone",
        H + "\n2026-01-05 10:00 Europe/Paris,qa-basic,u1,1\n",
        ["not an ISO 8601 timestamp"],
    ),
    (
        "bad-offset",
        H + "\n2026-01-05T10:00:00+5,qa-basic,u1,1\n",
        ["line 2", "not an ISO 8601 timestamp"],
    ),
    (
        "impossible-date",
        H + "\n2026-02-30T10:00:00Z,qa-basic,u1,1\n",
        ["line 2", "'2026-02-30T10:00:00Z' is not a valid date and time"],
    ),
    (
        "letters-in-iso-shape",
        H + "\nabcd-ef-ghTij:kl:mnZ,qa-basic,u1,1\n",
        ["line 2", "not a valid date and time"],
    ),
    ("date-without-padding", H + "\n2026-1-5,qa-basic,u1,1\n", ["not an ISO 8601 timestamp"]),
    (
        "impossible-time",
        H + "\n2026-01-05T25:61:00Z,qa-basic,u1,1\n",
        ["line 2", "not a valid date and time"],
    ),
    (
        "future",
        H + "\n" + OK + "\n" + future() + ",qa-basic,u1,1\n",
        ["line 3", "column timestamp", "is in the future"],
    ),
    (
        "future-by-offset",
        H + "\n" + future(0)[:-1] + "-03:00,qa-basic,u1,1\n",
        ["line 2", "is in the future"],
    ),
    (
        "missing-timestamp",
        H + "\n,qa-basic,u1,1\n",
        ["line 2", "column timestamp", "required value is missing"],
    ),
    # -- references
    (
        "unknown-template",
        H + "\n2026-01-05T10:00:00Z,qa-basci,u1,1\n",
        ["line 2", "column template", "unknown template 'qa-basci'"],
    ),
    (
        "unknown-version",
        H + ",version\n" + OK + ",9.9.9\n",
        ["line 2", "column version", "template 'qa-basic' has no version '9.9.9'"],
    ),
    (
        "unknown-experiment",
        H + ",experiment,variant\n" + OK + ",nope,control\n",
        ["line 2", "column experiment", "unknown experiment 'nope'"],
    ),
    (
        "unknown-variant",
        H + ",experiment,variant\n" + OK + ",tone-test,verbose\n",
        ["line 2", "column variant", "unknown variant 'verbose'", "control, concise"],
    ),
    (
        "experiment-of-another-template",
        H + ",experiment,variant\n" + OK + ",sum-test,control\n",
        ["line 2", "column experiment", "belongs to another template (summarize)"],
    ),
    (
        "variant-without-experiment",
        H + ",variant\n" + OK + ",control\n",
        ["line 2", "column variant", "a variant needs an experiment"],
    ),
    (
        "experiment-without-variant",
        H + ",experiment,variant\n" + OK + ",tone-test,\n",
        ["line 2", "column variant", "required with an experiment"],
    ),
    (
        "unknown-environment",
        H + ",environment\n" + OK + ",prod\n",
        ["line 2", "column environment", "unknown environment 'prod'", "production"],
    ),
    # -- missing values and duplicates
    (
        "missing-user",
        H + "\n2026-01-05T10:00:00Z,qa-basic,,1\n",
        ["line 2", "column user_id", "required value is missing"],
    ),
    (
        "blank-user",
        H + "\n2026-01-05T10:00:00Z,qa-basic,   ,1\n",
        ["line 2", "column user_id", "required value is missing"],
    ),
    (
        "no-metric-value",
        H + ",success\n" + OK + ",true\n2026-01-05T10:00:00Z,qa-basic,u1,,\n",
        ["line 3", "the row has no metric value"],
    ),
    (
        "duplicate-event-id",
        "event_id," + H + "\ne1," + OK + "\ne2," + OK + "\ne1," + OK + "\n",
        ["line 4", "column event_id", "event_id 'e1' already appears on line 2"],
    ),
]


@pytest.mark.parametrize("content,expected", [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_file_is_refused_whole(shared, tmp_path, content, expected):
    mws = shared
    before, imports_before = count(mws), imports_count(mws)
    assert before == 3 and imports_before == 1
    path = write(tmp_path / "broken.csv", content)
    with pytest.raises(ImportError_) as info:
        mws.metrics.import_csv(path)
    message = str(info.value)
    for text in expected:
        assert text in message, f"{text!r} not in {message!r}"
    assert "nothing was imported" in message
    assert info.value.problems, "problems name line and column"
    assert count(mws) == before
    assert imports_count(mws) == imports_before


def test_at_least_25_broken_cases():
    assert len(BROKEN) >= 25


def test_line_numbers_count_quoted_line_breaks_and_blank_lines(mws, tmp_path):
    # record 1 spans lines 2-4 (two quoted line breaks), line 5 is blank, the bad row is line 7
    content = (
        H + ",experiment,variant\n"
        '2026-01-05T10:00:00Z,qa-basic,"multi\nline\r\nuser",1,,\n'
        "\n"
        "2026-01-05T10:00:00Z,qa-basic,u2,2,,\n"
        "2026-01-05T10:00:00Z,qa-basic,u3,-1,,\n"
    )
    path = write(tmp_path / "lines.csv", content)
    with pytest.raises(ImportError_) as info:
        mws.metrics.import_csv(path)
    assert [p.line for p in info.value.problems] == [7]
    assert info.value.problems[0].field == "latency_ms"
    assert info.value.problems[0].column == 4  # position of the column in the file
    # the same for an error DuckDB finds while parsing (a bad number)
    path = write(tmp_path / "lines2.csv", content.replace(",-1,", ",abc,"))
    with pytest.raises(ImportError_) as info:
        mws.metrics.import_csv(path)
    assert "line 7, column latency_ms: 'abc' is not a number" in str(info.value)


def test_at_most_20_problems_are_listed_in_file_order(mws, tmp_path):
    body = "".join(f"2026-01-05T10:00:00Z,qa-basic,u{i},-{i + 1}\n" for i in range(30))
    path = write(tmp_path / "many.csv", H + "\n" + body)
    with pytest.raises(ImportError_) as info:
        mws.metrics.import_csv(path)
    problems = info.value.problems
    assert len(problems) == 20
    assert [p.line for p in problems] == list(range(2, 22))
    assert "more than 20 problems" in str(info.value)


def test_several_problems_in_one_file_are_all_reported(mws, tmp_path):
    path = write(
        tmp_path / "multi.csv",
        H + ",success,version\n"
        "2026-01-05T10:00:00Z,qa-basic,u1,-1,maybe,1.0.0\n"
        "2026-01-05T10:00:00Z,nope,u1,1,true,1.0.0\n",
    )
    with pytest.raises(ImportError_) as info:
        mws.metrics.import_csv(path)
    found = {(p.line, p.field) for p in info.value.problems}
    assert found == {(2, "latency_ms"), (2, "success"), (3, "template")}
    assert str(info.value).index("line 2") < str(info.value).index("line 3")


# ---- what a valid file stores ----------------------------------------------------------------


def test_bom_crlf_quotes_offsets_empties_and_booleans(mws, tmp_path, mode):
    content = (
        "\ufeffevent_id,timestamp,template,user_id,version,environment,latency_ms,success,"
        "error,quality_score,cost_usd,tokens_in,tokens_out,thumbs_up\r\n"
        'a1,2026-01-05T10:00:00+02:00,qa-basic,"user, ""quoted""\r\nline",1.0.0,staging,'
        "120.5,TRUE,0,0.75,0.002,100,20,1\r\n"
        "a2,2026-01-05 09:30,qa-basic,  u2  ,,,,False,1,,,,,\r\n"
        "a3,2026-01-05T10:00:00.123456Z,summarize,u3,1.0.0,production,80,1,false,,,,,-2.5\r\n"
        "a4,2026-01-05,qa-basic,u4,1.1.0,,5,,,,0,0,0,\r\n"
    )
    path = write(tmp_path / "good.csv", content)
    result = mws.metrics.import_csv(path, author="ana")
    assert result.rows_imported == 4 and result.rows_skipped_duplicate == 0
    assert result.custom_metrics == ["thumbs_up"]
    stored = {
        r["event_id"]: r
        for r in rows(mws, "WHERE import_id IS NOT NULL AND event_id LIKE 'a%' ORDER BY event_id")
    }
    a1, a2, a3, a4 = (stored[k] for k in ("a1", "a2", "a3", "a4"))
    assert a1["ts"] == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # +02:00 normalised to UTC
    assert a2["ts"] == datetime(2026, 1, 5, 9, 30, tzinfo=UTC)  # no offset means UTC
    assert a3["ts"] == datetime(2026, 1, 5, 10, 0, 0, 123456, tzinfo=UTC)
    assert a4["ts"] == datetime(2026, 1, 5, tzinfo=UTC)
    assert a1["user_id"] == 'user, "quoted"\r\nline'
    assert a2["user_id"] == "u2"  # cells are trimmed
    assert (a1["success"], a1["error"], a2["success"], a2["error"]) == (True, False, False, True)
    assert (a3["success"], a3["error"]) == (True, False)
    assert a2["latency_ms"] is None and a2["quality_score"] is None  # empty means missing
    assert a2["version"] is None and a2["environment"] is None
    assert (a1["latency_ms"], a1["quality_score"], a1["cost_usd"]) == (120.5, 0.75, 0.002)
    assert (a1["tokens_in"], a1["tokens_out"]) == (100, 20)
    assert a1["version"] == "1.0.0" and a1["environment"] == "staging"
    qa = mws.templates.get("qa-basic", "1.0.0")
    assert a1["template_id"] == qa.id and a1["commit_id"] == qa.commit
    assert a1["custom"] == {"thumbs_up": 1.0}
    assert a3["custom"] == {"thumbs_up": -2.5}
    assert a2["custom"] is None and a4["custom"] is None
    assert a4["tokens_in"] == 0 and a4["cost_usd"] == 0.0


def test_template_by_id_and_experiment_by_name_or_id(mws, tmp_path, mode):
    qa = mws.templates.row("qa-basic")
    exp_id = add_experiment(mws, "qa-basic", "second", [("a", "1.0.0"), ("b", "1.1.0")])
    path = write(
        tmp_path / "exp.csv",
        H + ",experiment,variant\n"
        f"2026-01-05T10:00:00Z,{qa['id']},u1,1,tone-test,concise\n"
        f"2026-01-05T10:00:00Z,qa-basic,u2,1,{exp_id},a\n"
        "2026-01-05T10:00:00Z,qa-basic,u3,1,,\n",
    )
    assert mws.metrics.import_csv(path).rows_imported == 3
    got = rows(
        mws,
        "WHERE user_id IN ('u1', 'u2', 'u3') AND import_id IS NOT NULL"
        " AND event_id IS NULL ORDER BY user_id",
    )
    v11 = mws.templates.get("qa-basic", "1.1.0")
    v10 = mws.templates.get("qa-basic", "1.0.0")
    assert got[0]["template_id"] == qa["id"] and got[0]["variant"] == "concise"
    # without a version column the version and commit come from the variant
    assert (got[0]["version"], got[0]["commit_id"]) == ("1.1.0", v11.commit)
    assert got[1]["experiment_id"] == exp_id and got[1]["commit_id"] == v10.commit
    assert got[2]["experiment_id"] is None and got[2]["variant"] is None


def test_custom_metric_cells_may_be_empty_and_columns_match_by_name(mws, tmp_path, mode):
    # the same data with columns in another order lands identically
    a = write(
        tmp_path / "a.csv",
        "timestamp,template,user_id,latency_ms,nps\n"
        "2026-01-05T10:00:00Z,qa-basic,ua,5,\n2026-01-05T10:00:00Z,qa-basic,ub,6,9\n",
    )
    b = write(
        tmp_path / "b.csv",
        "nps,latency_ms,user_id,template,timestamp\n"
        ",5,ua,qa-basic,2026-01-05T10:00:00Z\n9,6,ub,qa-basic,2026-01-05T10:00:00Z\n",
    )
    ra, rb = mws.metrics.import_csv(a), mws.metrics.import_csv(b)
    got = rows(mws, "WHERE user_id IN ('ua', 'ub') ORDER BY import_id, user_id")
    by_import = {}
    for r in got:
        by_import.setdefault(r["import_id"], []).append(
            (r["user_id"], r["latency_ms"], r["custom"])
        )
    assert (
        by_import[ra.import_id]
        == by_import[rb.import_id]
        == [("ua", 5.0, None), ("ub", 6.0, {"nps": 9.0})]
    )


# ---- idempotence ---------------------------------------------------------------------------


def test_reimport_with_event_ids_skips_what_is_stored(mws, tmp_path, mode):
    first = write(
        tmp_path / "one.csv",
        "event_id,"
        + H
        + "\n"
        + "".join(f"r{i},2026-01-05T10:00:00Z,qa-basic,u{i},{i}\n" for i in range(5)),
    )
    r1 = mws.metrics.import_csv(first)
    assert (r1.rows_imported, r1.rows_skipped_duplicate) == (5, 0)
    n = count(mws)
    r2 = mws.metrics.import_csv(first)
    assert (r2.rows_imported, r2.rows_skipped_duplicate) == (0, 5)
    assert count(mws) == n
    # an overlapping file adds only the new rows; an empty event_id cell means none
    second = write(
        tmp_path / "two.csv",
        "event_id,"
        + H
        + "\n"
        + "".join(f"r{i},2026-01-05T10:00:00Z,qa-basic,u{i},{i}\n" for i in range(3, 8))
        + ",2026-01-05T10:00:00Z,qa-basic,nobody,1\n",
    )
    r3 = mws.metrics.import_csv(second)
    assert (r3.rows_imported, r3.rows_skipped_duplicate) == (4, 2)
    assert count(mws) == n + 4
    history = mws.metrics.imports()
    assert [h.id for h in history[:3]] == [r3.import_id, r2.import_id, r1.import_id]
    assert history[0].has_event_ids is False and history[2].has_event_ids is True
    assert history[0].sha256 == r3.sha256 and len(r3.sha256) == 64


def test_file_without_event_ids_cannot_be_imported_twice(mws, tmp_path, mode):
    path = write(tmp_path / "plain.csv", H + "\n" + OK + "\n")
    r1 = mws.metrics.import_csv(path, author="ana")
    n, imports_n = count(mws), imports_count(mws)
    copy = write(tmp_path / "renamed-copy.csv", path.read_bytes())
    with pytest.raises(ImportError_) as info:
        mws.metrics.import_csv(copy)
    assert "already imported" in str(info.value) and r1.import_id in str(info.value)
    assert "by ana" in str(info.value)
    assert count(mws) == n and imports_count(mws) == imports_n
    # a file that differs by one byte is a different file
    write(copy, path.read_bytes() + b"2026-01-05T10:00:00Z,qa-basic,u9,1\n")
    assert mws.metrics.import_csv(copy).rows_imported == 2


def test_dry_run_checks_and_counts_without_writing(mws, tmp_path, mode):
    path = write(tmp_path / "dry.csv", "event_id," + H + "\ns1," + OK + "\nn1," + OK + "\n")
    n, imports_n = count(mws), imports_count(mws)
    result = mws.metrics.import_csv(path, dry_run=True)
    assert (result.rows_imported, result.rows_skipped_duplicate) == (1, 1)
    assert count(mws) == n and imports_count(mws) == imports_n


def test_listener_hears_each_import(mws, tmp_path, mode):
    heard = []
    remove = mws.metrics.add_listener(heard.append)
    path = write(tmp_path / "l.csv", H + "\n" + OK + "\n")
    result = mws.metrics.import_csv(path)
    assert len(heard) == 1
    assert heard[0].source == "import" and heard[0].rows == 1
    assert heard[0].import_id == result.import_id
    assert heard[0].template_ids == [mws.templates.row("qa-basic")["id"]]
    remove()
    mws.metrics.import_csv(write(tmp_path / "l2.csv", H + "\n" + OK.replace("u1", "u2") + "\n"))
    assert len(heard) == 1


def test_missing_file_is_a_clear_error(mws, tmp_path):
    with pytest.raises(ImportError_, match="file not found"):
        mws.metrics.import_csv(tmp_path / "nope.csv")


# ---- atomicity -----------------------------------------------------------------------------

KILLER = textwrap.dedent("""
    import os, signal, sys
    from promptver import Workspace
    if sys.argv[3] == "detailed":
        import promptver.metrics.csv_import as ci
        ci._import_in_one_pass = lambda *a, **k: None
    ws = Workspace.open(sys.argv[1])
    def progress(fraction, message):
        if message == "committing":   # rows inserted, transaction not yet committed
            os.kill(os.getpid(), signal.SIGKILL)
    ws.metrics.import_csv(sys.argv[2], progress=progress)
    print("not killed")
""")


@pytest.mark.parametrize("path_mode", ["one-pass", "detailed"])
def test_process_killed_mid_import_leaves_nothing_behind(mws, tmp_path, db_path, path_mode):
    n, imports_n = count(mws), imports_count(mws)
    mws.close()
    body = "".join(f"2026-01-05T10:00:00Z,qa-basic,k{i},{i}\n" for i in range(20_000))
    path = write(tmp_path / "big.csv", H + "\n" + body)
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(db_path), str(path), path_mode],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    from promptver import Workspace

    again = Workspace.open(db_path)
    try:
        assert count(again) == n and imports_count(again) == imports_n
        # and the file is healthy: the same import now succeeds
        assert again.metrics.import_csv(path).rows_imported == 20_000
    finally:
        again.close()


def test_example_csv_matches_the_committed_file_and_imports_into_the_demo(tmp_path, db_path):
    from promptver import Workspace
    from promptver.demo import build_demo
    from promptver.metrics import example_csv

    committed = (ROOT / "data" / "example_events.csv").read_bytes()
    assert committed == example_csv()
    ws = Workspace.open(db_path)
    try:
        build_demo(ws)
        before = count(ws)
        result = ws.metrics.import_csv(ROOT / "data" / "example_events.csv")
        assert result.rows_imported == 24 and count(ws) == before + 24
    finally:
        ws.close()


def test_preview_lists_columns_with_roles_and_first_rows(mws, tmp_path):
    path = write(
        tmp_path / "p.csv",
        "event_id,"
        + H
        + ",success,experiment,variant,nps\n"
        + "".join(f"p{i}," + OK + ",true,,,5\n" for i in range(15)),
    )
    preview = mws.metrics.preview_csv(path, rows=10)
    roles = {c.name: c.role for c in preview.columns}
    assert roles == {
        "event_id": "key",
        "timestamp": "required",
        "template": "required",
        "user_id": "required",
        "latency_ms": "metric",
        "success": "metric",
        "experiment": "key",
        "variant": "key",
        "nps": "custom metric",
    }
    assert len(preview.rows) == 10 and preview.rows[0][0] == "p0"
    bad = mws.metrics.preview_csv(write(tmp_path / "b.csv", "a;b;c\n1;2;3\n"))
    assert bad.columns == [] and "semicolon" in bad.problems[0]


def test_two_threads_importing_the_same_file_import_it_once(mws, tmp_path, mode):
    import threading

    path = write(
        tmp_path / "twice.csv",
        H + "\n" + "".join(f"2026-01-05T10:00:00Z,qa-basic,t{i},{i}\n" for i in range(2000)),
    )
    outcomes: list[str] = []

    def run() -> None:
        try:
            mws.metrics.import_csv(path)
            outcomes.append("imported")
        except ImportError_ as exc:
            outcomes.append("refused" if "already imported" in str(exc) else str(exc))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["imported", "refused"]
    assert count(mws) == 3 + 2000


def test_spaces_around_values_are_ignored_everywhere(mws, tmp_path, mode):
    path = write(
        tmp_path / "padded.csv",
        H + ",version,environment,experiment,variant,success\n"
        " 2026-01-05T10:00:00Z , qa-basic , u7 ,5, 1.1.0 , staging , tone-test ,"
        " concise , TRUE \n",
    )
    assert mws.metrics.import_csv(path).rows_imported == 1
    (r,) = rows(mws, "WHERE user_id = 'u7'")
    assert (r["version"], r["environment"], r["variant"], r["success"]) == (
        "1.1.0",
        "staging",
        "concise",
        True,
    )
    assert r["ts"] == datetime(2026, 1, 5, 10, tzinfo=UTC)


VALID = [
    "event_id,timestamp,template,user_id,version,environment,latency_ms,success,nps\n"
    "v1,2026-01-05T10:00:00Z,qa-basic,u1,1.0.0,staging,5,TRUE,3\n"
    'v2,2026-01-05 10:00:00.5+02:00,summarize,"u,2",,,6,0,\n',
    "timestamp,template,user_id,experiment,variant,quality_score\r\n"
    "2026-01-05,qa-basic,u3,tone-test,concise,0.5\r\n",
]


@pytest.mark.parametrize("content", VALID)
def test_valid_files_take_the_one_pass_path_and_store_the_same(mws, tmp_path, monkeypatch, content):
    from promptver.metrics import csv_import

    path = write(tmp_path / "valid.csv", content)
    calls = []
    real = csv_import.sql.stage_csv
    monkeypatch.setattr(
        csv_import.sql, "stage_csv", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    fast = mws.metrics.import_csv(path)
    assert calls == []  # no detailed pass for a valid file
    fast_rows = rows(mws, f"WHERE import_id = '{fast.import_id}' ORDER BY user_id")
    monkeypatch.setattr(csv_import, "_import_in_one_pass", lambda *a, **k: None)
    mws.metrics.purge(1, dry_run=False)  # events are old: empties the table, imports stay
    with mws.db.transaction() as con:
        con.execute("DELETE FROM imports")
    slow = mws.metrics.import_csv(path)
    assert calls == [1]
    slow_rows = rows(mws, f"WHERE import_id = '{slow.import_id}' ORDER BY user_id")
    strip = [{k: v for k, v in r.items() if k != "import_id"} for r in fast_rows]
    assert strip == [{k: v for k, v in r.items() if k != "import_id"} for r in slow_rows]
    assert fast.model_dump(exclude={"import_id", "seconds"}) == slow.model_dump(
        exclude={"import_id", "seconds"}
    )


# ---- warnings, hints, the problem list and the log of refused imports (issue 22, item 15) ----


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_old_events_are_imported_with_window_and_retention_warnings(mws, tmp_path, mode):
    now = datetime.now(UTC)
    recent = iso(now - timedelta(hours=1))
    month_ago = iso(now - timedelta(days=30))
    year_ago = iso(now - timedelta(days=200))
    path = write(
        tmp_path / "old.csv",
        H + f"\n{recent},qa-basic,u1,1\n{month_ago},qa-basic,u2,2\n{year_ago},qa-basic,u3,3\n",
    )
    n = count(mws)
    checked = mws.metrics.import_csv(path, dry_run=True)
    result = mws.metrics.import_csv(path)
    assert result.rows_imported == 3 and count(mws) == n + 3  # warned, not refused
    for r in (checked, result):
        by_code = {w.code: w for w in r.warnings}
        assert set(by_code) == {"outside_window", "retention"}
        assert by_code["outside_window"].rows == 2
        assert "2 of the 3 events are older than 7 days" in by_code["outside_window"].message
        assert year_ago[:10] in by_code["outside_window"].message  # the oldest
        assert by_code["retention"].rows == 1
        assert "older than the 90-day retention" in by_code["retention"].message
    fresh = write(tmp_path / "fresh.csv", H + f"\n{recent},qa-basic,u9,1\n")
    assert mws.metrics.import_csv(fresh).warnings == []


def test_events_before_a_versions_first_deployment_are_imported_with_a_warning(
    mws, tmp_path, mode, monkeypatch
):
    import promptver.deployments

    now = datetime.now(UTC)
    deployed = now - timedelta(days=3)
    monkeypatch.setattr(promptver.deployments, "utcnow", lambda: deployed)
    mws.deployments.deploy("qa-basic", "1.0.0", "production", author="ana")
    before, after = iso(deployed - timedelta(days=1)), iso(deployed + timedelta(days=1))
    exp = mws.experiments.get("tone-test").id
    path = write(
        tmp_path / "deploy.csv",
        "timestamp,template,user_id,version,environment,experiment,variant,latency_ms\n"
        f"{before},qa-basic,u1,1.0.0,production,,,1\n"  # before the deployment: warned
        f"{before},qa-basic,u2,1.0.0,production,,,1\n"
        f"{after},qa-basic,u3,1.0.0,production,,,1\n"  # after it: fine
        f"{after},qa-basic,u4,1.1.0,production,,,1\n"  # never deployed there
        f"{after},qa-basic,u5,1.0.0,staging,,,1\n"  # never deployed to staging
        f"{after},qa-basic,u6,1.0.0,,,,1\n"  # no environment: deployed somewhere before
        f"{before},qa-basic,u7,,production,{exp},concise,1\n"  # an experiment's variant
        f"{before},qa-basic,u8,,production,,,1\n",  # no version: nothing to compare
    )
    result = mws.metrics.import_csv(path)
    assert result.rows_imported == 8
    deploy = [w for w in result.warnings if w.code == "before_deployment"]
    assert [w.rows for w in deploy] == [2, 1, 1]
    assert deploy[0].message.startswith("2 events of qa-basic 1.0.0 in production predate")
    assert f"{deployed:%Y-%m-%d %H:%M} UTC" in deploy[0].message
    assert deploy[1].message.startswith("qa-basic 1.0.0 was never deployed to staging")
    assert deploy[2].message.startswith("qa-basic 1.1.0 was never deployed to production")


def test_unknown_template_error_suggests_the_closest_name(shared, tmp_path):
    path = write(
        tmp_path / "typo.csv",
        H + "\n2026-01-05T10:00:00Z,qa-basc,u1,1\n2026-01-05T10:00:00Z,Summarize,u1,1\n"
        "2026-01-05T10:00:00Z,zzz-unrelated,u1,1\n",
    )
    with pytest.raises(ImportError_) as info:
        shared.metrics.import_csv(path)
    messages = [p.message for p in info.value.problems]
    assert messages == [
        "unknown template 'qa-basc' (did you mean 'qa-basic'?)",
        "unknown template 'Summarize' (did you mean 'summarize'?)",
        "unknown template 'zzz-unrelated'",
    ]


def test_custom_column_named_like_a_builtin_is_imported_with_a_hint(mws, tmp_path, mode):
    path = write(
        tmp_path / "near.csv",
        "timestamp,template,user_id,latncy_ms,thumbs_up\n2026-01-05T10:00:00Z,qa-basic,u1,5,1\n",
    )
    result = mws.metrics.import_csv(path)
    assert result.custom_metrics == ["latncy_ms", "thumbs_up"]
    (hint,) = [w for w in result.warnings if w.code == "custom_near_builtin"]
    assert hint.column == "latncy_ms" and "did you mean 'latency_ms'?" in hint.message


def test_problem_list_downloads_as_csv_with_formulas_neutralised(shared, tmp_path):
    import csv as csv_module
    import io

    from promptver.models import ImportProblem

    path = write(
        tmp_path / "bad.csv",
        H + "\n2026-01-05T10:00:00Z,qa-basic,u1,-4\n2026-01-05T10:00:00Z,nope,u2,1\n",
    )
    with pytest.raises(ImportError_) as info:
        shared.metrics.import_csv(path)
    records = shared.metrics.problem_records(info.value)
    data = shared.metrics.problems_csv(records)
    assert data.startswith(b"\xef\xbb\xbf")
    got = list(csv_module.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert got[0] == ["line", "column", "problem", "code"]
    assert got[1][:2] == ["2", "latency_ms"] and "must be ≥ 0" in got[1][2]
    assert got[2][:3] == ["3", "template", "unknown template 'nope'"]
    risky = [ImportProblem(line=None, column=None, message='=HYPERLINK("http://x")')]
    row = list(csv_module.reader(io.StringIO(shared.metrics.problems_csv(risky).decode())))[1]
    assert row[2] == '\'=HYPERLINK("http://x")' and row[0] == ""


def test_refused_import_is_logged_as_an_attempt_and_writes_nothing_else(mws, tmp_path, mode):
    import hashlib

    path = write(tmp_path / "refused.csv", H + "\n2026-01-05T10:00:00Z,qa-basc,u1,-1\n" + OK + "\n")
    n, imports_n = count(mws), imports_count(mws)
    with pytest.raises(ImportError_):
        mws.metrics.import_csv(path, author="dara", file_name="upload.csv")
    assert count(mws) == n and imports_count(mws) == imports_n
    (attempt,) = mws.metrics.attempts()
    assert attempt.file_name == "upload.csv" and attempt.attempted_by == "dara"
    assert attempt.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert attempt.size_bytes == path.stat().st_size
    assert attempt.total_problems == 2
    assert [(p.line, p.column) for p in attempt.problems] == [(2, "template"), (2, "latency_ms")]
    assert attempt.reason == (
        "2 problems, the first: line 2, column template: unknown template 'qa-basc' "
        "(did you mean 'qa-basic'?)"
    )
    assert abs((datetime.now(UTC) - attempt.attempted_at).total_seconds()) < 60
    # a dry run logs only when asked (the dashboard's check of an upload asks)
    with pytest.raises(ImportError_):
        mws.metrics.import_csv(path, dry_run=True)
    assert len(mws.metrics.attempts()) == 1
    with pytest.raises(ImportError_):
        mws.metrics.import_csv(path, dry_run=True, log_refusal=True)
    assert len(mws.metrics.attempts()) == 2
    # a header refusal is logged too, with its one problem as the reason
    semi = write(tmp_path / "semi.csv", H.replace(",", ";") + "\n")
    with pytest.raises(ImportError_):
        mws.metrics.import_csv(semi, author="dara")
    latest = mws.metrics.attempts()[0]
    assert latest.file_name == "semi.csv" and latest.total_problems == 1
    assert latest.reason.startswith("line 1: the header has a single column")
    assert count(mws) == n and imports_count(mws) == imports_n


def test_refusal_after_rows_were_written_rolls_back_before_the_attempt_is_logged(
    mws, tmp_path, mode, monkeypatch
):
    """The attempt is its own transaction, after the rollback: no half-import survives it."""
    from promptver.errors import DatabaseBusy
    from promptver.metrics import csv_import

    def refuse_late(con, rec):  # the events are in metric_events (uncommitted) by now
        with_rows = con.execute("SELECT count(*) FROM metric_events").fetchone()[0]
        raise ImportError_(f"refused late with {with_rows} rows written")

    monkeypatch.setattr(csv_import.imports_sql, "insert_import", refuse_late)
    n, imports_n = count(mws), imports_count(mws)
    path = write(tmp_path / "late.csv", H + "\n" + OK + "\n")
    with pytest.raises(ImportError_, match=f"refused late with {n + 1} rows written"):
        mws.metrics.import_csv(path)
    assert count(mws) == n and imports_count(mws) == imports_n
    (attempt,) = mws.metrics.attempts()
    assert attempt.reason == f"refused late with {n + 1} rows written"

    # the log failing (a busy file) never hides the refusal itself
    def busy(con, attempt):
        raise DatabaseBusy("the database file is busy")

    monkeypatch.setattr(csv_import.imports_sql, "insert_attempt", busy)
    with pytest.raises(ImportError_, match="refused late"):
        mws.metrics.import_csv(path)
    assert count(mws) == n and len(mws.metrics.attempts()) == 1


def test_preview_knows_the_line_of_each_row_and_reads_records_by_line(mws, tmp_path):
    path = write(
        tmp_path / "lines.csv",
        H + '\n2026-01-05T10:00:00Z,qa-basic,"u\n1",1\n\n2026-01-05T10:00:00Z,qa-basic,u2,2\n',
    )
    preview = mws.metrics.preview_csv(path)
    assert preview.lines == [2, 5]
    got = mws.metrics.records_at(path, [5, 2, 3, 99])
    assert got == {
        2: ["2026-01-05T10:00:00Z", "qa-basic", "u\n1", "1"],
        5: ["2026-01-05T10:00:00Z", "qa-basic", "u2", "2"],
    }

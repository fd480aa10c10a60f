"""Eval CSV import (contract: "Offline evaluations"): atomic, idempotent, strict, refs → commits.

Each broken file must be refused naming line, column and reason, and leave the stored rows,
runs and imports exactly as they were.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from promptver.errors import ImportError_, NotFound

H = "dataset,item_id,template,version,quality"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def counts(ws) -> tuple[int, int, int]:
    with ws.db.read() as con:
        return tuple(
            con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("eval_rows", "eval_runs", "eval_imports")
        )


@pytest.fixture
def ews(ws):
    ws.templates.create("qa", "Answer {q}.", author="ana")
    ws.templates.update("qa", "Answer {q} briefly.", author="ana")
    return ws


def test_import_stores_rows_runs_and_resolves_refs_to_commits(ews, tmp_path):
    ws = ews
    commit_10 = ws.versions.resolve(ws.templates.row("qa")["id"], "1.0.0")
    f = write(
        tmp_path / "e.csv",
        "dataset,item_id,template,version,output,quality,quality_human,latency_ms,correct\n"
        "ds,a,qa,1.0.0,hello,0.5,0.4,120,true\n"
        "ds,a,qa,1.0.0,hello again,0.7,,130,FALSE\n"
        f"ds,b,qa,{commit_10.id[:9]},x,0.9,,100,1\n"
        "ds,a,qa,1.1.0,y,0.6,,90,0\n"
        "other,a,qa,1.1.0,,1,,, \n",
    )
    r = ws.evals.import_csv(f, author="ana")
    assert r.rows_imported == 5
    assert r.scores == ["quality", "latency_ms", "correct"]
    assert r.human == ["quality"]
    by_key = {(x["dataset"], x["version"]): x for x in r.contract()["runs"]}
    # 1.0.0 and its commit prefix name the same commit: one run
    assert by_key[("ds", "1.0.0")]["commit"] == commit_10.id
    assert by_key[("ds", "1.0.0")]["rows"] == 3
    assert by_key[("ds", "1.0.0")]["items"] == 2
    assert set(by_key) == {("ds", "1.0.0"), ("ds", "1.1.0"), ("other", "1.1.0")}
    assert counts(ws) == (5, 3, 1)
    ds = {d.dataset: d for d in ws.evals.datasets()}
    assert ds["ds"].items == 2 and ds["ds"].commits == 2 and ds["ds"].templates == ["qa"]
    runs = ws.evals.runs("ds", template="qa", ref="1.0.0")
    assert len(runs) == 1 and runs[0].commit == commit_10.id and runs[0].created_by == "ana"
    items = {i.item_id: i for i in ws.evals.items("ds", "1.0.0")}
    # repeated samples are averaged; booleans are 1/0 in any case
    assert items["a"].samples == 2
    assert items["a"].scores["quality"] == pytest.approx(0.6)
    assert items["a"].scores["correct"] == pytest.approx(0.5)
    assert items["a"].human["quality"] == pytest.approx(0.4)
    assert items["a"].output == "hello"
    assert items["b"].scores["correct"] == 1.0


def test_run_keeps_its_commit_when_a_branch_moves(ews, tmp_path):
    ws = ews
    tid = ws.templates.row("qa")["id"]
    ws.versions.create_branch("qa", "exp", from_ref="1.0.0")
    head = ws.versions.resolve(tid, "exp").id
    ws.evals.import_csv(write(tmp_path / "e.csv", f"{H}\nds,a,qa,exp,0.5\n"))
    ws.templates.update("qa", "Answer {q} on a branch.", branch="exp", author="ana")
    assert ws.versions.resolve(tid, "exp").id != head
    assert ws.evals.runs("ds")[0].commit == head


def test_reimport_of_the_same_file_is_refused_as_duplicate(ews, tmp_path):
    f = write(tmp_path / "e.csv", f"{H}\nds,a,qa,1.0.0,0.5\n")
    ews.evals.import_csv(f)
    before = counts(ews)
    with pytest.raises(ImportError_) as e:
        ews.evals.import_csv(f)
    assert "already imported" in e.value.message
    assert e.value.problems[0].code == "duplicate_file"
    assert counts(ews) == before


def test_dry_run_writes_nothing(ews, tmp_path):
    r = ews.evals.import_csv(write(tmp_path / "e.csv", f"{H}\nds,a,qa,1.0.0,0.5\n"), dry_run=True)
    assert r.rows_imported == 1 and r.import_id == ""
    assert counts(ews) == (0, 0, 0)


BROKEN = [
    # (name, file text, [(line, column, words in the message)])
    ("empty", "", [(1, None, "empty")]),
    ("no score", "dataset,item_id,template,version\nds,a,qa,1.0.0\n", [(1, None, "no score")]),
    ("missing column", "dataset,item_id,template,quality\nds,a,qa,1\n", [(1, None, "'version'")]),
    ("upper case", "dataset,item_id,template,version,Quality\n", [(1, "Quality", "lower-case")]),
    ("duplicate", f"{H},quality\nds,a,qa,1.0.0,1,1\n", [(1, "quality", "duplicate")]),
    (
        "orphan human",
        f"{H},tone_human\nds,a,qa,1.0.0,1,1\n",
        [(1, "tone_human", "no column 'tone'")],
    ),
    ("semicolon", "dataset;item_id;template;version;q\n", [(1, None, "semicolon")]),
    ("no rows", f"{H}\n", [(2, None, "no data rows")]),
    (
        "not a number",
        f"{H}\nds,a,qa,1.0.0,0.5\nds,b,qa,1.0.0,12ms\n",
        [(3, "quality", "'12ms' is not a number")],
    ),
    ("nan", f"{H}\nds,a,qa,1.0.0,nan\n", [(2, "quality", "NaN")]),
    ("inf", f"{H}\nds,a,qa,1.0.0,inf\n", [(2, "quality", "infinity")]),
    ("huge", f"{H}\nds,a,qa,1.0.0,1e300\n", [(2, "quality", "between -1e15 and 1e15")]),
    (
        "negative latency",
        "dataset,item_id,template,version,latency_ms\nds,a,qa,1.0.0,-3\n",
        [(2, "latency_ms", "≥ 0")],
    ),
    ("missing item", f"{H}\nds,,qa,1.0.0,1\n", [(2, "item_id", "required value is missing")]),
    ("missing dataset", f"{H}\n  ,a,qa,1.0.0,1\n", [(2, "dataset", "required")]),
    ("long dataset", f"{H}\n{'d' * 101},a,qa,1.0.0,1\n", [(2, "dataset", "at most 100")]),
    ("no score in row", f"{H},latency_ms\nds,a,qa,1.0.0,,\n", [(2, None, "no score")]),
    (
        "human without judge",
        f"{H},quality_human\nds,a,qa,1.0.0,,0.5\n",
        [(2, "quality_human", "judge score")],
    ),
    (
        "unknown template",
        f"{H}\nds,a,qaa,1.0.0,1\n",
        [(2, "template", "unknown template 'qaa' (did you mean 'qa'?)")],
    ),
    (
        "unknown version",
        f"{H}\nds,a,qa,1.0.0,1\nds,a,qa,7.0.0,1\nds,b,qa,7.0.0,1\n",
        [(3, "version", "no version 7.0.0 (latest is 1.1.0) (2 rows)")],
    ),
    ("ragged", f"{H}\nds,a,qa,1.0.0,1,2\n", [(2, None, "values but the header has 5")]),
    ("broken quote", f'{H}\nds,"a,qa,1.0.0,1\n', [(2, None, "")]),
    ("utf16", "\ufeffdataset,item_id\n", [(1, None, "UTF-16")]),
]


@pytest.mark.parametrize("name,text,expected", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_files_are_refused_naming_line_column_reason(ews, tmp_path, name, text, expected):
    ws = ews
    ws.evals.import_csv(write(tmp_path / "seed.csv", f"{H}\nseed,a,qa,1.0.0,0.5\n"))
    before = counts(ws)
    enc = "utf-16" if name == "utf16" else "utf-8"
    with pytest.raises(ImportError_) as e:
        ws.evals.import_csv(write(tmp_path / "bad.csv", text, enc))
    assert "nothing was imported" in e.value.message
    problems = e.value.problems
    for line, column, words in expected:
        assert any(
            p.line == line and (column is None or p.field == column) and words in p.message
            for p in problems
        ), (line, column, words, [str(p) for p in problems])
    assert counts(ws) == before


def test_at_most_20_problems_in_file_order(ews, tmp_path):
    body = "".join(f"ds,i{k},qa,1.0.0,bad{k}\n" for k in range(30))
    with pytest.raises(ImportError_) as e:
        ews.evals.import_csv(write(tmp_path / "bad.csv", f"{H}\n{body}"))
    assert len(e.value.problems) == 20
    assert [p.line for p in e.value.problems] == list(range(2, 22))
    assert "more than 20 problems" in e.value.message
    assert counts(ews) == (0, 0, 0)


def test_line_numbers_count_quoted_line_breaks(ews, tmp_path):
    text = 'dataset,item_id,template,version,output,quality\nds,a,qa,1.0.0,"two\nlines",1\nds,b,qa,1.0.0,x,oops\n'
    with pytest.raises(ImportError_) as e:
        ews.evals.import_csv(write(tmp_path / "bad.csv", text))
    assert [(p.line, p.field) for p in e.value.problems] == [(4, "quality")]


def test_bom_padding_and_crlf_are_accepted(ews, tmp_path):
    f = write(tmp_path / "e.csv", f"\ufeff{H}\r\n ds , a , qa , 1.0.0 , 0.5 \r\n")
    r = ews.evals.import_csv(f)
    assert r.rows_imported == 1
    assert ews.evals.items("ds", "1.0.0")[0].item_id == "a"


def test_import_hook_runs_in_the_transaction_and_can_refuse(ews, tmp_path):
    seen = []

    def hook(con, result):
        seen.append(
            (result.rows_imported, con.execute("SELECT count(*) FROM eval_rows").fetchone()[0])
        )

    remove = ews.evals.add_import_hook(hook)
    ews.evals.import_csv(write(tmp_path / "a.csv", f"{H}\nds,a,qa,1.0.0,0.5\n"))
    assert seen == [(1, 1)]  # the rows are visible to the hook before the commit

    def refuse(con, result):
        raise NotFound("receiver gone")

    remove()
    ews.evals.add_import_hook(refuse)
    with pytest.raises(NotFound):
        ews.evals.import_csv(write(tmp_path / "b.csv", f"{H}\nds,b,qa,1.0.0,0.5\n"))
    assert counts(ews) == (1, 1, 1)


def test_more_than_1000_runs_in_one_file_are_refused(ews, tmp_path):
    body = "".join(f"ds{k},a,qa,1.0.0,0.5\n" for k in range(1001))
    with pytest.raises(ImportError_) as e:
        ews.evals.import_csv(write(tmp_path / "many.csv", f"{H}\n{body}"))
    (p,) = e.value.problems
    assert p.line == 1002 and "more than 1,000 different" in p.message
    assert counts(ews) == (0, 0, 0)

"""SQL for offline evaluations: staging an eval CSV, its row checks, runs, rows and item scores.

Column names that reach SQL text come from the checked header (``[a-z][a-z0-9_]*`` only, see
:mod:`promptver.evals.csv_import`) and are double-quoted; every value is a parameter.

Storage: ``eval_imports`` (one per file), ``eval_runs`` (one per import, dataset, template and
commit) and ``eval_rows`` (one per CSV row: a sample of an item; ``scores[i]`` and ``human[i]``
belong to the run's ``metrics[i]``). Lists keep a file's score columns together without a row
per score, so an import of a million rows is one ``INSERT … SELECT``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from promptver.store.metrics import q

Con = duckdb.DuckDBPyConnection

#: the reader options of every eval CSV parse (explicit dialect, no sniffing)
_READ = (
    "read_csv(?, header = true, auto_detect = false, delim = ',', quote = '\"', escape = '\"',"
    " strict_mode = true, null_padding = false, columns = ?"
)


def stage_csv(con: Con, path: str, table: str, names: Sequence[str], rejects: str) -> int:
    """Parse the file into the temporary ``table`` (every column as text, file order kept).

    Cells DuckDB cannot parse (ragged rows, broken quotes, invalid UTF-8) are described in the
    ``rejects`` table. Returns the smallest ``rowid`` (the record index is ``rowid - base``).
    """
    columns = {n: "VARCHAR" for n in names}
    con.execute(
        f"CREATE TEMP TABLE {table} AS SELECT * FROM {_READ}, store_rejects = true,"
        f" rejects_table = '{rejects}', rejects_scan = '{rejects}_scan')",
        [path, columns],
    )
    row = con.execute(f"SELECT coalesce(min(rowid), 0) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def _text(name: str, src: str = "s") -> str:
    return f"nullif(trim({src}.{q(name)}), '')"


def value_sql(name: str, src: str = "s") -> str:
    """A score cell as a number: ``true``/``false`` (any case) are 1 and 0, empty is NULL."""
    cell = _text(name, src)
    return (
        f"CASE lower({cell}) WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0"
        f" ELSE TRY_CAST({cell} AS DOUBLE) END"
    )


@dataclass(frozen=True)
class RowCheck:
    """One rule: ``condition`` is true for a bad row; ``message`` (SQL text) says why."""

    column: str
    condition: str
    message: str


def _clean_columns(
    text: Sequence[str], scores: Sequence[str], human: dict[str, str], has_output: bool
) -> list[str]:
    """Trimmed keys, ``output``, ``s_<name>`` (score), ``h_<name>`` (human label, NULL when the
    file has none) and ``raw_<name>``/``rawh_<name>`` (the trimmed cells, for the checks)."""
    cols = [f"{_text(n)} AS {q(n)}" for n in text]
    cols.append(f"nullif(s.{q('output')}, '') AS output" if has_output else "NULL AS output")
    for n in scores:
        cols.append(f"{value_sql(n)} AS {q('s_' + n)}")
        cols.append(f"{_text(n)} AS {q('raw_' + n)}")
        col = human.get(n)
        cols.append(
            f"{value_sql(col)} AS {q('h_' + n)}" if col else f"NULL::DOUBLE AS {q('h_' + n)}"
        )
        if col:
            cols.append(f"{_text(col)} AS {q('rawh_' + n)}")
    return cols


def stage_clean(
    con: Con,
    path: str,
    table: str,
    names: Sequence[str],
    rejects: str,
    text: Sequence[str],
    scores: Sequence[str],
    human: dict[str, str],
    has_output: bool,
    checks: Sequence[RowCheck],
) -> int:
    """Parse, clean and check the file in one pass into the temporary ``table`` (file order).

    The table holds the trimmed keys, ``output``, the numeric ``s_``/``h_`` columns and
    ``bad`` (the row breaks a check). Rows DuckDB cannot parse go to ``rejects``. Returns the
    smallest ``rowid``.
    """
    columns = {n: "VARCHAR" for n in names}
    keep = [q(n) for n in text] + ["output"]
    for n in scores:
        keep += [q("s_" + n), q("h_" + n)]
    bad = " OR ".join(f"coalesce({c.condition}, false)" for c in checks) or "false"
    inner = ", ".join(_clean_columns(text, scores, human, has_output))
    con.execute(
        f"CREATE TEMP TABLE {table} AS SELECT {', '.join(keep)}, ({bad}) AS bad FROM"
        f" (SELECT {inner} FROM {_READ}, store_rejects = true, rejects_table = '{rejects}',"
        f" rejects_scan = '{rejects}_scan') s)",
        [path, columns],
    )
    row = con.execute(f"SELECT coalesce(min(rowid), 0) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def key_summary(
    con: Con, table: str, limit: int
) -> tuple[int, int, list[tuple[str, str, str, int, int]]]:
    """One scan of a :func:`stage_clean` table: (rows, rows breaking a check, and the first
    ``limit`` distinct (dataset, template, version) with their first rowid and row count)."""
    found = con.execute(
        "SELECT dataset, template, version, min(rowid) AS r, count(*) AS n,"
        " sum(count(*)) OVER () AS total, sum(count(*) FILTER (WHERE bad)) OVER () AS bad"
        f" FROM {table} GROUP BY ALL ORDER BY r LIMIT ?",
        [limit],
    ).fetchall()
    if not found:
        return 0, 0, []
    keys = [(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in found]
    return int(found[0][5]), int(found[0][6]), keys


def create_clean_view(
    con: Con,
    stage: str,
    view: str,
    text: Sequence[str],
    scores: Sequence[str],
    human: dict[str, str],
    has_output: bool,
) -> None:
    """A view of a :func:`stage_csv` table with the columns of :func:`_clean_columns` and ``r``
    (rowid): the detailed look at a refused file, where messages quote the cells."""
    cols = ["rowid AS r", *_clean_columns(text, scores, human, has_output)]
    con.execute(f"CREATE TEMP VIEW {view} AS SELECT {', '.join(cols)} FROM {stage} s")


def bad_rows(
    con: Con, view: str, checks: Sequence[RowCheck], limit: int
) -> list[tuple[int, str, str]]:
    """The first ``limit`` problems as (rowid, column, message), in file order."""
    parts = [
        f"SELECT r, {i} AS k, ? AS col, ({c.message}) AS msg FROM {view}"
        f" WHERE coalesce({c.condition}, false)"
        for i, c in enumerate(checks)
    ]
    params = [c.column for c in checks]
    rows = con.execute(
        f"SELECT r, col, msg FROM ({' UNION ALL '.join(parts)}) ORDER BY r, k LIMIT ?",
        [*params, limit],
    ).fetchall()
    return [(int(r[0]), r[1], r[2]) for r in rows]


def create_keys(con: Con, table: str, keys: Sequence[tuple[str, str, str, str]]) -> None:
    """The resolved keys: (dataset, template cell, version cell) → run id."""
    con.execute(
        f"CREATE TEMP TABLE {table} (dataset VARCHAR, template VARCHAR, version VARCHAR,"
        " run_id VARCHAR)"
    )
    if keys:
        con.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?)", [list(k) for k in keys])


def insert_rows(con: Con, clean: str, keys: str, scores: Sequence[str]) -> int:
    """Append the checked rows to ``eval_rows``; returns the rows written."""
    s = ", ".join(q("s_" + n) for n in scores)
    h = ", ".join(q("h_" + n) for n in scores)
    row = con.execute(
        f"""
        INSERT INTO eval_rows (run_id, item_id, output, scores, human)
        SELECT k.run_id, v.item_id, v.output, [{s}]::DOUBLE[], [{h}]::DOUBLE[]
        FROM {clean} v JOIN {keys} k
          ON k.dataset = v.dataset AND k.template = v.template AND k.version = v.version
        """
    ).fetchone()
    return int(row[0]) if row else 0


def run_counts(con: Con, run_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(rows, distinct items) per run, over what is stored."""
    rows = con.execute(
        "SELECT run_id, count(*), count(DISTINCT item_id) FROM eval_rows"
        " WHERE list_contains(?, run_id) GROUP BY run_id",
        [list(run_ids)],
    ).fetchall()
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


def insert_run(con: Con, run: dict[str, Any]) -> None:
    con.execute(
        "INSERT INTO eval_runs (id, import_id, dataset, template_id, commit_id, ref, version,"
        " metrics, rows, items, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run["id"],
            run["import_id"],
            run["dataset"],
            run["template_id"],
            run["commit_id"],
            run["ref"],
            run["version"],
            run["metrics"],
            run["rows"],
            run["items"],
            run["created_at"],
        ],
    )


def insert_import(
    con: Con,
    import_id: str,
    file_name: str,
    sha256: str,
    rows: int,
    created_at: datetime,
    created_by: str,
) -> None:
    con.execute(
        "INSERT INTO eval_imports (id, file_name, sha256, rows_imported, created_at, created_by)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [import_id, file_name, sha256, rows, created_at, created_by],
    )


def import_by_hash(con: Con, sha256: str) -> tuple[str, datetime, str, str] | None:
    """(id, when, who, file name) of the import of a file with this hash."""
    row = con.execute(
        "SELECT id, created_at, created_by, file_name FROM eval_imports WHERE sha256 = ?",
        [sha256],
    ).fetchone()
    return (row[0], row[1], row[2], row[3]) if row else None


def drop(con: Con, tables: Sequence[str] = (), views: Sequence[str] = ()) -> None:
    for name in views:
        try:
            con.execute(f"DROP VIEW IF EXISTS {name}")
        except duckdb.Error:  # the transaction was aborted: the temp view went with it
            pass
    for name in tables:
        try:
            con.execute(f"DROP TABLE IF EXISTS {name}")
        except duckdb.Error:
            pass


# ---- reading --------------------------------------------------------------------------------

_RUN_COLUMNS = (
    "r.id, r.import_id, r.dataset, r.template_id, t.name, r.commit_id, r.ref, r.version,"
    " r.metrics, r.rows, r.items, r.created_at, i.file_name, i.created_by,"
    " (SELECT arg_max(v.version, v.major * 1000000000000 + v.minor * 1000000 + v.patch)"
    "  FROM versions v WHERE v.commit_id = r.commit_id) AS version_now"
)
_RUN_FROM = (
    "FROM eval_runs r JOIN templates t ON t.id = r.template_id"
    " JOIN eval_imports i ON i.id = r.import_id"
)


def runs(
    con: Con,
    dataset: str | None = None,
    template_id: str | None = None,
    commit_id: str | None = None,
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """Runs, newest first, filtered by what is given."""
    where, params = [], []
    for col, value in (
        ("r.dataset", dataset),
        ("r.template_id", template_id),
        ("r.commit_id", commit_id),
        ("r.id", run_id),
    ):
        if value is not None:
            where.append(f"{col} = ?")
            params.append(value)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = con.execute(
        f"SELECT {_RUN_COLUMNS} {_RUN_FROM} {clause} ORDER BY r.created_at DESC, r.id", params
    ).fetchall()
    keys = (
        "id",
        "import_id",
        "dataset",
        "template_id",
        "template",
        "commit",
        "ref",
        "version",
        "metrics",
        "rows",
        "items",
        "created_at",
        "file_name",
        "created_by",
        "version_now",
    )
    return [dict(zip(keys, r)) for r in rows]


def datasets(con: Con) -> list[dict[str, Any]]:
    """Each dataset: items, runs, templates, versions (commits) and the newest import."""
    rows = con.execute(
        "SELECT r.dataset, count(*) AS runs, count(DISTINCT r.commit_id) AS commits,"
        " list(DISTINCT t.name ORDER BY t.name) AS templates, max(r.created_at) AS last,"
        " (SELECT count(DISTINCT x.item_id) FROM eval_rows x JOIN eval_runs y ON y.id = x.run_id"
        "  WHERE y.dataset = r.dataset) AS items,"
        " list_sort(list_distinct(flatten(list(r.metrics)))) AS metrics"
        " FROM eval_runs r JOIN templates t ON t.id = r.template_id"
        " GROUP BY r.dataset ORDER BY r.dataset"
    ).fetchall()
    keys = ("dataset", "runs", "commits", "templates", "last_import", "items", "metrics")
    return [dict(zip(keys, r)) for r in rows]


def items(con: Con, run_ids: Sequence[str], metrics: Sequence[str], limit: int, offset: int = 0):
    """Per item of the given runs: samples, mean score and mean human label per metric, and
    the first output (in file order)."""
    cols = []
    params: list[Any] = []
    for m in metrics:
        cols.append("avg(x.scores[list_position(r.metrics, ?)])")
        cols.append("avg(x.human[list_position(r.metrics, ?)])")
        params += [m, m]
    sel = ", ".join(cols) if cols else "NULL"
    return con.execute(
        f"SELECT x.item_id, count(*) AS samples, first(x.output) AS output, {sel}"
        " FROM eval_rows x JOIN eval_runs r ON r.id = x.run_id"
        " WHERE list_contains(?, x.run_id) GROUP BY x.item_id ORDER BY x.item_id"
        " LIMIT ? OFFSET ?",
        [*params, list(run_ids), limit, offset],
    ).fetchall()


def paired_items(
    con: Con,
    dataset: str,
    template_id: str,
    baseline: str,
    candidate: str,
    metrics: Sequence[str],
) -> dict[str, Any]:
    """Item means of each metric (judge and human) for both commits, items of both only.

    Returns numpy arrays (``fetchnumpy``): ``item_id``, and per metric index ``i``:
    ``b_i``, ``c_i`` (judge means; NaN-free only where both scored), ``bh_i``, ``ch_i``
    (human means, NULL → NaN).
    """
    per = []
    pos = []
    params: list[Any] = []
    for i, m in enumerate(metrics):
        # the metric's position in each run, found once per run rather than once per row
        pos.append(f"list_position(metrics, ?) AS k{i}")
        per.append(f"avg(x.scores[r.k{i}]) AS j{i}")
        per.append(f"avg(x.human[r.k{i}]) AS h{i}")
        params.append(m)
    out = ["b.item_id"]
    for i in range(len(metrics)):
        out += [f"b.j{i} AS b_{i}", f"c.j{i} AS c_{i}", f"b.h{i} AS bh_{i}", f"c.h{i} AS ch_{i}"]
    sql = f"""
        WITH rr AS (
            SELECT id, commit_id, {", ".join(pos)} FROM eval_runs
            WHERE dataset = ? AND template_id = ? AND commit_id IN (?, ?)
        ),
        per AS (
            SELECT x.item_id, r.commit_id, {", ".join(per)}
            FROM eval_rows x JOIN rr r ON r.id = x.run_id
            GROUP BY x.item_id, r.commit_id
        )
        SELECT {", ".join(out)}
        FROM (SELECT * FROM per WHERE commit_id = ?) b
        JOIN (SELECT * FROM per WHERE commit_id = ?) c ON c.item_id = b.item_id
        ORDER BY b.item_id
    """
    return con.execute(
        sql, [*params, dataset, template_id, baseline, candidate, baseline, candidate]
    ).fetchnumpy()


def outputs(
    con: Con, dataset: str, template_id: str, commit_id: str, item_ids: Sequence[str]
) -> dict[str, str | None]:
    """The first stored output of each item for one commit."""
    rows = con.execute(
        "SELECT x.item_id, first(x.output ORDER BY r.created_at, x.rowid) FROM eval_rows x"
        " JOIN eval_runs r ON r.id = x.run_id WHERE r.dataset = ? AND r.template_id = ?"
        " AND r.commit_id = ? AND list_contains(?, x.item_id) GROUP BY x.item_id",
        [dataset, template_id, commit_id, list(item_ids)],
    ).fetchall()
    return {r[0]: r[1] for r in rows}

"""SQL of the metric-events CSV import: staging, the row checks, and both ways of writing.

The detailed path parses a file into a temporary table (DuckDB's reject store keeps what does
not parse), resolves the reference columns once per distinct combination and scans the row
rules; the one pass (:func:`insert_direct`) parses, checks, resolves and appends in one
``INSERT … SELECT``. The rules themselves are written by :mod:`promptver.metrics.csv_rules`; the
import log and the warnings' queries are :mod:`promptver.store.metric_imports`.

Column names that reach SQL text here are never raw user input: the CSV header is checked first
(:func:`promptver.metrics.csv_columns.read_header`) and only names matching ``[a-z][a-z0-9_]*``
get through; they are still double-quoted. Every value is a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from promptver.store.metrics import EVENT_COLUMNS, q

Con = duckdb.DuckDBPyConnection

# ---- CSV staging ---------------------------------------------------------------------------


def stage_csv(
    con: Con,
    path: str,
    table: str,
    columns: dict[str, str],
    rejects: str,
    scans: str,
) -> tuple[int, int]:
    """Parse the CSV into the temporary ``table`` with explicit types.

    ``columns`` maps every header name, in file order, to its DuckDB type (the names come from
    our own reading of the header, so columns are matched by name, never by position). Empty
    cells (quoted or not) are NULL. Rows DuckDB cannot parse
    (bad numbers, ragged rows, broken quotes, invalid UTF-8) are kept out of ``table`` and
    described in the ``rejects`` table (byte position, column, error type). File order is
    preserved, so ``rowid - base`` is the record's index among the data rows. The extra column
    ``__ts`` is the timestamp parsed once (NULL when it does not parse).

    Returns:
        (rows, base): the row count and the smallest ``rowid`` (rows created inside a
        transaction are numbered from a large offset).
    """
    con.execute(
        f"CREATE TEMP TABLE {table} AS SELECT *, try_cast(timestamp AS TIMESTAMPTZ) AS __ts"
        " FROM read_csv(?, header = true,"
        " auto_detect = false, delim = ',', quote = '\"', escape = '\"', strict_mode = true,"
        " null_padding = false, columns = ?, store_rejects = true,"
        f" rejects_table = '{rejects}', rejects_scan = '{scans}')",
        [path, columns],
    )
    rows, base = con.execute(f"SELECT count(*), coalesce(min(rowid), 0) FROM {table}").fetchone()
    return int(rows), int(base)


# values that cannot carry spaces around them, recognised cheaply before the LIKE tests
_CLEAN = {
    "timestamp": "timestamp LIKE '____-__-__T__:__:__Z'",
    "success": "success IN ('true', 'false', '1', '0')",
    "error": "error IN ('true', 'false', '1', '0')",
    "environment": "list_contains(getvariable('pv_envs'), environment)",
}


def _padded(names: Sequence[str]) -> str:
    """True for a row where one of ``names`` starts or ends with a space.

    Inside an aggregate's FILTER DuckDB evaluates every operand of OR, but a CASE branch only
    for the rows that reach it: common clean values skip the two LIKE tests.
    """
    parts = []
    for n in names:
        test = f"({q(n)} LIKE ' %' OR {q(n)} LIKE '% ')"
        if n in _CLEAN:
            test = f"CASE WHEN {_CLEAN[n]} THEN false ELSE coalesce({test}, false) END"
        parts.append(test)
    return " OR ".join(parts) or "false"


def trim_text(con: Con, table: str, names: Sequence[str]) -> None:
    """Trim spaces around text cells; blank cells become missing (empty means missing).

    Trimming every cell would cost more than parsing the file, so only rows that :func:`scan`
    found padded are updated (``rowid`` stays).
    """
    sets = ", ".join(f"{q(n)} = nullif(trim({q(n)}), '')" for n in names)
    if "timestamp" in names:
        sets += ", __ts = try_cast(nullif(trim(timestamp), '') AS TIMESTAMPTZ)"
    con.execute(f"UPDATE {table} SET {sets} WHERE {_padded(names)}")


def set_variable(con: Con, name: str, value: Any) -> None:
    """A session variable the row checks read with ``getvariable(name)``."""
    con.execute(f"SET VARIABLE {name} = ?", [value])


@dataclass(frozen=True)
class Reject:
    line_byte_position: int
    column_idx: int | None
    column_name: str | None
    error_type: str
    error_message: str


def rejects(con: Con, table: str, limit: int = 200) -> list[Reject]:
    rows = con.execute(
        "SELECT line_byte_position, column_idx, column_name, error_type, error_message"
        f" FROM {table} ORDER BY line_byte_position, column_idx LIMIT ?",
        [limit],
    ).fetchall()
    return [Reject(int(r[0]), r[1], r[2], str(r[3]), str(r[4])) for r in rows]


def drop_tables(con: Con, names: Sequence[str]) -> None:
    for name in names:
        try:
            con.execute(f"DROP TABLE IF EXISTS {name}")
        except duckdb.Error:  # the transaction was aborted: the temp table went with it
            pass


@dataclass(frozen=True)
class RowCheck:
    """One rule on one column: ``condition`` is true for a bad row, ``message`` says why."""

    column: str
    condition: str
    message: str


@dataclass(frozen=True)
class Scan:
    """What one pass over the staged rows found."""

    bad_rows: int
    first: datetime | None
    last: datetime | None
    padded_rows: int
    duplicate_event_ids: bool
    rows_without_event_id: int


def scan(
    con: Con, table: str, checks: Sequence[RowCheck], text: Sequence[str], has_event_id: bool
) -> Scan:
    """One scan: rows breaking a check, first/last timestamp, padded text cells, event ids."""
    any_bad = " OR ".join(f"coalesce({c.condition}, false)" for c in checks) or "false"
    ids = (
        "count(event_id) <> count(DISTINCT event_id), count(*) FILTER (WHERE event_id IS NULL)"
        if has_event_id
        else "false, count(*)"
    )
    row = con.execute(
        f"SELECT count(*) FILTER (WHERE {any_bad}), min(__ts), max(__ts),"
        f" count(*) FILTER (WHERE {_padded(text)}), {ids} FROM {table}"
    ).fetchone()
    return Scan(int(row[0]), row[1], row[2], int(row[3]), bool(row[4]), int(row[5]))


def bad_rows(
    con: Con, table: str, checks: Sequence[RowCheck], limit: int
) -> list[tuple[int, str, str]]:
    """The first ``limit`` problems as (row index, column, message), in file order."""
    parts = []
    for i, c in enumerate(checks):
        parts.append(
            f"SELECT rowid AS r, {i} AS k, '{c.column}' AS col, {c.message} AS msg"
            f" FROM {table} WHERE coalesce({c.condition}, false)"
        )
    union = " UNION ALL ".join(parts)
    rows = con.execute(
        f"SELECT r, col, msg FROM ({union}) ORDER BY r, k LIMIT ?",
        [limit],
    ).fetchall()
    return [(int(r[0]), r[1], r[2]) for r in rows]


def duplicate_event_ids(con: Con, table: str, limit: int) -> list[tuple[str, int, int]]:
    """Event ids present twice in the file: (event_id, first row, repeated row)."""
    rows = con.execute(
        f"SELECT eid, first_r, r FROM (SELECT event_id AS eid, rowid AS r,"
        f" min(rowid) OVER (PARTITION BY event_id) AS first_r FROM {table}"
        " WHERE event_id IS NOT NULL) WHERE r <> first_r ORDER BY r LIMIT ?",
        [limit],
    ).fetchall()
    return [(r[0], int(r[1]), int(r[2])) for r in rows]


KEY_COLUMNS = ("template", "experiment", "variant", "version")


def keys_padded(con: Con, keys: str) -> bool:
    """Whether a distinct key value starts or ends with a space (the file needs trimming)."""
    return bool(
        con.execute(f"SELECT count(*) FROM {keys}_raw WHERE {_padded(KEY_COLUMNS)}").fetchone()[0]
    )


def resolve_keys(con: Con, stage: str, keys: str, has: dict[str, bool]) -> None:
    """Resolve each distinct (template, experiment, variant, version) of the file once.

    The result table has the ids to store and a ``problem`` text per key that cannot be
    resolved, with ``first_row`` (the first row using that key) and ``n`` (rows using it).
    """

    def col(name: str) -> str:
        return name if has.get(name) else f"NULL::VARCHAR AS {name}"

    con.execute(
        f"CREATE TEMP TABLE {keys}_raw AS SELECT template, {col('experiment')},"
        f" {col('variant')}, {col('version')}, min(rowid) AS first_row, count(*) AS n"
        f" FROM {stage} GROUP BY ALL"
    )
    con.execute(
        f"""
        CREATE TEMP TABLE {keys} AS
        WITH k AS (SELECT * FROM {keys}_raw),
        t AS (
            SELECT k.template, arg_max(tp.id, (tp.id = k.template)::INT) AS template_id
            FROM (SELECT DISTINCT template FROM k) k
            JOIN templates tp ON tp.id = k.template OR tp.name = k.template
            GROUP BY k.template
        ),
        kt AS (SELECT k.*, t.template_id FROM k LEFT JOIN t USING (template)),
        e AS (
            SELECT kt.template, kt.experiment,
                   max(CASE WHEN x.id = kt.experiment THEN x.id END) AS by_id,
                   max(CASE WHEN x.id = kt.experiment THEN x.template_id END) AS by_id_template,
                   count(CASE WHEN x.name = kt.experiment AND x.template_id = kt.template_id
                              THEN 1 END) AS same_template,
                   max(CASE WHEN x.name = kt.experiment AND x.template_id = kt.template_id
                            THEN x.id END) AS by_name,
                   max(CASE WHEN x.name = kt.experiment AND x.template_id <> kt.template_id
                            THEN x.template_id END) AS other_template
            FROM (SELECT DISTINCT template, template_id, experiment FROM kt
                  WHERE experiment IS NOT NULL) kt
            JOIN experiments x ON x.id = kt.experiment OR x.name = kt.experiment
            GROUP BY ALL
        ),
        ke AS (
            SELECT kt.*, e.by_id, e.by_id_template, e.same_template, e.by_name,
                   e.other_template,
                   CASE WHEN e.by_id IS NOT NULL THEN e.by_id
                        WHEN e.same_template = 1 THEN e.by_name END AS experiment_id
            FROM kt LEFT JOIN e ON e.template IS NOT DISTINCT FROM kt.template
                               AND e.experiment IS NOT DISTINCT FROM kt.experiment
        )
        SELECT ke.template, ke.experiment, ke.variant, ke.version, ke.first_row, ke.n,
               ke.template_id, ke.experiment_id,
               coalesce(v.version, vv.version) AS version_out,
               coalesce(v.commit_id, ev.commit_id) AS commit_id,
               CASE
                 WHEN ke.template_id IS NULL THEN 'template'
                 WHEN ke.experiment IS NOT NULL AND ke.experiment_id IS NULL THEN 'experiment'
                 WHEN ke.by_id IS NOT NULL AND ke.by_id_template <> ke.template_id
                      THEN 'experiment'
                 WHEN ke.experiment IS NOT NULL AND ev.name IS NULL THEN 'variant'
                 WHEN ke.version IS NOT NULL AND v.commit_id IS NULL THEN 'version'
               END AS problem_column,
               CASE
                 WHEN ke.template_id IS NULL THEN 'unknown template ''' || ke.template || ''''
                 WHEN ke.experiment IS NOT NULL AND ke.experiment_id IS NULL THEN
                   CASE WHEN ke.same_template > 1 THEN 'experiment name ''' || ke.experiment
                          || ''' is ambiguous for this template: use the experiment id'
                        WHEN ke.other_template IS NOT NULL THEN 'experiment '''
                          || ke.experiment || ''' belongs to another template ('
                          || (SELECT name FROM templates WHERE id = ke.other_template)
                          || '), not ' || ke.template
                        ELSE 'unknown experiment ''' || ke.experiment || '''' END
                 WHEN ke.by_id IS NOT NULL AND ke.by_id_template <> ke.template_id THEN
                   'experiment ''' || ke.experiment || ''' belongs to another template ('
                   || (SELECT name FROM templates WHERE id = ke.by_id_template) || '), not '
                   || ke.template
                 WHEN ke.experiment IS NOT NULL AND ev.name IS NULL THEN
                   'unknown variant ''' || ke.variant || ''' of experiment '''
                   || ke.experiment || ''' (variants: '
                   || coalesce((SELECT string_agg(name, ', ' ORDER BY position)
                                FROM experiment_variants WHERE experiment_id = ke.experiment_id),
                               'none') || ')'
                 WHEN ke.version IS NOT NULL AND v.commit_id IS NULL THEN
                   'template ''' || ke.template || ''' has no version ''' || ke.version || ''''
               END AS problem
        FROM ke
        LEFT JOIN versions v ON v.template_id = ke.template_id AND v.version = ke.version
        LEFT JOIN experiment_variants ev ON ev.experiment_id = ke.experiment_id
                                         AND ev.name = ke.variant
        LEFT JOIN (
            SELECT commit_id, arg_max(version, major * 1000000000000 + minor * 1000000 + patch)
                   AS version
            FROM versions GROUP BY commit_id
        ) vv ON vv.commit_id = ev.commit_id AND ke.version IS NULL
        """
    )


def key_problems(con: Con, keys: str, limit: int) -> list[tuple[int, str, str, int, str]]:
    """Unresolvable keys: (first row, column, message, rows affected, template cell), in file
    order."""
    rows = con.execute(
        f"SELECT first_row, problem_column, problem, n, template FROM {keys}"
        " WHERE problem IS NOT NULL ORDER BY first_row LIMIT ?",
        [limit],
    ).fetchall()
    return [(int(r[0]), r[1], r[2], int(r[3]), r[4]) for r in rows]


def all_template_names(con: Con) -> list[str]:
    """Every template name, archived ones too (an import may name any of them)."""
    return [r[0] for r in con.execute("SELECT name FROM templates ORDER BY name").fetchall()]


def count_existing_event_ids(con: Con, stage: str) -> int:
    return con.execute(
        f"SELECT count(*) FROM {stage} s WHERE s.event_id IS NOT NULL AND EXISTS"
        " (SELECT 1 FROM metric_events m WHERE m.event_id = s.event_id)"
    ).fetchone()[0]


def insert_staged(
    con: Con,
    stage: str,
    keys: str,
    import_id: str,
    present: set[str],
    custom: Sequence[str],
    skip_existing: bool,
    dims: Sequence[str] = (),
) -> int:
    """Append the staged rows to ``metric_events``; returns the number of rows written."""
    v = _values(present, custom)

    def join_key(name: str) -> str:
        return f"k.{name} IS NOT DISTINCT FROM {'s.' + name if name in present else 'NULL'}"

    where = ""
    if skip_existing:
        where = (
            " WHERE s.event_id IS NULL OR NOT EXISTS (SELECT 1 FROM metric_events m"
            " WHERE m.event_id = s.event_id)"
        )
    row = con.execute(
        f"""
        INSERT INTO metric_events ({", ".join(EVENT_COLUMNS)}, dims)
        SELECT {v["event_id"]}, ?, s.__ts, k.template_id,
               s.user_id, k.experiment_id, {v["variant"]}, k.version_out, k.commit_id,
               {v["environment"]}, {v["latency_ms"]}, {v["success"]},
               {v["error"]}, {v["quality_score"]}, {v["cost_usd"]},
               {v["tokens_in"]}, {v["tokens_out"]}, {v["custom"]}, {_dims_sql(dims)}
        FROM {stage} s JOIN {keys} k
          ON k.template = s.template AND {join_key("experiment")} AND {join_key("variant")}
         AND {join_key("version")}
        {where}
        """,
        [import_id],
    ).fetchone()
    return int(row[0]) if row else 0


# ---- the one-pass import (valid files) -------------------------------------------------------

FAST_FAILURE = "promptver: the file needs a detailed check"


def _dims_sql(dims: Sequence[str], src: str = "s") -> str:
    """The ``dims`` map of an event from its ``dim_*`` text cells (NULL when all are empty)."""
    if not dims:
        return "NULL::MAP(VARCHAR, VARCHAR)"
    entries = ", ".join(f"{{'key': '{d}', 'value': {src}.{q(d)}}}" for d in dims)
    return (
        f"CASE WHEN {' OR '.join(f'{src}.{q(d)} IS NOT NULL' for d in dims)} THEN"
        f" map_from_entries(list_filter([{entries}], lambda e: e.value IS NOT NULL)) END"
    )


#: the most distinct values a segment dimension (``dim_*``) may take in the whole file
MAX_DIMENSION_VALUES = 1000


def dimension_overflow(con: Con, dims: Sequence[str]) -> dict[str, int]:
    """The dimensions among ``dims`` that now hold more than :data:`MAX_DIMENSION_VALUES`
    distinct values, with their count (checked inside the writing transaction)."""
    out: dict[str, int] = {}
    for d in dims:
        n = con.execute(
            "SELECT count(DISTINCT dims[$d]) FROM metric_events WHERE dims[$d] IS NOT NULL",
            {"d": d},
        ).fetchone()[0]
        if n > MAX_DIMENSION_VALUES:
            out[d] = int(n)
    return out


def _values(present: set[str], custom: Sequence[str], src: str = "s") -> dict[str, str]:
    """SQL for the stored value of each column, from the parsed (and checked) cells."""

    def text(name: str) -> str:
        return f"{src}.{name}" if name in present else "NULL"

    def num(name: str, cast: str = "DOUBLE") -> str:
        return f"CAST({src}.{q(name)} AS {cast})" if name in present else f"NULL::{cast}"

    def boolean(name: str) -> str:
        if name not in present:
            return "NULL::BOOLEAN"
        col = f"{src}.{name}"  # checked: true/false/1/0 in any case
        return (
            f"CASE WHEN {col} IN ('true', '1') THEN true WHEN {col} IN ('false', '0')"
            f" THEN false ELSE lower({col}) IN ('true', '1') END"
        )

    if custom:
        entries = ", ".join(f"{{'key': '{c}', 'value': {src}.{q(c)}}}" for c in custom)
        custom_sql = (
            f"CASE WHEN {' OR '.join(f'{src}.{q(c)} IS NOT NULL' for c in custom)} THEN"
            f" map_from_entries(list_filter([{entries}], lambda e: e.value IS NOT NULL)) END"
        )
    else:
        custom_sql = "NULL::MAP(VARCHAR, DOUBLE)"
    return {
        "event_id": text("event_id"),
        "variant": text("variant"),
        "environment": text("environment"),
        "latency_ms": num("latency_ms"),
        "success": boolean("success"),
        "error": boolean("error"),
        "quality_score": num("quality_score"),
        "cost_usd": num("cost_usd"),
        "tokens_in": num("tokens_in", "BIGINT"),
        "tokens_out": num("tokens_out", "BIGINT"),
        "custom": custom_sql,
    }


def insert_direct(
    con: Con,
    path: str,
    columns: dict[str, str],
    import_id: str,
    checks: Sequence[RowCheck],
    text: Sequence[str],
    custom: Sequence[str],
    lookups: str,
    dims: Sequence[str] = (),
) -> int:
    """Parse, check, resolve and append the whole file in one statement (no staging).

    Every row rule of the detailed path is evaluated; any failing row, unparseable cell,
    padded text, or unresolved reference raises (``FAST_FAILURE`` or DuckDB's own error),
    and the caller rolls back and runs the detailed path, which reports the problems with
    their line numbers. ``lookups`` prefixes the small temporary tables of
    :func:`create_lookups`.
    """
    present = set(columns)
    v = _values(present, custom)
    joins = [f"LEFT JOIN {lookups}_t tm ON tm.tm_ref = s.template"]
    bad = [f"coalesce({c.condition}, false)" for c in checks]
    bad.append(_padded(text))
    bad.append("tm.tm_id IS NULL")
    version_out, commit = "NULL::VARCHAR", "NULL::VARCHAR"
    if "version" in present:
        joins.append(
            f"LEFT JOIN {lookups}_v vm ON vm.vm_tid = tm.tm_id AND vm.vm_version = s.version"
        )
        bad.append("(s.version IS NOT NULL AND vm.vm_commit IS NULL)")
        version_out, commit = "s.version", "vm.vm_commit"
    experiment_id = "NULL::VARCHAR"
    if "experiment" in present:
        joins.append(
            f"LEFT JOIN {lookups}_e em ON em.em_tid = tm.tm_id AND em.em_ref = s.experiment"
        )
        joins.append(f"LEFT JOIN {lookups}_a va ON va.va_eid = em.em_id AND va.va_name = s.variant")
        bad.append("(s.experiment IS NOT NULL AND (em.em_id IS NULL OR va.va_commit IS NULL))")
        experiment_id = "em.em_id"
        version_out = f"coalesce({version_out}, va.va_version)"
        commit = f"coalesce({commit}, va.va_commit)"
    source = (
        "(SELECT *, try_cast(timestamp AS TIMESTAMPTZ) AS __ts FROM read_csv(?, header = true,"
        " auto_detect = false, delim = ',', quote = '\"', escape = '\"', strict_mode = true,"
        " null_padding = false, columns = ?))"
    )
    row = con.execute(
        f"""
        INSERT INTO metric_events ({", ".join(EVENT_COLUMNS)}, dims)
        SELECT {v["event_id"]}, ?, s.__ts, tm.tm_id, s.user_id, {experiment_id}, {v["variant"]},
               {version_out}, {commit}, {v["environment"]}, {v["latency_ms"]}, {v["success"]},
               {v["error"]}, {v["quality_score"]}, {v["cost_usd"]}, {v["tokens_in"]},
               {v["tokens_out"]}, {v["custom"]}, {_dims_sql(dims)}
        FROM {source} s {" ".join(joins)}
        WHERE CASE WHEN {" OR ".join(bad)} THEN error(?) ELSE true END
        """,
        [import_id, path, columns, FAST_FAILURE],
    ).fetchone()
    return int(row[0]) if row else 0


def create_lookups(con: Con, prefix: str) -> None:
    """Small tables resolving references the way :func:`resolve_keys` does (valid ones only).

    A template by id or name (id wins); a version of it; an experiment of that template by id,
    or by a name unique within it; a variant of that experiment, with its commit's version.
    """
    con.execute(
        f"CREATE TEMP TABLE {prefix}_t AS SELECT tm_ref, arg_max(id, prio) AS tm_id FROM ("
        " SELECT id AS tm_ref, id, 1 AS prio FROM templates"
        " UNION ALL SELECT name, id, 0 FROM templates) GROUP BY tm_ref"
    )
    con.execute(
        f"CREATE TEMP TABLE {prefix}_v AS SELECT template_id AS vm_tid, version AS vm_version,"
        " commit_id AS vm_commit FROM versions"
    )
    con.execute(
        f"CREATE TEMP TABLE {prefix}_e AS SELECT em_tid, em_ref, arg_max(em_id, prio) AS em_id"
        " FROM (SELECT template_id AS em_tid, id AS em_ref, id AS em_id, 1 AS prio"
        " FROM experiments UNION ALL SELECT template_id, name, min(id), 0 FROM experiments"
        " GROUP BY template_id, name HAVING count(*) = 1) GROUP BY em_tid, em_ref"
    )
    con.execute(
        f"CREATE TEMP TABLE {prefix}_a AS SELECT v.experiment_id AS va_eid, v.name AS va_name,"
        " v.commit_id AS va_commit, (SELECT arg_max(x.version, x.major * 1000000000000"
        " + x.minor * 1000000 + x.patch) FROM versions x WHERE x.commit_id = v.commit_id)"
        " AS va_version FROM experiment_variants v"
    )


@dataclass(frozen=True)
class Landed:
    """What an import's rows look like once appended (before commit)."""

    rows: int
    without_event_id: int
    duplicate_event_ids: bool
    already_stored: int
    first: datetime | None
    last: datetime | None
    template_ids: list[str]


def landed(con: Con, import_id: str, with_event_ids: bool) -> Landed:
    """Counts over the rows an import just appended (duplicate and already stored ids)."""
    row = con.execute(
        "SELECT count(*), count(*) - count(event_id), count(event_id) <> count(DISTINCT"
        " event_id), min(ts), max(ts), list(DISTINCT template_id ORDER BY template_id)"
        " FROM metric_events WHERE import_id = ?",
        [import_id],
    ).fetchone()
    stored = 0
    if with_event_ids and row[1] < row[0]:
        stored = con.execute(
            "SELECT count(*) FROM metric_events n WHERE n.import_id = ? AND n.event_id IN"
            " (SELECT event_id FROM metric_events WHERE import_id IS DISTINCT FROM ?"
            " AND event_id IS NOT NULL)",
            [import_id, import_id],
        ).fetchone()[0]
    return Landed(
        int(row[0]), int(row[1]), bool(row[2]), int(stored), row[3], row[4], list(row[5] or [])
    )


def drop_already_stored(con: Con, import_id: str) -> int:
    """Remove the import's rows whose event_id was stored before it (re-imports skip them)."""
    row = con.execute(
        "DELETE FROM metric_events WHERE import_id = ? AND event_id IN (SELECT event_id FROM"
        " metric_events WHERE import_id IS DISTINCT FROM ? AND event_id IS NOT NULL)",
        [import_id, import_id],
    ).fetchone()
    return int(row[0]) if row else 0


def staged_template_ids(con: Con, keys_table: str) -> list[str]:
    """Template ids referenced by a staged file (``keys_table`` is an internal temp table)."""
    return [
        r[0]
        for r in con.execute(f"SELECT DISTINCT template_id FROM {keys_table} ORDER BY 1").fetchall()
    ]

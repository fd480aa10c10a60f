"""SQL for metric events: CSV staging and checks, buffered inserts, figures, summary, retention.

Column names that reach SQL text here are never raw user input: the CSV header is checked first
(:func:`promptver.metrics.csv_columns.read_header`) and only names matching ``[a-z][a-z0-9_]*`` get
through; they are still double-quoted. Every value is a parameter.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from promptver.metric_defs import FIGURE_DIMENSIONS
from promptver.models import ImportAttempt, ImportProblem, ImportRecord, MetricEvent

Con = duckdb.DuckDBPyConnection

ISO_TIMESTAMP_RE = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)?)?"
)
"""ISO 8601 / RFC 3339 date or date-time, with an optional offset (no offset means UTC)."""

BOOL_TEXT = ("true", "false", "1", "0")

#: columns of ``metric_events`` in insertion order (the tracking buffer writes these)
EVENT_COLUMNS = (
    "event_id",
    "import_id",
    "ts",
    "template_id",
    "user_id",
    "experiment_id",
    "variant",
    "version",
    "commit_id",
    "environment",
    "latency_ms",
    "success",
    "error",
    "quality_score",
    "cost_usd",
    "tokens_in",
    "tokens_out",
    "custom",
)


def q(name: str) -> str:
    """A double-quoted identifier (names were validated before; quoting is belt and braces)."""
    return '"' + name.replace('"', '""') + '"'


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


# ---- imports -------------------------------------------------------------------------------


def insert_import(con: Con, rec: ImportRecord) -> None:
    con.execute(
        "INSERT INTO imports (id, file_name, sha256, rows_imported, rows_skipped_duplicate,"
        " has_event_ids, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            rec.id,
            rec.file_name,
            rec.sha256,
            rec.rows_imported,
            rec.rows_skipped_duplicate,
            rec.has_event_ids,
            rec.created_at,
            rec.created_by,
        ],
    )


def import_by_hash(con: Con, sha256: str) -> ImportRecord | None:
    rows = _imports(con, "WHERE i.sha256 = ? ORDER BY i.created_at LIMIT 1", [sha256])
    return rows[0] if rows else None


def list_imports(con: Con, limit: int = 100) -> list[ImportRecord]:
    return _imports(con, "ORDER BY i.created_at DESC LIMIT ?", [limit])


def get_import(con: Con, import_id: str) -> ImportRecord | None:
    rows = _imports(con, "WHERE i.id = ?", [import_id])
    return rows[0] if rows else None


def _imports(con: Con, tail: str, params: list[Any]) -> list[ImportRecord]:
    rows = con.execute(
        "SELECT i.id, i.file_name, i.sha256, i.rows_imported, i.rows_skipped_duplicate,"
        " i.has_event_ids, i.created_at, i.created_by,"
        " (SELECT count(*) FROM metric_events m WHERE m.import_id = i.id) AS events_present"
        f" FROM imports i {tail}",
        params,
    ).fetchall()
    return [
        ImportRecord(
            id=r[0],
            file_name=r[1],
            sha256=r[2],
            rows_imported=r[3],
            rows_skipped_duplicate=r[4],
            has_event_ids=r[5],
            created_at=r[6],
            created_by=r[7],
            events_present=r[8],
        )
        for r in rows
    ]


# ---- what an accepted import should warn about ---------------------------------------------


def landed_events(import_id: str) -> tuple[str, list[Any]]:
    """The rows an import appended (before its commit), as a relation for the warnings."""
    return (
        "SELECT ts, template_id, commit_id, version, experiment_id, environment"
        " FROM metric_events WHERE import_id = ?",
        [import_id],
    )


def staged_events(stage: str, keys: str, present: set[str], skip_existing: bool) -> str:
    """The rows of a staged file that would land, with their resolved ids (a relation)."""

    def join_key(name: str) -> str:
        return f"k.{name} IS NOT DISTINCT FROM {'s.' + name if name in present else 'NULL'}"

    env = "s.environment" if "environment" in present else "NULL::VARCHAR"
    where = ""
    if skip_existing:
        where = (
            " WHERE s.event_id IS NULL OR NOT EXISTS (SELECT 1 FROM metric_events m"
            " WHERE m.event_id = s.event_id)"
        )
    return (
        f"SELECT s.__ts AS ts, k.template_id, k.commit_id, k.version_out AS version,"
        f" k.experiment_id, {env} AS environment"
        f" FROM {stage} s JOIN {keys} k ON k.template = s.template AND {join_key('experiment')}"
        f" AND {join_key('variant')} AND {join_key('version')}{where}"
    )


def older_than(
    con: Con, relation: str, params: list[Any], cutoffs: Sequence[datetime]
) -> tuple[int, datetime | None, list[int]]:
    """(events, the oldest one's time, how many are older than each cutoff) of ``relation``."""
    parts = "".join(", count(*) FILTER (WHERE ts < ?)" for _ in cutoffs)
    row = con.execute(
        f"SELECT count(*), min(ts){parts} FROM ({relation})", [*cutoffs, *params]
    ).fetchone()
    return int(row[0]), row[1], [int(n) for n in row[2:]]


def before_deployment(
    con: Con, relation: str, params: list[Any], limit: int
) -> list[tuple[str, str, str | None, datetime | None, int, datetime]]:
    """Events of a version that precede its first deployment.

    Only events that name a version and no experiment count (an experiment serves its variants
    without deploying them). The first deployment is the earliest deploy or rollback that put
    the version's commit live in the event's environment (in any environment when the event
    names none); a version never deployed there has none, and all its events count.

    Returns:
        (template, version, environment, first deployment or None, events, first event),
        by template, version and environment.
    """
    rows = con.execute(
        f"""
        WITH r AS ({relation}),
        g AS (
            SELECT template_id, commit_id, version, environment, ts FROM r
            WHERE experiment_id IS NULL AND commit_id IS NOT NULL
        ),
        fd AS (
            SELECT k.template_id, k.commit_id, k.environment, min(d.created_at) AS first_at
            FROM (SELECT DISTINCT template_id, commit_id, environment FROM g) k
            LEFT JOIN deployments d ON d.template_id = k.template_id
                AND d.commit_id = k.commit_id
                AND (k.environment IS NULL OR d.environment = k.environment)
            GROUP BY ALL
        )
        SELECT t.name, g.version, g.environment, fd.first_at, count(*), min(g.ts)
        FROM g JOIN fd ON fd.template_id = g.template_id AND fd.commit_id = g.commit_id
            AND fd.environment IS NOT DISTINCT FROM g.environment
        JOIN templates t ON t.id = g.template_id
        WHERE fd.first_at IS NULL OR g.ts < fd.first_at
        GROUP BY ALL
        ORDER BY t.name, g.version, g.environment NULLS FIRST
        LIMIT ?
        """,
        [*params, limit],
    ).fetchall()
    return [(r[0], r[1], r[2], r[3], int(r[4]), r[5]) for r in rows]


# ---- refused imports -----------------------------------------------------------------------


def insert_attempt(con: Con, attempt: ImportAttempt) -> int:
    """Log a refused import; returns its id."""
    import json

    row = con.execute(
        "INSERT INTO import_attempts (file_name, sha256, size_bytes, attempted_at,"
        " attempted_by, reason, total_problems, problems) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        [
            attempt.file_name,
            attempt.sha256,
            attempt.size_bytes,
            attempt.attempted_at,
            attempt.attempted_by,
            attempt.reason,
            attempt.total_problems,
            json.dumps([p.model_dump() for p in attempt.problems]),
        ],
    ).fetchone()
    return int(row[0])


def list_attempts(con: Con, limit: int = 100) -> list[ImportAttempt]:
    """Refused imports, newest first."""
    import json

    rows = con.execute(
        "SELECT id, file_name, sha256, size_bytes, attempted_at, attempted_by, reason,"
        " total_problems, problems FROM import_attempts ORDER BY attempted_at DESC, id DESC"
        " LIMIT ?",
        [limit],
    ).fetchall()
    return [
        ImportAttempt(
            id=r[0],
            file_name=r[1],
            sha256=r[2],
            size_bytes=r[3],
            attempted_at=r[4],
            attempted_by=r[5],
            reason=r[6],
            total_problems=r[7],
            problems=[ImportProblem(**p) for p in json.loads(r[8])],
        )
        for r in rows
    ]


# ---- tracked events ------------------------------------------------------------------------


TRACK_TYPES = {
    "event_id": "string",
    "ts_us": "int64",
    "template_id": "string",
    "user_id": "string",
    "experiment_id": "string",
    "variant": "string",
    "version": "string",
    "commit_id": "string",
    "environment": "string",
    "latency_ms": "Float64",
    "success": "boolean",
    "error": "boolean",
    "quality_score": "Float64",
    "cost_usd": "Float64",
    "tokens_in": "Int64",
    "tokens_out": "Int64",
    "custom": "string",
    "dims": "string",
}
"""Column types of a batch of tracked events (``custom`` and ``dims`` hold a JSON object or
null)."""


#: SQL type of each pandas dtype of :data:`TRACK_TYPES` (the list-parameter path)
_SQL_TYPES = {
    "string": "VARCHAR",
    "int64": "BIGINT",
    "Int64": "BIGINT",
    "Float64": "DOUBLE",
    "boolean": "BOOLEAN",
}
#: events per statement bound as typed list parameters (a 100-event flush is 4x faster than
#: through pandas, and an application that tracks its calls never loads pandas)
LIST_BATCH = 10_000


def insert_columns(con: Con, cols: dict[str, Sequence[Any]]) -> int:
    """Append events given column-wise (sequences of equal length).

    The columns are bound as typed list parameters and unnested side by side, in statements of
    up to :data:`LIST_BATCH` events. A bigger batch in a process that has pandas loaded already
    (the dashboard, a CSV import) goes in one statement as typed pandas arrays that DuckDB
    scans directly, about twice as fast at 100,000 events. pandas is never imported here: the
    last flush runs at interpreter exit, when importing it fails (it registers an exit hook).
    ``ts_us`` holds epoch microseconds (UTC). As with CSV imports, an event whose ``event_id``
    is already stored (or appears earlier in the batch, or in an earlier statement of the same
    transaction) is skipped.

    Returns:
        The number of events written.
    """
    n = len(cols["ts_us"])
    if n == 0:
        return 0
    if n <= LIST_BATCH or "pandas" not in sys.modules:
        unnested = ", ".join(
            f"unnest(${name}::{_SQL_TYPES[kind]}[]) AS {name}" for name, kind in TRACK_TYPES.items()
        )
        # batch order: the first of an id wins
        source = f"(SELECT {unnested}, unnest(range($pv_n)) AS __i)"
        written = 0
        for i in range(0, n, LIST_BATCH):
            params: dict[str, Any] = {
                name: list(cols[name][i : i + LIST_BATCH]) for name in TRACK_TYPES
            }
            params["pv_n"] = len(params["ts_us"])
            written += _insert_tracked(con, params, source, params)
        return written
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(
        {
            name: np.asarray(cols[name], dtype=np.int64)
            if kind == "int64"
            else pd.array(cols[name], dtype=kind)
            for name, kind in TRACK_TYPES.items()
        }
        | {"__i": np.arange(n, dtype=np.int64)},  # batch order: the first of an id wins
        copy=False,
    )
    view = "pv_track_batch"
    con.register(view, frame)
    try:
        return _insert_tracked(con, cols, view, None)
    finally:
        con.unregister(view)


def _insert_tracked(
    con: Con, cols: dict[str, Sequence[Any]], source: str, params: dict[str, Any] | None
) -> int:
    """The INSERT of :func:`insert_columns` from ``source`` (a view or a subquery)."""
    dedupe = ""
    if any(e is not None for e in cols["event_id"]):
        dedupe = (
            " WHERE event_id IS NULL OR NOT EXISTS (SELECT 1 FROM metric_events m"
            " WHERE m.event_id = b.event_id)"
            " QUALIFY event_id IS NULL"
            " OR row_number() OVER (PARTITION BY event_id ORDER BY __i) = 1"
        )
    row = con.execute(
        f"""
        INSERT INTO metric_events ({", ".join(EVENT_COLUMNS)}, dims)
        SELECT event_id, NULL, make_timestamptz(ts_us), template_id, user_id,
               experiment_id, variant, version, commit_id, environment, latency_ms,
               success, error, quality_score, cost_usd, tokens_in, tokens_out,
               CAST(custom::JSON AS MAP(VARCHAR, DOUBLE)), CAST(dims::JSON AS MAP(VARCHAR, VARCHAR))
        FROM {source} b{dedupe}
        """,
        params,
    ).fetchone()
    return int(row[0]) if row else len(cols["ts_us"])


def known_template_ids(con: Con) -> set[str]:
    return {r[0] for r in con.execute("SELECT id FROM templates").fetchall()}


def known_versions(con: Con) -> set[tuple[str, str, str]]:
    """(template_id, version, commit_id) of every version."""
    return {
        (r[0], r[1], r[2])
        for r in con.execute("SELECT template_id, version, commit_id FROM versions").fetchall()
    }


def known_commits(con: Con) -> set[tuple[str, str]]:
    return {(r[0], r[1]) for r in con.execute("SELECT template_id, id FROM commits").fetchall()}


def known_variants(con: Con) -> set[tuple[str, str, str]]:
    """(experiment_id, template_id, variant name) of every experiment variant."""
    return {
        (r[0], r[1], r[2])
        for r in con.execute(
            "SELECT v.experiment_id, x.template_id, v.name FROM experiment_variants v"
            " JOIN experiments x ON x.id = v.experiment_id"
        ).fetchall()
    }


# ---- reading -------------------------------------------------------------------------------


def _filters(
    template_id: str | None = None,
    environment: str | None = None,
    version: str | None = None,
    variant: str | None = None,
    experiment_id: str | None = None,
    user_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    import_id: str | None = None,
    alias: str = "e",
) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("template_id", template_id),
        ("environment", environment),
        ("version", version),
        ("variant", variant),
        ("experiment_id", experiment_id),
        ("user_id", user_id),
        ("import_id", import_id),
    ):
        if value is not None:
            where.append(f"{alias}.{column} = ?")
            params.append(value)
    if start is not None:
        where.append(f"{alias}.ts >= ?")
        params.append(start)
    if end is not None:
        where.append(f"{alias}.ts <= ?")
        params.append(end)
    return (" WHERE " + " AND ".join(where)) if where else "", params


def count_events(con: Con, **filters: Any) -> int:
    where, params = _filters(**filters)
    return con.execute(f"SELECT count(*) FROM metric_events e{where}", params).fetchone()[0]


def summary(con: Con, template_id: str | None) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """(events, users, first, last) and (metric, count, mean) per metric, built-ins first."""
    where, params = _filters(template_id=template_id)
    head = con.execute(
        "SELECT count(*), count(DISTINCT user_id), min(ts), max(ts),"
        " count(latency_ms), avg(latency_ms), count(success), avg(success::INT),"
        " count(error), avg(error::INT), count(quality_score), avg(quality_score),"
        " count(cost_usd), avg(cost_usd), count(tokens_in), avg(tokens_in),"
        f" count(tokens_out), avg(tokens_out) FROM metric_events e{where}",
        params,
    ).fetchone()
    custom = con.execute(
        "SELECT k, count(v), avg(v) FROM (SELECT unnest(map_keys(custom)) AS k,"
        f" unnest(map_values(custom)) AS v FROM metric_events e{where}"
        f"{' AND' if where else ' WHERE'} custom IS NOT NULL) GROUP BY k ORDER BY k",
        params,
    ).fetchall()
    return head, custom


def custom_metric_names(con: Con) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT unnest(map_keys(custom)) AS k FROM metric_events"
            " WHERE custom IS NOT NULL ORDER BY k"
        ).fetchall()
    ]


_FIGURES_SELECT = """
    count(*) AS requests,
    count(DISTINCT e.user_id) AS users,
    avg(e.latency_ms) AS latency_avg,
    quantile_cont(e.latency_ms, 0.5) AS latency_p50,
    quantile_cont(e.latency_ms, 0.95) AS latency_p95,
    avg(e.success::INT) AS success_rate,
    avg(e.error::INT) AS error_rate,
    avg(e.quality_score) AS quality_mean,
    avg(e.cost_usd) AS cost_per_request,
    sum(e.cost_usd) AS cost_total,
    avg(e.tokens_in) AS tokens_in_avg,
    avg(e.tokens_out) AS tokens_out_avg,
    sum(e.tokens_in) AS tokens_in_total,
    sum(e.tokens_out) AS tokens_out_total,
    min(e.ts) AS first,
    max(e.ts) AS last
"""


def figures(con: Con, by: Sequence[str], **filters: Any) -> list[dict[str, Any]]:
    """Performance figures grouped by ``by`` (a subset of :data:`FIGURE_DIMENSIONS`)."""
    dims = [d for d in FIGURE_DIMENSIONS if d in by]
    exprs = {
        "template": "t.name AS template, e.template_id",
        "version": "e.version",
        "variant": "e.experiment_id, e.variant",
        "environment": "e.environment",
    }
    groups = {
        "template": "t.name, e.template_id",
        "version": "e.version",
        "variant": "e.experiment_id, e.variant",
        "environment": "e.environment",
    }
    where, params = _filters(**filters)
    select = ", ".join([exprs[d] for d in dims] + [_FIGURES_SELECT])
    group = (" GROUP BY " + ", ".join(groups[d] for d in dims)) if dims else ""
    order = (
        (
            " ORDER BY "
            + ", ".join(groups[d].replace(", ", " NULLS LAST, ") + " NULLS LAST" for d in dims)
        )
        if dims
        else ""
    )
    cur = con.execute(
        f"SELECT {select} FROM metric_events e JOIN templates t ON t.id = e.template_id"
        f"{where}{group}{order}",
        params,
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def timeseries(con: Con, bucket: str, by: str | None, **filters: Any) -> list[dict[str, Any]]:
    """Figures per time bucket (``hour`` or ``day``), optionally split by one dimension."""
    split = {
        "version": "e.version",
        "variant": "e.variant",
        "environment": "e.environment",
        "template": "t.name",
        None: "NULL::VARCHAR",
    }[by]
    where, params = _filters(**filters)
    cur = con.execute(
        f"SELECT date_trunc(?, e.ts) AS bucket, {split} AS series,"
        f" {_FIGURES_SELECT} FROM metric_events e JOIN templates t ON t.id = e.template_id"
        f"{where} GROUP BY ALL ORDER BY bucket, series NULLS LAST",
        [bucket, *params],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def recent_events(con: Con, limit: int, **filters: Any) -> list[MetricEvent]:
    where, params = _filters(**filters)
    rows = con.execute(
        "SELECT e.event_id, e.import_id, e.ts, e.template_id, t.name, e.user_id,"
        " e.experiment_id, e.variant, e.version, e.commit_id, e.environment, e.latency_ms,"
        " e.success, e.error, e.quality_score, e.cost_usd, e.tokens_in, e.tokens_out, e.custom"
        f" FROM metric_events e LEFT JOIN templates t ON t.id = e.template_id{where}"
        " ORDER BY e.ts DESC LIMIT ?",
        [*params, limit],
    ).fetchall()
    return [
        MetricEvent(
            event_id=r[0],
            import_id=r[1],
            timestamp=r[2],
            template_id=r[3],
            template=r[4] or r[3],
            user_id=r[5],
            experiment_id=r[6],
            variant=r[7],
            version=r[8],
            commit=r[9],
            environment=r[10],
            latency_ms=r[11],
            success=r[12],
            error=r[13],
            quality_score=r[14],
            cost_usd=r[15],
            tokens_in=r[16],
            tokens_out=r[17],
            custom=dict(r[18] or {}),
        )
        for r in rows
    ]


def distinct_values(con: Con, column: str, template_id: str | None = None) -> list[str]:
    if column not in ("environment", "version", "variant", "experiment_id"):
        raise ValueError(column)
    where, params = _filters(template_id=template_id)
    joiner = " AND" if where else " WHERE"
    return [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT {column} FROM metric_events e{where}{joiner}"
            f" {column} IS NOT NULL ORDER BY 1",
            params,
        ).fetchall()
    ]


# ---- retention -----------------------------------------------------------------------------


def count_older(con: Con, cutoff: datetime) -> int:
    return con.execute("SELECT count(*) FROM metric_events WHERE ts < ?", [cutoff]).fetchone()[0]


def delete_older(con: Con, cutoff: datetime) -> int:
    row = con.execute("DELETE FROM metric_events WHERE ts < ?", [cutoff]).fetchone()
    return int(row[0]) if row else 0


def staged_template_ids(con: Con, keys_table: str) -> list[str]:
    """Template ids referenced by a staged file (``keys_table`` is an internal temp table)."""
    return [
        r[0]
        for r in con.execute(f"SELECT DISTINCT template_id FROM {keys_table} ORDER BY 1").fetchall()
    ]


def template_names(con: Con, template_ids: list[str]) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT name FROM templates WHERE list_contains(?, id) ORDER BY name", [template_ids]
        ).fetchall()
    ]

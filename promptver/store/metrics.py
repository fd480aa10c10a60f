"""SQL for metric events: the table's columns, tracked-event inserts, retention.

The CSV import's SQL is :mod:`promptver.store.metric_csv`, the import log
:mod:`promptver.store.metric_imports`, the figures :mod:`promptver.store.metric_figures` (whose
functions are re-exported here). Every value is a parameter.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb

from promptver.store.metric_figures import count_events as count_events
from promptver.store.metric_figures import custom_metric_names as custom_metric_names
from promptver.store.metric_figures import distinct_values as distinct_values
from promptver.store.metric_figures import figures as figures
from promptver.store.metric_figures import recent_events as recent_events
from promptver.store.metric_figures import summary as summary
from promptver.store.metric_figures import timeseries as timeseries

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


# ---- retention -----------------------------------------------------------------------------


def count_older(con: Con, cutoff: datetime) -> int:
    return con.execute("SELECT count(*) FROM metric_events WHERE ts < ?", [cutoff]).fetchone()[0]


def delete_older(con: Con, cutoff: datetime) -> int:
    row = con.execute("DELETE FROM metric_events WHERE ts < ?", [cutoff]).fetchone()
    return int(row[0]) if row else 0

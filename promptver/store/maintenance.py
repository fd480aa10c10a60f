"""SQL for whole-database maintenance: consistent backups."""

from __future__ import annotations

from pathlib import Path

import duckdb


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def copy_database_to(con: duckdb.DuckDBPyConnection, dest: Path) -> None:
    """Copy every table, sequence and index of the open database into a new file ``dest``.

    ``COPY FROM DATABASE`` reads one MVCC snapshot, so the copy is consistent even while other
    threads of this process write.
    """
    source = con.execute("SELECT current_database()").fetchone()[0]
    alias = "promptver_backup_target"
    con.execute(f"ATTACH {_literal(str(dest))} AS {_ident(alias)}")
    try:
        con.execute(f"COPY FROM DATABASE {_ident(source)} TO {_ident(alias)}")
    finally:
        con.execute(f"DETACH {_ident(alias)}")


def checkpoint(con: duckdb.DuckDBPyConnection) -> None:
    """Write the write-ahead log into the main file (so the file alone is complete)."""
    con.execute("FORCE CHECKPOINT")

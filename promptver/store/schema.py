"""Is a file's schema current? One read answers it, without loading the migrations.

Every :meth:`Workspace.open <promptver.workspace.Workspace.open>` asks, so the common answer
(yes) must be cheap: it compares the count and the newest name in ``schema_migrations`` with
:data:`HEAD`, and only a file that differs (new, older, or from a newer promptver) loads
:mod:`promptver.store.migrations`, which applies what is missing or refuses the file.
``tests/test_store.py`` checks that :data:`HEAD` names the last migration.
"""

from __future__ import annotations

import duckdb

from promptver.store.db import Database

#: (number of migrations, name of the last one): update both when adding a migration
HEAD = (13, "m120_webhooks")


def ensure_schema(db: Database) -> list[str]:
    """Apply pending migrations unless the schema is current; returns the names applied now.

    Raises:
        DatabaseError: the file was written by a newer promptver.
    """
    with db.connect() as con:
        try:
            row = con.execute(
                "SELECT count(*), max_by(name, seq) FROM schema_migrations"
            ).fetchone()
        except duckdb.CatalogException:  # a new file: no table yet
            row = None
    if row == HEAD:
        return []
    from promptver.store.migrations import migrate

    return migrate(db)

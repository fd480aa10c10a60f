"""The only place with SQL: connections, migrations and the queries of each capability.

Services call these functions with a connection from :class:`~promptver.store.db.Database`
inside one transaction per user action; the functions return models or plain values, never
cursors. Every query is parameterised.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Database", "migrate"]


def __getattr__(name: str) -> Any:
    # loaded on first use: importing one query module must not load every other part
    if name == "Database":
        from promptver.store.db import Database

        return Database
    if name == "migrate":
        from promptver.store.migrations import migrate

        return migrate
    raise AttributeError(f"module 'promptver.store' has no attribute {name!r}")

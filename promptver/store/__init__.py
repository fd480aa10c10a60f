"""The only place with SQL: connections, migrations and the queries of each capability.

Services call these functions with a connection from :class:`~promptver.store.db.Database`
inside one transaction per user action; the functions return models or plain values, never
cursors. Every query is parameterised.
"""

from promptver.store.db import Database
from promptver.store.migrations import migrate

__all__ = ["Database", "migrate"]

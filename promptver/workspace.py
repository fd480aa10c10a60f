"""The Workspace: one database file, its settings, and the services over it.

Applications, the CLI, the HTTP API and the dashboard all start here::

    ws = Workspace.open("data/promptver.duckdb")
    ws.templates.create("qa-basic", "Answer {question} using {context}.")

The workspace holds no open connection between operations (see ``promptver.store.db``), so it
can live as long as the process does and share the file with other processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from promptver.config import Settings
from promptver.metrics import MetricsService
from promptver.models import Prompt
from promptver.store import templates as sql
from promptver.store.db import Database
from promptver.store.migrations import migrate
from promptver.templates import TemplateService
from promptver.versioning import VersionControl, utcnow


class Workspace:
    """A promptver database and its services.

    Prefer :meth:`open`, which creates or upgrades the schema.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None,
                 settings: Settings | None = None) -> None:
        self.settings = settings or Settings.load()
        chosen = path if path is not None else self.settings.storage.path
        self.path = chosen if str(chosen) == ":memory:" else Path(chosen)
        self.db = Database(self.path, busy_timeout=self.settings.storage.busy_timeout)
        self.versions = VersionControl(self.db)
        self.templates = TemplateService(self.db, self.settings, self.versions)
        self.metrics = MetricsService(self.db, self.settings)
        self._closed = False

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *,
             settings: Settings | None = None) -> Workspace:
        """Open (creating or upgrading) the database at ``path``.

        ``path`` defaults to ``storage.path`` from the settings (``$PROMPTVER_DB`` or
        ``data/promptver.duckdb``).

        Raises:
            DatabaseBusy: another process kept the file locked past the configured wait.
            DatabaseError: the file is damaged or from a newer promptver.
        """
        ws = cls(path, settings)
        migrate(ws.db)
        return ws

    @property
    def is_new(self) -> bool:
        """True while the workspace has no templates and was never seeded."""
        with self.db.read() as con:
            return sql.count_templates(con) == 0 and sql.get_info(con, "seeded") is None

    def mark(self, key: str, value: str) -> None:
        """Record a fact about the workspace (e.g. ``seeded``)."""
        with self.db.transaction() as con:
            sql.set_info(con, key, value, utcnow())

    def info(self, key: str) -> str | None:
        with self.db.read() as con:
            return sql.get_info(con, key)

    @contextmanager
    def session(self) -> Iterator[Workspace]:
        """Keep the file open for a block of operations (one dashboard run, a CLI command)."""
        with self.db.session():
            yield self

    def track(self, prompt: Prompt, **metrics: Any) -> None:
        """Record one call of ``prompt`` (buffered; written in batches, on close and at exit).

        ``metrics`` are the built-in ones (``latency_ms``, ``success``, ``error``,
        ``quality_score``, ``cost_usd``, ``tokens_in``, ``tokens_out``) and any custom numeric
        ones; ``user_id``, ``event_id`` and ``timestamp`` may be given too. They are checked
        now with the CSV import's rules.

        Raises:
            ValidationError: a bad value, an unknown metric that is not numeric, no metric.
        """
        self.metrics.track(prompt, **metrics)

    def close(self) -> None:
        """Flush what is buffered and release resources. Safe to call twice."""
        if self._closed:
            return
        self.metrics.close()
        self._closed = True
        self.db.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

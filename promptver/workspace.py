"""The Workspace: one database file, its settings, and the services over it.

Applications, the CLI, the HTTP API and the dashboard all start here::

    ws = Workspace.open("data/promptver.duckdb")
    ws.templates.create("qa-basic", "Answer {question} using {context}.")

The workspace holds no open connection between operations (see ``promptver.store.db``), so it
can live as long as the process does and share the file with other processes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptver.config_source import DEFAULT_BUSY_TIMEOUT, DEFAULT_DB_PATH, unvalidated
from promptver.errors import NotFound, Problem, PromptverError, ValidationError
from promptver.store.db import Database
from promptver.store.schema import ensure_schema

if TYPE_CHECKING:
    from promptver.alerts import AlertService
    from promptver.config import Settings
    from promptver.deployments import DeploymentService
    from promptver.evals import EvalService
    from promptver.experiments import ExperimentService
    from promptver.metrics import MetricsService
    from promptver.models.core import Prompt
    from promptver.models.experiments import Experiment
    from promptver.models.results import ExperimentResults
    from promptver.overview import OverviewService
    from promptver.serving import LivePrompt, Serving
    from promptver.sources import EventSource
    from promptver.templates import TemplateService
    from promptver.trends import TrendService
    from promptver.versioning import VersionControl


class Workspace:
    """A promptver database and its services.

    Prefer :meth:`open`, which creates or upgrades the schema.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, settings: Settings | None = None
    ) -> None:
        #: the settings data to validate on first use, when none of it needed validating now
        self._pending = unvalidated() if settings is None else None
        if settings is None and self._pending is None:
            from promptver.config import Settings

            settings = Settings.load()  # a bad settings file is an error at open
        self._settings = settings
        storage = settings.storage if settings is not None else None
        if path is None:
            pending = self._pending or {}
            path = (
                storage.path if storage else pending.get("storage", {}).get("path", DEFAULT_DB_PATH)
            )
        self.path = path if str(path) == ":memory:" else Path(path)
        busy = storage.busy_timeout if storage is not None else DEFAULT_BUSY_TIMEOUT
        self.db = Database(self.path, busy_timeout=busy)
        self._arm_prompts: dict[tuple[str, str], Prompt] = {}
        self._services: dict[str, Any] = {}
        self._services_lock = threading.RLock()
        self._closed = False
        self._held: Any = None  # the lazy session of open(hold=True)

    @property
    def settings(self) -> Settings:
        """The settings. With no settings file and no override but ``PROMPTVER_DB`` they are
        built on first use (from what was found at open): a command that never reads a setting
        (``template list``) never imports pydantic."""
        if self._settings is None:
            from promptver.config import Settings

            with self._services_lock:  # one settings object, whichever thread asks first
                if self._settings is None:
                    self._settings = Settings.from_dict(self._pending or {})
        return self._settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        # services read the settings when they are built: replace them before the first use
        self._settings = value

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        settings: Settings | None = None,
        create: bool = True,
        hold: bool = False,
    ) -> Workspace:
        """Open (creating or upgrading) the database at ``path``.

        ``path`` defaults to ``storage.path`` from the settings (``$PROMPTVER_DB`` or
        ``data/promptver.duckdb``). With ``create=False`` a missing file is an error and
        nothing (no file, no folder) is created: the CLI opens this way for every command but
        ``init`` and ``demo``, so a mistyped ``--db`` does not leave an empty database behind.
        With ``hold=True`` the connection that checks the schema stays open, on this thread,
        for every operation until :meth:`close` (a short CLI command opens the file once, not
        once per step); other processes wait for the file meanwhile, so only brief users
        should hold it.

        Raises:
            NotFound: ``create=False`` and there is no file at ``path``.
            DatabaseBusy: another process kept the file locked past the configured wait.
            DatabaseError: the file is damaged or from a newer promptver.
        """
        ws = cls(path, settings)
        if not create and isinstance(ws.db.path, Path) and not ws.db.path.exists():
            raise NotFound(f"no database at {ws.db.path}")
        if hold:
            ws._held = ws.db.lazy_session()
            ws._held.__enter__()
        try:
            ensure_schema(ws.db)
        except BaseException:
            ws.close()
            raise
        return ws

    # Built on first use, under a lock (several application threads may track at once): a
    # command that lists templates or an application that only serves prompts never loads the
    # metrics import, the alert rules or the overview.
    def _service(self, name: str, build: Callable[[], Any]) -> Any:
        found = self._services.get(name)
        if found is None:
            with self._services_lock:
                found = self._services.get(name)
                if found is None:
                    found = self._services[name] = build()
        return found

    @property
    def source(self) -> EventSource:
        """Where the analysis reads events: the promptver file unless ``events:`` says
        otherwise (an external source connects on its first read)."""

        def build() -> EventSource:
            from promptver.sources import open_source

            return open_source(self.settings, self.db)

        return self._service("source", build)

    @property
    def versions(self) -> VersionControl:
        """Version control: commits, branches, versions, diffs, merges (built on first use: an
        application that only serves prompts never needs it)."""

        def build() -> VersionControl:
            from promptver.versioning import VersionControl

            return VersionControl(self.db, self.settings.templates)

        return self._service("versions", build)

    @property
    def templates(self) -> TemplateService:
        """Templates: create, edit, validate, archive (built on first use)."""

        def build() -> TemplateService:
            from promptver.templates import TemplateService

            # version control is built when an operation needs it: listing never does
            service = TemplateService(self.db, self.settings, lambda: self.versions)
            service.on_serving_change = self._serving_changed
            return service

        return self._service("templates", build)

    @property
    def serving(self) -> Serving:
        """What ``get_prompt`` serves, cached (the only part an application that serves
        prompts loads)."""

        def build() -> Serving:
            from promptver.serving import Serving

            return Serving(self.db, self.settings)

        return self._service("serving", build)

    @property
    def deployments(self) -> DeploymentService:
        """Deployments, gates and what is live (built on first use: ``template list`` and the
        version-control commands never need it)."""

        def build() -> DeploymentService:
            from promptver.deployments import DeploymentService

            return DeploymentService(
                self.db, self.settings, self.versions, self.templates, self.serving
            )

        return self._service("deployments", build)

    def _serving_changed(self) -> None:
        """An archive or restore: what is live may change (no cache if nothing was served)."""
        serving = self._services.get("serving")
        if serving is not None:
            serving.invalidate()

    @property
    def experiments(self) -> ExperimentService:
        """Experiments: definitions, lifecycle, routing (built on first use: serving a prompt
        without a user id, or listing templates, never needs it)."""

        def build() -> ExperimentService:
            from promptver.experiments import ExperimentService

            service = ExperimentService(self.db, self.settings, self.versions)
            service.results_provider = self._final_results
            return service

        return self._service("experiments", build)

    @property
    def metrics(self) -> MetricsService:
        """Metric events: tracking, CSV imports, figures."""

        def build() -> MetricsService:
            from promptver.metrics import MetricsService

            service = MetricsService(self.db, self.settings, self.source)
            service.add_listener(self._metrics_written)  # alert rules run after each write
            return service

        return self._service("metrics", build)

    def _metrics_written(self, *args: Any, **kwargs: Any) -> Any:
        return self.alerts.on_metrics_written(*args, **kwargs)

    @property
    def alerts(self) -> AlertService:
        """Alert rules and the alerts they fired."""

        def build() -> AlertService:
            from promptver.alerts import AlertService

            return AlertService(self.db, self.settings)

        return self._service("alerts", build)

    @property
    def overview(self) -> OverviewService:
        """What the Home screen shows."""

        def build() -> OverviewService:
            from promptver.overview import OverviewService

            return OverviewService(self.db, self.settings, self.deployments, self.experiments)

        return self._service("overview", build)

    @cached_property
    def trends(self) -> TrendService:
        """The trend analysis, built on first use: it loads numpy and scipy, which an
        application that only serves prompts never needs."""
        from promptver.trends import TrendService

        return TrendService(self.db, self.settings, self.source)

    @property
    def evals(self) -> EvalService:
        """Offline evaluations (datasets, runs, paired comparisons); one instance, so that its
        import lock and import hooks are shared by every thread."""

        def build() -> EvalService:
            from promptver.evals import EvalService
            from promptver.outbox import eval_import_hook

            service = EvalService(self.db, self.settings, self.versions, self.templates)
            service.add_import_hook(eval_import_hook)  # eval.imported webhooks
            return service

        return self._service("evals", build)

    @property
    def is_new(self) -> bool:
        """True while the workspace has no templates and was never seeded."""
        from promptver.store import templates as sql

        with self.db.read() as con:
            return sql.count_templates(con) == 0 and sql.get_info(con, "seeded") is None

    def mark(self, key: str, value: str) -> None:
        """Record a fact about the workspace (e.g. ``seeded``)."""
        from promptver.clock import utcnow
        from promptver.store import templates as sql

        with self.db.transaction() as con:
            sql.set_info(con, key, value, utcnow())

    def info(self, key: str) -> str | None:
        from promptver.store import templates as sql

        with self.db.read() as con:
            return sql.get_info(con, key)

    def get_prompt(self, name: str, env: str, user_id: str | None = None) -> Prompt:
        """The prompt an application should use now: the version deployed to ``env``.

        ``p.text(**values)`` renders it; ``p.version``, ``p.commit``, ``p.variant`` and
        ``p.user_id`` say what it is and for whom. What is live comes from an in-process cache
        (``cache.ttl_seconds``): a deploy or rollback made elsewhere shows within the TTL, one
        made through this workspace at once.

        Raises:
            NotFound: unknown environment (the message lists the valid ones), unknown or
                archived template, nothing deployed to ``env``.
            ValidationError: ``user_id`` is not a non-empty string.
            DatabaseBusy: the answer was not cached and another process kept the file locked
                past ``storage.busy_timeout``.
        """
        if user_id is not None and (type(user_id) is not str or not user_id):
            raise ValidationError(
                "invalid input:",
                [Problem("must be a non-empty string, or None for no user", field="user_id")],
            )
        with self.db.lazy_session():  # cache misses below share one open of the file
            live = self.serving.resolve(name, env)
            return self._prompt_for_user(live, user_id)

    def _prompt_for_user(self, live: LivePrompt, user_id: str | None) -> Prompt:
        """What ``user_id`` gets from what is live in ``live.environment``: the per-user step of
        :meth:`get_prompt`, which runs on every call after the cached lookup."""
        if user_id is None:
            return live.prompt_for(None)
        a = self.experiments.assign(live.template_id, live.environment, user_id)
        if a is None:  # no experiment runs there, or the user is outside its coverage
            return live.prompt_for(user_id)
        p = self._variant_prompt(live, a.commit).__copy__()
        fields = p.__dict__
        fields.update(
            user_id=user_id,
            variant=a.variant,
            experiment_id=a.experiment_id,
            variables=list(fields["variables"]),
            metadata=dict(fields["metadata"]),
        )
        p.__pydantic_fields_set__.update(("user_id", "variant", "experiment_id"))
        return p

    def _variant_prompt(self, live: LivePrompt, commit: str) -> Prompt:
        """The prepared prompt of an experiment arm (commits never change: cached for good)."""
        if commit == live.commit:
            return live.prompt
        key = (live.environment, commit)
        cached = self._arm_prompts.get(key)
        if cached is None:
            from promptver.models.core import Prompt

            c = self.versions.get_commit(commit)
            cached = Prompt(
                template_id=live.template_id,
                name=live.name,
                version=c.version,
                commit=c.id,
                content=c.content,
                variables=c.variables,
                metadata=c.metadata,
                kind=c.kind,
                chat_messages=c.messages,
                config=c.config,
                environment=live.environment,
                max_render_chars=self.settings.templates.max_render_chars,
            )
            try:
                cached.prepare()
            except PromptverError:
                pass  # text() reports it when called
            if len(self._arm_prompts) > 1024:
                self._arm_prompts.clear()
            self._arm_prompts[key] = cached
        return cached

    @contextmanager
    def session(self) -> Iterator[Workspace]:
        """Keep the file open for a block of operations (one dashboard run, a CLI command)."""
        with self.db.session():
            yield self

    def experiment_results(
        self, ref: str | Experiment, metric: str | None = None, **options: Any
    ) -> ExperimentResults:
        """The results of an experiment (id, name or model) for ``metric`` (default: primary).

        A running experiment is analysed now. An ended one answers with the results frozen
        when it stopped (events imported later cannot change a decision), unless another
        metric or analysis ``options`` are asked for (see
        :func:`promptver.analysis.experiment_results`).
        """
        from promptver.analysis import experiment_results
        from promptver.models.experiments import Experiment
        from promptver.models.results import ExperimentResults

        exp = ref if isinstance(ref, Experiment) else self.experiments.get(ref)
        if exp.status in ("completed", "stopped") and not any(
            v is not None for v in options.values()
        ):
            try:
                frozen = self.experiments.stored_results(exp.id)
            except NotFound:  # an experiment model that was never stored
                frozen = None
            if frozen and metric in (None, frozen.get("metric")):
                return ExperimentResults.model_validate(frozen)
        return experiment_results(self, exp, metric, **options)

    def _final_results(self, experiment: Experiment) -> dict[str, Any]:
        """What ``experiments.stop`` freezes: the full results of the primary metric."""
        from promptver.analysis import experiment_results

        return experiment_results(self, experiment).model_dump(mode="json")

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
        if "metrics" in self._services:  # nothing to flush if it was never built
            self.metrics.close()
        if "source" in self._services:
            self.source.close()
        self._closed = True
        if self._held is not None:
            held, self._held = self._held, None
            held.__exit__(None, None, None)
        self.db.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

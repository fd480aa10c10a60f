"""The endpoints under ``/api/v1``: each one parses its input and calls one Workspace service.

Handlers are plain (sync) functions: FastAPI runs them in its thread pool, and the Workspace is
made for that (the database opens a connection per thread; the ``get_prompt`` cache is shared
by all threads). The one exception is render, the hot path: it answers from the cache on the
event loop and goes to a thread only when the file must be read (``Database.cache_only``).
No handler holds logic of its own: what a rule says, the service says, with the message the
CLI prints.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.routing import BaseRoute

from promptver._version import __version__
from promptver.api import schemas as s
from promptver.api.events import import_events
from promptver.api.guard import AUTHENTICATED
from promptver.api.problems import Unauthorized
from promptver.errors import Problem, PromptverError, ValidationError
from promptver.experiments import STATUSES
from promptver.models.core import Template
from promptver.models.deployments import Deployment
from promptver.models.experiments import Experiment
from promptver.models.results import ExperimentResults, SegmentedResults
from promptver.store.db import Database, WouldBlock
from promptver.store.migrations import applied
from promptver.workspace import Workspace

DEFAULT_AUTHOR = "api"
#: seconds a /health database probe is reused as is, and answered while it is replaced
PROBE_TTL = 1.0
PROBE_STALE = 3.0

_bearer = HTTPBearer(
    auto_error=False,
    description="Needed by write endpoints when the server has `server.token_hashes` set.",
)


def _json(data: dict[str, Any]) -> Response:
    """A JSON answer encoded here: render's fields are plain strings, so FastAPI's validation
    and encoding of a response model (a third of the hot path's time) would add nothing."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(body, media_type="application/json")


def single_query_values(request: Request) -> None:
    """A query parameter that takes one value may be given once: ``?env=a&env=b`` is refused
    rather than silently read as ``b`` (``tag`` is the one list)."""
    params = request.query_params
    repeated = sorted(k for k in set(params.keys()) if k != "tag" and len(params.getlist(k)) > 1)
    if repeated:
        raise RequestValidationError(
            [
                {
                    "type": "repeated",
                    "loc": ("query", k),
                    "msg": f"given {len(params.getlist(k))} times; give it once",
                    "input": params.getlist(k),
                }
                for k in repeated
            ]
        )


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError("invalid input:", [Problem(message, field=field)])


class Endpoints:
    """The API's handlers over one workspace (see :func:`promptver.api.create_app`)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.token_hashes = [h.encode("ascii") for h in ws.settings.server.token_hashes]
        #: the last database probe of /health: (monotonic time, result)
        self._probed: tuple[float, tuple[bool, int | None, str | None]] | None = None
        self._probing = threading.Lock()

    # -- auth ---------------------------------------------------------------------------
    def authorize(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        """Write endpoints: a bearer token whose SHA-256 is configured (when any is).

        The token is checked by :class:`promptver.api.guard.Gate` before the body is read; this
        dependency documents the scheme and refuses what the gate did not accept.
        """
        if self.token_hashes and not request.scope.get(AUTHENTICATED, False):
            raise Unauthorized(
                "this endpoint needs a bearer token: send the header 'Authorization: Bearer "
                "TOKEN' with a token whose SHA-256 is in server.token_hashes"
            )

    # -- templates ----------------------------------------------------------------------
    def list_prompts(
        self,
        category: str | None = None,
        tag: Annotated[list[str], Query(description="all of these tags")] = [],  # noqa: B006
        search: str | None = Query(None, description="text in names, descriptions, tags, text"),
        include_archived: bool = False,
    ) -> list[Template]:
        """Templates at the head of main, filtered."""
        return self.ws.templates.list(
            category=category, tags=tag or None, search=search, include_archived=include_archived
        )

    def create_prompt(self, body: s.TemplateCreate, response: Response) -> Template:
        """Create a template (version 1.0.0)."""
        t = self.ws.templates.create(
            body.name,
            body.content,
            kind=body.kind,
            messages=body.messages,
            config=body.config,
            description=body.description,
            category=body.category,
            tags=body.tags,
            metadata=body.metadata,
            author=body.author or DEFAULT_AUTHOR,
            message=body.message,
        )
        response.headers["Location"] = f"/api/v1/prompts/{t.id}"
        return t

    def get_prompt(
        self,
        ref: str,
        version: str | None = Query(None, description="a version, branch or commit prefix"),
    ) -> Template:
        """A template at the head of main, or at ``version``."""
        return self.ws.templates.get(ref, version)

    def update_prompt(self, ref: str, body: s.TemplateUpdate) -> Template:
        """Commit a new text, messages, config and/or metadata (on main: a new version)."""
        given = (body.content, body.messages, body.config, body.metadata)
        if all(v is None for v in given):
            raise _invalid("content", "give content, messages, config or metadata")
        return self.ws.templates.update(
            ref,
            body.content,
            kind=body.kind,
            messages=body.messages,
            config=body.config,
            metadata=body.metadata,
            branch=body.branch,
            bump=body.bump,
            author=body.author or DEFAULT_AUTHOR,
            message=body.message,
            expected_head=body.expected_head,
        )

    async def render(self, ref: str, body: s.RenderRequest) -> Response:
        """Render a template: the head of main, a ``version``, or what is live in ``env``."""
        if body.env is None:
            return _json(await run_in_threadpool(self._render_ref, ref, body))
        if body.version is not None:
            raise _invalid("version", "give version or env, not both")
        # The hot path: what get_prompt answers from its in-process cache is served right here
        # on the event loop; only a miss (which opens the file, and may wait for it) goes to
        # a worker thread. The thread hop costs more than the whole cached call.
        try:
            with self.ws.db.cache_only():
                p = self.ws.get_prompt(ref, body.env, user_id=body.user_id)
        except WouldBlock:
            p = await run_in_threadpool(self.ws.get_prompt, ref, body.env, user_id=body.user_id)
        if p.kind == "text" and body.history is None and body.format is None:
            text = p.render_text(body.variables, strict=body.strict)  # the hot path: text
            return _json(
                {"text": text, "version": p.version, "commit": p.commit, "variant": p.variant}
            )
        return _json(_rendered(p, body, p.variant))

    async def live(
        self,
        ref: str,
        env: str = Query(description="the environment"),
        user_id: str | None = Query(None, description="the user (picks an experiment variant)"),
    ) -> Response:
        """What ``get_prompt(ref, env, user_id)`` returns, unrendered (for remote clients)."""
        # the same cache-first path as render: a cached answer never leaves the event loop
        try:
            with self.ws.db.cache_only():
                p = self.ws.get_prompt(ref, env, user_id=user_id)
        except WouldBlock:
            p = await run_in_threadpool(self.ws.get_prompt, ref, env, user_id=user_id)
        return _json(p.model_dump(mode="json"))

    def _render_ref(self, ref: str, body: s.RenderRequest) -> dict[str, Any]:
        if body.user_id is not None:
            raise _invalid("user_id", "needs env (users get what is deployed to an environment)")
        return _rendered(self.ws.templates.prompt(ref, body.version), body, None)

    # -- deployments --------------------------------------------------------------------
    def deploy(self, ref: str, body: s.DeployRequest) -> Deployment:
        """Put a version live in an environment, after the deployment gates."""
        return self.ws.deployments.deploy(
            ref,
            body.version,
            body.env,
            note=body.note,
            author=body.author or DEFAULT_AUTHOR,
            force=body.force,
            reason=body.reason,
        )

    def rollback(self, ref: str, body: s.RollbackRequest) -> Deployment:
        """Restore the version live before the current one (or ``to``)."""
        return self.ws.deployments.rollback(
            ref, body.env, to=body.to, note=body.note, author=body.author or DEFAULT_AUTHOR
        )

    def deployments(
        self,
        ref: str,
        env: str | None = None,
        limit: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    ) -> list[Deployment]:
        """The deployment log of a template, newest first."""
        return self.ws.deployments.history(ref, env, limit=limit)

    # -- experiments --------------------------------------------------------------------
    def create_experiment(self, ref: str, body: s.ExperimentCreate) -> Experiment:
        """Create a draft experiment on this template from the fields of an experiment file."""
        spec: dict[str, Any] = body.model_dump(exclude_none=True, exclude={"author"})
        row = self.ws.templates.row(ref)
        if body.template is not None:
            named = self.ws.templates.row(body.template)
            if named["id"] != row["id"]:
                raise _invalid(
                    "template",
                    f"names template '{named['name']}', but the path names '{row['name']}'",
                )
        spec["template"] = row["id"]
        return self.ws.experiments.create(spec, author=body.author or DEFAULT_AUTHOR)

    def list_experiments(
        self,
        request: Request,
        status: Annotated[str | None, Query(description=" | ".join(STATUSES))] = None,
        template: str | None = None,
    ) -> list[Experiment]:
        """Experiments, running first."""
        if status is not None and status not in STATUSES:
            raise _invalid("status", f"unknown status '{status}': use {', '.join(STATUSES)}")
        found = self.ws.experiments.list(status=status, template=template)
        return [_shown(request, exp) for exp in found]

    def get_experiment(self, request: Request, experiment: str) -> Experiment:
        """An experiment by id or name."""
        return _shown(request, self.ws.experiments.get(experiment))

    def start_experiment(
        self, experiment: str, body: s.ExperimentStart | None = None
    ) -> Experiment:
        """Start a draft: freeze its variants and route users."""
        author = (body.author if body else None) or DEFAULT_AUTHOR
        return self.ws.experiments.start(experiment, author=author)

    def stop_experiment(self, experiment: str, body: s.ExperimentStop | None = None) -> Experiment:
        """Stop a running experiment (completed; or stopped early with a reason)."""
        body = body or s.ExperimentStop()
        return self.ws.experiments.stop(
            experiment, reason=body.reason, author=body.author or DEFAULT_AUTHOR
        )

    def results(
        self,
        experiment: str,
        metric: str | None = Query(None, description="default: the primary metric"),
        by: str | None = Query(
            None, description="a dim_* segment dimension: results per segment (Holm across all)"
        ),
    ) -> ExperimentResults | SegmentedResults:
        """The contract's results object (running: now; ended: the frozen final results); with
        ``by``, ``{"by", "segments": [{"value", …results…}]}``."""
        exp = self.ws.experiments.get(experiment)
        if by is not None:
            from promptver.segments import segment_results

            return segment_results(self.ws, exp, by, metric)
        return self.ws.experiment_results(exp, metric)

    # -- metric events ------------------------------------------------------------------
    def events(self, body: s.EventBatch) -> s.EventsResult:
        """Store a batch of metric events whole or not at all (the CSV import's rules)."""
        result = import_events(self.ws, body.events, author=body.author or DEFAULT_AUTHOR)
        return s.EventsResult(**result.contract())

    # -- health -------------------------------------------------------------------------
    def health(self, request: Request, response: Response) -> s.Health:
        """Version and database status (503 when the database cannot be used)."""
        shown = request.scope.get(AUTHENTICATED, False)
        path = self.ws.path
        on_disk = isinstance(path, Path)
        db = s.DatabaseHealth(path=str(path), exists=not on_disk or path.exists(), ok=False)
        if not db.exists:
            # opening it would create an empty file: say so instead
            db.detail = f"the database file {path} does not exist (was it moved or deleted?)"
        else:
            if on_disk:
                try:
                    db.size_bytes = path.stat().st_size
                except OSError:  # removed just now: the probe says what is wrong
                    pass
            db.ok, db.migrations, db.detail = self._probe()
        if not db.ok:
            response.status_code = 503
        if not shown:
            # where the file lives, and messages that name it, are for the operator
            db.path = None
            db.size_bytes = None
            if db.detail is not None:
                db.detail = (
                    "the database cannot be used (send an accepted token to see why; the "
                    "server's operator can run 'promptver fsck')"
                )
        return s.Health(
            status="ok" if db.ok else "unavailable",
            version=__version__,
            database=db,
            auth=bool(self.token_hashes),
        )

    def _probe(self) -> tuple[bool, int | None, str | None]:
        """(usable, migrations applied, why not) of the database, at most ``PROBE_TTL`` old.

        Opening the file takes milliseconds, far more under load: a probe per request would let
        any client make the server open the file as often as it likes, and make ``/health`` as
        slow as that. A fresh result is reused; a stale one is answered while one background
        probe replaces it; only a result older than ``PROBE_STALE`` is waited for.
        """
        now = time.monotonic()
        cached = self._probed
        if cached is not None and now - cached[0] < PROBE_TTL:
            return cached[1]
        if cached is not None and now - cached[0] < PROBE_STALE:
            if self._probing.acquire(blocking=False):
                threading.Thread(target=self._run_probe, args=(True,), daemon=True).start()
            return cached[1]
        with self._probing:
            cached = self._probed  # another request may have probed while this one waited
            if cached is not None and time.monotonic() - cached[0] < PROBE_TTL:
                return cached[1]
            return self._run_probe(False)

    def _run_probe(self, release: bool) -> tuple[bool, int | None, str | None]:
        try:
            path = self.ws.path
            # a short wait of its own: a probe must answer quickly even when the file is busy
            probe = (
                Database(path, busy_timeout=min(1.0, self.ws.db.busy_timeout))
                if isinstance(path, Path)
                else self.ws.db
            )
            try:
                with probe.read() as con:
                    result: tuple[bool, int | None, str | None] = (True, len(applied(con)), None)
            except PromptverError as exc:
                result = (False, None, exc.message)
            self._probed = (time.monotonic(), result)
            return result
        finally:
            if release:
                self._probing.release()


def _shown(request: Request, exp: Experiment) -> Experiment:
    """``exp`` without its routing salt for a reader without an accepted token (when tokens
    are configured): with it, anyone could compute which variant each user gets."""
    if request.scope.get(AUTHENTICATED, False):
        return exp
    return exp.model_copy(update={"salt": None})


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    from promptver.api.schemas import ProblemDetails

    descriptions = {
        401: "a bearer token is needed or was not accepted",
        404: "unknown template, ref, environment, experiment, webhook or delivery",
        409: "a conflict (the data changed meanwhile, a wrong state) or the database is busy",
        413: "the body is larger than the endpoint accepts (server.max_body_kb, "
        "server.max_events_mb)",
        422: "the input was refused; `problems` names each field",
        503: "the database file cannot be opened",
    }
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        out[code] = {"model": ProblemDetails, "description": descriptions[code]}
        if code == 401:
            out[code]["headers"] = {
                "WWW-Authenticate": {
                    "description": "the Bearer challenge",
                    "schema": {"type": "string"},
                }
            }
    return out


class _RefConvertor(PathConvertor):
    """A template or experiment ref in a path: like ``{x:path}`` (names may hold '/'), but not
    ending in one of the action words, so ``PUT /prompts/qa/render`` is a 405 on the render
    route rather than an update of a template named ``qa/render`` (reach one by its id)."""

    actions: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.regex = f"(?!.*/(?:{'|'.join(cls.actions)})$).*"


class _TemplateRef(_RefConvertor):
    actions = ("render", "live", "deploy", "rollback", "deployments", "experiments")


class _ExperimentRef(_RefConvertor):
    actions = ("start", "stop", "results")


register_url_convertor("template_ref", _TemplateRef())
register_url_convertor("experiment_ref", _ExperimentRef())


def add_routes(app: FastAPI, ws: Workspace, prefix: str = "/api/v1") -> list[tuple[BaseRoute, str]]:
    """Add every endpoint, bound to ``ws``, under ``prefix`` (on the app itself rather than
    through an included router, so that ``app.routes`` lists them: the 405 handler reads it).

    Returns each route with its kind: ``read``, ``write`` (needs the token) or ``events``
    (needs the token, takes the larger body), for :class:`promptver.api.guard.Gate`."""
    e = Endpoints(ws)
    write = [Depends(e.authorize)]
    added: list[tuple[BaseRoute, str]] = []

    def route(path: str, endpoint: Any, **kwargs: Any) -> None:
        app.add_api_route(prefix + path, endpoint, **kwargs)
        if endpoint == e.events:
            kind = "events"
        else:
            kind = "write" if kwargs.get("dependencies") is write else "read"
        added.append((app.routes[-1], kind))

    common = (422, 409, 503)
    tags_t, tags_d, tags_e = ["templates"], ["deployments"], ["experiments"]

    route(
        "/prompts",
        e.list_prompts,
        methods=["GET"],
        tags=tags_t,
        summary="List templates",
        responses=_problems(*common),
    )
    route(
        "/prompts",
        e.create_prompt,
        methods=["POST"],
        status_code=201,
        tags=tags_t,
        summary="Create a template",
        dependencies=write,
        responses=_problems(401, 413, *common),
    )
    # the action routes come before the plain template route: a name may contain '/'
    route(
        "/prompts/{ref:path}/render",
        e.render,
        methods=["POST"],
        response_model=s.RenderResponse,  # documents the answer; _json() builds it
        tags=tags_t,
        summary="Render a template (or what is live in an environment)",
        responses=_problems(404, 413, *common),
    )
    route(
        "/prompts/{ref:path}/live",
        e.live,
        methods=["GET"],
        response_model=s.LivePromptOut,  # documents the answer; _json() builds it
        tags=tags_t,
        summary="What get_prompt(name, env, user_id) returns, unrendered (remote clients)",
        responses=_problems(404, *common),
    )
    route(
        "/prompts/{ref:path}/deploy",
        e.deploy,
        methods=["POST"],
        status_code=201,
        tags=tags_d,
        summary="Deploy a version to an environment",
        dependencies=write,
        responses=_problems(401, 404, 413, *common),
    )
    route(
        "/prompts/{ref:path}/rollback",
        e.rollback,
        methods=["POST"],
        status_code=201,
        tags=tags_d,
        summary="Roll an environment back",
        dependencies=write,
        responses=_problems(401, 404, 413, *common),
    )
    route(
        "/prompts/{ref:path}/deployments",
        e.deployments,
        methods=["GET"],
        tags=tags_d,
        summary="Deployment history, newest first",
        responses=_problems(404, *common),
    )
    route(
        "/prompts/{ref:path}/experiments",
        e.create_experiment,
        response_model=s.ExperimentOut,
        methods=["POST"],
        status_code=201,
        tags=tags_e,
        summary="Create a draft experiment on a template",
        dependencies=write,
        responses=_problems(401, 404, 413, *common),
    )
    route(
        "/prompts/{ref:template_ref}",
        e.get_prompt,
        methods=["GET"],
        tags=tags_t,
        summary="Get a template (head of main, or ?version=)",
        responses=_problems(404, *common),
    )
    route(
        "/prompts/{ref:template_ref}",
        e.update_prompt,
        methods=["PUT"],
        tags=tags_t,
        summary="Commit a new text (a new version on main)",
        dependencies=write,
        responses=_problems(401, 404, 413, *common),
    )
    route(
        "/experiments",
        e.list_experiments,
        response_model=list[s.ExperimentOut],
        methods=["GET"],
        tags=tags_e,
        summary="List experiments",
        responses=_problems(404, *common),
    )
    route(
        "/experiments/{experiment:path}/start",
        e.start_experiment,
        response_model=s.ExperimentOut,
        methods=["POST"],
        tags=tags_e,
        summary="Start a draft experiment",
        dependencies=write,
        responses=_problems(401, 404, 413, *common),
    )
    route(
        "/experiments/{experiment:path}/stop",
        e.stop_experiment,
        response_model=s.ExperimentOut,
        methods=["POST"],
        tags=tags_e,
        summary="Stop a running experiment",
        dependencies=write,
        responses=_problems(401, 404, 413, *common),
    )
    route(
        "/experiments/{experiment:path}/results",
        e.results,
        methods=["GET"],
        tags=tags_e,
        summary="Experiment results (the contract's results object)",
        responses=_problems(404, *common),
    )
    route(
        "/experiments/{experiment:experiment_ref}",
        e.get_experiment,
        response_model=s.ExperimentOut,
        methods=["GET"],
        tags=tags_e,
        summary="Get an experiment",
        responses=_problems(404, *common),
    )
    route(
        "/events",
        e.events,
        methods=["POST"],
        tags=["metrics"],
        summary="Store a batch of metric events (all or none, idempotent by event_id)",
        dependencies=write,
        responses=_problems(401, 413, *common),
    )
    route(
        "/health",
        e.health,
        methods=["GET"],
        tags=["health"],
        summary="Version and database status",
        responses={503: {"model": s.Health, "description": "the database cannot be used"}},
    )
    return added


def _rendered(p: Any, body: s.RenderRequest, variant: str | None) -> dict[str, Any]:
    """A prompt rendered as ``body`` asks: text, chat messages, or an SDK payload."""
    from promptver.chat import placeholders_of

    values: dict[str, Any] = dict(body.variables)
    if body.history is not None:
        if isinstance(body.history, dict):
            values.update(body.history)
        else:
            names = placeholders_of(p.chat_messages or [])
            if len(names) != 1:
                raise _invalid(
                    "history",
                    "a list needs exactly one placeholder in the prompt (it has: "
                    f"{', '.join(names) or 'none'}); give {{PLACEHOLDER: [messages]}} instead",
                )
            values[names[0]] = body.history
    if body.format is not None:
        return p.payload(body.format, values, strict=body.strict)
    info = {"version": p.version, "commit": p.commit, "variant": variant}
    if p.kind == "chat":
        return {
            "messages": p.render_messages(values, strict=body.strict),
            "config": p.config,
            **info,
        }
    return {"text": p.render_text(values, strict=body.strict), **info}

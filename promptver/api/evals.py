"""The evaluation endpoints under ``/api/v1/evals`` (contract: "Offline evaluations").

``POST /evals`` takes the eval CSV itself as the body (``Content-Type: text/csv``; the file's
name and the author as query parameters) and imports it with the CLI's rules: whole or not at
all, a re-import of the same bytes refused, problems by line and column. It needs the token
like every write and takes the larger body cap of ``POST /events`` (``server.max_events_mb``).
The reads mirror ``eval list``, ``eval items`` and ``eval compare``.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute

from promptver.api.routes import DEFAULT_AUTHOR, Endpoints, _problems
from promptver.workspace import Workspace


class EvalEndpoints:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    async def import_csv(
        self,
        request: Request,
        file_name: str = Query("upload.csv", max_length=255, description="recorded as the file"),
        author: str | None = Query(None, max_length=100),
        dry_run: bool = Query(False, description="check only; write nothing"),
    ) -> dict[str, Any]:
        """Import an eval results CSV (the body) whole, or refuse it whole."""
        body = await request.body()
        return await run_in_threadpool(self._import, body, file_name, author, dry_run)

    def _import(
        self, body: bytes, file_name: str, author: str | None, dry_run: bool
    ) -> dict[str, Any]:
        fd, path = tempfile.mkstemp(prefix="promptver-eval-", suffix=".csv")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            r = self.ws.evals.import_csv(
                path, author=author or DEFAULT_AUTHOR, file_name=file_name, dry_run=dry_run
            )
        finally:
            os.unlink(path)
        out = r.contract()
        if dry_run:
            out["dry_run"] = True
        return out

    def datasets(self) -> list[dict[str, Any]]:
        """Every dataset with its runs, versions, items and scores."""
        return [d.model_dump(mode="json") for d in self.ws.evals.datasets()]

    def runs(
        self,
        dataset: str | None = None,
        template: str | None = None,
        version: str | None = None,
    ) -> list[dict[str, Any]]:
        """Runs (one per import, dataset and commit), newest first."""
        return [
            r.model_dump(mode="json")
            for r in self.ws.evals.runs(dataset, template=template, ref=version)
        ]

    def items(
        self,
        dataset: str,
        version: str,
        template: str | None = None,
        limit: int = Query(100, ge=1, le=10_000),
        offset: int = Query(0, ge=0),
    ) -> list[dict[str, Any]]:
        """Items of a version on a dataset: mean scores over samples, the first output."""
        return [
            i.model_dump(mode="json")
            for i in self.ws.evals.items(
                dataset, version, template=template, limit=limit, offset=offset
            )
        ]

    def compare(
        self,
        dataset: str,
        baseline: str,
        candidate: str,
        template: str | None = None,
        metric: str | None = None,
    ) -> dict[str, Any]:
        """The contract's ``eval compare`` object."""
        return self.ws.evals.compare(
            dataset, baseline, candidate, template=template, metric=metric
        ).contract()


def add_eval_routes(
    app: FastAPI, ws: Workspace, prefix: str = "/api/v1"
) -> list[tuple[BaseRoute, str]]:
    """Add the eval endpoints; returns each route with its gate kind (see ``add_routes``)."""
    e = EvalEndpoints(ws)
    write = [Depends(Endpoints(ws).authorize)]
    added: list[tuple[BaseRoute, str]] = []
    tags = ["evaluations"]
    common = (422, 409, 503)
    app.add_api_route(
        prefix + "/evals",
        e.import_csv,
        methods=["POST"],
        status_code=201,
        tags=tags,
        summary="Import an eval results CSV (the body, text/csv): all rows or none",
        dependencies=write,
        responses=_problems(401, 404, 413, *common),
    )
    added.append((app.routes[-1], "events"))
    for path, endpoint, summary in (
        ("/evals", e.datasets, "List evaluation datasets"),
        ("/evals/runs", e.runs, "Runs of a dataset, template or version"),
        ("/evals/items", e.items, "Items of a version on a dataset"),
        ("/evals/compare", e.compare, "Paired comparison of two versions on a dataset"),
    ):
        app.add_api_route(
            prefix + path,
            endpoint,
            methods=["GET"],
            tags=tags,
            summary=summary,
            responses=_problems(404, *common),
        )
        added.append((app.routes[-1], "read"))
    return added

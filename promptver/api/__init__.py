"""The HTTP API (``promptver serve``): the Workspace's services over HTTP, for any language.

    from promptver import Workspace
    from promptver.api import create_app
    app = create_app(Workspace.open("data/promptver.duckdb"))   # an ASGI app (FastAPI)

Endpoints live under ``/api/v1`` (the OpenAPI document is ``/api/v1/openapi.json``); see
docs/http-api.md. Importing ``promptver`` does not import this package (nor FastAPI).
"""

from promptver.api.app import PREFIX, create_app

__all__ = ["PREFIX", "create_app"]

"""`create_app(project)`: the FastAPI app over one project (no side effect until a request comes)."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Optional

from fastapi import Depends, FastAPI
from fastapi.responses import Response
from fastapi.security import APIKeyHeader, HTTPBearer

from tally.api import errors, security
from tally.project.api_config import ApiConfig

OPENAPI_URL = "/api/openapi.json"
PREFIX = "/api/v1"
ERROR_RESPONSES = {status: {"model": errors.ErrorBody, "description": errors.STATUS_CODES[status]}
                   for status in (400, 401, 403, 404, 413, 422, 500, 503)}


class ApiState:
    """What the routes share: the project, one lock around its warehouse (DuckDB connections are
    not for concurrent threads), the settings, the answer cache and the Prometheus registry."""

    def __init__(self, project, settings: ApiConfig):
        from tally.api.cache import Versions, make_cache
        from tally.api.prometheus import registry_for

        self.project, self.settings = project, settings
        self.lock = threading.RLock()
        self.cache = make_cache(settings)
        # a version counted in this process means nothing to another server sharing a Redis cache
        self.versions = Versions(local=settings.cache in ("memory", "none"))
        self.digest = hashlib.sha256((project.config.model_dump_json() + project.warehouse_url).encode()).hexdigest()
        self.registry, self.latency = registry_for(self)


def create_app(project, *, settings: ApiConfig | dict | None = None) -> FastAPI:
    """The HTTP API over `project` (a Project, or a project folder); `settings` overrides `api:`."""
    from tally.app import Project

    if isinstance(project, (str, Path)):
        project = Project.load(project)
    if settings is None:
        settings = project.config.api
    elif isinstance(settings, dict):
        settings = ApiConfig.model_validate(settings)
    state = ApiState(project, settings)
    app = FastAPI(title=f"Tally: {project.config.name}", openapi_url=OPENAPI_URL, docs_url=None, redoc_url=None,
                  responses=ERROR_RESPONSES)
    app.state.tally = state
    errors.install(app)
    read, admin = scope_check(state, "read"), scope_check(state, "admin")
    _routes(app, state, read)
    from tally.api import aliases, data, query

    # the hot routes first: a request is matched against the routes in order
    app.include_router(query.router(state, read, PREFIX))
    app.include_router(aliases.ledger_router(state, read, PREFIX))
    app.include_router(data.router(state, read, PREFIX))
    from tally.api import jobs

    app.include_router(jobs.router(state, read, admin, PREFIX))
    app.include_router(aliases.router(state, read))
    from tally.api import docs

    docs.install(app, OPENAPI_URL)
    _middleware(app, state)
    app.state.admin = admin   # for routes added later: Depends(app.state.admin)
    return app


def scope_check(state, scope: str):
    """A dependency: the request's key must hold `scope` (no key configured: loopback only, all allowed)."""
    if not state.settings.keys:   # nothing to check: no header parsing on every request either
        async def open_to_loopback() -> None:
            return None
        return open_to_loopback

    bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer KEY")
    header = APIKeyHeader(name="X-API-Key", auto_error=False)

    async def check(authorization=Depends(bearer), api_key: Optional[str] = Depends(header)) -> Optional[str]:
        key = authorization.credentials if authorization is not None else None
        return security.authorize(state.settings.keys, security.presented_key(None, api_key) or key, scope)
    check.__name__ = f"require_{scope}"
    return check


def _routes(app: FastAPI, state: ApiState, read) -> None:
    @app.get("/healthz", summary="The process is alive")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="The config is loaded and the warehouse answers")
    def readyz():
        from tally.redaction import redact_text
        from tally.warehouse import CompiledQuery

        try:
            with state.lock:
                state.project.reader.run(CompiledQuery(sql="SELECT 1 AS ok", params=()))
        except Exception as exc:   # not ready: say why in one line, secrets redacted
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return errors.response(503, "not_ready", "the warehouse does not answer: "
                                   + redact_text(first, state.project.warehouse_url))
        return {"status": "ready", "project": state.project.config.name}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response, dependencies=[Depends(read)],
             responses={200: {"content": {"text/plain": {}}}})
    def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)


def _middleware(app: FastAPI, state: ApiState) -> None:
    """Outermost last: catch-all, timing, body limit, CORS."""
    if state.settings.cors.origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(state.settings.cors.origins),
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "X-API-Key", "Content-Type"])

    async def refuse(scope, send, limit: int) -> None:
        await errors.response(413, "request_too_large",
                              f"the request body is over {limit} bytes (api.max_request_bytes)")(scope, None, send)

    app.add_middleware(security.BodyLimit, limit=state.settings.max_request_bytes, refuse=refuse)
    from tally.api.prometheus import Timing

    app.add_middleware(Timing, latency=state.latency)
    app.add_middleware(errors.CatchAll)

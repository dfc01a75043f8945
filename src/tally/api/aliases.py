"""Route aliases (`api: routes:` in tally.yml): a path and a JSON shape of your own over a ledger
lookup (`ledger_entity`) or listing (`ledger_list`), so seed-compatible routes are configuration.
The ledgers themselves are `tally.ledgers.entity` and `tally.ledgers.listing`."""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from tally.api import jsontext
from tally.api.data import CURSOR, LIMIT, OFFSET, Page, page, paging

from tally.errors import ConfigError, NotFoundError
from tally.project.api_config import PATH_PARAM, RouteAlias

CHUNK = 10_000   # rows per tally.ledgers.listing call (its largest page)


def shape(row: dict, fields: dict[str, str], route: str) -> dict:
    """A ledger row under the route's JSON keys (`fields`: JSON key -> ledger field; {}: every field)."""
    if not fields:
        return dict(row)
    missing = [field for field in fields.values() if field not in row]
    if missing:
        raise ConfigError(f"api.routes.{route}: the ledger has no field {', '.join(missing)} "
                          f"(fields: {', '.join(row)})")
    return {key: row[field] for key, field in fields.items()}


def run(alias: RouteAlias, name: str, project, path_params: dict, ledgers) -> Any:
    """The alias's answer: one shaped entity, or a list of shaped rows."""
    if alias.target == "ledger_entity":
        entity = path_params[PATH_PARAM.findall(alias.path)[0]]
        try:
            row = ledgers.entity(project, alias.ledger, entity)
        except NotFoundError:
            if alias.missing != "zeros":
                raise
            row = None
        if row is None and alias.missing == "zeros":   # the seed service's answer for a user it never saw
            key = project.config.ledgers[alias.ledger].entity
            return {json_key: (entity if field == key else 0) for json_key, field in alias.fields.items()}
        if row is None:
            raise NotFoundError(f"no entity {entity!r} in ledger {alias.ledger}")
        return shape(row, alias.fields, name)
    rows: list[dict] = []
    while len(rows) < alias.limit:   # in pages the ledger gives (at most CHUNK rows each)
        want = min(CHUNK, alias.limit - len(rows))
        got = ledgers.listing(project, alias.ledger, where=alias.where, order=alias.order or None,
                              limit=want, offset=len(rows))
        rows += got
        if len(got) < want:
            break
    return [shape(row, alias.fields, name) for row in rows]


def router(state, read) -> APIRouter:
    unknown = sorted({a.ledger for a in state.settings.routes.values()} - set(state.project.config.ledgers or {}))
    if unknown:
        raise ConfigError(f"api.routes: unknown ledger(s) {', '.join(unknown)} (ledgers: "
                          f"{', '.join(state.project.config.ledgers or {}) or 'none'})", file=state.project.loaded.file)
    api = APIRouter(dependencies=[Depends(read)])
    # literal paths first: `/aggregatedData/payouts` must not be taken by `/aggregatedData/{userId}`
    ordered = sorted(state.settings.routes.items(), key=lambda item: len(PATH_PARAM.findall(item[1].path)))
    for name, alias in ordered:
        api.add_api_route(alias.path, _endpoint(state, name, alias), methods=[alias.method],
                          summary=f"{name}: {alias.target} over ledger {alias.ledger}", name=f"alias_{name}",
                          openapi_extra=_path_params(state, alias))
    return api


def _path_params(state, alias: RouteAlias) -> dict:
    """The `{param}` of an entity route in the OpenAPI document: the endpoint reads it from
    request.path_params, so FastAPI would not declare it (and Swagger's "Try it out" could not fill it)."""
    key = state.project.config.ledgers[alias.ledger].entity
    params = [{"name": param, "in": "path", "required": True, "schema": {"type": "string"},
               "description": f"The entity's {key} in ledger {alias.ledger}."}
              for param in PATH_PARAM.findall(alias.path)]
    return {"parameters": params} if params else {}


def ledgers_module(what: str):
    """`tally.ledgers` (entity, listing), imported when a ledger route is first asked."""
    import importlib

    try:
        ledgers = importlib.import_module("tally.ledgers")
    except ImportError:
        ledgers = None
    if ledgers is None or not hasattr(ledgers, "entity"):
        raise ConfigError(f"{what}: this Tally has no ledgers yet")
    return ledgers


def _endpoint(state, name: str, alias: RouteAlias):
    def endpoint(request: Request) -> Any:
        ledgers = ledgers_module(f"api.routes.{name}")
        with state.lock:
            return jsontext.response(run(alias, name, state.project, request.path_params, ledgers))
    return endpoint


def locked(state, function, *args, **kwargs):
    """`function(*args, **kwargs)` under the project's lock (its warehouse serves one caller at a time)."""
    with state.lock:
        return function(*args, **kwargs)


def ledger_router(state, read, prefix: str) -> APIRouter:
    """`GET /api/v1/ledgers/{ledger}` (entities, filtered, ordered, paged) and
    `GET /api/v1/ledgers/{ledger}/{entity}` (one entity, as of now or a past time)."""
    api = APIRouter(prefix=prefix, dependencies=[Depends(read)])

    @api.get("/ledgers/{ledger}", response_model=Page, summary="A ledger's entities")
    def listing(ledger: str = Path(description="A ledger of tally.yml."),
                where: Optional[str] = Query(None, description="Filter over the ledger's fields: balance > 0."),
                order: list[str] = Query([], description="Sort: -balance or balance desc (repeat)."),
                limit: int = Query(100, description=LIMIT), offset: int = Query(0, description=OFFSET),
                cursor: Optional[str] = Query(None, description=CURSOR)) -> dict:
        import json

        scope = json.dumps(["ledger", ledger, where, order])
        limit, offset = paging(state, limit, offset, cursor, scope)
        ledgers = ledgers_module(f"GET /api/v1/ledgers/{ledger}")
        with state.lock:
            rows = ledgers.listing(state.project, ledger, where=where, order=order or None, limit=limit + 1,
                                   offset=offset)
        return jsontext.response(page(rows[:limit], len(rows) > limit, limit, offset, scope))

    @api.get("/ledgers/{ledger}/{entity}", summary="One entity of a ledger")
    async def entity(ledger: str = Path(description="A ledger of tally.yml."),
                     entity: str = Path(description="The entity's key (a user id, ...)."),
                     as_of: Optional[str] = Query(None, description="A past date or timestamp (project timezone): "
                                                                      "the entity as of then.")) -> dict[str, Any]:
        ledgers = ledgers_module(f"GET /api/v1/ledgers/{ledger}/{entity}")
        # answered from memory on the event loop when it can be (no I/O: a sole writer's current
        # index); else read in a worker thread, under the project's lock
        in_memory = getattr(ledgers, "entity_in_memory", None)
        row = in_memory(state.project, ledger, entity) if as_of is None and in_memory else None
        if row is None:
            row = await run_in_threadpool(locked, state, ledgers.entity, state.project, ledger, entity, as_of=as_of)
        if row is None:
            raise NotFoundError(f"no entity {entity!r} in ledger {ledger}")
        return jsontext.response(row)

    return api

"""`GET|POST /api/v1/query` and `GET /api/v1/metrics`: every option of `tally query`, the rows as
`--format json` prints them beside the meta of `--format json --meta`, cached by data version."""

from __future__ import annotations

import time
from typing import Any, Optional, Union

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from tally.errors import QueryError


class QueryRequest(BaseModel):
    """A query: the options of `tally query` (`from`/`to` or `last`/`period` for the range)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    metrics: Union[list[str], str] = Field(description="Metric names (a list, or comma-separated).")
    by: Union[list[str], str] = Field(default=[], description="Dimensions to break down by.")
    grain: Optional[str] = Field(default=None, description="hour, day, week, month, quarter or year.")
    from_: Optional[str] = Field(default=None, alias="from", description="Start, inclusive (date or timestamp).")
    to: Optional[str] = Field(default=None, description="End, exclusive (date or timestamp).")
    where: Optional[str] = Field(default=None, description="Filter on dimensions: status = 'paid'.")
    compare: Optional[str] = Field(default=None, description="previous_period or previous_year.")
    order: Union[list[str], str] = Field(default=[], description="Sort: -revenue or revenue desc.")
    limit: Optional[int] = Field(default=None, description="Keep the first N rows.")
    timezone: Optional[str] = Field(default=None, description="Override the project timezone.")
    fill: bool = Field(default=True, description="Periods with no data as zeros (or null ratios).")
    last: Optional[str] = Field(default=None, description="Range: 30d, 12w, 6m, 1y (up to today).")
    period: Optional[str] = Field(default=None, description="Range: 2026, 2026-Q3, 2026-10, 2026-W05, 2026-10-05.")
    live: bool = Field(default=False, description="Answer from the source tables, never from a rollup.")

    def arguments(self) -> dict:
        """The keyword arguments of `tally.delivery.answer.answer`."""
        return {"by": _names(self.by), "grain": self.grain, "start": self.from_, "end": self.to,
                "where": self.where, "compare": self.compare, "order_by": _names(self.order),
                "limit": self.limit, "timezone": self.timezone, "fill": self.fill, "last": self.last,
                "period": self.period, "live": self.live}


class QueryAnswer(BaseModel):
    rows: list[dict[str, Any]]
    meta: dict[str, Any]


def _names(value) -> list[str]:
    """`a,b` or ["a", "b"] as a list of names (as the CLI's repeated options)."""
    items = [value] if isinstance(value, str) else list(value)
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def _doc(field: str) -> str:
    return QueryRequest.model_fields[field].description or ""


async def query_params(
    metrics: list[str] = Query(..., description="Metric names (repeat, or comma-separated)."),
    by: list[str] = Query([], description="Dimensions (repeat, or comma-separated)."),
    grain: Optional[str] = Query(None, description=_doc("grain")),
    start: Optional[str] = Query(None, alias="from", description=_doc("from_")),
    to: Optional[str] = Query(None, description=_doc("to")), where: Optional[str] = Query(None, description=_doc("where")),
    compare: Optional[str] = Query(None, description=_doc("compare")),
    order: list[str] = Query([], description="Sort: -revenue or revenue desc (repeat, or comma-separated)."),
    limit: Optional[int] = Query(None, description=_doc("limit")),
    timezone: Optional[str] = Query(None, description=_doc("timezone")),
    fill: bool = Query(True, description=_doc("fill")), last: Optional[str] = Query(None, description=_doc("last")),
    period: Optional[str] = Query(None, description=_doc("period")), live: bool = Query(False, description=_doc("live")),
) -> QueryRequest:
    return QueryRequest(metrics=metrics, by=by, grain=grain, to=to, where=where, compare=compare, order=order,
                        limit=limit, timezone=timezone, fill=fill, last=last, period=period, live=live,
                        **{"from": start})


def router(state, read, prefix: str) -> APIRouter:
    api = APIRouter(prefix=prefix, dependencies=[Depends(read)])   # full paths: route templates in /metrics
    responses = {200: {"model": QueryAnswer}}

    @api.get("/query", response_class=Response, responses=responses, summary="Answer a query")
    async def get_query(request: QueryRequest = Depends(query_params)) -> Response:
        # a cached answer on the event loop (no I/O where the data version is counted in memory);
        # anything else in a worker thread
        body = cached_body(state, request)
        if body is None:
            body = await run_in_threadpool(answer_body, state, request)
        return Response(body, media_type="application/json")

    @api.post("/query", response_class=Response, responses=responses, summary="Answer a query")
    def post_query(request: QueryRequest) -> Response:
        return Response(answer_body(state, request), media_type="application/json")

    @api.get("/metrics", summary="The metric catalog")
    def catalog() -> list[dict[str, Any]]:
        with state.lock:
            catalog = state.project.catalog
            return [_info(catalog.info(name)) for name in catalog.names]

    return api


def _info(info) -> dict:
    return {"metric": info.name, "kind": info.kind, "model": info.model, "format": info.format,
            "dimensions": list(info.dimensions), "definition": info.definition}


def cached_body(state, request: QueryRequest) -> bytes | None:
    """The cached answer when it is found with no I/O (an in-memory cache, a version counted in this
    process, a request the cache keys without reading); None otherwise (then `answer_body`)."""
    from tally.api.cache import MemoryCache

    project = state.project
    if not isinstance(state.cache, MemoryCache) or "warehouse" not in project.__dict__:
        return None
    version = state.versions.local(project.warehouse) if state.versions.use_local else None
    if version is None:
        return None
    try:
        key = request_key(state, request, version)
    except Exception:   # a bad request: answer_body says what is wrong
        return None
    return state.cache.get(key) if key is not None else None


def request_key(state, request: QueryRequest, version: str) -> str | None:
    """The cache key of a request at `version`; None when its answer is never cached."""
    from tally.api.cache import answer_key, cacheable

    metrics, _, key_args = key_arguments(state, request)
    return answer_key(state.digest, version, key_args) if cacheable(state.project, metrics) else None


def key_arguments(state, request: QueryRequest) -> tuple[list[str], dict, dict]:
    """The request's metrics, its `answer.answer` arguments, and the arguments its cache key holds
    (a relative range as the dates it means today)."""
    from tally.delivery import answer
    from tally.engine.ranges import resolve

    metrics = answer.metrics_of(request.metrics)
    args = request.arguments()
    config = state.project.config
    key_args = dict(args, metrics=metrics)
    key_args["start"], key_args["end"] = resolve(args["last"], args["period"], args["start"], args["end"],
                                                 args["timezone"] or config.timezone, config.week_start_index)
    return metrics, args, key_args


def answer_body(state, request: QueryRequest) -> bytes:
    """The JSON answer: from the cache when the data has not moved since it was stored."""
    from tally.delivery import answer, tabular

    from tally.api.cache import answer_key, cacheable

    limit = request.limit
    if limit is not None and not 1 <= limit <= state.settings.max_page_size:
        from tally.api.data import BadPage

        raise BadPage(f"limit must be 1 to {state.settings.max_page_size} (api.max_page_size), not {limit}")
    project = state.project
    metrics, args, key_args = key_arguments(state, request)
    arrived = time.monotonic_ns()
    with state.lock:
        key = None
        if cacheable(project, metrics):
            key = answer_key(state.digest, state.versions.since(project.reader, arrived), key_args)
            hit = state.cache.get(key)
            if hit is not None:
                return hit
        project.engine   # made now: a live query must leave the router to the others (see answer.answer)
        result = answer.answer(project, metrics, **args)
        meta = answer.meta_of(project, metrics, result, live=args["live"])
    if result.table.num_rows > state.settings.max_page_size:
        raise QueryError(f"the answer has {result.table.num_rows:,} rows, over the page size limit "
                         f"{state.settings.max_page_size:,} (api.max_page_size): narrow the range, the grain or "
                         "the dimensions, or add a limit")
    import json

    text = '{"rows": ' + tabular.to_json(result.table) + ', "meta": ' + json.dumps(meta, default=str) + "}"
    data = text.encode()
    if key is not None and storable(state, result.meta):
        state.cache.set(key, data)
    return data


def storable(state, meta: dict) -> bool:
    """Not a rollup's answer given within the router's freshness window after the data moved: the
    router may have trusted a freshness check made before the commit (tally.rollups.routing), and
    that answer must not outlive the window under the new version."""
    if not str(meta.get("source", "")).startswith("rollup:"):
        return True
    from tally.rollups.routing import FRESHNESS_TTL

    return state.versions.settled(FRESHNESS_TTL)

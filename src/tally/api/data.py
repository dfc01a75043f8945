"""`/api/v1/rollups`, `/api/v1/rollups/{name}` (stored rows), `/api/v1/sources` and
`/api/v1/sources/{name}/rejects`: paged with `limit`/`offset` or the `next` cursor of a page."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Optional

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from tally.api import jsontext
from tally.errors import QueryError

RESERVED = {"grain", "from", "to", "limit", "offset", "cursor"}
MAX_OFFSET = 10 ** 9   # past any page a client reads; a larger number overflows the warehouse's BIGINT
LIMIT = "Rows per page: 1 to api.max_page_size."
OFFSET = f"Rows to skip: 0 to {MAX_OFFSET}."
CURSOR = "The `next` of the previous page (instead of `offset`); tied to the same filters."


class BadPage(QueryError):
    """A page the API can't give: limit out of 1..api.max_page_size, a negative offset, a foreign cursor."""

    code = "bad_page"
    http_status = 400


class Page(BaseModel):
    rows: list[dict[str, Any]]
    limit: int
    offset: int
    next: Optional[str] = None


def cursor_for(offset: int, scope: str) -> str:
    """An opaque cursor: the next offset, tied to the filters it was made for."""
    text = json.dumps({"o": offset, "s": hashlib.sha256(scope.encode()).hexdigest()[:12]})
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def read_cursor(cursor: str, scope: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset, made_for = data["o"], data["s"]
        if not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
            raise ValueError(offset)
    except Exception:   # anything a client can send: one clear 400
        raise BadPage("cursor is not one this API gave (use the `next` of the previous page)") from None
    if made_for != hashlib.sha256(scope.encode()).hexdigest()[:12]:
        raise BadPage("cursor belongs to another listing (other filters): start again without it")
    return offset


def paging(state, limit: int, offset: int, cursor: Optional[str], scope: str) -> tuple[int, int]:
    if limit < 1 or limit > state.settings.max_page_size:
        raise BadPage(f"limit must be 1 to {state.settings.max_page_size} (api.max_page_size), not {limit}")
    if not 0 <= offset <= MAX_OFFSET:
        raise BadPage(f"offset must be 0 to {MAX_OFFSET}, not {offset}")
    return limit, read_cursor(cursor, scope) if cursor else offset


def page(rows: list, more: bool, limit: int, offset: int, scope: str) -> dict:
    """A page as a dict: its rows as they are (jsontext.response writes decimals in full)."""
    return {"rows": rows, "limit": limit, "offset": offset, "next": cursor_for(offset + limit, scope) if more else None}


def router(state, read, prefix: str) -> APIRouter:
    api = APIRouter(prefix=prefix, dependencies=[Depends(read)])   # full paths: route templates in /metrics

    @api.get("/rollups", summary="The rollups and their last builds")
    def rollups() -> list[dict[str, Any]]:
        from tally.rollups.stored import describe

        with state.lock:
            return describe(state.project)

    @api.get("/rollups/{name}", response_model=Page, summary="A rollup's stored rows",
             description="Filter by `grain`, `from`/`to` (local dates of period_start) and any of the "
                         "rollup's dimensions (`?shop=A&shop=B`).")
    def rollup_rows(request: Request, name: str = Path(description="A rollup of tally.yml."),
                    grain: Optional[str] = Query(None, description="One of the rollup's grains (day, month, ...)."),
                    start: Optional[str] = Query(None, alias="from", description="Local date: period_start >= it."),
                    to: Optional[str] = Query(None, description="Local date: period_start < it."),
                    limit: int = Query(100, description=LIMIT), offset: int = Query(0, description=OFFSET),
                    cursor: Optional[str] = Query(None, description=CURSOR)) -> dict:
        from tally.rollups.stored import page as stored_page

        values: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            if key not in RESERVED:
                values.setdefault(key, []).append(value)
        scope = json.dumps([name, grain, start, to, sorted(values.items())])
        limit, offset = paging(state, limit, offset, cursor, scope)
        with state.lock:
            rows, more = stored_page(state.project, name, grain=grain, start=start, end=to, values=values,
                                     limit=limit, offset=offset)
        return jsontext.response(page(rows, more, limit, offset, scope))

    @api.get("/sources", summary="Each source's last load, stored rows and rejects")
    def sources() -> list[dict[str, Any]]:
        from tally.commands.inspect import source_status

        with state.lock:
            return source_status(state.project, state.project.sources)

    @api.get("/sources/{name}/rejects", response_model=Page, summary="A source's rejected rows, newest load first")
    def rejects(name: str = Path(description="A source of tally.yml."), limit: int = Query(100, description=LIMIT),
                offset: int = Query(0, description=OFFSET),
                cursor: Optional[str] = Query(None, description=CURSOR)) -> dict:
        from tally.commands.inspect import rejects as read_rejects

        scope = json.dumps(["rejects", name])
        limit, offset = paging(state, limit, offset, cursor, scope)
        with state.lock:
            rows = read_rejects(state.project, name, limit + 1, state.project.sources, offset=offset)
        return jsontext.response(page(rows[:limit], len(rows) > limit, limit, offset, scope))

    return api

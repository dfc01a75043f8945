"""A rollup's stored rows as they are (no live query): filtered by grain, local range and dimension
values, in a stable order, one page at a time. For the HTTP API's `GET /api/v1/rollups/{name}`."""

from __future__ import annotations

import datetime as dt

from tally.errors import NotFoundError, QueryError
from tally.rollups.definition import definitions
from tally.rollups.state import stored_text


def describe(project) -> list[dict]:
    """Each rollup: its table, grains, dimensions, metrics, and its last build (None before one)."""
    import json

    found = []
    warehouse = project.warehouse   # not `reader`: read_state compiles through Ibis
    has_state = warehouse.has_table("_tally_state")
    for rollup_def in definitions(project):
        text = stored_text(warehouse, rollup_def.name) if has_state else None
        state = json.loads(text) if text else {}
        found.append({"name": rollup_def.name, "table": rollup_def.table, "timezone": rollup_def.zone,
                      "grains": list(rollup_def.rollup.grains), "by": rollup_def.by,
                      "metrics": list(rollup_def.rollup.metrics), "category": rollup_def.rollup.category,
                      "built_at": state.get("built_at"), "first_day": state.get("first"),
                      "last_day": state.get("last")})
    return found


def page(project, name: str, *, grain: str | None = None, start: str | None = None, end: str | None = None,
         values: dict[str, list[str]] | None = None, limit: int = 100, offset: int = 0) -> tuple[list[dict], bool]:
    """(rows, whether more follow) of rollup `name`, ordered by grain, period and dimensions.
    `start`/`end` are local dates bounding `period_start` ([start, end)); `values` maps a dimension
    to the values kept (text, compared as text)."""
    rollup_def = _one(project, name)
    if grain is not None and grain not in rollup_def.rollup.grains:
        raise QueryError(f"rollup {name} stores no {grain!r} grain (grains: {', '.join(rollup_def.rollup.grains)})")
    unknown = sorted(set(values or {}) - set(rollup_def.by))
    if unknown:
        raise QueryError(f"rollup {name} has no dimension {', '.join(unknown)} (dimensions: "
                         f"{', '.join(rollup_def.by) or 'none'})")
    lo, hi = _date(start, "from"), _date(end, "to")
    if lo and hi and lo >= hi:
        raise QueryError(f"from {start} must be before to {end} (the range is [from, to))")
    if limit < 1 or offset < 0:
        raise QueryError(f"limit must be positive and offset not negative (limit {limit}, offset {offset})")
    warehouse = project.warehouse
    if not warehouse.has_table(rollup_def.table):
        return [], False
    table = warehouse.table(rollup_def.table)
    rows = table.filter(table.grain == grain) if grain else table
    if lo:
        rows = rows.filter(rows.period_start >= lo)
    if hi:
        rows = rows.filter(rows.period_start < hi)
    for dim, wanted in (values or {}).items():   # ibis binds each value as an escaped literal
        rows = rows.filter(rows[dim].cast("string").isin([str(v) for v in wanted]))
    order = ["grain", "period_start", *rollup_def.by]
    expr = rows.order_by(order).limit(limit + 1, offset=offset)
    found = warehouse.run(warehouse.compile(expr)).to_pylist()
    return found[:limit], len(found) > limit


def _one(project, name: str):
    if name not in project.config.rollups:
        known = ", ".join(project.config.rollups) or "none"
        raise NotFoundError(f"unknown rollup {name!r} (rollups: {known})")
    return definitions(project, [name])[0]


def _date(text: str | None, what: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise QueryError(f"{what} {text!r} is not a date (YYYY-MM-DD)") from None


"""What a query asks for, validated once: the input of the planner and the cache key's source."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tally.engine.timegrid import Grain, parse_grain, parse_local
from tally.errors import ExpressionError, QueryError
from tally.project.expr import parse_row_expr

COMPARISONS = ("previous_period", "previous_year")


@dataclass(frozen=True)
class QuerySpec:
    """A validated query: metrics, breakdown, grain, half-open range, filters, comparison, order."""

    metrics: tuple[str, ...]
    by: tuple[str, ...] = ()
    grain: Grain | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    where: str | None = None
    compare: str | None = None
    order_by: tuple[tuple[str, bool], ...] = ()   # (name, descending)
    limit: int | None = None
    timezone: str = "UTC"
    fill: bool = field(default=True)

    @classmethod
    def build(cls, metrics, *, by=(), grain=None, start=None, end=None, where=None, compare=None,
              order_by=(), limit=None, timezone="UTC", fill=True) -> QuerySpec:
        """Parse loose user input (strings, lists) into a spec, or raise QueryError."""
        metrics = _names(metrics, "metric")
        if not metrics:
            raise QueryError("name at least one metric")
        try:
            tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise QueryError(f"unknown timezone {timezone!r} (use an IANA name like Europe/Istanbul)") from None
        start_at = parse_local(start, tz, "--from") if start is not None else None
        end_at = parse_local(end, tz, "--to") if end is not None else None
        if start_at and end_at and start_at >= end_at:
            raise QueryError(f"--from {start} must be before --to {end} (the range is [from, to))")
        if compare is not None and compare not in COMPARISONS:
            raise QueryError(f"unknown comparison {compare!r} (use {' or '.join(COMPARISONS)})")
        if where is not None and not str(where).strip():
            where = None
        if where is not None:
            try:
                parse_row_expr(str(where))
            except ExpressionError as exc:
                raise ExpressionError(f"--where: {exc.message}") from None
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise QueryError(f"limit must be a positive integer, not {limit!r}")
        by = _names(by, "dimension")
        if len(set(by)) != len(by):
            raise QueryError(f"a dimension is repeated in --by {list(by)}")
        return cls(metrics=metrics, by=by, grain=parse_grain(grain), start=start_at, end=end_at,
                   where=str(where) if where else None, compare=compare, order_by=_order(order_by),
                   limit=limit, timezone=timezone, fill=fill)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _names(values, what: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    names = []
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if part:
                if not part.replace("_", "").isalnum():
                    raise QueryError(f"{part!r} is not a valid {what} name")
                names.append(part)
    return tuple(names)


def _order(values) -> tuple[tuple[str, bool], ...]:
    """`-revenue` or `revenue desc` sorts descending; `revenue` / `revenue asc` ascending."""
    if isinstance(values, str):
        values = [values]
    order = []
    for value in values or ():
        if isinstance(value, tuple):
            order.append((str(value[0]), bool(value[1])))
            continue
        for part in str(value).split(","):
            words = part.strip().split()
            if not words:
                continue
            name, desc = words[0], False
            if name.startswith("-"):
                name, desc = name[1:], True
            if len(words) == 2 and words[1].lower() in ("asc", "desc"):
                desc = words[1].lower() == "desc"
            elif len(words) > 1:
                raise QueryError(f"cannot read order {part.strip()!r} (write `-revenue` or `revenue desc`)")
            order.append((name, desc))
    return tuple(order)

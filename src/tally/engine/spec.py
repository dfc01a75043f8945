"""What a query asks for, validated once: the input of the planner and the cache key's source."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tally.engine.timegrid import Grain, parse_grain, parse_local
from tally.errors import ExpressionError, QueryError
from tally.project.expr import parse_row_expr

COMPARISONS = ("previous_period", "previous_year")
MAX_LIMIT = 2**63 - 1   # a LIMIT every warehouse takes (a 64-bit integer)


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
            if not isinstance(timezone, str):
                raise ValueError(timezone)
            tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):   # OSError: a folder (America) or a name too long
            raise QueryError(f"unknown timezone {timezone!r} (use an IANA name like Europe/Istanbul)") from None
        start_at = parse_local(start, tz, "--from") if start is not None else None
        end_at = parse_local(end, tz, "--to") if end is not None else None
        if start_at and end_at and start_at >= end_at:
            raise QueryError(f"--from {start} must be before --to {end} (the range is [from, to))")
        if compare is not None and compare not in COMPARISONS:
            raise QueryError(f"unknown comparison {compare!r} (use {' or '.join(COMPARISONS)})")
        if where is not None and not isinstance(where, str):
            raise QueryError(f"where must be text (a row expression like \"status = 'paid'\"), not {where!r}")
        if where is not None and not where.strip():
            where = None
        if where is not None and "\x00" in where:
            raise QueryError("where holds a NUL character (\\x00), which no warehouse stores in text")
        if where is not None:
            try:
                parse_row_expr(where)
            except ExpressionError as exc:
                raise ExpressionError(f"--where: {exc.message}") from None
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= MAX_LIMIT):
            raise QueryError(f"limit must be a positive integer up to {MAX_LIMIT}, not {limit!r}")
        if not isinstance(fill, bool):
            raise QueryError(f"fill must be True or False, not {fill!r}")
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
    if not isinstance(values, (list, tuple)):
        raise QueryError(f"{what}s must be a name or a list of names, not {values!r}")
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
    if values is not None and not isinstance(values, (list, tuple)):
        raise QueryError(f"order must be a text like '-revenue' or a list of them, not {values!r}")
    order = []
    for value in values or ():
        if isinstance(value, tuple):
            if len(value) != 2 or not isinstance(value[0], str) or not isinstance(value[1], bool):
                raise QueryError(f"cannot read order {value!r} (a (name, descending) pair like ('revenue', True))")
            order.append(value)
            continue
        if not isinstance(value, str):
            raise QueryError(f"cannot read order {value!r} (write '-revenue' or 'revenue desc')")
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
    repeated = sorted({name for name, _ in order if [n for n, _ in order].count(name) > 1})
    if repeated:
        raise QueryError(f"{', '.join(map(repr, repeated))} is repeated in --order (sort by each name once)")
    return tuple(order)

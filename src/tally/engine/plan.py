"""Compile a query shape into one portable Ibis expression per part, with the range as parameters."""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass

import ibis
import ibis.expr.datatypes as idt
import pyarrow as pa

from tally.engine.catalog import Catalog, MeasureRef
from tally.engine.scope import ModelScope
from tally.engine.timecol import time_column
from tally.engine.timegrid import Grain
from tally.engine.translate import to_condition, to_ibis
from tally.errors import QueryError
from tally.project.expr import parse_row_expr
from tally.warehouse import CompiledQuery, Warehouse

UTC_TS = idt.Timestamp(timezone="UTC")
DISTINCT_KEY = "__tally_key"      # the counted value's column in distinct key rows
ZERO_OVER_NO_ROWS = ("sum", "count", "count_distinct")   # what a group without rows shows (rows.assemble)
_TRUNC = {Grain.hour: "h", Grain.day: "D", Grain.week: "W", Grain.month: "M", Grain.quarter: "Q", Grain.year: "Y"}


@dataclass(frozen=True)
class Shape:
    """Everything that changes the SQL text; the range's values are bound at run time."""

    metrics: tuple[str, ...]
    by: tuple[str, ...]
    grain: Grain | None
    where: str | None
    order_by: tuple[tuple[str, bool], ...]
    limit: int | None
    week_start: int
    segments: tuple | None        # (offset at start, ((utc instant, new offset), ...)) when bucketing
    fill: bool = True             # empty periods are filled in after (so they may be filtered out in SQL)


@dataclass(frozen=True)
class Part:
    """One compiled SQL statement and the Arrow schema of its rows."""

    query: CompiledQuery
    schema: pa.Schema
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    timed: Part | None            # models with a time column, bucketed and range-filtered
    timeless: Part | None         # snapshot models (no time), grouped by dimensions only
    measures: tuple[MeasureRef, ...]
    sql_orders: bool              # order and limit already applied in SQL


def build_plan(shape: Shape, catalog: Catalog, warehouse: Warehouse) -> Plan:
    measures = catalog.base_measures(shape.metrics)
    _check_dimensions(shape, catalog, measures)
    by_model: dict[str, list[MeasureRef]] = {}
    for ref in measures:
        by_model.setdefault(ref.model, []).append(ref)
    timed = {m: refs for m, refs in by_model.items() if catalog.model(m).time}
    timeless = {m: refs for m, refs in by_model.items() if not catalog.model(m).time}
    if shape.grain and not timed:
        names = ", ".join(shape.metrics)
        raise QueryError(f"{names}: a snapshot with no time column; it can't be broken down by --grain")
    params = {"start": ibis.param(UTC_TS), "end": ibis.param(UTC_TS)}
    sql_orders = not timeless
    timed_part = timeless_part = None
    if timed:
        expr = _combine([_branch(shape, catalog, warehouse, m, refs, params, True) for m, refs in timed.items()],
                        measures=[r.name for refs in timed.values() for r in refs])
        if sql_orders:
            zeros = [r.name for refs in timed.values() for r in refs if r.measure.aggregation in ZERO_OVER_NO_ROWS]
            expr = _order_and_limit(expr, shape, catalog, zeros)
        timed_part = _part(warehouse, expr, params, shape, with_period=shape.grain is not None)
    if timeless:
        expr = _combine([_branch(shape, catalog, warehouse, m, refs, params, False) for m, refs in timeless.items()],
                        measures=[r.name for refs in timeless.values() for r in refs])
        timeless_part = _part(warehouse, expr, {}, shape, with_period=False)
    return Plan(timed_part, timeless_part, tuple(measures), sql_orders)


def _part(warehouse: Warehouse, expr, params, shape: Shape, with_period: bool) -> Part:
    keys = (("period",) if with_period else ()) + shape.by
    return Part(warehouse.compile(expr, params), expr.schema().to_pyarrow(), keys)


def _check_dimensions(shape: Shape, catalog: Catalog, measures: list[MeasureRef]) -> None:
    wanted = set(shape.by)
    if shape.where:
        wanted |= set(parse_row_expr(shape.where).references)
    for metric in shape.metrics:
        for ref in catalog.base_measures([metric]):
            dims = catalog.model(ref.model).dimensions
            for dim in sorted(wanted):
                if dim not in dims:
                    known = ", ".join(dims) or "none"
                    hint = difflib.get_close_matches(dim, list(dims), n=1)
                    raise QueryError(f"metric {metric!r} (model {ref.model!r}) can't be broken down or filtered by {dim!r}"
                                     + (f" (did you mean {hint[0]!r}?)" if hint else "")
                                     + f": no such dimension is reachable without multiplying rows "
                                       f"(its dimensions: {known})")


def _branch(shape: Shape, catalog: Catalog, warehouse: Warehouse, model_name: str, refs, params, timed: bool):
    """One model's rows filtered, bucketed, grouped by the query keys and aggregated."""
    model = catalog.model(model_name)
    base = warehouse.table(model.table)
    if timed:
        ts = time_column(base, model_name, model.time)
        base = base.filter(ts >= params["start"], ts < params["end"])
    scope = ModelScope(catalog.config, warehouse, model_name, base=base)
    keys = {}
    if timed and shape.grain:
        keys["period"] = period_bucket(time_column(scope.base, model_name, model.time), shape, warehouse.dialect)
    for dim in shape.by:
        keys[dim] = scope.value(model.dimensions[dim].expr)
    # when every measure shares one row filter it becomes the WHERE: fewer rows reach the joins.
    # Not with --by: a group whose rows all fail the filter must still be there, with zeros.
    shared = {ref.measure.where for ref in refs}
    shared = shared.pop() if len(shared) == 1 and not shape.by and (shape.grain is None or shape.fill) else None
    aggregates = {ref.name: _aggregate(scope, ref, skip_where=shared is not None) for ref in refs}
    conditions = [scope.condition(shared)] if shared else []
    if shape.where:
        conditions.append(to_condition(parse_row_expr(shape.where).tree,
                                       lambda name: scope.value(model.dimensions[name].expr)))
    relation = scope.joined()
    if conditions:
        relation = relation.filter(*conditions)
    if keys:
        return relation.group_by(**keys).aggregate(**aggregates)
    return relation.aggregate(**aggregates)


def distinct_keys_part(shape: Shape, catalog: Catalog, warehouse: Warehouse, ref: MeasureRef) -> Part:
    """The distinct (period, dimensions, key) rows a `count_distinct` measure counts, over [start, end).

    What stored distinct counts are kept with: a count over a longer period is the number of
    distinct keys across its days, which these rows give without reading the model again.
    """
    params = {"start": ibis.param(UTC_TS), "end": ibis.param(UTC_TS)}
    expr = distinct_keys_expr(shape, catalog, warehouse, ref, params)
    return Part(warehouse.compile(expr, params), expr.schema().to_pyarrow(), ("period", *shape.by, DISTINCT_KEY))


def distinct_keys_expr(shape: Shape, catalog: Catalog, warehouse: Warehouse, ref: MeasureRef, params: dict):
    """The Ibis expression of `distinct_keys_part`, over [params["start"], params["end"])."""
    model = catalog.model(ref.model)
    scope, key, conditions = _counted(shape, catalog, warehouse, ref, params)
    columns = {"period": period_bucket(time_column(scope.base, ref.model, model.time), shape, warehouse.dialect)}
    for dim in shape.by:
        columns[dim] = scope.value(model.dimensions[dim].expr)
    columns[DISTINCT_KEY] = key
    return scope.joined().filter(*conditions).select(**columns).distinct()


def split_keys_expr(shape: Shape, catalog: Catalog, warehouse: Warehouse, ref: MeasureRef, params: dict):
    """How many values a `count_distinct` measure counts over [start, end) have rows in more than
    one period of the shape's grain (one row, column `split`; the shape's dimensions play no part).

    None, at the day grain (an order's lines all on its day), and the distinct count over a week or
    a year is the sum of its days' counts, for any breakdown: each value is counted on one day only.
    """
    model = catalog.model(ref.model)
    scope, key, conditions = _counted(shape, catalog, warehouse, ref, params)
    rows = scope.joined().filter(*conditions).select(key=key, period=period_bucket(time_column(scope.base, ref.model, model.time), shape,
                                                                            warehouse.dialect))
    spans = rows.group_by("key").aggregate(first=rows.period.min(), last=rows.period.max())
    return spans.filter(spans["first"] != spans["last"]).aggregate(split=ibis._.count())


def _counted(shape: Shape, catalog: Catalog, warehouse: Warehouse, ref: MeasureRef, params: dict):
    """A count_distinct measure's scope over [start, end), its counted value, and the conditions a
    row meets to be counted (a value, the measure's filter, the shape's `where`)."""
    model = catalog.model(ref.model)
    base = warehouse.table(model.table)
    ts = time_column(base, ref.model, model.time)
    scope = ModelScope(catalog.config, warehouse, ref.model,
                       base=base.filter(ts >= params["start"], ts < params["end"]))
    key = scope.value(ref.measure.value)
    conditions = [key.notnull()]
    if ref.measure.where:
        conditions.append(scope.condition(ref.measure.where))
    if shape.where:
        conditions.append(to_condition(parse_row_expr(shape.where).tree,
                                       lambda name: scope.value(model.dimensions[name].expr)))
    return scope, key, conditions


def _aggregate(scope: ModelScope, ref: MeasureRef, skip_where: bool = False):
    measure = ref.measure
    where = scope.condition(measure.where) if measure.where and not skip_where else None
    if measure.aggregation == "count" and measure.value == "*":
        # rows, as a sum over a value of the model's own table so it resolves through any join
        anchor = scope.base[scope.base.columns[0]]
        counted = where if where is not None else (anchor.isnull() | anchor.notnull())
        return ibis.cases((counted, 1), else_=0).sum()
    value = scope.value(measure.value)
    if measure.aggregation == "avg":
        value = value.cast("float64")  # an average is a ratio: keep its precision, not the column's scale
    method = {"sum": "sum", "count": "count", "count_distinct": "nunique", "avg": "mean",
              "min": "min", "max": "max"}[measure.aggregation]
    return getattr(value, method)(where=where)


@ibis.udf.scalar.builtin
def epoch_us(ts: idt.Timestamp(timezone="UTC")) -> idt.int64:
    """DuckDB: microseconds since the epoch of an instant."""


@ibis.udf.scalar.builtin
def make_timestamp(micros: idt.int64) -> idt.Timestamp():
    """DuckDB: the naive timestamp that many microseconds after the epoch."""


def _offset(ts, segments, scale: int):
    """The zone's UTC offset at each instant (seconds x scale), from the segments of the range."""
    first, changes = segments
    if not changes:
        return ibis.literal(first * scale, "int64")
    bounds = [when for when, _ in changes]
    offsets = [first] + [off for _, off in changes]
    return ibis.cases(*[(ts < ibis.literal(b, UTC_TS), offsets[i] * scale) for i, b in enumerate(bounds)],
                      else_=offsets[-1] * scale)


def _local_time(ts, segments, dialect):
    """Wall-clock time for a UTC instant in the query zone.

    Epoch arithmetic where the warehouse has it: DuckDB's timezone-aware cast costs ~15x more.
    """
    if dialect.epoch_micros:
        return make_timestamp(epoch_us(ts) + _offset(ts, segments, 1_000_000))
    return (ts + _offset(ts, segments, 1).as_interval("s")).cast(idt.Timestamp())


def period_bucket(ts, shape: Shape, dialect):
    """The period start of a UTC timestamp in the query timezone, via fixed offset segments."""
    local = _local_time(ts, shape.segments, dialect)
    truncates_weeks = dialect.truncates_weeks
    if shape.grain is Grain.hour:
        return local.truncate("h")
    if shape.grain is Grain.day:
        return local.date()
    if shape.grain is Grain.week and not truncates_weeks:
        day = local.date()
        back = (day.day_of_week.index() - shape.week_start + 7) % 7
        return day - back.as_interval("D")
    if shape.grain is Grain.week and shape.week_start:
        shift = ibis.interval(days=(7 - shape.week_start) % 7)
        return ((local + shift).truncate("W") - shift).date()
    return local.truncate(_TRUNC[shape.grain]).date()


def _combine(branches: list, measures: list[str]):
    """Several models' aggregates on one set of keys (a union, since MySQL has no full outer join)."""
    if len(branches) == 1:
        return branches[0]
    key_names = [c for c in branches[0].columns if c not in measures]
    types = {}
    for branch in branches:
        for name, dtype in branch.schema().items():
            types.setdefault(name, dtype)
    aligned = []
    for branch in branches:
        columns = {k: branch[k].cast(types[k]) for k in key_names}
        for name in measures:
            columns[name] = branch[name] if name in branch.columns else ibis.null().cast(types[name])
        aligned.append(branch.select(**columns))
    union = ibis.union(*aligned, distinct=False)
    aggregates = {name: union[name].max() for name in measures}
    if key_names:
        return union.group_by(key_names).aggregate(**aggregates)
    return union.aggregate(**aggregates)


def _order_and_limit(expr, shape: Shape, catalog: Catalog, zeros: list[str]):
    """Sort and cut in SQL, on the values the user sees: `zeros` (sums and counts over no rows,
    NULL in SQL) become 0 first, as they are after the warehouse answers."""
    if not shape.order_by and shape.limit is None:
        return expr
    filled = {name: ibis.coalesce(expr[name], ibis.literal(0).cast(expr[name].type())) for name in zeros}
    if filled:
        expr = expr.mutate(**filled)
    derived = {}

    def resolve(name: str):
        if name in expr.columns:
            return expr[name]
        if name not in derived:
            derived[name] = to_ibis(catalog.derived[name].expr.tree, resolve)
        return derived[name]

    keys = []
    for name, desc in shape.order_by:
        value = resolve(name)
        keys.append(value.desc(nulls_first=False) if desc else value.asc(nulls_first=False))
    ordered = {name for name, _ in shape.order_by}
    keys += [expr[k].asc() for k in expr.columns if k in (("period",) + shape.by) and k not in ordered]
    if keys:   # a total is one row: --limit alone keeps it, with nothing to sort by
        expr = expr.order_by(keys)
    return expr.limit(shape.limit) if shape.limit is not None else expr


def data_bounds_expr(catalog: Catalog, warehouse: Warehouse, model_name: str):
    """min and max of a model's time column, to give an open range its ends."""
    model = catalog.model(model_name)
    table = warehouse.table(model.table)
    ts = time_column(table, model_name, model.time)
    return table.aggregate(lo=ts.min(), hi=ts.max())


def epoch() -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

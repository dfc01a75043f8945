"""What changed in a model since a watermark, by local day: what incremental rollups recompute."""

from __future__ import annotations

import datetime as dt

import ibis

from tally.engine.plan import Shape, _bucket
from tally.engine.scope import ModelScope
from tally.engine.timegrid import Grain, offset_segments

UTC = dt.timezone.utc


def day_bucket(engine, ts, zone: str, bounds: tuple[dt.datetime, dt.datetime]):
    """The local day (in `zone`) of a time column whose values lie within `bounds`."""
    shape = Shape((), (), Grain.day, None, (), None, engine.config.week_start_index,
                  offset_segments(zone, bounds[0], bounds[1] + dt.timedelta(days=1)))
    return _bucket(ts, shape, engine.warehouse.dialect)


def run_rows(engine, expr) -> list[dict]:
    warehouse = engine.warehouse
    return warehouse.run(warehouse.compile(expr)).to_pylist()


def bounds(engine, model_name: str) -> tuple[dt.datetime, dt.datetime] | None:
    """The first and last time of a model's rows (UTC), or None when it has none."""
    model = engine.catalog.model(model_name)
    table = engine.warehouse.table(model.table)
    row = run_rows(engine, table.aggregate(lo=table[model.time].min(), hi=table[model.time].max()))[0]
    if row["lo"] is None:
        return None
    aware = [v if v.tzinfo else v.replace(tzinfo=UTC) for v in (row["lo"], row["hi"])]
    return aware[0], aware[1]


def day_counts(engine, model_name: str, zone: str, span=False) -> dict[str, str]:
    """Per local day, its rows and how many find their join targets ("rows/matched..."): a deleted
    or inserted row changes its day's count, and so does a deleted row another model joins to
    (a model with a change time: lookups are stamped by their loads instead).

    `span`: the model's `bounds`, when the caller has just read them."""
    span = bounds(engine, model_name) if span is False else span
    if span is None:
        return {}
    model = engine.catalog.model(model_name)
    scope = ModelScope(engine.config, engine.warehouse, model_name)
    # joins to lookups (no change time) are left out: reloading one is a new definition (a full
    # build), and counting matches across every row costs several times the rows' own count
    matched = {f"m{i}": scope.column(f"{alias}.{next(iter(join.keys.values()))}").count()
               for i, (alias, join) in enumerate(model.joins.items())
               if join.on is not None and engine.catalog.model(join.model).updated}
    day = day_bucket(engine, scope.base[model.time], zone, span)
    relation = scope.joined()
    expr = relation.group_by(day=day).aggregate(rows=relation.count(), **matched)
    return {row["day"].isoformat(): "/".join(str(row[k]) for k in ["rows", *matched]) for row in run_rows(engine, expr)}


def row_count(engine, model_name: str) -> int:
    """All rows of a model (cheap: a deleted row shows up here before any rollup reads it)."""
    table = engine.warehouse.table(engine.catalog.model(model_name).table)
    return run_rows(engine, table.aggregate(rows=table.count()))[0]["rows"]


def max_updated(engine, model_name: str) -> str | None:
    """The latest change time of a model's rows, as ISO text (its watermark)."""
    model = engine.catalog.model(model_name)
    if not model.updated:
        return None
    table = engine.warehouse.table(model.table)
    value = run_rows(engine, table.aggregate(top=table[model.updated].max()))[0]["top"]
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def changed_days(engine, model_name: str, zone: str, watermarks: dict[str, str | None], span=False) -> set[str]:
    """Local days (ISO) holding rows changed after the watermarks, directly or through a join's change
    (`span` as for `day_counts`)."""
    model = engine.catalog.model(model_name)
    span = bounds(engine, model_name) if span is False else span
    if span is None:
        return set()
    scope = ModelScope(engine.config, engine.warehouse, model_name)
    conditions = []
    if model.updated and watermarks.get(model_name):
        conditions.append(scope.column(model.updated) > _instant(engine, watermarks[model_name]))
    for alias, join in model.joins.items():
        target = engine.catalog.model(join.model)
        if target.updated and watermarks.get(join.model):
            conditions.append(scope.column(f"{alias}.{target.updated}") > _instant(engine, watermarks[join.model]))
    if not conditions:
        return set()
    # one query per condition: a filter on one join's side becomes an inner join the database
    # runs from the few changed rows, where an OR across joins reads every row of both
    day = day_bucket(engine, scope.base[model.time], zone, span)
    relation = scope.joined()
    found: set[str] = set()
    for condition in conditions:
        picked = relation.filter(condition)
        found |= {row["day"].isoformat() for row in run_rows(engine, picked.group_by(day=day).aggregate(rows=picked.count()))}
    return found


def _instant(engine, text: str):
    value = dt.datetime.fromisoformat(text)
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    if engine.warehouse.dialect.naive_params:  # MySQL keeps naive UTC
        return ibis.literal(value.astimezone(UTC).replace(tzinfo=None), "timestamp")
    return ibis.literal(value, "timestamp('UTC')")

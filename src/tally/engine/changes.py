"""What changed in a model since a watermark, by local day: what incremental rollups recompute."""

from __future__ import annotations

import datetime as dt

import ibis

from tally.engine.plan import Shape, _bucket
from tally.engine.scope import ModelScope
from tally.engine.timegrid import Grain, offset_segments
from tally.warehouse.base import UTC_TS, CompiledQuery

UTC = dt.timezone.utc


def day_bucket(engine, ts, zone: str, bounds: tuple[dt.datetime, dt.datetime]):
    """The local day (in `zone`) of a time column whose values lie within `bounds`."""
    return day_bucket_in(engine, ts, segments(zone, bounds))


def segments(zone: str, bounds: tuple[dt.datetime, dt.datetime]):
    """The zone's offsets over `bounds` (what a day bucket of times within them depends on)."""
    return offset_segments(zone, bounds[0], bounds[1] + dt.timedelta(days=1))


def day_bucket_in(engine, ts, offsets):
    shape = Shape((), (), Grain.day, None, (), None, engine.config.week_start_index, offsets)
    return _bucket(ts, shape, engine.warehouse.dialect)


def compiled(engine, key: tuple, build) -> CompiledQuery:
    """A change scan's SQL, compiled once per engine: `build()` gives (expression, parameters),
    the values that change from run to run (watermarks, ranges) being parameters. A process that
    builds again (the scheduler, the server, a build after a build) skips Ibis and the compiler."""
    store = engine.__dict__.setdefault("_change_scans", {})
    query = store.get(key)
    if query is None:
        expr, params = build()
        query = store[key] = engine.warehouse.compile(expr, params)
    return query


def run_compiled(engine, query: CompiledQuery, values: dict | None = None) -> list[dict]:
    return engine.warehouse.run(query, values).to_pylist()


def bounds(engine, model_name: str) -> tuple[dt.datetime, dt.datetime] | None:
    """The first and last time of a model's rows (UTC), or None when it has none."""
    def build():
        model = engine.catalog.model(model_name)
        table = engine.warehouse.table(model.table)
        return table.aggregate(lo=table[model.time].min(), hi=table[model.time].max()), None

    row = run_compiled(engine, compiled(engine, ("bounds", model_name), build))[0]
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
    # joins to lookups (no change time) are left out: reloading one is a new definition (a full
    # build), and counting matches across every row costs several times the rows' own count
    matched = [alias for alias, join in model.joins.items()
               if join.on is not None and engine.catalog.model(join.model).updated]
    offsets = segments(zone, span)

    def build():
        scope = ModelScope(engine.config, engine.warehouse, model_name)
        counts = {f"m{i}": scope.column(f"{alias}.{next(iter(model.joins[alias].keys.values()))}").count()
                  for i, alias in enumerate(matched)}
        day = day_bucket_in(engine, scope.base[model.time], offsets)
        relation = scope.joined()
        return relation.group_by(day=day).aggregate(rows=relation.count(), **counts), None

    names = ["rows", *(f"m{i}" for i in range(len(matched)))]
    query = compiled(engine, ("day_counts", model_name, offsets), build)
    return {row["day"].isoformat(): "/".join(str(row[k]) for k in names) for row in run_compiled(engine, query)}


def row_count(engine, model_name: str) -> int:
    """All rows of a model (cheap: a deleted row shows up here before any rollup reads it)."""
    def build():
        table = engine.warehouse.table(engine.catalog.model(model_name).table)
        return table.aggregate(rows=table.count()), None

    return run_compiled(engine, compiled(engine, ("row_count", model_name), build))[0]["rows"]


def max_updated(engine, model_name: str) -> str | None:
    """The latest change time of a model's rows, as ISO text (its watermark)."""
    model = engine.catalog.model(model_name)
    if not model.updated:
        return None

    def build():
        table = engine.warehouse.table(model.table)
        return table.aggregate(top=table[model.updated].max()), None

    value = run_compiled(engine, compiled(engine, ("max_updated", model_name), build))[0]["top"]
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
    offsets = segments(zone, span)
    # (alias or None for the model itself, its change-time column, the watermark)
    checks = []
    if model.updated and watermarks.get(model_name):
        checks.append((None, model.updated, watermarks[model_name]))
    for alias, join in model.joins.items():
        target = engine.catalog.model(join.model)
        if target.updated and watermarks.get(join.model):
            checks.append((alias, f"{alias}.{target.updated}", watermarks[join.model]))
    # one query per condition: a filter on one join's side becomes an inner join the database
    # runs from the few changed rows, where an OR across joins reads every row of both
    found: set[str] = set()
    for alias, column, mark in checks:
        def build(column=column):
            scope = ModelScope(engine.config, engine.warehouse, model_name)
            after = ibis.param(UTC_TS)
            condition = scope.column(column) > after
            day = day_bucket_in(engine, scope.base[model.time], offsets)
            picked = scope.joined().filter(condition)
            return picked.group_by(day=day).aggregate(rows=picked.count()), {"after": after}

        query = compiled(engine, ("changed", model_name, alias, offsets), build)
        found |= {row["day"].isoformat() for row in run_compiled(engine, query, {"after": _instant(mark)})}
    return found


def _instant(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)

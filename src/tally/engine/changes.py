"""What changed in a model since a watermark, by local day: what incremental rollups recompute."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import ibis

from tally.engine.plan import Shape, period_bucket
from tally.engine.scope import ModelScope
from tally.engine.timecol import model_column, time_column
from tally.engine.timegrid import Grain, as_utc, offset_segments
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
    return period_bucket(ts, shape, engine.warehouse.dialect)


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


def bounds(engine, model_name: str, known: tuple[str, str] | None = None) -> tuple[dt.datetime, dt.datetime] | None:
    """The first and last time of a model's rows (UTC), or None when it has none.

    `known`: the bounds read last time (ISO). On DuckDB the ends are then looked for at and beyond
    them, which it answers from the few blocks there (a full min/max reads every row once rows were
    updated); every row is read only when an end moved inward (its row deleted or re-dated)."""
    model = engine.catalog.model(model_name)
    if known and engine.warehouse.dialect.local_duckdb:   # DuckDB answers ends from its blocks' min/max
        def beyond():
            table = engine.warehouse.table(model.table)
            time, lo, hi = time_column(table, model_name, model.time), ibis.param(UTC_TS), ibis.param(UTC_TS)
            low = table.filter(time <= lo).aggregate(lo=time.min())
            high = table.filter(time >= hi).aggregate(hi=time.max())
            return low.cross_join(high), {"lo": lo, "hi": hi}

        query = compiled(engine, ("bounds_beyond", model_name), beyond)
        row = run_compiled(engine, query, {"lo": _instant(known[0]), "hi": _instant(known[1])})[0]
        if row["lo"] is not None and row["hi"] is not None:
            return as_utc(row["lo"]), as_utc(row["hi"])

    def build():
        table = engine.warehouse.table(model.table)
        time = time_column(table, model_name, model.time)
        return table.aggregate(lo=time.min(), hi=time.max()), None

    row = run_compiled(engine, compiled(engine, ("bounds", model_name), build))[0]
    if row["lo"] is None:
        return None
    return as_utc(row["lo"]), as_utc(row["hi"])


def day_counts(engine, model_name: str, zone: str, span=False) -> dict[str, str]:
    """Per local day, its rows and how many find their join targets ("rows/matched..."): a deleted
    or inserted row changes its day's count, and so does a deleted row another model joins to
    (a model with a change time: lookups are stamped by their loads instead).

    `span`: the model's `bounds`, when the caller has just read them."""
    span = bounds(engine, model_name) if span is False else span
    if span is None:
        return {}
    offsets = segments(zone, span)
    query = compiled(engine, ("day_counts", model_name, offsets), lambda: _day_counts_expr(engine, model_name, offsets))
    return _count_texts(engine, model_name, run_compiled(engine, query))


def day_counts_in(engine, model_name: str, zone: str, span, days: set[str]) -> dict[str, str]:
    """`day_counts` of some local days (ISO) only: one scan of the time range they span, which the
    database skips to where `day_counts` reads every row."""
    if span is None or not days:
        return {}
    offsets = segments(zone, span)
    query = compiled(engine, ("day_counts_in", model_name, offsets),
                     lambda: _day_counts_expr(engine, model_name, offsets, within=True))
    local = ZoneInfo(zone)
    # a day on each side: a local midnight a clock change skips still falls inside
    first, last = (dt.date.fromisoformat(d) for d in (min(days), max(days)))
    start, end = (dt.datetime.combine(d, dt.time(), local).astimezone(UTC)
                  for d in (first - dt.timedelta(days=1), last + dt.timedelta(days=2)))
    found = _count_texts(engine, model_name, run_compiled(engine, query, {"start": start, "end": end}))
    return {d: v for d, v in found.items() if d in days}


def _matched(engine, model_name: str) -> list[str]:
    """The joins whose matches `day_counts` counts: to models with a change time. Joins to lookups
    are left out: reloading one is a new definition (a full build), and counting matches across
    every row costs several times the rows' own count."""
    model = engine.catalog.model(model_name)
    return [alias for alias, join in model.joins.items()
            if join.on is not None and engine.catalog.model(join.model).updated]


def _day_counts_expr(engine, model_name: str, offsets, within: bool = False):
    model = engine.catalog.model(model_name)
    scope = ModelScope(engine.config, engine.warehouse, model_name)
    counts = {f"m{i}": scope.column(f"{alias}.{next(iter(model.joins[alias].keys.values()))}").count()
              for i, alias in enumerate(_matched(engine, model_name))}
    time = time_column(scope.base, model_name, model.time)
    day = day_bucket_in(engine, time, offsets)
    relation = scope.joined()
    params = None
    if within:
        params = {"start": ibis.param(UTC_TS), "end": ibis.param(UTC_TS)}
        relation = relation.filter(time >= params["start"], time < params["end"])
    return relation.group_by(day=day).aggregate(rows=relation.count(), **counts), params


def _count_texts(engine, model_name: str, rows: list[dict]) -> dict[str, str]:
    names = ["rows", *(f"m{i}" for i in range(len(_matched(engine, model_name))))]
    # rows without a time (a customer who never bought) are in no day: a change to them moves no period
    return {row["day"].isoformat(): "/".join(str(row[k]) for k in names) for row in rows if row["day"] is not None}


def totals(engine, model_name: str) -> dict[str, int]:
    """A model's rows: all, with a time (in some day), with a change time. Cheap on DuckDB: the rows
    from its statistics, and the NULL counts from the blocks that may hold a NULL (a plain
    `count(column)` reads every row once rows were updated)."""
    model = engine.catalog.model(model_name)

    def build():
        table = engine.warehouse.table(model.table)
        time = time_column(table, model_name, model.time)
        stamp = model_column(table, model_name, model.updated, "updated") if model.updated else None
        if engine.warehouse.dialect.name != "duckdb":
            stamped = stamp.count() if stamp is not None else ibis.literal(0, "int64")
            return table.aggregate(rows=table.count(), dated=time.count(), stamped=stamped), None
        undated = table.filter(time.isnull())
        nulls = undated.aggregate(undated=undated.count())
        unstamped = table.filter(stamp.isnull()) if stamp is not None else table
        unstamped = unstamped.aggregate(unstamped=unstamped.count())
        counts = table.aggregate(rows=table.count()).cross_join(nulls).cross_join(unstamped)
        return counts.select(rows=counts.rows, dated=counts.rows - counts.undated,
                             stamped=counts.rows - counts.unstamped), None

    return run_compiled(engine, compiled(engine, ("totals", model_name), build))[0]


def days_now(engine, model_name: str, zone: str, span, before: dict[str, str], changed: set[str]) -> dict[str, str] | None:
    """Today's `day_counts` from those of the last build (`before`) and the days holding rows changed
    since (`changed`: every row with a later change time lies in one), reading only those days; None
    when that can't be told so (then `day_counts` reads them all).

    Every row outside `changed` days has a change time no later than the last build's, so it was
    there then, on the same day: no such day gained a row, and a day lost one only if the rows
    outside `changed` add up to fewer than they did. A deletion (or a row moved to another day)
    shows there. This needs every row to carry a change time, and holds for the model's own rows:
    counts of matches across joins (`_matched`) can drop where no change time shows (a deleted
    target), so those are always counted in full."""
    model = engine.catalog.model(model_name)
    if not model.updated or _matched(engine, model_name) or span is None:
        return None
    total = totals(engine, model_name)
    if total["stamped"] != total["rows"]:
        return None
    now = day_counts_in(engine, model_name, zone, span, changed)
    outside_before = sum(int(v.split("/")[0]) for d, v in before.items() if d not in changed)
    outside_now = total["dated"] - sum(int(v.split("/")[0]) for v in now.values())
    if outside_now != outside_before:
        return None
    return dict(sorted({**{d: v for d, v in before.items() if d not in changed}, **now}.items()))


def row_count(engine, model_name: str) -> int:
    """All rows of a model (cheap: a deleted row shows up here before any rollup reads it)."""
    def build():
        table = engine.warehouse.table(engine.catalog.model(model_name).table)
        return table.aggregate(rows=table.count()), None

    return run_compiled(engine, compiled(engine, ("row_count", model_name), build))[0]["rows"]


def max_updated(engine, model_name: str, since: str | None = None) -> str | None:
    """The latest change time of a model's rows, as ISO text (its watermark).

    `since`: the watermark read last time: only later change times are read (DuckDB skips the
    blocks without one), and `since` stays the watermark when there are none (every change after
    it is still caught after it, even when the row that carried it was deleted)."""
    model = engine.catalog.model(model_name)
    if not model.updated:
        return None

    def build():
        table = engine.warehouse.table(model.table)
        return table.aggregate(top=model_column(table, model_name, model.updated, "updated").max()), None

    def build_since():
        table = engine.warehouse.table(model.table)
        after, stamp = ibis.param(UTC_TS), model_column(table, model_name, model.updated, "updated")
        return table.filter(stamp > after).aggregate(top=stamp.max()), {"after": after}

    if since:
        query = compiled(engine, ("max_updated_since", model_name), build_since)
        value = run_compiled(engine, query, {"after": _instant(since)})[0]["top"]
        if value is None:
            return since
    else:
        value = run_compiled(engine, compiled(engine, ("max_updated", model_name), build))[0]["top"]
        if value is None:
            return None
    return as_utc(value).astimezone(UTC).isoformat()


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
            day = day_bucket_in(engine, time_column(scope.base, model_name, model.time), offsets)
            picked = scope.joined().filter(condition)
            return picked.group_by(day=day).aggregate(rows=picked.count()), {"after": after}

        query = compiled(engine, ("changed", model_name, alias, offsets), build)
        found |= {row["day"].isoformat() for row in run_compiled(engine, query, {"after": _instant(mark)})}
    return found


def _instant(text: str) -> dt.datetime:
    return as_utc(dt.datetime.fromisoformat(text))

"""Rollup rows every stage shares: the live query per period, the stored shape, and helpers on Arrow rows."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from tally.engine.rows import derive
from tally.engine.spec import QuerySpec
from tally.engine.timegrid import Grain
from tally.rollups.definition import RollupDef
from tally.warehouse.sqltext import null_safe_match, period_start_sql, quote_ident

MAX_BLOCKS = 4
MERGE_GAP = dt.timedelta(days=31)


def rollup_spec(rollup_def: RollupDef, grain: Grain, start: dt.date, end: dt.date, metrics=()) -> QuerySpec:
    """The rollup's query: per period of `grain` and per dimension, its filter and zone, local [start, end)."""
    zone = ZoneInfo(rollup_def.zone)
    return QuerySpec(metrics=tuple(metrics), by=tuple(rollup_def.by), grain=grain,
                     start=dt.datetime.combine(start, dt.time(), tzinfo=zone),
                     end=dt.datetime.combine(end, dt.time(), tzinfo=zone),
                     where=rollup_def.rollup.where, timezone=rollup_def.zone, fill=False)


def live_rows(engine, rollup_def: RollupDef, grain: Grain, start: dt.date, end: dt.date, metrics) -> pa.Table:
    """One engine query: `metrics` per period of `grain` and per dimension over local [start, end),
    in no particular order (rows are matched by key and stored sorted by the database)."""
    return engine.run(rollup_spec(rollup_def, grain, start, end, metrics), live=True, ordered=False).table


def live_periods(engine, rollup_def: RollupDef, grain: Grain, starts: list[dt.date], metrics=None) -> pa.Table:
    """Base measures (all, or `metrics`) for these periods, live: one query per run of adjacent periods."""
    blocks = period_blocks(rollup_def, grain, starts)
    if len(blocks) > MAX_BLOCKS:  # scattered changes: one query over their whole span beats many small ones
        blocks = [(blocks[0][0], blocks[-1][1])]
    parts = [live_rows(engine, rollup_def, grain, a, b, metrics or rollup_def.base_names) for a, b in blocks]
    rows = pa.concat_tables(parts) if parts else empty_rows(engine, rollup_def)
    return rows.filter(in_periods(rows["period"], starts))


def empty_rows(engine, rollup_def: RollupDef) -> pa.Table:
    """No rows, in the shape of the rollup's day rows."""
    today = dt.date.today()
    return live_rows(engine, rollup_def, Grain.day, today, today + dt.timedelta(days=1), rollup_def.base_names).slice(0, 0)


def period_blocks(rollup_def: RollupDef, grain: Grain, starts: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Runs of periods as [first start, last end) ranges, one query each; runs a few weeks apart
    are one (reading the days between costs less than another pass over the joins)."""
    blocks: list[list[dt.date]] = []
    for start in starts:
        if blocks and start - rollup_def.period_end(blocks[-1][1], grain) <= MERGE_GAP:
            blocks[-1][1] = start
        else:
            blocks.append([start, start])
    return [(a, rollup_def.period_end(b, grain)) for a, b in blocks]


def coarser_sql(rollup_def: RollupDef, grain: Grain) -> str:
    """SQL turning the day column into the start of its `grain` period."""
    return period_start_sql(grain, rollup_def.week_start)


def join_on_keys(con, parts: list[pa.Table], keys: list[str]) -> pa.Table:
    """Full outer join on keys, NULL keys matching NULL keys."""
    con.register("a", parts[0])
    con.register("b", parts[1])
    on = null_safe_match("a", "b", keys)
    pick = ", ".join(f"COALESCE(a.{quote_ident(k)}, b.{quote_ident(k)}) AS {quote_ident(k)}" for k in keys)
    rest = [f"a.{quote_ident(c)}" for c in parts[0].column_names if c not in keys]
    rest += [f"b.{quote_ident(c)}" for c in parts[1].column_names if c not in keys]
    table = con.execute(f"SELECT {pick}, {', '.join(rest)} FROM a FULL OUTER JOIN b ON {on}").to_arrow_table()
    con.unregister("a")
    con.unregister("b")
    return table


def finish(rows: pa.Table, rollup_def: RollupDef, grain: Grain, catalog, built_at: dt.datetime) -> pa.Table:
    """Stored shape: period_start, period_end, grain, dimensions, measures, metrics, built_at."""
    rows = _fill_zero(rows, rollup_def)
    derived = derive(rows, ["period", *rollup_def.by], rollup_def.value_columns, catalog)
    starts = derived["period"].cast(pa.date32())
    distinct = pc.unique(starts)     # a few hundred periods at most: their ends in Python, rows by lookup
    ends = pa.array([rollup_def.period_end(s, grain) for s in distinct.to_pylist()], pa.date32())
    count = len(starts)
    columns = {
        "period_start": starts,
        "period_end": pc.take(ends, pc.index_in(starts, value_set=distinct)),
        "grain": pa.repeat(pa.scalar(grain.value, pa.string()), count),
    }
    for name in [*rollup_def.by, *rollup_def.value_columns]:
        columns[name] = derived[name]
    columns["built_at"] = pa.repeat(pa.scalar(built_at, pa.timestamp("us", tz="UTC")), count)
    return pa.table(columns)


def _fill_zero(rows: pa.Table, rollup_def: RollupDef) -> pa.Table:
    """A period where one model had rows and another none: the other's sums and counts are 0."""
    fillable = {ref.name for ref in rollup_def.bases if ref.measure.aggregation in ("sum", "count", "count_distinct")}
    for name in fillable & set(rows.column_names):
        column = rows[name]
        if column.null_count:
            index = rows.column_names.index(name)
            rows = rows.set_column(index, name, pc.fill_null(column, pa.scalar(0).cast(column.type)))
    return rows


def of_grain(rows: pa.Table, grain: Grain) -> pa.Table:
    """The rows of one grain from rows of several (a `grain` column), without that column."""
    return rows.filter(pc.equal(rows["grain"], grain.value)).drop_columns(["grain"])


def in_periods(column, starts: list[dt.date]):
    """A mask: which rows' period (a date column) is one of `starts`."""
    return pc.is_in(column.cast(pa.date32()), value_set=pa.array(starts, pa.date32()))

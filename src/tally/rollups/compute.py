"""Compute rollup rows: additive parts summed up from days, distinct counts once per grain, metrics derived."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa

from tally.engine.rows import derive
from tally.engine.spec import QuerySpec
from tally.engine.timegrid import Grain
from tally.rollups.definition import RollupDef
from tally.sources.validate import lit, q

_TRUNC = {Grain.month: "month", Grain.quarter: "quarter", Grain.year: "year"}


def live_rows(engine, rdef: RollupDef, grain: Grain, start: dt.date, end: dt.date, metrics) -> pa.Table:
    """One engine query: `metrics` per period of `grain` and per dimension over local [start, end)."""
    zone = ZoneInfo(rdef.zone)
    spec = QuerySpec(metrics=tuple(metrics), by=tuple(rdef.by), grain=grain,
                     start=dt.datetime.combine(start, dt.time(), tzinfo=zone),
                     end=dt.datetime.combine(end, dt.time(), tzinfo=zone),
                     where=rdef.rollup.where, timezone=rdef.zone, fill=False)
    return engine.run(spec, live=True).table


def _scratch() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    return con


def _coarser(con, rdef: RollupDef, grain: Grain) -> str:
    """SQL turning the day column into the start of its `grain` period."""
    if grain is Grain.week:
        return (f"CAST(period - INTERVAL 1 DAY * ((isodow(period) - 1 - {rdef.week_start} + 7) % 7) AS DATE)")
    return f"CAST(date_trunc({lit(_TRUNC[grain])}, period) AS DATE)"


def full_rows(engine, rdef: RollupDef, start: dt.date, end: dt.date) -> dict[Grain, pa.Table]:
    """Every grain's rows over [start, end): days queried once, coarser additive parts summed from them."""
    grains = rdef.grains
    needs_days = Grain.day in grains or (rdef.additive and any(g is not Grain.day for g in grains))
    day_metrics = rdef.base_names if Grain.day in grains else rdef.additive
    days = live_rows(engine, rdef, Grain.day, start, end, day_metrics) if needs_days and day_metrics else None
    result = {}
    con = _scratch()
    try:
        if days is not None:
            con.register("days", days)
        for grain in grains:
            if grain is Grain.day:
                result[grain] = days
                continue
            parts = []
            if rdef.additive:
                keys = ", ".join(q(k) for k in rdef.by)
                sums = ", ".join(f"SUM({q(m)}) AS {q(m)}" for m in rdef.additive)
                select_keys = f"{_coarser(con, rdef, grain)} AS period" + (f", {keys}" if keys else "")
                summed = con.execute(f"SELECT {select_keys}, {sums} FROM days GROUP BY ALL").to_arrow_table()
                parts.append(summed.cast(pa.schema([days.schema.field(n) for n in summed.column_names])))
            if rdef.other:
                parts.append(live_rows(engine, rdef, grain, start, end, rdef.other))
            result[grain] = parts[0] if len(parts) == 1 else _join(con, parts, ["period", *rdef.by])
    finally:
        con.close()
    return result


def _join(con, parts: list[pa.Table], keys: list[str]) -> pa.Table:
    """Full outer join on keys, NULL keys matching NULL keys."""
    con.register("a", parts[0])
    con.register("b", parts[1])
    on = " AND ".join(f"a.{q(k)} IS NOT DISTINCT FROM b.{q(k)}" for k in keys)
    pick = ", ".join(f"COALESCE(a.{q(k)}, b.{q(k)}) AS {q(k)}" for k in keys)
    rest = [f"a.{q(c)}" for c in parts[0].column_names if c not in keys]
    rest += [f"b.{q(c)}" for c in parts[1].column_names if c not in keys]
    table = con.execute(f"SELECT {pick}, {', '.join(rest)} FROM a FULL OUTER JOIN b ON {on}").to_arrow_table()
    con.unregister("a")
    con.unregister("b")
    return table


def finish(rows: pa.Table, rdef: RollupDef, grain: Grain, catalog, built_at: dt.datetime) -> pa.Table:
    """Stored shape: period_start, period_end, grain, dimensions, measures, metrics, built_at."""
    rows = _fill_zero(rows, rdef)
    import pyarrow.compute as pc

    derived = derive(rows, ["period", *rdef.by], rdef.value_columns, catalog)
    starts = derived["period"].cast(pa.date32())
    distinct = pc.unique(starts)     # a few hundred periods at most: their ends in Python, rows by lookup
    ends = pa.array([rdef.period_end(s, grain) for s in distinct.to_pylist()], pa.date32())
    count = len(starts)
    columns = {
        "period_start": starts,
        "period_end": pc.take(ends, pc.index_in(starts, value_set=distinct)),
        "grain": pa.repeat(pa.scalar(grain.value, pa.string()), count),
    }
    for name in [*rdef.by, *rdef.value_columns]:
        columns[name] = derived[name]
    columns["built_at"] = pa.repeat(pa.scalar(built_at, pa.timestamp("us", tz="UTC")), count)
    return pa.table(columns)


def _fill_zero(rows: pa.Table, rdef: RollupDef) -> pa.Table:
    """A period where one model had rows and another none: the other's sums and counts are 0."""
    import pyarrow.compute as pc

    fillable = {ref.name for ref in rdef.bases if ref.measure.aggregation in ("sum", "count", "count_distinct")}
    for name in fillable & set(rows.column_names):
        column = rows[name]
        if column.null_count:
            index = rows.column_names.index(name)
            rows = rows.set_column(index, name, pc.fill_null(column, pa.scalar(0).cast(column.type)))
    return rows

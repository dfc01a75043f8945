"""Compute rollup rows: additive parts summed up from days, distinct counts once per grain, metrics derived."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from tally.engine.plan import DISTINCT_KEY as KEY
from tally.engine.rows import derive
from tally.engine.spec import QuerySpec
from tally.engine.timegrid import Grain
from tally.rollups.definition import RollupDef
from tally.warehouse.sqltext import (date_list, null_safe_match, period_start_sql, quote_ident,
                                     scratch_connection, sql_literal)

def rollup_spec(rdef: RollupDef, grain: Grain, start: dt.date, end: dt.date, metrics=()) -> QuerySpec:
    """The rollup's query: per period of `grain` and per dimension, its filter and zone, local [start, end)."""
    zone = ZoneInfo(rdef.zone)
    return QuerySpec(metrics=tuple(metrics), by=tuple(rdef.by), grain=grain,
                     start=dt.datetime.combine(start, dt.time(), tzinfo=zone),
                     end=dt.datetime.combine(end, dt.time(), tzinfo=zone),
                     where=rdef.rollup.where, timezone=rdef.zone, fill=False)


def live_rows(engine, rdef: RollupDef, grain: Grain, start: dt.date, end: dt.date, metrics) -> pa.Table:
    """One engine query: `metrics` per period of `grain` and per dimension over local [start, end),
    in no particular order (rows are matched by key and stored sorted by the database)."""
    return engine.run(rollup_spec(rdef, grain, start, end, metrics), live=True, ordered=False).table


def coarser_sql(rdef: RollupDef, grain: Grain) -> str:
    """SQL turning the day column into the start of its `grain` period."""
    return period_start_sql(grain, rdef.week_start)


def full_rows(engine, rdef: RollupDef, start: dt.date, end: dt.date, keyed: dict[str, str] | None = None,
              summed: list[str] | tuple = ()) -> dict[Grain, pa.Table]:
    """Every grain's rows over [start, end): days queried once, coarser additive parts summed from
    them. `summed`: distinct counts whose every value falls on one day (`day_summed`), summed from
    the days as well. `keyed`: distinct counts whose every (day, dimensions, key) row is in a table
    (measure -> table, see `keys`); when they are all the rollup's other non-additive measures,
    coarser periods count them there (a narrow table read, where the live query reads and filters
    the model's rows)."""
    keyed = keyed or {}
    grains = rdef.grains
    sums = [*rdef.additive, *summed]
    rest = [m for m in rdef.other if m not in summed]
    needs_days = Grain.day in grains or (sums and any(g is not Grain.day for g in grains))
    day_metrics = rdef.base_names if Grain.day in grains else sums
    days = live_rows(engine, rdef, Grain.day, start, end, day_metrics) if needs_days and day_metrics else None
    result = {}
    con = scratch_connection(engine.warehouse)
    try:
        if days is not None:
            con.register("days", days)
        for grain in grains:
            if grain is Grain.day:
                result[grain] = days
                continue
            parts = []
            if sums:
                keys = ", ".join(quote_ident(k) for k in rdef.by)
                added = ", ".join(f"SUM({quote_ident(m)}) AS {quote_ident(m)}" for m in sums)
                select_keys = f"{coarser_sql(rdef, grain)} AS period" + (f", {keys}" if keys else "")
                summed_rows = con.execute(f"SELECT {select_keys}, {added} FROM days GROUP BY ALL").to_arrow_table()
                parts.append(summed_rows.cast(pa.schema([days.schema.field(n) for n in summed_rows.column_names])))
            if rest and set(rest) <= set(keyed):
                parts += [_keyed_counts(con, rdef, grain, measure, keyed[measure]) for measure in rest]
            elif rest:
                single = _single_distinct(engine, rdef, rest)
                parts.append(_distinct_counts(con, engine, rdef, grain, start, end, single) if single
                             else live_rows(engine, rdef, grain, start, end, rest))
            while len(parts) > 1:
                parts[:2] = [_join(con, parts[:2], ["period", *rdef.by])]
            result[grain] = parts[0]
    finally:
        con.close()
    return result


def day_summed(engine, rdef: RollupDef, start: dt.date, end: dt.date, memo: dict | None = None) -> list[str]:
    """The rollup's distinct counts that a full build over [start, end) sums from its days: those
    whose every counted value has its rows on one local day (an order's lines on the order's day;
    not a customer, who buys on many days). A count over a week or a year is then the sum of its
    days' counts, exactly. Checked over the range's rows on every full build (one scan of the
    model per measure, ~0.8 s at 10M order lines, where each coarser grain's distinct rows took
    1–2 s); `memo` shares the answer between the rollups of a run (the dimensions play no part).
    Only with coarser grains than days, whose rows the days then give."""
    if Grain.day not in rdef.grains or all(g is Grain.day for g in rdef.grains):
        return []
    memo = {} if memo is None else memo
    summed = []
    for name in rdef.other:
        if not _timed_distinct(engine, rdef, name):
            continue
        key = (name, rdef.zone, rdef.rollup.where, start, end)
        if key not in memo:
            memo[key] = engine.split_keys(rollup_spec(rdef, Grain.day, start, end), name) == 0
        if memo[key]:
            summed.append(name)
    return summed


def counts_from_keys(engine, rdef: RollupDef, keyed: list[str], summed: list[str] | tuple = ()) -> bool:
    """On DuckDB, whether a full build counts the coarser periods' distinct counts from the key
    rows (`keyed`: the measures that keep them, see `keys`), written first: when every measure
    that isn't summed (from the rollup's additive parts or its days, `summed`) is one of them and
    they are several (live, each period and group would run a count(DISTINCT) per measure:
    shop_reports' weeks..years at 10M lines, 5.8 s against 3.9 s).
    One distinct count is counted from the model's own distinct key rows (`_single_distinct`):
    about as fast, and the key rows' sort, done first, would stay in the process's memory while
    the day rows are worked out (+0.9 GiB at 10M lines by SKU)."""
    rest = [m for m in rdef.other if m not in summed]
    return engine.warehouse.dialect.local_duckdb and len(rest) > 1 and set(rest) <= set(keyed)


def _single_distinct(engine, rdef: RollupDef, rest: list[str]) -> str | None:
    """On DuckDB, the one measure left to count (`rest`) when it is a distinct count (of a model
    with a time column): its coarser periods are then counted from distinct key rows."""
    if not engine.warehouse.dialect.local_duckdb or len(rest) != 1 or not _timed_distinct(engine, rdef, rest[0]):
        return None
    return rest[0]


def _timed_distinct(engine, rdef: RollupDef, name: str) -> bool:
    """Whether the rollup's measure `name` is a distinct count of a model with a time column."""
    ref = next(r for r in rdef.bases if r.name == name)
    return ref.measure.aggregation == "count_distinct" and bool(engine.catalog.model(ref.model).time)


def _distinct_counts(con, engine, rdef: RollupDef, grain: Grain, start: dt.date, end: dt.date,
                     measure: str) -> pa.Table:
    """A distinct count per period of `grain` and dimensions, as the distinct (period, dimensions,
    key) rows counted. Where periods have many groups (listings, SKUs) DuckDB's DISTINCT and a
    count beat its count(DISTINCT) per group (at 10M lines by listing: 1.3 s against 1.95 s for
    weeks); with few groups they're alike. A period whose rows all fall outside the measure's
    filter has no row here; the sums' row then takes 0 (`_fill_zero`), as the live count gives."""
    part, values = engine.distinct_keys(rollup_spec(rdef, grain, start, end), measure)
    sql, bound = part.query.inline(values)
    dims = "".join(f", {quote_ident(k)}" for k in rdef.by)
    return con.execute(f"SELECT period{dims}, CAST(count(*) AS BIGINT) AS {quote_ident(measure)} FROM ({sql}) AS k "
                       f"GROUP BY ALL", bound or None).to_arrow_table()


def _keyed_counts(con, rdef: RollupDef, grain: Grain, measure: str, table: str) -> pa.Table:
    """A distinct count per period of `grain` and dimensions from the stored key rows: their
    distinct (period, dimensions, key) rows counted (as `_distinct_counts`)."""
    dims = "".join(f", {quote_ident(k)}" for k in rdef.by)
    return con.execute(f"SELECT period{dims}, CAST(count(*) AS BIGINT) AS {quote_ident(measure)} FROM (SELECT DISTINCT "
                       f"{coarser_sql(rdef, grain)} AS period{dims}, {quote_ident(KEY)} FROM {quote_ident(table)}) AS k GROUP BY ALL"
                       ).to_arrow_table()


def _join(con, parts: list[pa.Table], keys: list[str]) -> pa.Table:
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


def finish(rows: pa.Table, rdef: RollupDef, grain: Grain, catalog, built_at: dt.datetime) -> pa.Table:
    """Stored shape: period_start, period_end, grain, dimensions, measures, metrics, built_at."""
    rows = _fill_zero(rows, rdef)
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
    fillable = {ref.name for ref in rdef.bases if ref.measure.aggregation in ("sum", "count", "count_distinct")}
    for name in fillable & set(rows.column_names):
        column = rows[name]
        if column.null_count:
            index = rows.column_names.index(name)
            rows = rows.set_column(index, name, pc.fill_null(column, pa.scalar(0).cast(column.type)))
    return rows


def can_delta(rdef: RollupDef, day_rows: pa.Table) -> bool:
    """Coarser periods can be updated by difference: the rollup stores days and its sums are exact."""
    if Grain.day not in rdef.grains or not rdef.additive:
        return False
    exact = lambda t: pa.types.is_integer(t) or pa.types.is_decimal(t)  # noqa: E731
    return all(exact(day_rows.schema.field(m).type) for m in rdef.additive)


def delta_rows(engine, warehouse, rdef: RollupDef, days: list[dt.date], new_days: pa.Table,
               periods: dict[Grain, list[dt.date]], counted: dict | None = None
               ) -> tuple[dict[Grain, pa.Table], pa.Table]:
    """Rows of the touched coarser periods from the stored ones: old sums − old changed days + new days.

    Only the changed days go through the joins again; sums and counts of a month or a year come
    from the rows already stored (exact: integers and decimals). Distinct counts in `counted`
    (measure -> grain -> keys gained minus lost per period and dimensions, see `keys`) are the
    stored count plus that change; the other measures that can't be differenced come from one
    live query per grain over the touched periods. A period's row exists when a day of it has
    one, as in a full build. Also returns the stored rows read (grain, period, dimensions and the
    measures that were differenced).
    """
    keys = ["period", *rdef.by]
    counted = counted or {}
    distinct = [m for m in rdef.other if m in counted]
    live_measures = [m for m in rdef.other if m not in counted]
    wanted = {Grain.day: days, **{g: starts for g, starts in periods.items() if g is not Grain.day and starts}}
    stored = _stored(warehouse, rdef, wanted, rdef.additive + distinct)
    con = scratch_connection(warehouse)
    result = {}
    try:
        con.register("new_days", new_days.select(["period", *rdef.by, *rdef.additive]))
        con.register("stored", stored)
        con.execute("CREATE TEMP TABLE old_days AS SELECT * EXCLUDE (grain) FROM stored WHERE grain = 'day'")
        by = "".join(f", {quote_ident(k)}" for k in rdef.by)
        summable = rdef.additive + distinct
        for grain, starts in periods.items():
            if grain is Grain.day or not starts:
                continue
            con.execute(f"CREATE OR REPLACE TEMP TABLE old AS SELECT * EXCLUDE (grain) FROM stored "
                        f"WHERE grain = {sql_literal(grain.value)}")
            period = coarser_sql(rdef, grain)
            sums = ", ".join(f"SUM(COALESCE({quote_ident(m)}, 0)) AS {quote_ident(m)}" for m in summable)
            only = lambda picked, negate=False: ", ".join(  # noqa: E731
                (f"-{quote_ident(m)}" if negate else quote_ident(m)) + f" AS {quote_ident(m)}" if m in picked else f"NULL AS {quote_ident(m)}"
                for m in summable)
            branches = [f"SELECT period{by}, {only(summable)}, FALSE AS live, FALSE AS gone FROM old",
                        f"SELECT {period} AS period{by}, {only(rdef.additive, True)}, FALSE, TRUE FROM old_days",
                        f"SELECT {period} AS period{by}, {only(rdef.additive)}, TRUE, FALSE FROM new_days"]
            for measure in distinct:
                con.register(f"change_{len(branches)}", counted[measure][grain].rename_columns(
                    [*keys, measure]))
                branches.append(f"SELECT period{by}, {only([measure])}, FALSE, FALSE FROM change_{len(branches)}")
            listed = f"({date_list(starts)})"
            summed = con.execute(
                f"SELECT period{by}, {sums}, bool_or(live) AS live, bool_or(gone) AS gone FROM ("
                + " UNION ALL ".join(branches) + f") WHERE period IN {listed} GROUP BY ALL").to_arrow_table()
            summed = _existing(con, warehouse, rdef, grain, summed, days)
            summed = summed.cast(pa.schema([(new_days.schema.field(n) if n in new_days.schema.names
                                             else stored.schema.field(n)) for n in summed.column_names]))
            if live_measures:
                first, last = min(starts), rdef.period_end(max(starts), grain)
                other = live_rows(engine, rdef, grain, first, last, live_measures)
                summed = _join(con, [summed, other.filter(in_periods(other["period"], starts))], keys)
            result[grain] = summed
    finally:
        con.close()
    return result, stored


def delta_in_place(warehouse, rdef: RollupDef, days: list[dt.date], day_rows: pa.Table,
                   periods: dict[Grain, list[dt.date]], counted: dict
                   ) -> tuple[dict[Grain, pa.Table], dict[Grain, pa.Table]]:
    """DuckDB: the rows an incremental build changes, worked out next to the stored ones.

    `day_rows` are the changed days' rows, live, with every base measure; `counted` (measure ->
    grain -> keys gained minus lost per period and dimensions, see `keys`) covers every measure
    that isn't a sum or a count. A coarser row's change is what the changed days add minus what
    they held; only rows that change are read from the table, and only they are written: returns,
    per grain, the new and changed rows, and the (period, dimensions) of stored rows they replace
    or that are gone (a row whose every day row is gone).
    """
    table = quote_ident(rdef.table)
    by = "".join(f", {quote_ident(k)}" for k in rdef.by)
    measures = rdef.base_names
    cols = ", ".join(quote_ident(m) for m in measures)
    listed = date_list(days)
    types = pa.schema([day_rows.schema.field(n) for n in ["period", *rdef.by, *measures]])
    con = scratch_connection(warehouse)
    rows, doomed = {}, {}
    try:
        con.register("new_days", day_rows.select(types.names))
        con.execute(f"CREATE TEMP TABLE old_days AS SELECT period_start AS period{by}, {cols} FROM {table} "
                    f"WHERE grain = 'day' AND period_start IN ({listed})")
        # the day rows that differ, on each side: those alone move a coarser row (the rest cancel out)
        for name, (a, b) in {"added": ("new_days", "old_days"), "removed": ("old_days", "new_days")}.items():
            con.register(name, con.execute(f"SELECT period{by}, {cols} FROM {a} EXCEPT "
                                           f"SELECT period{by}, {cols} FROM {b}").to_arrow_table())
        if Grain.day in periods:
            rows[Grain.day] = con.execute("SELECT * FROM added").to_arrow_table().cast(types)
            doomed[Grain.day] = con.execute(f"SELECT period{by} FROM removed").to_arrow_table()
        coarse = [(g, starts) for g, starts in periods.items() if g is not Grain.day and starts]
        if not coarse:
            return rows, doomed
        summable = rdef.additive + [m for m in measures if m in counted]
        only = lambda picked, negate=False: ", ".join(  # noqa: E731
            (f"-{quote_ident(m)}" if negate else quote_ident(m)) + f" AS {quote_ident(m)}" if m in picked else f"NULL AS {quote_ident(m)}" for m in summable)
        branches = []
        for grain, _ in coarse:
            label, period = sql_literal(grain.value), coarser_sql(rdef, grain)
            branches += [f"SELECT {label} AS grain, {period} AS period{by}, {only(rdef.additive)}, "
                         f"TRUE AS live, FALSE AS gone FROM added",
                         f"SELECT {label}, {period}{by}, {only(rdef.additive, True)}, FALSE, TRUE FROM removed"]
            for measure in counted:
                name = f"change_{len(branches)}"
                con.register(name, counted[measure][grain].rename_columns(["period", *rdef.by, measure]))
                branches.append(f"SELECT {label}, period{by}, {only([measure])}, FALSE, FALSE FROM {name}")
        sums = ", ".join(f"SUM(COALESCE({quote_ident(m)}, 0)) AS {quote_ident(m)}" for m in summable)
        # intermediate rows travel as Arrow: a temporary table costs more to write than they to read
        con.register("delta", con.execute(
            f"SELECT grain, period{by}, {sums}, bool_or(live) AS live, bool_or(gone) AS gone "
            f"FROM ({' UNION ALL '.join(branches)}) GROUP BY ALL").to_arrow_table())
        match = "".join(f" AND {null_safe_match('s', 'd', [k])}" for k in rdef.by)
        moved = " OR ".join(f"d.{quote_ident(m)} <> 0" for m in summable) or "FALSE"
        # one branch per grain with its exact periods: the database skips the other stored blocks
        stored = " UNION ALL ".join(
            f"SELECT grain, period_start{by}, {', '.join(quote_ident(m) for m in summable)} FROM {table} "
            f"WHERE grain = {sql_literal(g.value)} AND period_start IN ({date_list(starts)})" for g, starts in coarse)
        merged = con.execute(
            f"SELECT d.grain, d.period{''.join(f', d.{quote_ident(k)}' for k in rdef.by)}, "
            + ", ".join(f"COALESCE(s.{quote_ident(m)}, 0) + d.{quote_ident(m)} AS {quote_ident(m)}" for m in summable)
            + f", s.period_start IS NULL AS fresh, ({moved}) AS moved, d.gone AND NOT d.live AS doubtful, "
            f"FALSE AS vanished FROM delta AS d LEFT JOIN ({stored}) AS s ON s.grain = d.grain AND "
            f"s.period_start = d.period{match} WHERE s.period_start IS NULL OR ({moved}) OR (d.gone AND NOT d.live)"
        ).to_arrow_table()
        doubtful = set(pc.unique(merged.filter(merged["doubtful"])["grain"]).to_pylist())
        if doubtful:   # rare (a row lost every day row it had): worked out in the database
            con.register("merged_rows", merged)
            con.execute("CREATE TEMP TABLE merged AS SELECT * FROM merged_rows")
            for grain, starts in coarse:
                if grain.value in doubtful:
                    _mark_vanished(con, rdef, grain, starts, listed)
            merged = con.execute("SELECT * FROM merged").to_arrow_table()
        vanished, fresh, moved = merged["vanished"], merged["fresh"], merged["moved"]
        # every grain in one table each, split here
        kept = merged.filter(pc.and_(pc.invert(vanished), pc.or_(fresh, moved)))
        gone = merged.filter(pc.and_(pc.invert(fresh), pc.or_(moved, vanished)))
        shape = pa.schema([types.field(n) for n in ["period", *rdef.by, *summable]])
        for grain, _ in coarse:
            rows[grain] = of_grain(kept.select(["grain", *shape.names]), grain).cast(shape)
            doomed[grain] = of_grain(gone.select(["grain", "period", *rdef.by]), grain)
    finally:
        con.close()
    return rows, doomed


def _mark_vanished(con, rdef: RollupDef, grain: Grain, starts: list[dt.date], days: str) -> None:
    """Rows of `grain` in `merged` that lost a day row and have none left: neither the period's
    stored days outside the changed ones nor the changed days' live rows have their dimensions."""
    label = sql_literal(grain.value)
    by = "".join(f", {quote_ident(k)}" for k in rdef.by)
    first, last = date_list([starts[0]]), date_list([rdef.period_end(starts[-1], grain)])
    match = "".join(f" AND {null_safe_match('o', 'm', [k])}" for k in rdef.by)
    con.execute(
        f"UPDATE merged AS m SET vanished = TRUE WHERE m.grain = {label} AND m.doubtful AND NOT EXISTS "
        f"(SELECT 1 FROM (SELECT {coarser_sql(rdef, grain)} AS period{by} FROM (SELECT period_start AS period{by} "
        f"FROM {quote_ident(rdef.table)} WHERE grain = 'day' AND period_start >= {first} AND period_start < {last} "
        f"AND period_start NOT IN ({days}) UNION ALL SELECT period{by} FROM new_days)) AS o "
        f"WHERE o.period = m.period{match})")


def compare_rows(rdef: RollupDef, stored: pa.Table, rows: dict[Grain, pa.Table], warehouse=None):
    """Per grain, new rows against the stored ones (every dimension and base measure compared):
    (periods whose rows all equal the stored ones, the new rows that are new or differ, the
    (period, dimensions) of stored rows that differ or are gone). `stored`: grain, period,
    dimensions and every base measure of the periods in `rows`."""
    con = scratch_connection(warehouse)
    found = {}
    try:
        con.register("stored", stored)
        keys = ["period", *rdef.by]
        on = null_safe_match("n", "s", keys)
        differs = " OR ".join(f"n.{quote_ident(m)} IS DISTINCT FROM s.{quote_ident(m)}" for m in rdef.base_names)
        for grain, table in rows.items():
            con.register("new", table)
            con.execute("CREATE OR REPLACE TEMP TABLE old AS SELECT * FROM stored WHERE grain = ?", [grain.value])
            changed = con.execute(f"SELECT n.* FROM new AS n LEFT JOIN old AS s ON {on} "
                                  f"WHERE s.period IS NULL OR {differs}").to_arrow_table().cast(table.schema)
            gone = con.execute(f"SELECT {', '.join(f's.{quote_ident(k)}' for k in keys)} FROM old AS s LEFT JOIN new AS n "
                               f"ON {on} WHERE n.period IS NULL OR {differs}").to_arrow_table()
            touched = set(pc.unique(table["period"].cast(pa.date32())).to_pylist()) | {
                r[0] for r in con.execute("SELECT DISTINCT period FROM old").fetchall()}
            moved = set(pc.unique(changed["period"].cast(pa.date32())).to_pylist()) | set(
                pc.unique(gone["period"].cast(pa.date32())).to_pylist())
            found[grain] = (touched - moved, changed, gone)
            con.unregister("new")
    finally:
        con.close()
    return found


def of_grain(rows: pa.Table, grain: Grain) -> pa.Table:
    """The rows of one grain from rows of several (a `grain` column), without that column."""
    return rows.filter(pc.equal(rows["grain"], grain.value)).drop_columns(["grain"])


def in_periods(column, starts: list[dt.date]):
    """A mask: which rows' period (a date column) is one of `starts`."""
    return pc.is_in(column.cast(pa.date32()), value_set=pa.array(starts, pa.date32()))


def _existing(con, warehouse, rdef: RollupDef, grain: Grain, summed: pa.Table, days: list[dt.date]) -> pa.Table:
    """Drop the period rows whose every day row is gone: lost rows on changed days, none elsewhere."""
    doubtful = summed.filter(pc.and_(summed["gone"], pc.invert(summed["live"])))
    keep = summed
    if doubtful.num_rows:
        first = min(doubtful["period"].to_pylist())
        last = rdef.period_end(max(doubtful["period"].to_pylist()), grain)
        others = _stored_span(warehouse, rdef, first, last, days)
        con.register("others", others)
        con.register("summed", summed)
        period = coarser_sql(rdef, grain)
        match = " AND ".join(["o.period = s.period"] + [null_safe_match("o", "s", [k]) for k in rdef.by])
        keep = con.execute(
            f"SELECT s.* FROM summed AS s WHERE s.live OR NOT s.gone OR EXISTS "
            f"(SELECT 1 FROM (SELECT {period} AS period, * EXCLUDE (period) FROM others) AS o WHERE {match})"
        ).to_arrow_table()
    return keep.drop_columns(["live", "gone"])


def _stored(warehouse, rdef: RollupDef, wanted: dict[Grain, list[dt.date]], columns: list[str]) -> pa.Table:
    """Stored rows of these (grain, period starts), in one read: grain, period, dimensions, `columns`.

    One branch per grain (UNION ALL), each with its period range as well as the exact starts, so
    the database skips the stored blocks outside the range (an OR of the grains would scan all).
    """
    import ibis

    table = warehouse.table(rdef.table)
    picked = [table.grain, table.period_start.name("period"), *[table[k] for k in rdef.by],
              *[table[c] for c in columns]]
    branches = [table.filter(table.grain == grain.value, table.period_start.between(min(starts), max(starts)),
                             table.period_start.isin(starts)).select(*picked)
                for grain, starts in wanted.items() if starts]
    if not branches:
        return warehouse.run(warehouse.compile(table.select(*picked).limit(0)))
    return warehouse.run(warehouse.compile(ibis.union(*branches, distinct=False) if len(branches) > 1
                                           else branches[0]))


def _stored_span(warehouse, rdef: RollupDef, first: dt.date, last: dt.date, days: list[dt.date]) -> pa.Table:
    """Stored day rows (period and dimensions) in [first, last) on days that did not change."""
    table = warehouse.table(rdef.table)
    expr = table.filter(table.grain == Grain.day.value, table.period_start >= first, table.period_start < last,
                        ~table.period_start.isin(days))
    return warehouse.run(warehouse.compile(expr.select(table.period_start.name("period"),
                                                       *[table[k] for k in rdef.by]).distinct()))

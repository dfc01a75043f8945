"""The incremental build by difference: coarser periods brought up to date from the changed days.

Two ways, chosen by `rows_by_difference`:
- `delta_in_place` (a warehouse DuckDB works beside, `Dialect.local_duckdb`, when no measure needs
  a live query): the changed day rows are compared with the stored ones next to the table; only
  rows that change are read, written and deleted.
- `delta_rows` (elsewhere): the touched periods' stored rows come over and are updated as old
  sums − old changed days + new days; `skip_unchanged` then leaves out what comes out as stored.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from tally.engine.timegrid import Grain
from tally.rollups.definition import RollupDef
from tally.rollups.keywork import KeyWork, key_changes
from tally.rollups.rows import coarser_sql, in_periods, join_on_keys, live_rows, of_grain
from tally.warehouse.sqltext import date_list, null_safe_match, quote_ident, scratch_connection, sql_literal

Replaced = dict[Grain, pa.Table]   # per grain, the (period, dimensions) of stored rows to delete one by one


def rows_by_difference(engine, rollup_def: RollupDef, periods: dict[Grain, list[dt.date]], days: set[dt.date],
                       day_rows: pa.Table, work: KeyWork | None, progress
                       ) -> tuple[dict[Grain, pa.Table], Replaced | None] | None:
    """The rows an incremental build stores, from the changed `days` (their live rows `day_rows`,
    every base measure) and the stored rows; None when the sums aren't exact (then every touched
    period is queried live). Returns the rows per grain and, when known, the stored rows they
    replace (else whole periods are replaced); drops from `periods` those found unchanged."""
    if not can_delta(rollup_def, day_rows):
        return None
    warehouse = engine.warehouse
    progress(rollup_def.name, 0.3, f"day: {len(periods[Grain.day])} periods")
    changed = sorted(days)
    new_days = day_rows.filter(in_periods(day_rows["period"], changed))
    counted = key_changes(rollup_def, work, periods) if work and work.swaps_days else {}
    if warehouse.dialect.local_duckdb and not rollup_def.rollup.growth and set(rollup_def.non_additive) <= set(counted):
        return delta_in_place(warehouse, rollup_def, changed, new_days, periods, counted)
    coarse, stored = delta_rows(engine, warehouse, rollup_def, changed, new_days, periods, counted)
    rows = {g: day_rows if g is Grain.day else coarse[g] for g in periods}
    replaced = None
    if not rollup_def.rollup.growth and set(rollup_def.base_names) <= set(stored.column_names):
        replaced = skip_unchanged(rollup_def, periods, rows, stored, warehouse)
    return rows, replaced


def skip_unchanged(rollup_def: RollupDef, periods: dict, rows: dict[Grain, pa.Table], stored: pa.Table,
                   warehouse) -> Replaced | None:
    """Leave out what comes out as stored (a changed day whose numbers didn't move): it is neither
    deleted nor written again, and keeps its `built_at`.

    By period everywhere (`periods` loses the unchanged ones); where DuckDB works beside the
    warehouse also by row: `rows` keeps only new and changed rows, and the stored rows they replace
    or that are gone are returned (period, dimensions) per grain, to be deleted one by one.
    """
    replaced, by_row = {}, warehouse.dialect.local_duckdb
    for grain, (same, changed, gone) in compare_rows(rollup_def, stored, rows, warehouse).items():
        if same:
            periods[grain] = [p for p in periods[grain] if p not in same]
        if by_row:
            rows[grain], replaced[grain] = changed, gone
        elif same:
            rows[grain] = rows[grain].filter(pc.invert(in_periods(rows[grain]["period"], sorted(same))))
    return replaced if by_row else None


def can_delta(rollup_def: RollupDef, day_rows: pa.Table) -> bool:
    """Coarser periods can be updated by difference: the rollup stores days and its sums are exact."""
    if Grain.day not in rollup_def.grains or not rollup_def.additive:
        return False
    exact = lambda t: pa.types.is_integer(t) or pa.types.is_decimal(t)  # noqa: E731
    return all(exact(day_rows.schema.field(m).type) for m in rollup_def.additive)


def delta_rows(engine, warehouse, rollup_def: RollupDef, days: list[dt.date], new_days: pa.Table,
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

    (Long: one UNION per grain over the scratch connection's registered tables, named in the SQL.)
    """
    keys = ["period", *rollup_def.by]
    counted = counted or {}
    distinct = [m for m in rollup_def.non_additive if m in counted]
    live_measures = [m for m in rollup_def.non_additive if m not in counted]
    wanted = {Grain.day: days, **{g: starts for g, starts in periods.items() if g is not Grain.day and starts}}
    stored = _stored(warehouse, rollup_def, wanted, rollup_def.additive + distinct)
    con = scratch_connection(warehouse)
    result = {}
    try:
        con.register("new_days", new_days.select(["period", *rollup_def.by, *rollup_def.additive]))
        con.register("stored", stored)
        con.execute("CREATE TEMP TABLE old_days AS SELECT * EXCLUDE (grain) FROM stored WHERE grain = 'day'")
        by = "".join(f", {quote_ident(k)}" for k in rollup_def.by)
        summable = rollup_def.additive + distinct
        for grain, starts in periods.items():
            if grain is Grain.day or not starts:
                continue
            con.execute(f"CREATE OR REPLACE TEMP TABLE old AS SELECT * EXCLUDE (grain) FROM stored "
                        f"WHERE grain = {sql_literal(grain.value)}")
            period = coarser_sql(rollup_def, grain)
            sums = ", ".join(f"SUM(COALESCE({quote_ident(m)}, 0)) AS {quote_ident(m)}" for m in summable)
            only = lambda picked, negate=False: _picked(summable, picked, negate)  # noqa: E731
            branches = [f"SELECT period{by}, {only(summable)}, FALSE AS live, FALSE AS gone FROM old",
                        f"SELECT {period} AS period{by}, {only(rollup_def.additive, True)}, FALSE, TRUE FROM old_days",
                        f"SELECT {period} AS period{by}, {only(rollup_def.additive)}, TRUE, FALSE FROM new_days"]
            for measure in distinct:
                con.register(f"change_{len(branches)}", counted[measure][grain].rename_columns(
                    [*keys, measure]))
                branches.append(f"SELECT period{by}, {only([measure])}, FALSE, FALSE FROM change_{len(branches)}")
            listed = f"({date_list(starts)})"
            summed = con.execute(
                f"SELECT period{by}, {sums}, bool_or(live) AS live, bool_or(gone) AS gone FROM ("
                + " UNION ALL ".join(branches) + f") WHERE period IN {listed} GROUP BY ALL").to_arrow_table()
            summed = _existing(con, warehouse, rollup_def, grain, summed, days)
            summed = summed.cast(pa.schema([(new_days.schema.field(n) if n in new_days.schema.names
                                             else stored.schema.field(n)) for n in summed.column_names]))
            if live_measures:
                first, last = min(starts), rollup_def.period_end(max(starts), grain)
                other = live_rows(engine, rollup_def, grain, first, last, live_measures)
                summed = join_on_keys(con, [summed, other.filter(in_periods(other["period"], starts))], keys)
            result[grain] = summed
    finally:
        con.close()
    return result, stored


def delta_in_place(warehouse, rollup_def: RollupDef, days: list[dt.date], day_rows: pa.Table,
                   periods: dict[Grain, list[dt.date]], counted: dict
                   ) -> tuple[dict[Grain, pa.Table], Replaced]:
    """Beside a DuckDB warehouse: the rows an incremental build changes, worked out next to the stored ones.

    `day_rows` are the changed days' rows, live, with every base measure; `counted` (measure ->
    grain -> keys gained minus lost per period and dimensions, see `keys`) covers every measure
    that isn't a sum or a count. A coarser row's change is what the changed days add minus what
    they held; only rows that change are read from the table, and only they are written: returns,
    per grain, the new and changed rows, and the (period, dimensions) of stored rows they replace
    or that are gone (a row whose every day row is gone).

    (Long: its steps share the scratch connection's temporary tables, named in the SQL.)
    """
    table = quote_ident(rollup_def.table)
    by = "".join(f", {quote_ident(k)}" for k in rollup_def.by)
    measures = rollup_def.base_names
    cols = ", ".join(quote_ident(m) for m in measures)
    listed = date_list(days)
    types = pa.schema([day_rows.schema.field(n) for n in ["period", *rollup_def.by, *measures]])
    con = scratch_connection(warehouse)
    rows, replaced = {}, {}
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
            replaced[Grain.day] = con.execute(f"SELECT period{by} FROM removed").to_arrow_table()
        coarse = [(g, starts) for g, starts in periods.items() if g is not Grain.day and starts]
        if not coarse:
            return rows, replaced
        summable = rollup_def.additive + [m for m in measures if m in counted]
        only = lambda picked, negate=False: _picked(summable, picked, negate)  # noqa: E731
        branches = []
        for grain, _ in coarse:
            label, period = sql_literal(grain.value), coarser_sql(rollup_def, grain)
            branches += [f"SELECT {label} AS grain, {period} AS period{by}, {only(rollup_def.additive)}, "
                         f"TRUE AS live, FALSE AS gone FROM added",
                         f"SELECT {label}, {period}{by}, {only(rollup_def.additive, True)}, FALSE, TRUE FROM removed"]
            for measure in counted:
                name = f"change_{len(branches)}"
                con.register(name, counted[measure][grain].rename_columns(["period", *rollup_def.by, measure]))
                branches.append(f"SELECT {label}, period{by}, {only([measure])}, FALSE, FALSE FROM {name}")
        sums = ", ".join(f"SUM(COALESCE({quote_ident(m)}, 0)) AS {quote_ident(m)}" for m in summable)
        # intermediate rows travel as Arrow: a temporary table costs more to write than they to read
        con.register("delta", con.execute(
            f"SELECT grain, period{by}, {sums}, bool_or(live) AS live, bool_or(gone) AS gone "
            f"FROM ({' UNION ALL '.join(branches)}) GROUP BY ALL").to_arrow_table())
        match = "".join(f" AND {null_safe_match('s', 'd', [k])}" for k in rollup_def.by)
        moved = " OR ".join(f"d.{quote_ident(m)} <> 0" for m in summable) or "FALSE"
        # one branch per grain with its exact periods: the database skips the other stored blocks
        stored = " UNION ALL ".join(
            f"SELECT grain, period_start{by}, {', '.join(quote_ident(m) for m in summable)} FROM {table} "
            f"WHERE grain = {sql_literal(g.value)} AND period_start IN ({date_list(starts)})" for g, starts in coarse)
        merged = con.execute(
            f"SELECT d.grain, d.period{''.join(f', d.{quote_ident(k)}' for k in rollup_def.by)}, "
            + ", ".join(f"COALESCE(s.{quote_ident(m)}, 0) + d.{quote_ident(m)} AS {quote_ident(m)}" for m in summable)
            + f", s.period_start IS NULL AS is_new, ({moved}) AS moved, d.gone AND NOT d.live AS doubtful, "
            f"FALSE AS vanished FROM delta AS d LEFT JOIN ({stored}) AS s ON s.grain = d.grain AND "
            f"s.period_start = d.period{match} WHERE s.period_start IS NULL OR ({moved}) OR (d.gone AND NOT d.live)"
        ).to_arrow_table()
        doubtful = set(pc.unique(merged.filter(merged["doubtful"])["grain"]).to_pylist())
        if doubtful:   # rare (a row lost every day row it had): worked out in the database
            con.register("merged_rows", merged)
            con.execute("CREATE TEMP TABLE merged AS SELECT * FROM merged_rows")
            for grain, starts in coarse:
                if grain.value in doubtful:
                    _mark_vanished(con, rollup_def, grain, starts, listed)
            merged = con.execute("SELECT * FROM merged").to_arrow_table()
        vanished, is_new, moved = merged["vanished"], merged["is_new"], merged["moved"]
        # every grain in one table each, split here
        kept = merged.filter(pc.and_(pc.invert(vanished), pc.or_(is_new, moved)))
        gone = merged.filter(pc.and_(pc.invert(is_new), pc.or_(moved, vanished)))
        shape = pa.schema([types.field(n) for n in ["period", *rollup_def.by, *summable]])
        for grain, _ in coarse:
            rows[grain] = of_grain(kept.select(["grain", *shape.names]), grain).cast(shape)
            replaced[grain] = of_grain(gone.select(["grain", "period", *rollup_def.by]), grain)
    finally:
        con.close()
    return rows, replaced


def _picked(summable: list[str], picked, negate: bool = False) -> str:
    """A UNION branch's measure columns: those `picked` (negated: what a day held and no longer
    adds), NULL for the rest."""
    return ", ".join((f"-{quote_ident(m)}" if negate else quote_ident(m)) + f" AS {quote_ident(m)}"
                     if m in picked else f"NULL AS {quote_ident(m)}" for m in summable)


def _mark_vanished(con, rollup_def: RollupDef, grain: Grain, starts: list[dt.date], days: str) -> None:
    """Rows of `grain` in `merged` that lost a day row and have none left: neither the period's
    stored days outside the changed ones nor the changed days' live rows have their dimensions."""
    label = sql_literal(grain.value)
    by = "".join(f", {quote_ident(k)}" for k in rollup_def.by)
    first, last = date_list([starts[0]]), date_list([rollup_def.period_end(starts[-1], grain)])
    match = "".join(f" AND {null_safe_match('o', 'm', [k])}" for k in rollup_def.by)
    con.execute(
        f"UPDATE merged AS m SET vanished = TRUE WHERE m.grain = {label} AND m.doubtful AND NOT EXISTS "
        f"(SELECT 1 FROM (SELECT {coarser_sql(rollup_def, grain)} AS period{by} FROM (SELECT period_start AS period{by} "
        f"FROM {quote_ident(rollup_def.table)} WHERE grain = 'day' AND period_start >= {first} AND period_start < {last} "
        f"AND period_start NOT IN ({days}) UNION ALL SELECT period{by} FROM new_days)) AS o "
        f"WHERE o.period = m.period{match})")


def compare_rows(rollup_def: RollupDef, stored: pa.Table, rows: dict[Grain, pa.Table], warehouse=None):
    """Per grain, new rows against the stored ones (every dimension and base measure compared):
    (periods whose rows all equal the stored ones, the new rows that are new or differ, the
    (period, dimensions) of stored rows that differ or are gone). `stored`: grain, period,
    dimensions and every base measure of the periods in `rows`."""
    con = scratch_connection(warehouse)
    found = {}
    try:
        con.register("stored", stored)
        keys = ["period", *rollup_def.by]
        on = null_safe_match("n", "s", keys)
        differs = " OR ".join(f"n.{quote_ident(m)} IS DISTINCT FROM s.{quote_ident(m)}" for m in rollup_def.base_names)
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


def _existing(con, warehouse, rollup_def: RollupDef, grain: Grain, summed: pa.Table, days: list[dt.date]) -> pa.Table:
    """Drop the period rows whose every day row is gone: lost rows on changed days, none elsewhere."""
    doubtful = summed.filter(pc.and_(summed["gone"], pc.invert(summed["live"])))
    keep = summed
    if doubtful.num_rows:
        first = min(doubtful["period"].to_pylist())
        last = rollup_def.period_end(max(doubtful["period"].to_pylist()), grain)
        others = _stored_span(warehouse, rollup_def, first, last, days)
        con.register("others", others)
        con.register("summed", summed)
        period = coarser_sql(rollup_def, grain)
        match = " AND ".join(["o.period = s.period"] + [null_safe_match("o", "s", [k]) for k in rollup_def.by])
        keep = con.execute(
            f"SELECT s.* FROM summed AS s WHERE s.live OR NOT s.gone OR EXISTS "
            f"(SELECT 1 FROM (SELECT {period} AS period, * EXCLUDE (period) FROM others) AS o WHERE {match})"
        ).to_arrow_table()
    return keep.drop_columns(["live", "gone"])


def _stored(warehouse, rollup_def: RollupDef, wanted: dict[Grain, list[dt.date]], columns: list[str]) -> pa.Table:
    """Stored rows of these (grain, period starts), in one read: grain, period, dimensions, `columns`.

    One branch per grain (UNION ALL), each with its period range as well as the exact starts, so
    the database skips the stored blocks outside the range (an OR of the grains would scan all).
    """
    import ibis

    table = warehouse.table(rollup_def.table)
    picked = [table.grain, table.period_start.name("period"), *[table[k] for k in rollup_def.by],
              *[table[c] for c in columns]]
    branches = [table.filter(table.grain == grain.value, table.period_start.between(min(starts), max(starts)),
                             table.period_start.isin(starts)).select(*picked)
                for grain, starts in wanted.items() if starts]
    if not branches:
        return warehouse.run(warehouse.compile(table.select(*picked).limit(0)))
    return warehouse.run(warehouse.compile(ibis.union(*branches, distinct=False) if len(branches) > 1
                                           else branches[0]))

def _stored_span(warehouse, rollup_def: RollupDef, first: dt.date, last: dt.date, days: list[dt.date]) -> pa.Table:
    """Stored day rows (period and dimensions) in [first, last) on days that did not change."""
    table = warehouse.table(rollup_def.table)
    expr = table.filter(table.grain == Grain.day.value, table.period_start >= first, table.period_start < last,
                        ~table.period_start.isin(days))
    return warehouse.run(warehouse.compile(expr.select(table.period_start.name("period"),
                                                       *[table[k] for k in rollup_def.by]).distinct()))

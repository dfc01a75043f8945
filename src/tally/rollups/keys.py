"""Stored distinct keys: how a month's or a year's distinct count is brought up to date from changed days.

A distinct count can't be updated by difference from counts alone: whether a customer who ordered
today is new to the year depends on every other day of the year. So a rollup that stores days
keeps, per `count_distinct` measure, the distinct (day, dimensions, key) rows it counted, in an
internal table `_tally_keys_<rollup>_<measure>`. An incremental build then changes a stored count
by what the changed days add and take away:

    new count = stored count − |keys the changed days had and no other day of the period has|
                             + |keys the changed days have now and no other day of the period has|

reading only the changed days' keys and, among the period's other days, just those keys.

The key rows are written in the same transaction as the rollup's rows. Their state
(`rollup-keys:<name>`) says they are complete; a build that finds them incomplete (the first
build, a new definition, an interrupted rewrite) writes them all again before they are used.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import ibis
import pyarrow as pa

from tally.engine.plan import DISTINCT_KEY as KEY
from tally.engine.spec import QuerySpec
from tally.engine.timegrid import Grain
from tally.rollups.definition import RollupDef
from tally.rollups.rows import of_grain, rollup_spec
from tally.warehouse.internal import read_state, write_state
from tally.warehouse.sqltext import (bind_value, date_list, null_safe_match, quote_ident, scratch_connection,
                                     sql_date, sql_literal, warehouse_ident)

MAX_NAME = 60   # PostgreSQL truncates identifiers at 63 bytes, MySQL refuses more than 64


def state_key(rollup_def: RollupDef) -> str:
    return f"rollup-keys:{rollup_def.name}"


def measures(engine, rollup_def: RollupDef) -> list[str]:
    """The rollup's distinct counts that keep key rows: only when it stores days (the keys are per day)."""
    if Grain.day not in rollup_def.grains:
        return []
    catalog = engine.catalog
    return [ref.name for ref in rollup_def.bases
            if ref.measure.aggregation == "count_distinct" and catalog.model(ref.model).time]


def table_name(rollup_def: RollupDef, measure: str) -> str:
    """`_tally_keys_<table>_<measure>_<hash of both>`: the hash keeps `shop` + `daily_orders` apart
    from `shop_daily` + `orders` (the readable part is cut to fit the databases' name limits)."""
    digest = hashlib.sha256(json.dumps([rollup_def.table, measure]).encode()).hexdigest()[:10]
    return f"_tally_keys_{rollup_def.table}_{measure}"[:MAX_NAME - 11] + "_" + digest


def complete(warehouse, rollup_def: RollupDef, fingerprint: str, names: list[str]) -> bool:
    """Whether every key table (of the measures `names`) holds every day, as of the rollup's last
    build of this definition (tables named otherwise by an older version are written again)."""
    text = read_state(warehouse, state_key(rollup_def))
    if not text:
        return False
    state = json.loads(text)
    tables = state.get("tables", [])
    return (state.get("definition") == fingerprint and tables == [table_name(rollup_def, m) for m in names]
            and all(warehouse.has_table(t) for t in tables))


def mark(tx, rollup_def: RollupDef, names: list[str], fingerprint: str | None) -> None:
    """Record the key tables as complete for this definition (inside the build's transaction), or not (None)."""
    value = None if fingerprint is None else json.dumps(
        {"definition": fingerprint, "tables": [table_name(rollup_def, m) for m in names]}, sort_keys=True)
    write_state(tx, state_key(rollup_def), value)


def _spec(rollup_def: RollupDef, start: dt.date, end: dt.date) -> QuerySpec:
    return rollup_spec(rollup_def, Grain.day, start, end)


def live(engine, rollup_def: RollupDef, measure: str, start: dt.date, end: dt.date) -> pa.Table:
    """The measure's distinct (period = local day, dimensions, key) rows over local [start, end), live."""
    part, values = engine.distinct_keys(_spec(rollup_def, start, end), measure)
    return _typed(engine.warehouse.run(part.query, values), part.schema)


def _typed(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """Rows with the key table's column types (a DB-API driver's empty result has none)."""
    return rows if rows.schema.equals(schema) else rows.cast(schema)


def recreate(warehouse, engine, rollup_def: RollupDef, measure: str) -> None:
    """An empty key table shaped like the measure's key rows (DDL: before the build's transaction)."""
    part, _ = engine.distinct_keys(_spec(rollup_def, dt.date(2000, 1, 1), dt.date(2000, 1, 2)), measure)
    name = table_name(rollup_def, measure)
    warehouse.drop_table(name)
    warehouse.ensure_table(name, part.schema)


def insert_all(tx, engine, rollup_def: RollupDef, measure: str, start: dt.date, end: dt.date) -> None:
    """Every key row over [start, end) into the (empty) key table, inside the database, in day order."""
    part, values = engine.distinct_keys(_spec(rollup_def, start, end), measure)
    dialect = tx.dialect
    columns = ", ".join(warehouse_ident(c, dialect) for c in part.schema.names)
    sql = (f"INSERT INTO {warehouse_ident(table_name(rollup_def, measure), dialect)} ({columns}) "
           f"SELECT * FROM ({part.query.sql}) AS k ORDER BY {warehouse_ident('period', dialect)}")
    tx.execute(sql, {name: bind_value(engine.warehouse, values[name]) for name in part.query.params})


def stored_days(warehouse, rollup_def: RollupDef, measure: str, days: list[dt.date]) -> pa.Table:
    """The stored key rows of these days."""
    table = warehouse.table(table_name(rollup_def, measure))
    expr = table.filter(table.period.between(min(days), max(days)), table.period.isin(days))
    return _typed(warehouse.run(warehouse.compile(expr)), table.schema().to_pyarrow())


def elsewhere(engine, rollup_def: RollupDef, measure: str, first: dt.date, last: dt.date, days: list[dt.date]
              ) -> pa.Table:
    """Stored key rows in [first, last) outside `days` of the (dimensions, key) the days had or have
    (PostgreSQL, MySQL: DuckDB reads its stored keys in place, see `changes`). No rows travel to the
    database: the days' stored keys and their live ones (over the days' whole span: more keys than
    those that changed, which does no harm) pick the rows.
    """
    warehouse = engine.warehouse
    table = warehouse.table(table_name(rollup_def, measure))
    picked = [*rollup_def.by, KEY]
    scope = table.filter(table.period >= first, table.period < last, ~table.period.isin(days))
    had = table.filter(table.period.between(min(days), max(days)), table.period.isin(days)).select(picked)
    have = engine.distinct_keys_expr(_spec(rollup_def, min(days), max(days) + dt.timedelta(days=1)), measure)
    wanted = ibis.union(had, have.select(picked).cast(had.schema()), distinct=True)
    on = [scope[k].identical_to(wanted[k]) for k in picked]
    return _typed(warehouse.run(warehouse.compile(scope.semi_join(wanted, on))), table.schema().to_pyarrow())


def replace_days(tx, rollup_def: RollupDef, measure: str, days: list[dt.date], rows: pa.Table) -> None:
    """Swap the key rows of `days` for `rows` (inside the build's transaction)."""
    tx.delete_in(table_name(rollup_def, measure), "period", days)
    tx.insert_arrow(table_name(rollup_def, measure), rows)


def changes(engine, rollup_def: RollupDef, measure: str, days: list[dt.date], new: pa.Table,
            coarse: dict[Grain, tuple[list[dt.date], str]]) -> tuple[dict[Grain, pa.Table], list[dt.date]]:
    """What the changed `days` (their live key rows `new`) do to the coarser periods' distinct counts.

    Returns, per grain of `coarse` (grain -> (touched period starts, SQL turning a day column
    `period` into its period start)), the keys gained minus lost per (period, dimensions), and the
    days whose key rows differ from the stored ones (the only ones to swap). Only keys whose rows
    differ matter: a key the period has on another day counts either way; otherwise it counts when
    a changed day has it now, and counted when a changed day had it.

    On DuckDB the stored keys are read where they lie (the scratch connection is the warehouse's);
    elsewhere the days' stored keys and the other days' rows of the keys that matter come over.

    (Long: its steps share the scratch connection's temporary tables, named in the SQL.)
    """
    warehouse = engine.warehouse
    in_place = warehouse.dialect.local_duckdb
    con = scratch_connection(warehouse)
    picked = [*rollup_def.by, KEY]
    cols = ", ".join(quote_ident(c) for c in picked)
    try:
        if in_place:
            stored = quote_ident(table_name(rollup_def, measure))
            listed = date_list(days)
            con.execute(f"CREATE TEMP TABLE old_keys AS SELECT * FROM {stored} WHERE period IN ({listed})")
            con.execute(f"CREATE TEMP TABLE new_keys AS SELECT * FROM {stored} LIMIT 0")
            con.register("new_rows", new)
            con.execute("INSERT INTO new_keys BY NAME SELECT * FROM new_rows")
            con.unregister("new_rows")
        else:
            old = stored_days(warehouse, rollup_def, measure, days)
            con.register("old_keys", old)
            con.register("new_keys", new.cast(old.schema))
        con.execute("CREATE TEMP TABLE diff AS SELECT * FROM "
                    "(SELECT * FROM new_keys EXCEPT SELECT * FROM old_keys) UNION ALL "
                    "SELECT * FROM (SELECT * FROM old_keys EXCEPT SELECT * FROM new_keys)")
        swap = [row[0] for row in con.execute("SELECT DISTINCT period FROM diff ORDER BY 1").fetchall()]
        if not swap or not coarse:
            return {}, swap
        match = lambda a, b, keys: null_safe_match(a, b, keys, exact=(KEY, "period"))  # noqa: E731
        first = min(starts[0] for starts, _ in coarse.values())
        last = max(rollup_def.period_end(starts[-1], g) for g, (starts, _) in coarse.items())
        if in_place:   # keys never NULL: the equality lets DuckDB skip the blocks outside the wanted keys
            con.execute(f"CREATE TEMP TABLE other_keys AS SELECT k.* FROM {stored} AS k SEMI JOIN "
                        f"(SELECT DISTINCT {cols} FROM diff) AS w ON {match('k', 'w', picked)} "
                        f"WHERE k.period >= {sql_date(first)} AND k.period < {sql_date(last)} AND k.period NOT IN ({listed})")
        else:
            con.register("other_keys", elsewhere(engine, rollup_def, measure, first, last, days).cast(old.schema))
        for name in ("old", "new"):   # just the rows of the keys that matter
            con.execute(f"CREATE TEMP TABLE {name}_few AS SELECT k.* FROM {name}_keys AS k "
                        f"SEMI JOIN diff AS d ON {match('k', 'd', picked)}")
        branches = []
        for grain, (starts, coarser) in coarse.items():
            at = lambda table: f"SELECT DISTINCT {coarser} AS period, {cols} FROM {table}"  # noqa: E731
            listed_starts = date_list(starts)
            branches.append(
                f"SELECT {sql_literal(grain.value)} AS grain, c.period"
                f"{''.join(f', c.{quote_ident(k)}' for k in rollup_def.by)}, "
                f"CAST(SUM((n.period IS NOT NULL)::INT - (o.period IS NOT NULL)::INT) AS BIGINT) AS change "
                f"FROM (SELECT * FROM ({at('diff')}) AS c ANTI JOIN ({at('other_keys')}) AS u "
                f"ON {match('c', 'u', ['period', *picked])}) AS c "
                f"LEFT JOIN ({at('new_few')}) AS n ON {match('c', 'n', ['period', *picked])} "
                f"LEFT JOIN ({at('old_few')}) AS o ON {match('c', 'o', ['period', *picked])} "
                f"WHERE c.period IN ({listed_starts}) GROUP BY ALL HAVING SUM((n.period IS NOT NULL)::INT - "
                f"(o.period IS NOT NULL)::INT) <> 0")
        # every grain in one statement: one pass of the database's planning and scheduling
        found = con.execute(" UNION ALL ".join(branches)).to_arrow_table()
        return {grain: of_grain(found, grain) for grain in coarse}, swap
    finally:
        con.close()

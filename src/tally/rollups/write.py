"""The write: a build's rows and state replace the stored periods in one transaction (DDL before it)."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from tally.engine.timegrid import Grain
from tally.rollups.definition import RollupDef
from tally.rollups.state import RollupState, put_state
from tally.warehouse.sqltext import null_safe_match, warehouse_ident

NARROW = 18          # DECIMAL(18, s) is a 64-bit integer to the database; DECIMAL(38, s) a 128-bit one
HEADROOM = 10 ** 3   # a new table's sums stay narrow when they fit a thousand times over


def write_rows(warehouse, rollup_def: RollupDef, tables: dict[Grain, pa.Table], periods, state: RollupState | None,
               exists: bool, in_transaction: Callable | None = None,
               replaced: dict[Grain, pa.Table] | None = None) -> int:
    """Replace the periods built (or everything, for a full build) and the state, in one transaction.

    With no state to keep (`state` None: a range build of a new rollup) the next build is a full one.
    `in_transaction(tx)` writes more in the same transaction (the key rows); `replaced`: the stored
    rows to delete one by one (else whole periods are).
    Each grain's rows are let go once written (`tables` ends empty): a full build holds millions.

    (Long: one transaction, from the delete to the state, reads best in one place.)
    """
    schema = pa.unify_schemas([t.schema for t in tables.values()], promote_options="permissive")
    dialect = warehouse.dialect
    if exists and set(warehouse.columns_of(rollup_def.table)) != set(schema.names):
        if periods is None:   # a full build of a changed definition: the table takes the new shape
            warehouse.drop_table(rollup_def.table)
            exists = False
        else:
            warehouse.add_missing_columns(rollup_def.table, schema)
    schema = storage_schema(warehouse, rollup_def.table, schema, tables, exists)
    if not exists:
        warehouse.ensure_table(rollup_def.table, schema)
    table = warehouse_ident(rollup_def.table, dialect)
    with warehouse.transaction() as tx:
        if periods is None:
            tx.execute(f"DELETE FROM {table}")
        elif replaced is not None:   # beside DuckDB: just the replaced rows, every grain in one statement
            gone = [t.append_column("grain", pa.repeat(pa.scalar(g.value), t.num_rows))
                    for g, t in replaced.items() if t.num_rows]
            if gone:
                tx.con.register("__tally_replaced", pa.concat_tables(gone, promote_options="permissive"))
                match = "".join(f" AND {null_safe_match('t', 'd', [k])}" for k in rollup_def.by)
                tx.execute(f"DELETE FROM {table} AS t USING __tally_replaced AS d WHERE t.grain = d.grain "
                           f"AND t.period_start = d.period{match}")
                tx.con.unregister("__tally_replaced")
        else:
            for grain, starts in periods.items():
                tx.delete_in(rollup_def.table, "period_start", starts, grain=grain.value)
        # some periods beside DuckDB: one insert (a full build goes grain by grain)
        if periods is not None and len(tables) > 1 and dialect.local_duckdb:
            tables = {None: pa.concat_tables([t if t.schema.equals(schema) else t.cast(schema)
                                              for t in tables.values()])}
        written = 0
        for grain in list(tables):
            rows = tables.pop(grain)
            # stored in (grain, period) order: a later read of some periods skips the other blocks;
            # the database casts to the stored types as it inserts (no Arrow cast before it)
            tx.insert_arrow(rollup_def.table, rows, order_by="period_start")
            written += rows.num_rows
            del rows
        if in_transaction is not None:
            in_transaction(tx)
        if state is not None:
            put_state(tx, rollup_def, state)
    warehouse.forget(rollup_def.table)
    return written


def storage_schema(warehouse, name: str, schema: pa.Schema, tables: dict[Grain, pa.Table],
                    exists: bool) -> pa.Schema:
    """Sums of money stored as DECIMAL(18, s) while they fit: DuckDB reads those ~8x faster than
    the DECIMAL(38, s) sums arrive as (what an incremental build and a routed query read back).

    A new table is narrow where its values fit with room to spare; a later value too wide for a
    narrow column widens the column first (ALTER TABLE), so nothing is ever cut. The database
    casts the values as they are inserted. Returns the schema to create a new table with.
    """
    stored = {f.name: f.type for f in warehouse.table(name).schema().to_pyarrow()} if exists else {}
    fields = []
    for column in schema:
        kind = column.type
        if not pa.types.is_decimal(kind) or kind.precision <= NARROW or kind.scale > 6:
            fields.append(column)
            continue
        limit = 10 ** (NARROW - kind.scale)
        extremes = [pc.min_max(t[column.name]).as_py() for t in tables.values() if column.name in t.column_names]
        top = max([abs(v) for e in extremes for v in e.values() if v is not None] or [0])
        if exists:
            kept = stored.get(column.name)
            if pa.types.is_decimal(kept) and kept.precision <= NARROW and top >= limit:
                _widen(warehouse, name, column.name, kind)
            fields.append(column)
        else:
            fields.append(column.with_type(pa.decimal128(NARROW, kind.scale)) if top * HEADROOM < limit else column)
    return pa.schema(fields)


def _widen(warehouse, name: str, column: str, kind: pa.Decimal128Type) -> None:
    """ALTER a narrow decimal column of a rollup table to `kind` (DDL: before the build's transaction)."""
    dialect = warehouse.dialect
    warehouse.execute_sql(dialect.change_column_type(warehouse_ident(name, dialect), warehouse_ident(column, dialect),
                                                     dialect.decimal(kind.precision, kind.scale)))
    warehouse.forget(name)

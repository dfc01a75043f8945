"""A ledger's table (one row per entity) and its state row: written in one transaction, read back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import pyarrow as pa

from tally.ledgers.definition import LedgerDef
from tally.warehouse.internal import ensure_internal_tables, now, read_state, write_state
from tally.warehouse.sqltext import warehouse_ident


@dataclass
class LedgerState:
    """What the last refresh saw (JSON under `ledger:<name>` in `_tally_state`)."""

    definition: str
    watermarks: dict = field(default_factory=dict)   # model -> latest change time seen (ISO UTC)
    loads: dict = field(default_factory=dict)        # model without a change time -> its load stamp
    rows: int = 0                                    # the rows counted over every stored entity
    refreshed_at: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def state_key(name: str) -> str:
    return f"ledger:{name}"


def load_state(warehouse, ldef: LedgerDef) -> LedgerState | None:
    if not warehouse.has_table("_tally_state"):
        return None
    text = read_state(warehouse, state_key(ldef.name))
    if not text:
        return None
    data = json.loads(text)
    return LedgerState(**{k: v for k, v in data.items() if k in LedgerState.__dataclass_fields__})


def prepare_table(warehouse, ldef: LedgerDef, schema: pa.Schema, fresh: bool) -> None:
    """The table in the shape of `schema` (DDL, before the transaction): made new when `fresh` (a
    changed definition) or when its columns differ."""
    ensure_internal_tables(warehouse, ["_tally_state"])
    if warehouse.has_table(ldef.table) and (fresh or warehouse.columns_of(ldef.table) != schema.names):
        warehouse.drop_table(ldef.table)
    if not warehouse.has_table(ldef.table):
        warehouse.ensure_table(ldef.table, schema)


def write(warehouse, ldef: LedgerDef, rows: pa.Table, state: LedgerState, entities=None) -> None:
    """Replace the rows of `entities` (None: every row) with `rows`, and the state, in one transaction."""
    dialect = warehouse.dialect
    table = warehouse_ident(ldef.table, dialect)
    with warehouse.transaction() as tx:
        # the state row locked first: two refreshes on a server warehouse take turns, and the second's
        # DELETE then sees the first's rows (else both inserts would stay, each entity twice)
        state_table, key, value = (warehouse_ident(n, dialect) for n in ("_tally_state", "key", "value"))
        tx.execute(f"UPDATE {state_table} SET {value} = {value} WHERE {key} = {dialect.placeholder}",
                   [state_key(ldef.name)])
        if entities is None:
            tx.execute(f"DELETE FROM {table}")
        else:
            tx.delete_in(ldef.table, ldef.entity, list(entities))
        tx.insert_arrow(ldef.table, rows)
        state.refreshed_at = now().isoformat()
        write_state(tx, state_key(ldef.name), state.to_json())
    warehouse.forget(ldef.table)


def stored(warehouse, ldef: LedgerDef, entities=None) -> pa.Table:
    """The stored rows (of `entities` only, when given), every column."""
    table = warehouse.table(ldef.table)
    if entities is not None:
        entities = list(entities)
        if not entities:
            return warehouse.run(warehouse.compile(table.limit(0)))
        table = table.filter(table[ldef.entity].isin(entities))
    return warehouse.run(warehouse.compile(table.select(ldef.stored_columns)))


INDEX_MAX_ROWS = 500_000   # a bigger ledger is looked up one statement per request


def lookup(warehouse, ldef: LedgerDef, value) -> dict | None:
    """One entity's stored row (the entity as the column stores it), or None.

    Where this process is the warehouse's only writer (`tally serve` on an embedded file), from an
    index of the whole table in memory, read again after any write (`Warehouse.local_version`): a
    point lookup in DuckDB scans the table (~1-15 ms), a dictionary answers at once. Elsewhere one
    statement, the entity a bound parameter, its text made once per table."""
    version = warehouse.local_version()
    if version is not None:
        index = _index(warehouse, ldef, version)
        if index is not None:
            row = index.get(value)
            return dict(zip(ldef.stored_columns, row)) if row is not None else None   # same as the statement's
    from tally.warehouse import CompiledQuery

    cache = warehouse.__dict__.setdefault("_ledger_lookups", {})
    key = (ldef.table, tuple(ldef.stored_columns))
    if key not in cache:
        dialect = warehouse.dialect
        columns = ", ".join(warehouse_ident(c, dialect) for c in ldef.stored_columns)
        marker = "%(entity)s" if dialect.paramstyle == "pyformat" else "$entity"
        cache[key] = CompiledQuery(sql=f"SELECT {columns} FROM {warehouse_ident(ldef.table, dialect)} "
                                       f"WHERE {warehouse_ident(ldef.entity, dialect)} = {marker}", params=("entity",))
    rows = warehouse.run(cache[key], {"entity": value}).to_pylist()
    return rows[0] if rows else None


def indexed(warehouse, ldef: LedgerDef, value) -> tuple[bool, dict | None]:
    """(True, row or None) when the in-memory index is current and answers without any I/O;
    (False, None) when a lookup must read (see `lookup`)."""
    version = warehouse.local_version()
    found = warehouse.__dict__.get("_ledger_indexes", {}).get((ldef.table, tuple(ldef.stored_columns)))
    if version is None or found is None or found[0] != version or found[1] is None:
        return False, None
    row = found[1].get(value)
    return True, (dict(zip(ldef.stored_columns, row)) if row is not None else None)


def _index(warehouse, ldef: LedgerDef, version: str) -> dict | None:
    """entity -> stored row (a tuple of `stored_columns`) as of `version`; None past INDEX_MAX_ROWS."""
    indexes = warehouse.__dict__.setdefault("_ledger_indexes", {})
    key = (ldef.table, tuple(ldef.stored_columns))
    found = indexes.get(key)
    if found is not None and found[0] == version:
        return found[1]
    rows, names = stored(warehouse, ldef), ldef.stored_columns
    index = None
    if rows.num_rows <= INDEX_MAX_ROWS:
        at = names.index(ldef.entity)
        index = {row[at]: row for row in zip(*(rows[name].to_pylist() for name in names))}
    indexes[key] = (version, index)   # built twice by two threads at once: the same index
    return index


def forget_lookups(warehouse, ldef: LedgerDef) -> None:
    """After the table was made anew: its lookup is compiled again."""
    cache = warehouse.__dict__.get("_ledger_lookups", {})
    for key in [k for k in cache if k[0] == ldef.table]:
        del cache[key]


def public(row: dict, ldef: LedgerDef) -> dict:
    """A stored row as the API shows it: the entity, buckets and formulas (not the row count)."""
    return {k: row[k] for k in (ldef.entity, *ldef.columns)}


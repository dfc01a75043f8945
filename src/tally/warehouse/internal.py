"""Tally's own tables in the warehouse (`_tally_*`): loads, rejects, state, job runs, deliveries, rollup state."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from tally.lazy import LazyModule
from tally.warehouse.txn import Transaction, ident

ibis = LazyModule("ibis")   # loaded when a load or a query needs it, not with the CLI

TS = pa.timestamp("us", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "_tally_loads": pa.schema([
        ("load_id", pa.string()), ("source", pa.string()), ("started_at", TS), ("ended_at", TS),
        ("rows_read", pa.int64()), ("rows_loaded", pa.int64()), ("rows_rejected", pa.int64()),
        ("rows_skipped", pa.int64()), ("watermark_before", pa.string()), ("watermark_after", pa.string()),
        ("status", pa.string()), ("error", pa.string()),
    ]),
    "_tally_rejects": pa.schema([
        ("load_id", pa.string()), ("source", pa.string()), ("row_number", pa.int64()), ("raw", pa.string()),
        ("rule", pa.string()), ("rejected_at", TS), ("file", pa.string()),
    ]),
    "_tally_state": pa.schema([("key", pa.string()), ("value", pa.string()), ("updated_at", TS)]),
    # one row per job run (tally.jobs): `scheduled_for` is the tick it ran for (none for a run by hand)
    "_tally_job_runs": pa.schema([
        ("run_id", pa.string()), ("job", pa.string()), ("kind", pa.string()), ("name", pa.string()),
        ("trigger", pa.string()), ("scheduled_for", TS), ("started_at", TS), ("ended_at", TS),
        ("status", pa.string()), ("rows", pa.int64()), ("error", pa.string()), ("holder", pa.string()),
    ]),
    # one row per job: who may run it until when (taken and renewed by tally.jobs.records)
    "_tally_job_leases": pa.schema([
        ("job", pa.string()), ("holder", pa.string()), ("expires_at", TS), ("version", pa.int64()),
    ]),
}


GREW = frozenset({"_tally_rejects", "_tally_job_runs"})   # internal tables that gained columns (rejects: `file`)
KEYS = {"_tally_job_leases": ("job",)}   # primary keys: two schedulers can't both insert a job's lease


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def ensure_internal_tables(warehouse, names=None) -> None:
    """Create the internal tables that don't exist yet."""
    existing = set(warehouse.list_tables())   # under the warehouse lock: other threads share its connection
    for name, schema in SCHEMAS.items():
        if names is not None and name not in names:
            continue
        if name not in existing:
            warehouse.ensure_table(name, schema, primary_key=KEYS.get(name, ()))
        elif name in GREW:   # a warehouse made by an earlier Tally: add the columns added since
            warehouse.add_missing_columns(name, schema)


def insert_rows(tx: Transaction, table: str, rows: list[dict[str, Any]]) -> None:
    tx.insert_arrow(table, pa.Table.from_pylist(rows, schema=SCHEMAS[table]))


def read_state(warehouse, key: str) -> str | None:
    """The stored value for a state key (a watermark), or None."""
    compiled = warehouse.__dict__.get("_state_query")   # compiled once, the key a parameter
    if compiled is None:
        table, wanted = warehouse.table("_tally_state"), ibis.param("string")
        compiled = warehouse.__dict__["_state_query"] = warehouse.compile(
            table.filter(table.key == wanted).select("value"), {"key": wanted})
    rows = warehouse.run(compiled, {"key": key}).to_pylist()
    return rows[0]["value"] if rows else None


def write_state(tx: Transaction, key: str, value: str | None) -> None:
    """Set a state key inside the caller's transaction, so it moves only if the work commits."""
    dialect = tx.dialect
    marker = dialect.placeholder
    tx.execute(f"DELETE FROM {ident('_tally_state').sql(dialect.name)} WHERE {ident('key').sql(dialect.name)} "
               f"= {marker}", [key])
    if value is not None:
        insert_rows(tx, "_tally_state", [{"key": key, "value": value, "updated_at": now()}])


def read_all_state(warehouse) -> dict[str, tuple[str | None, Any]]:
    """Every state key as {key: (value, updated_at)}: a few rows (one per source, table, rollup)."""
    from tally.warehouse.rawsql import CompiledQuery

    rows = warehouse.run(CompiledQuery(sql="SELECT * FROM _tally_state", params=())).to_pylist()
    return {row["key"]: (row["value"], row["updated_at"]) for row in rows}

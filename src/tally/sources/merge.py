"""Merging the checked rows into the warehouse in one transaction, with their rejects and load record.

Two paths, side by side: a DuckDB warehouse merges from the checked table in place (`merge_in_duckdb`);
other warehouses get the rows as Arrow (`merge_via_arrow`). Both record rejects the same way
(`tally.sources.rejects`) and finish with `record_load`.
"""

from __future__ import annotations

import pyarrow as pa

from tally.sources.config import SourceConfig
from tally.sources.loads import SourceRun, record_load
from tally.sources.rejects import checked_rejects, record_checked_in_duckdb
from tally.warehouse.sqltext import quote_ident
from tally.warehouse.txn import create_table_sql, ident, merge_sql


def replaces_table(config: SourceConfig, full_refresh: bool) -> bool:
    """A full refresh, or a source with neither key nor cursor, replaces its table; others merge or append."""
    return full_refresh or (not config.primary_key and not config.cursor)


def stage_select(plan, checked: str) -> str:
    """The checked rows to load: those that broke no rule and are past the watermark."""
    cols = ", ".join(quote_ident(c) for c in plan.columns)
    return f"SELECT {cols} FROM {quote_ident(checked)} WHERE _tally_rule IS NULL AND NOT _tally_skip"


def load_stamp(con, plan, checked: str, config: SourceConfig, full_refresh: bool) -> str:
    """What the load wrote, as text: its mode, row count and the sum of its rows' hashes. Loading the
    same rows again leaves the table (and so this stamp) as it was: a rerun changes nothing."""
    cols = ", ".join(quote_ident(c) for c in plan.columns)
    count, digest = con.execute(f"SELECT count(*), CAST(sum(hash({cols})) AS VARCHAR) "
                                f"FROM ({stage_select(plan, checked)})").fetchone()
    return f"{'replace' if replaces_table(config, full_refresh) else 'merge'}:{count}:{digest or 0}"


def merge(warehouse, con, run: SourceRun, plan, checked: str, malformed: list, rebuild: bool,
          files: tuple) -> None:
    """Write the checked rows, their rejects (and the malformed ones), the watermark and the load record."""
    if warehouse.dialect.local_duckdb:
        merge_in_duckdb(warehouse, con, run, plan, checked, malformed, rebuild, files)
    else:
        merge_via_arrow(warehouse, con, run, plan, checked, malformed, rebuild, files)


def merge_in_duckdb(warehouse, con, run: SourceRun, plan, checked: str, malformed: list, rebuild: bool = False,
                    files: tuple = ()) -> None:
    """The warehouse is the DuckDB the rows were checked in: merge from the checked table in place."""
    q, config = quote_ident, run.config
    target = config.table
    stage = f"__tally_stage_{run.result.load_id[:10]}"
    stamp = load_stamp(con, plan, checked, config, run.full_refresh)
    with warehouse.transaction() as tx:
        tx.execute(f"CREATE OR REPLACE TEMP VIEW {q(stage)} AS {stage_select(plan, checked)}")
        if rebuild:   # the table is made again with the rows' types, in this transaction
            tx.execute(f"DROP TABLE IF EXISTS {q(target)}")
        tx.execute(f"CREATE TABLE IF NOT EXISTS {q(target)} AS SELECT * FROM {q(stage)} LIMIT 0")
        existing = {row[0] for row in tx.execute(f"DESCRIBE {q(target)}").fetchall()}
        for column in plan.columns:
            if column not in existing:
                kind = tx.execute(f"SELECT typeof({q(column)}) FROM {q(checked)} LIMIT 1").fetchone()
                tx.execute(f"ALTER TABLE {q(target)} ADD COLUMN {q(column)} {kind[0] if kind else 'VARCHAR'}")
        if replaces_table(config, run.full_refresh):
            tx.execute(f"DELETE FROM {q(target)}")
        for statement in merge_sql(target, stage, [] if run.full_refresh else config.primary_key, plan.columns,
                                   "duckdb"):
            tx.execute(statement)
        record_checked_in_duckdb(tx, run.name, run.result.load_id, checked, files)
        record_load(tx, run, malformed, target, stamp)
        tx.execute(f"DROP VIEW IF EXISTS {q(stage)}")
    warehouse.forget(target)


def merge_via_arrow(warehouse, con, run: SourceRun, plan, checked: str, malformed: list, rebuild: bool = False,
                    files: tuple = ()) -> None:
    """The rows were checked in a DuckDB of their own: stage them in the warehouse as Arrow, then merge."""
    config = run.config
    good = con.execute(stage_select(plan, checked)).to_arrow_table()
    stamp = load_stamp(con, plan, checked, config, run.full_refresh)
    rejects = checked_rejects(con, checked, files)
    target, dialect = config.table, warehouse.dialect
    stage = f"tally_stage_{run.result.load_id[:10]}"
    storable = warehouse.storable(good.schema.empty_table()).schema
    if rebuild and not dialect.transactional_ddl:
        rebuild_by_rename(warehouse, run, plan, good, malformed + rejects, stamp)
        return
    if not dialect.transactional_ddl:
        warehouse.ensure_table(target, good.schema)
    if not rebuild:
        warehouse.add_missing_columns(target, good.schema)
    with warehouse.transaction() as tx:
        if rebuild:   # the table is made again with the rows' types, in this transaction
            tx.execute(f"DROP TABLE IF EXISTS {ident(target).sql(dialect.name)}")
        if dialect.transactional_ddl:
            tx.execute(create_table_sql(target, storable, dialect.name, collation=dialect.table_collation))
        tx.execute(create_table_sql(stage, storable, dialect.name, temporary=True))
        tx.insert_arrow(stage, good)
        if replaces_table(config, run.full_refresh):
            tx.execute(f"DELETE FROM {ident(target).sql(dialect.name)}")
        for statement in merge_sql(target, stage, [] if run.full_refresh else config.primary_key, plan.columns,
                                   dialect.name):
            tx.execute(statement)
        record_load(tx, run, malformed + rejects, target, stamp)
        tx.execute(f"DROP TABLE {ident(stage).sql(dialect.name)}")
    warehouse.forget(target)


def rebuild_by_rename(warehouse, run: SourceRun, plan, good: pa.Table, rejects: list, stamp: str) -> None:
    """A full refresh that changes column types where DDL commits by itself (MySQL): the rows fill a new
    table out of sight, and one RENAME TABLE swaps it in, so readers see the old table or the new one,
    never a half-written one. A failure before the swap leaves the old table as it was."""
    target, dialect = run.config.table, warehouse.dialect.name
    tag = run.result.load_id[:10]
    new, old, stage = f"__tally_new_{tag}", f"__tally_old_{tag}", f"tally_stage_{tag}"
    storable = warehouse.storable(good.schema.empty_table()).schema
    warehouse.ensure_table(new, good.schema)
    try:
        with warehouse.transaction() as tx:
            tx.execute(create_table_sql(stage, storable, dialect, temporary=True))
            tx.insert_arrow(stage, good)
            for statement in merge_sql(new, stage, [], plan.columns, dialect):
                tx.execute(statement)
            tx.execute(f"DROP TABLE {ident(stage).sql(dialect)}")
        warehouse.execute_sql(f"RENAME TABLE {ident(target).sql(dialect)} TO {ident(old).sql(dialect)}, "
                              f"{ident(new).sql(dialect)} TO {ident(target).sql(dialect)}")
    except BaseException:
        warehouse.drop_table(new)
        raise
    warehouse.forget(target)
    # after the swap: a run killed here leaves the new rows without their load record, and the
    # watermark where it was (the next load reads from there again)
    with warehouse.transaction() as tx:
        record_load(tx, run, rejects, target, stamp)
    warehouse.drop_table(old)

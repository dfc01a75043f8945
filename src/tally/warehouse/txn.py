"""Transactions and bulk writes: DDL from Arrow schemas, COPY / multi-row inserts, keyed merges."""

from __future__ import annotations

from typing import Iterator, Sequence

import pyarrow as pa
import sqlglot.expressions as sge

from tally.lazy import LazyModule

ibis = LazyModule("ibis")   # loaded when a load or a query needs it, not with the CLI

def ident(name: str) -> sge.Identifier:
    return sge.to_identifier(name, quoted=True)


def table_ref(name: str) -> sge.Table:
    return sge.Table(this=ident(name))


def create_table_sql(name: str, schema: pa.Schema, dialect: str, *, temporary: bool = False,
                     if_not_exists: bool = True, collation: str | None = None,
                     primary_key: Sequence[str] = (), key_type: str | None = None) -> str:
    """CREATE TABLE for an Arrow schema in the warehouse's own types; `primary_key` text columns take
    `key_type` where the default text type can't be a key (MySQL's TEXT)."""
    columns = ibis.Schema.from_pyarrow(schema).to_sqlglot_column_defs(dialect)
    if primary_key:
        for column in columns:
            if column.name in primary_key and key_type and schema.field(column.name).type == pa.string():
                column.set("kind", sge.DataType.build(key_type, dialect=dialect))
        columns.append(sge.PrimaryKey(expressions=[ident(key) for key in primary_key]))
    props = [sge.TemporaryProperty()] if temporary else []
    if collation:
        # text compares the same (case-sensitively) as on DuckDB and PostgreSQL
        props += [sge.CharacterSetProperty(this=sge.Var(this=collation.split("_")[0]), default=True),
                  sge.CollateProperty(this=sge.Var(this=collation), default=True)]
    properties = sge.Properties(expressions=props) if props else None
    create = sge.Create(this=sge.Schema(this=table_ref(name), expressions=columns), kind="TABLE",
                        exists=if_not_exists, properties=properties)
    return create.sql(dialect)


def merge_sql(target: str, stage: str, keys: Sequence[str], columns: Sequence[str], dialect: str) -> list[str]:
    """Replace target rows that share a key with the stage, then insert the stage (one transaction)."""
    statements = []
    if keys:
        # no alias on the target: MariaDB 10 refuses `DELETE FROM t AS x`
        match = sge.and_(*[sge.column(k, table="s", quoted=True).eq(sge.column(k, table=target, quoted=True))
                           for k in keys])
        subquery = sge.select("1").from_(sge.alias_(table_ref(stage), "s")).where(match)
        delete = sge.Delete(this=table_ref(target), where=sge.Where(this=sge.Exists(this=subquery)))
        statements.append(delete.sql(dialect))
    cols = [ident(c) for c in columns]
    insert = sge.insert(sge.select(*cols).from_(table_ref(stage)),
                        sge.Schema(this=table_ref(target), expressions=cols))
    statements.append(insert.sql(dialect))
    return statements


class Transaction:
    """One warehouse transaction; `execute` runs Tally-built SQL, `insert_arrow` bulk-loads rows.
    Opened by `Warehouse.transaction()`; each database family runs the statements its own way."""

    def __init__(self, warehouse, connection):
        self.warehouse = warehouse
        self.dialect = warehouse.dialect
        self.con = connection

    def execute(self, sql: str, params: Sequence | None = None):
        return self.warehouse.execute_in(self.con, sql, params)

    def changed(self, sql: str, params: Sequence) -> int:
        """Run an UPDATE or DELETE; the number of rows it changed."""
        return self.warehouse.changed_in(self.con, sql, params)

    def fetch(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """Run a SELECT inside the transaction; its rows."""
        return self.warehouse.fetch_in(self.con, sql, params)

    def delete_in(self, table: str, column: str, values: Sequence, **equal) -> None:
        """DELETE the rows whose `column` is one of `values` (and each `equal` column has its
        value), in statements of at most 500 values."""
        dialect = self.dialect.name
        marker = self.dialect.placeholder
        fixed = "".join(f"{ident(name).sql(dialect)} = {marker} AND " for name in equal)
        for chunk in range(0, len(values), 500):
            part = list(values[chunk:chunk + 500])
            self.execute(f"DELETE FROM {ident(table).sql(dialect)} WHERE {fixed}{ident(column).sql(dialect)} "
                         f"IN ({', '.join([marker] * len(part))})", [*equal.values(), *part])

    def insert_arrow(self, table: str, data: pa.Table, order_by: str | None = None) -> None:
        """Append Arrow rows to an existing table, in bulk (values cast to the table's column types).

        `order_by`: DuckDB stores the rows sorted by this column (its blocks then skip well on it);
        the sort runs inside the database, within its memory limit."""
        if data.num_rows == 0:
            return
        self.warehouse.insert_rows(self.con, table, self.warehouse.storable(data), order_by)


def transaction(warehouse) -> Iterator[Transaction]:
    """`warehouse.transaction()`: commit on success, roll back on any error."""
    return warehouse.transaction()

"""PostgreSQL and MySQL/MariaDB: server warehouses reached through their DB-API drivers."""

from __future__ import annotations

import io
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import sqlglot.expressions as sge

from tally.errors import WarehouseError
from tally.warehouse.base import Warehouse
from tally.warehouse.rawsql import CompiledQuery, db_cursor, fetch_rows, rows_digest, rows_table

INSERT_BATCH = 2000


class ServerWarehouse(Warehouse):
    """A database server through Ibis and its DB-API connection (one connection, used under a lock)."""

    def _quoted(self, name: str) -> str:
        return sge.to_identifier(name, quoted=True).sql(self.dialect.name)

    def has_table(self, name: str) -> bool:
        with self._lock:
            found = name in self.backend.list_tables()
        for recorder in self.recorders:
            recorder.saw_table(name, found)
        return found

    def write_table(self, name: str, data: pa.Table, *, overwrite: bool = True) -> None:
        with self._lock:
            self._tables.pop(name, None)
            if overwrite:
                self.drop_table(name)
            self.ensure_table(name, data.schema)
            with self.transaction() as tx:
                tx.insert_arrow(name, data)

    def writer_connection(self):
        """The DB-API connection used for writes."""
        return self.backend.con

    def run(self, query: CompiledQuery, values: dict[str, Any] | None = None) -> pa.Table:
        values = {name: self.param_value(values[name]) for name in query.params} if query.params else {}
        try:
            names, rows = self._fetch_rows(query.sql, values)
            if self.recorders:
                self._recorded(query.sql, values, lambda: rows_digest(names, rows))
            return rows_table(names, rows)
        except WarehouseError:
            raise
        except Exception as exc:
            raise WarehouseError(f"the warehouse refused a query: {str(exc).strip().splitlines()[0]}") from exc

    def _fetch_rows(self, sql: str, values: dict[str, Any]) -> tuple[list[str], list[tuple]]:
        with self._lock:
            return fetch_rows(self.backend.con, self.dialect.name, sql, values)

    def raw_fetch(self, sql: str) -> pa.Table:
        return rows_table(*self._fetch_rows(sql, {}))

    def raw_digest(self, sql: str) -> str | None:
        return rows_digest(*self._fetch_rows(sql, {}))

    def execute_sql(self, sql: str) -> None:
        with self._lock:
            with db_cursor(self.backend.con) as cursor:
                cursor.execute(sql)

    @contextmanager
    def transaction(self):
        from tally.warehouse.txn import Transaction

        con = self.writer_connection()
        if self.dialect.copy_from_stdin:   # psycopg: its own transaction block
            with con.transaction():
                yield Transaction(self, con)
            return
        con.query("START TRANSACTION")
        try:
            yield Transaction(self, con)
        except BaseException:
            con.rollback()
            raise
        con.commit()

    def execute_in(self, con, sql: str, params=None):
        cursor = con.cursor()
        cursor.execute(sql, params)
        return cursor

    def changed_in(self, con, sql: str, params=None) -> int:
        with db_cursor(con) as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount

    def fetch_in(self, con, sql: str, params=None) -> list[tuple]:
        with db_cursor(con) as cursor:
            cursor.execute(sql, params or None)
            return cursor.fetchall()

    def insert_rows(self, con, table: str, data: pa.Table, order_by: str | None = None) -> None:
        """COPY FROM STDIN where the driver has it (PostgreSQL), else multi-row INSERT batches.
        (`order_by` is DuckDB's storage hint; servers keep their own order.)"""
        cols = ", ".join(self._quoted(c) for c in data.column_names)
        if self.dialect.copy_from_stdin:
            import pyarrow.csv as pacsv

            buffer = io.BytesIO()
            pacsv.write_csv(data, buffer, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
            with con.cursor() as cursor:
                with cursor.copy(f"COPY {self._quoted(table)} ({cols}) FROM STDIN WITH (FORMAT csv)") as copy:
                    copy.write(buffer.getvalue())
            return
        marks = ", ".join([self.dialect.placeholder] * data.num_columns)
        sql = f"INSERT INTO {self._quoted(table)} ({cols}) VALUES ({marks})"
        cursor = con.cursor()
        for batch in data.to_batches(INSERT_BATCH):
            rows = list(zip(*[column.to_pylist() for column in batch.columns]))
            cursor.executemany(sql, rows)
        cursor.close()

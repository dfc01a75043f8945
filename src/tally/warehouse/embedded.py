"""DuckDB, the embedded warehouse: one file, cursors per thread, Arrow in and out in place."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import sqlglot.expressions as sge

from tally.errors import ConfigError, WarehouseError
from tally.warehouse.base import Warehouse, byte_size
from tally.warehouse.connect import duckdb_settings, redact
from tally.warehouse.rawsql import HAS_TABLE_SQL, CompiledQuery, table_digest


def _quoted(name: str) -> str:
    return sge.to_identifier(name, quoted=True).sql("duckdb")


class DuckDBWarehouse(Warehouse):
    """A DuckDB file (or memory) through Ibis; Tally's own statements run on a cursor per thread."""

    inline_template = True

    def __init__(self, url: str, root=".", read_only: bool = False):
        super().__init__(url, root, read_only=read_only)
        from pathlib import Path

        from tally.warehouse.connect import duckdb_path

        path = duckdb_path(url, Path(root))
        if not read_only:   # DuckDB's file lock: no other process writes while this one holds it
            self.database_key = f"memory:{id(self)}" if path == ":memory:" else str(Path(path).resolve())

    def has_table(self, name: str) -> bool:
        with self._lock:   # what Ibis's list_tables reads, in one query (it runs three)
            # fetchall: a result left unread keeps its transaction open (and CHECKPOINT waiting)
            found = self.backend.con.execute(HAS_TABLE_SQL["duckdb"], [name]).fetchall()[0][0] > 0
        for recorder in self.recorders:
            recorder.saw_table(name, found)
        return found

    def write_table(self, name: str, data: pa.Table, *, overwrite: bool = True) -> None:
        self.wrote()
        with self._lock:
            self._tables.pop(name, None)
            cursor = self.cursor()
            cursor.register("__tally_upload", data)
            try:
                verb = "CREATE OR REPLACE TABLE" if overwrite else "CREATE TABLE"
                cursor.execute(f"{verb} {_quoted(name)} AS SELECT * FROM __tally_upload")
            finally:
                cursor.unregister("__tally_upload")

    def run(self, query: CompiledQuery, values: dict[str, Any] | None = None) -> pa.Table:
        values = {name: self.param_value(values[name]) for name in query.params} if query.params else {}
        try:
            sql, bound = query.inline(values)
            table = self.cursor().execute(sql, bound or None).to_arrow_table()
            if self.recorders:
                self._recorded(query.template or sql, values if query.template else {},
                               lambda: table_digest(table), inline=True)
            return table
        except WarehouseError:
            raise
        except Exception as exc:
            raise WarehouseError(f"the warehouse refused a query: {str(exc).strip().splitlines()[0]}") from exc

    def raw_fetch(self, sql: str) -> pa.Table:
        return self.cursor().execute(sql).to_arrow_table()

    def raw_digest(self, sql: str) -> str | None:
        return table_digest(self.cursor().execute(sql).to_arrow_table())

    def execute_sql(self, sql: str) -> None:
        self.cursor().execute(sql)
        self.wrote()   # DDL and settings: counted as writes (a version that moves too often is only a miss)

    @contextmanager
    def memory_budget(self, setting: str):
        """Lower memory_limit to the URL's `setting` budget for one job, set back after.

        A big load or build then spills its intermediate rows to disk instead of growing DuckDB's
        buffers. Left alone when the limit is already lower.
        """
        settings, budgets = duckdb_settings(self.url)
        limit, configured = budgets[setting], settings.get("memory_limit")
        if byte_size(limit) == float("inf"):
            raise ConfigError(f"{setting} {limit!r} in the warehouse URL {redact(self.url)!r} is not a size "
                              "(write it like 1GB, 1500MB or 2GiB)")
        con = self.cursor()
        before = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        if byte_size(limit) >= byte_size(before):
            yield
            return
        try:
            con.execute(f"SET memory_limit = {sge.Literal.string(limit).sql('duckdb')}")
        except Exception as exc:
            raise ConfigError(f"{setting} {limit!r} in the warehouse URL: {str(exc).splitlines()[0]}") from None
        try:
            yield
        finally:
            # the URL's own limit, or DuckDB's default (its shown value is rounded: not set back from it)
            con.execute(f"SET memory_limit = {sge.Literal.string(configured).sql('duckdb')}" if configured
                        else "RESET memory_limit")

    def cursor(self):
        """A DuckDB cursor per thread: one connection object must not be shared across threads."""
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self.new_cursor()
            cursor.execute(self.dialect.session_utc)
        return cursor

    def new_cursor(self):
        """A connection of its own to the warehouse's database (the caller closes it)."""
        with self._lock:
            return self.backend.con.cursor()

    @contextmanager
    def transaction(self):
        from tally.warehouse.txn import Transaction

        con = self.cursor()
        con.execute("BEGIN TRANSACTION")
        try:
            yield Transaction(self, con)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        self.wrote()

    def execute_in(self, con, sql: str, params=None):
        return con.execute(sql, params or [])

    def changed_in(self, con, sql: str, params=None) -> int:
        return int(con.execute(sql, params or []).fetchall()[0][0])   # DuckDB answers a count row

    def fetch_in(self, con, sql: str, params=None) -> list[tuple]:
        return con.execute(sql, params or []).fetchall()

    def insert_rows(self, con, table: str, data: pa.Table, order_by: str | None = None) -> None:
        con.register("__tally_rows", data)
        try:
            cols = ", ".join(_quoted(c) for c in data.column_names)
            order = f" ORDER BY {_quoted(order_by)}" if order_by else ""
            con.execute(f"INSERT INTO {_quoted(table)} ({cols}) SELECT {cols} FROM __tally_rows{order}")
        finally:
            con.unregister("__tally_rows")

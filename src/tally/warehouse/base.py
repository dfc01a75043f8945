"""The warehouse: tables as Ibis expressions, compiled queries with bound parameters, bulk writes."""

from __future__ import annotations

import datetime as dt
import re
from contextlib import contextmanager
import threading
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as idt
import pyarrow as pa
import sqlglot.expressions as sge

from tally.errors import ConfigError, WarehouseError
from tally.warehouse.connect import duckdb_settings, open_backend, redact
from tally.warehouse.rawsql import (HAS_TABLE_SQL, TOKEN as _TOKEN, CompiledQuery, fetch_rows, inline_values,
                                   rows_digest, rows_table, table_digest)

UTC_TS = idt.Timestamp(timezone="UTC")
_SENTINEL_BASE = dt.datetime(1901, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)


def _sentinel(param, index: int):
    """A value no query uses, standing for a parameter until it becomes a placeholder."""
    if param.type().is_date():
        return dt.date(1901, 2, 3) + dt.timedelta(days=index)
    if param.type().is_string():
        return f"__tally_sentinel_{index}__"
    return _SENTINEL_BASE + dt.timedelta(seconds=index)


def _naive_timestamp(node: sge.Expression) -> sge.Expression:
    """A time literal with an offset as naive UTC text: MariaDB drops the offset with a warning,
    which strict mode makes an error inside INSERT ... SELECT (1292, incorrect datetime value)."""
    if isinstance(node, sge.Timestamp) and isinstance(node.this, sge.Literal) and node.this.is_string:
        try:
            moment = dt.datetime.fromisoformat(node.this.this)
        except ValueError:
            return node
        if moment.tzinfo is not None:
            naive = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
            return sge.Timestamp(this=sge.Literal.string(naive.isoformat(sep=" ")))
    return node


class Warehouse:
    """One connection to DuckDB, PostgreSQL or MySQL/MariaDB through Ibis."""

    def __init__(self, url: str, root: Path | str = ".", read_only: bool = False):
        """`read_only`: an embedded DuckDB file is opened read-only, so several readers run at once
        (and a write fails); a server warehouse is opened as usual."""
        self.url = url
        self.read_only = read_only
        self.backend, self.dialect = open_backend(url, Path(root), read_only=read_only)
        self._local = threading.local()
        self._lock = threading.RLock()
        self._tables: dict[str, Any] = {}
        self.recorders: list = []   # each is told every read and its answer (see tally.engine.replay)

    def __repr__(self) -> str:
        return f"Warehouse({redact(self.url)!r})"

    # -- tables -------------------------------------------------------------

    def table(self, name: str):
        """The Ibis table `name`, cached; WarehouseError if it does not exist."""
        table = self._tables.get(name)
        if table is None:
            try:
                with self._lock:   # the backend's own connection serves one thread at a time
                    table = self._tables[name] = self.backend.table(name)
            except Exception:
                raise WarehouseError(f"table {name!r} does not exist in the warehouse {redact(self.url)} "
                                     "(run `tally ingest` or `tally demo` first)") from None
        return table

    def forget(self, name: str) -> None:
        """Drop the cached Ibis table after its schema may have changed."""
        self._tables.pop(name, None)

    def list_tables(self) -> list[str]:
        """Every table in the warehouse's schema (Tally's own and scratch tables included)."""
        with self._lock:
            return list(self.backend.list_tables())

    def has_table(self, name: str) -> bool:
        with self._lock:
            if self.dialect.name == "duckdb":   # what Ibis's list_tables reads, in one query (it runs three)
                # fetchall: a result left unread keeps its transaction open (and CHECKPOINT waiting)
                found = self.backend.con.execute(HAS_TABLE_SQL["duckdb"], [name]).fetchall()[0][0] > 0
            else:
                found = name in self.backend.list_tables()
        for recorder in self.recorders:
            recorder.saw_table(name, found)
        return found

    def write_table(self, name: str, data: pa.Table, *, overwrite: bool = True) -> None:
        """Create (or replace) a table from Arrow data."""
        with self._lock:
            self._tables.pop(name, None)
            if self.dialect.name == "duckdb":
                cursor = self.cursor()
                cursor.register("__tally_upload", data)
                try:
                    verb = "CREATE OR REPLACE TABLE" if overwrite else "CREATE TABLE"
                    cursor.execute(f'{verb} {sge.to_identifier(name, quoted=True).sql("duckdb")} '
                                   "AS SELECT * FROM __tally_upload")
                finally:
                    cursor.unregister("__tally_upload")
            else:
                if overwrite:
                    self.drop_table(name)
                self.ensure_table(name, data.schema)
                with self.transaction() as tx:
                    tx.insert_arrow(name, data)

    def storable(self, data: pa.Table) -> pa.Table:
        """Without a zoned timestamp type (MySQL), timestamps are stored as naive UTC."""
        if self.dialect.supports_timestamptz:
            return data
        fields = [pa.field(f.name, pa.timestamp(f.type.unit)) if pa.types.is_timestamp(f.type) and f.type.tz
                  else f for f in data.schema]
        return data.cast(pa.schema(fields))

    def writer_connection(self):
        """The DB-API connection used for writes (PostgreSQL / MySQL); DuckDB writes use `cursor()`."""
        return self.backend.con

    def ensure_table(self, name: str, schema: pa.Schema, primary_key: tuple[str, ...] = ()) -> None:
        """Create a table for an Arrow schema unless it exists (DDL: outside any transaction)."""
        from tally.warehouse.txn import create_table_sql

        storable = self.storable(schema.empty_table()).schema
        self.execute_sql(create_table_sql(name, storable, self.dialect.name, collation=self.dialect.table_collation,
                                          primary_key=primary_key, key_type=self.dialect.key_text_type))
        self._tables.pop(name, None)

    def add_missing_columns(self, name: str, schema: pa.Schema) -> list[str]:
        """ALTER TABLE ADD COLUMN for columns of `schema` the table lacks (a newly declared column)."""
        if not self.has_table(name):
            return []
        present = set(self.columns_of(name))
        missing = [f for f in self.storable(schema.empty_table()).schema if f.name not in present]
        for column in ibis.Schema.from_pyarrow(pa.schema(missing)).to_sqlglot_column_defs(self.dialect.name):
            alter = sge.Alter(this=sge.Table(this=sge.to_identifier(name, quoted=True)), kind="TABLE",
                              actions=[column])
            self.execute_sql(alter.sql(self.dialect.name))
        self.forget(name)
        return [f.name for f in missing]

    def columns_of(self, name: str) -> list[str]:
        self._tables.pop(name, None)
        return list(self.table(name).columns)

    def drop_table(self, name: str) -> None:
        with self._lock:
            self._tables.pop(name, None)
            self.backend.drop_table(name, force=True)

    # -- compile and run ----------------------------------------------------

    def compile(self, expr, params: dict[str, Any] | None = None) -> CompiledQuery:
        """Compile an Ibis expression once; `params` (name -> ibis.param) become placeholders."""
        params = params or {}
        sentinels = {name: _sentinel(param, i) for i, (name, param) in enumerate(params.items())}
        bound = {param: sentinels[name] for name, param in params.items()}
        tree = self.backend.compiler.to_sqlglot(expr, params=bound)
        replacements = {self._literal_node(sentinels[name], param.type()): name for name, param in params.items()}

        def to_token(node: sge.Expression) -> sge.Expression:
            name = replacements.get(node)
            return sge.Var(this=f"__tally_param_{name}__") if name else node

        tree = tree.transform(to_token)
        if self.dialect.naive_params:
            tree = tree.transform(_naive_timestamp)
        sql = tree.sql(dialect=self.backend.dialect)
        used = tuple(dict.fromkeys(_TOKEN.findall(sql)))
        template = None
        if self.dialect.paramstyle == "pyformat":
            sql = _TOKEN.sub(r"%(\1)s", sql.replace("%", "%%"))
        else:
            template = sql if used and self.dialect.name == "duckdb" else None
            sql = _TOKEN.sub(r"$\1", sql)
        return CompiledQuery(sql=sql, params=used, template=template)

    def _literal_node(self, value, dtype) -> sge.Expression:
        probe = ibis.table({"x": "int64"}, name="t").select(v=ibis.literal(value, dtype))
        return self.backend.compiler.to_sqlglot(probe).find(sge.Alias).this

    def run(self, query: CompiledQuery, values: dict[str, Any] | None = None) -> pa.Table:
        """Execute a compiled query with parameter values; the rows as an Arrow table."""
        values = {name: self.param_value(values[name]) for name in query.params} if query.params else {}
        try:
            if self.dialect.name == "duckdb":
                sql, bound = query.inline(values)
                table = self.cursor().execute(sql, bound or None).to_arrow_table()
                if self.recorders:
                    self._recorded(query.template or sql, values if query.template else {},
                                   lambda: table_digest(table), inline=True)
                return table
            names, rows = self._fetch_rows(query.sql, values)
            if self.recorders:
                self._recorded(query.sql, values, lambda: rows_digest(names, rows))
            return rows_table(names, rows)
        except WarehouseError:
            raise
        except Exception as exc:
            raise WarehouseError(f"the warehouse refused a query: {str(exc).strip().splitlines()[0]}") from exc

    def _recorded(self, sql: str, values: dict[str, Any], digest, inline: bool = False) -> None:
        """Tell the recorders a read and the digest of its rows (`digest()`, None when it can't be
        taken); DuckDB's with every value written in (binding any parameter makes DuckDB's Python
        client load pandas, ~0.3 s a replay would spend)."""
        try:
            digest = digest()
        except Exception:   # never fail a query over its record
            digest = None
        if inline:
            sql, values = inline_values(sql, values)
        for recorder in self.recorders:
            recorder.ran(sql, values, digest)

    def param_value(self, value: Any) -> Any:
        """A query parameter's value as the driver takes it (naive UTC times where the dialect needs them)."""
        if isinstance(value, dt.datetime) and self.dialect.naive_params:
            return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value

    @contextmanager
    def memory_budget(self, setting: str):
        """DuckDB: lower memory_limit to the URL's `setting` budget for one job, set back after.

        A big load or build then spills its intermediate rows to disk instead of growing DuckDB's
        buffers. Left alone when the limit is already lower; other warehouses manage their own.
        """
        if self.dialect.name != "duckdb":
            yield
            return
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
        """DuckDB: a connection of its own to the warehouse's database (the caller closes it)."""
        with self._lock:
            return self.backend.con.cursor()

    def _fetch_rows(self, sql: str, values: dict[str, Any]) -> tuple[list[str], list[tuple]]:
        with self._lock:
            return fetch_rows(self.backend.con, self.dialect.name, sql, values)

    def raw_fetch(self, sql: str) -> pa.Table:
        """Rows of a statement Tally wrote itself (never user text), on the connection queries use."""
        if self.dialect.name == "duckdb":
            return self.cursor().execute(sql).to_arrow_table()
        return rows_table(*self._fetch_rows(sql, {}))

    def raw_digest(self, sql: str) -> str | None:
        """The digest of a statement's rows, as `rawsql.RawConnection.digest` takes it."""
        if self.dialect.name == "duckdb":
            return table_digest(self.cursor().execute(sql).to_arrow_table())
        return rows_digest(*self._fetch_rows(sql, {}))

    def execute_sql(self, sql: str) -> None:
        """Run a statement Tally wrote itself (DDL, session settings); never user text."""
        if self.dialect.name == "duckdb":
            self.cursor().execute(sql)
            return
        with self._lock:
            cursor = self.backend.con.cursor()
            try:
                cursor.execute(sql)
            finally:
                cursor.close()

    def transaction(self):
        from tally.warehouse.txn import transaction

        return transaction(self)

    def close(self) -> None:
        self.backend.disconnect()


_UNITS = {"": 1, "B": 1, "BYTES": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def byte_size(text: str) -> float:
    """'1GB', '18.6 GiB', '512 MiB' -> bytes; unreadable sizes count as unlimited."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", text or "")
    if not match or match.group(2).upper() not in _UNITS:
        return float("inf")
    return float(match.group(1)) * _UNITS[match.group(2).upper()]

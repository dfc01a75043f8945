"""The warehouse: tables as Ibis expressions, compiled queries with bound parameters, bulk writes."""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as idt
import pyarrow as pa
import sqlglot.expressions as sge

from tally.errors import WarehouseError
from tally.warehouse.connect import open_backend, redact
from tally.warehouse.rawsql import TOKEN as _TOKEN, CompiledQuery, inline_values

UTC_TS = idt.Timestamp(timezone="UTC")
# writes this process committed, per database: the data version of a database only this process
# can write (an embedded file opened read-write), read without a query (see `local_version`)
_WRITES: dict[str, int] = {}
_PROCESS = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
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
    """One connection to DuckDB, PostgreSQL or MySQL/MariaDB through Ibis.

    `Warehouse(url)` gives the class of the URL's database family (warehouse/embedded.py for
    DuckDB, warehouse/dbapi.py for the servers); each has the same methods. What is shared lives
    here: tables as Ibis expressions, compiling, schema changes."""

    # the families fill these in
    inline_template = False   # compiled queries keep a template the query cache inlines values into

    def __new__(cls, url: str, *args, **kwargs):
        if cls is Warehouse:
            from tally.warehouse.connect import dialect_of

            try:
                dialect = dialect_of(url)
            except Exception:   # __init__ says what is wrong with the URL
                return super().__new__(cls)
            cls = family(dialect)
        return super().__new__(cls)

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

    def storable(self, data: pa.Table) -> pa.Table:
        """Without a zoned timestamp type (MySQL), timestamps are stored as naive UTC."""
        if self.dialect.supports_timestamptz:
            return data
        fields = [pa.field(f.name, pa.timestamp(f.type.unit)) if pa.types.is_timestamp(f.type) and f.type.tz
                  else f for f in data.schema]
        return data.cast(pa.schema(fields))

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
        self.wrote()
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
            template = sql if used and self.inline_template else None
            sql = _TOKEN.sub(r"$\1", sql)
        return CompiledQuery(sql=sql, params=used, template=template)

    def _literal_node(self, value, dtype) -> sge.Expression:
        probe = ibis.table({"x": "int64"}, name="t").select(v=ibis.literal(value, dtype))
        return self.backend.compiler.to_sqlglot(probe).find(sge.Alias).this

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

    # -- the data version a sole writer keeps in memory ---------------------------

    database_key: str | None = None   # set by a family whose database only this process can write

    def wrote(self) -> None:
        """Count a committed write (a transaction, a table written, created or dropped)."""
        if self.database_key is not None:
            _WRITES[self.database_key] = _WRITES.get(self.database_key, 0) + 1

    def local_version(self) -> str | None:
        """A version of the data that moves with every write, known without a query, when no other
        process can write this database (an embedded file this process opened read-write, as
        `tally serve` does); None otherwise (ask the database: api.cache.data_version)."""
        if self.database_key is None:
            return None
        return f"{_PROCESS}:{_WRITES.get(self.database_key, 0)}"

    # -- what each family does its own way --------------------------------------

    def has_table(self, name: str) -> bool:
        raise NotImplementedError

    def write_table(self, name: str, data: pa.Table, *, overwrite: bool = True) -> None:
        """Create (or replace) a table from Arrow data."""
        raise NotImplementedError

    def run(self, query: CompiledQuery, values: dict[str, Any] | None = None) -> pa.Table:
        """Execute a compiled query with parameter values; the rows as an Arrow table."""
        raise NotImplementedError

    def raw_fetch(self, sql: str) -> pa.Table:
        """Rows of a statement Tally wrote itself (never user text), on the connection queries use."""
        raise NotImplementedError

    def raw_digest(self, sql: str) -> str | None:
        """The digest of a statement's rows, as `rawsql.RawConnection.digest` takes it."""
        raise NotImplementedError

    def execute_sql(self, sql: str) -> None:
        """Run a statement Tally wrote itself (DDL, session settings); never user text."""
        raise NotImplementedError

    @contextmanager
    def memory_budget(self, setting: str):
        """A job's memory budget from the URL (DuckDB); other warehouses manage their own."""
        yield

    def transaction(self):
        """A context manager: commit on success, roll back on any error (or when the process dies
        before COMMIT); yields a `txn.Transaction`."""
        raise NotImplementedError

    def execute_in(self, con, sql: str, params=None):
        """Run a statement on a transaction's connection; returns what can fetch its rows."""
        raise NotImplementedError

    def changed_in(self, con, sql: str, params=None) -> int:
        """Run an UPDATE or DELETE on a transaction's connection; the number of rows it changed."""
        raise NotImplementedError

    def fetch_in(self, con, sql: str, params=None) -> list[tuple]:
        """Run a SELECT on a transaction's connection; its rows."""
        raise NotImplementedError

    def insert_rows(self, con, table: str, data: pa.Table, order_by: str | None = None) -> None:
        """Append Arrow rows (already storable) to an existing table, in bulk, inside a transaction."""
        raise NotImplementedError

    def close(self) -> None:
        self.backend.disconnect()


def family(dialect) -> type[Warehouse]:
    """The Warehouse class for a database family."""
    if dialect.local_duckdb:
        from tally.warehouse.embedded import DuckDBWarehouse

        return DuckDBWarehouse
    from tally.warehouse.dbapi import ServerWarehouse

    return ServerWarehouse


_UNITS = {"": 1, "B": 1, "BYTES": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def byte_size(text: str) -> float:
    """'1GB', '18.6 GiB', '512 MiB' -> bytes; unreadable sizes count as unlimited."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", text or "")
    if not match or match.group(2).upper() not in _UNITS:
        return float("inf")
    return float(match.group(1)) * _UNITS[match.group(2).upper()]

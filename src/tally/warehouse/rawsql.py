"""The warehouse through its plain driver, without Ibis: run SQL Tally compiled before, and
digest what came back (what a replayed query answer is checked against)."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tally.warehouse.connect import dialect_of, duckdb_path, duckdb_settings, server_credentials

# the stored tables' columns and types: a changed schema can change the SQL Tally would compile
SCHEMA_SQL = ("SELECT table_name, column_name, data_type, numeric_precision, numeric_scale, datetime_precision, "
              "character_maximum_length, is_nullable, ordinal_position FROM information_schema.columns "
              "WHERE table_schema = {schema} ORDER BY table_name, ordinal_position")
CURRENT_SCHEMA = {"duckdb": "current_schema() AND table_catalog = current_database()",
                  "postgres": "current_schema()", "mysql": "DATABASE()"}
HAS_TABLE_SQL = {"duckdb": "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_catalog IN "
                           "(current_database(), 'temp') AND table_schema = current_schema()",
                 "postgres": "SELECT count(*) FROM information_schema.tables WHERE table_name = %s "
                             "AND table_schema = current_schema()",
                 "mysql": "SELECT count(*) FROM information_schema.tables WHERE table_name = %s "
                          "AND table_schema = DATABASE()"}
READ_ONLY_SESSION = {"postgres": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
                     "mysql": "SET SESSION TRANSACTION READ ONLY"}   # DuckDB: the file opened read-only
MAX_DIGEST_ROWS = 100_000   # a bigger read costs more to digest than a replay saves
TOKEN = re.compile(r"__tally_param_([a-z_0-9]+)__")   # a parameter in a DuckDB query's template


def time_literal(value: Any) -> str | None:
    """A time or date as DuckDB SQL (ISO text: nothing of a user's), or None for other values."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return f"CAST('{aware.isoformat()}' AS TIMESTAMPTZ)"
    if isinstance(value, dt.date):
        return f"CAST('{value.isoformat()}' AS DATE)"
    return None


def duckdb_literal(value: Any) -> str:
    """Any parameter value as a DuckDB literal; ValueError for a type without one here."""
    found = time_literal(value)
    if found is not None:
        return found
    if isinstance(value, str) and "\0" not in value:
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, decimal.Decimal)):
        return str(value)
    raise ValueError(f"no literal for a {type(value).__name__}")


def inline_values(template: str, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A DuckDB template with every value written in, or unchanged when one can't be."""
    try:
        return TOKEN.sub(lambda m: duckdb_literal(values[m.group(1)]), template), {}
    except (ValueError, KeyError):
        return TOKEN.sub(r"$\1", template), values


@dataclass(frozen=True)
class CompiledQuery:
    """SQL text for one warehouse with named placeholders for its parameters (times, dates, text)."""

    sql: str
    params: tuple[str, ...]
    template: str | None = None   # DuckDB: the SQL with the parameters' tokens, to take their values inline

    def inline(self, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """DuckDB: the SQL with time and date values written in as literals, the other values left
        as parameters. DuckDB plans a statement before it sees its parameters, so a range given as
        parameters can't skip the table's blocks outside it (zonemaps): a cold scan of a day read
        every block of the columns (0.29 s against 0.015 s for 10M rows)."""
        if self.template is None:
            return self.sql, values
        literal = {name: time_literal(value) for name, value in values.items()}
        sql = TOKEN.sub(lambda m: literal[m.group(1)] or f"${m.group(1)}", self.template)
        return sql, {name: value for name, value in values.items() if literal[name] is None}


class RawConnection:
    """One read-only driver connection with the session in UTC, as Ibis would set it up."""

    def __init__(self, url: str, root: Path):
        self.dialect = dialect_of(url)
        name = self.dialect.name
        if name == "duckdb":
            import duckdb

            path = duckdb_path(url, root)
            if path == ":memory:":
                raise LookupError("an in-memory warehouse holds nothing between processes")
            self.con = duckdb.connect(str(Path(path).absolute()), read_only=True, config=duckdb_settings(url)[0])
        elif name == "postgres":
            import psycopg

            creds = server_credentials(url)
            creds["dbname"] = creds.pop("database")
            self.con = psycopg.connect(autocommit=True, **creds)
        else:
            import MySQLdb

            creds = server_credentials(url)
            creds["host"] = "127.0.0.1" if creds["host"] == "localhost" else creds["host"]
            self.con = MySQLdb.connect(autocommit=True, **creds)
        self.execute(self.dialect.session_utc)
        if name in READ_ONLY_SESSION:   # it only reads: a damaged or forged cache file can't write
            self.execute(READ_ONLY_SESSION[name])

    def execute(self, sql: str) -> None:
        if self.dialect.name == "duckdb":
            self.con.execute(sql)
            return
        with db_cursor(self.con) as cursor:
            cursor.execute(sql)

    def digest(self, sql: str, values: dict[str, Any] | None = None) -> str | None:
        """The digest of a query's rows, as `Warehouse.run` takes it (see `table_digest`)."""
        if self.dialect.name == "duckdb":
            return table_digest(self.con.execute(sql, values or None).to_arrow_table())
        return rows_digest(*fetch_rows(self.con, self.dialect.name, sql, values or {}))

    def run(self, query, values: dict[str, Any] | None = None) -> Rows:
        """A query Tally wrote (a CompiledQuery) as rows, like `Warehouse.run` (`.to_pylist()`)."""
        if self.dialect.name == "duckdb":
            sql, values = inline_values(query.template, values or {}) if query.template else (query.sql, {})
            cursor = self.con.execute(sql, values or None)
            return Rows([col[0] for col in cursor.description], cursor.fetchall())
        return Rows(*fetch_rows(self.con, self.dialect.name, query.sql, values or {}))

    def has_table(self, name: str) -> bool:
        if self.dialect.name == "duckdb":   # the name written in: see Warehouse._recorded
            sql = HAS_TABLE_SQL["duckdb"].replace("?", duckdb_literal(name))
            return self.con.execute(sql).fetchall()[0][0] > 0
        with db_cursor(self.con) as cursor:
            cursor.execute(HAS_TABLE_SQL[self.dialect.name], (name,))
            return cursor.fetchall()[0][0] > 0

    def close(self) -> None:
        self.con.close()


class Rows:
    """Rows straight from the driver: Arrow would turn zoned times back into Python through pandas."""

    def __init__(self, names: list[str], rows: list[tuple]):
        self.column_names, self.rows = names, rows
        self.num_rows = len(rows)

    def to_pylist(self) -> list[dict]:
        return [dict(zip(self.column_names, row)) for row in self.rows]


def schema_sql(dialect_name: str) -> str:
    return SCHEMA_SQL.format(schema=CURRENT_SCHEMA[dialect_name])


@contextmanager
def db_cursor(con):
    """A DB-API cursor, closed after use; closing never hides the error that ended the work (after
    Ctrl-C in a MariaDB query, close() raises "Commands out of sync", which replaced the interrupt)."""
    cursor = con.cursor()
    try:
        yield cursor
    except BaseException:
        try:
            cursor.close()
        except Exception:   # the connection is in no state to close it: the first error is the one
            pass
        raise
    cursor.close()


def fetch_rows(con, dialect_name: str, sql: str, values: dict[str, Any]) -> tuple[list[str], list[tuple]]:
    """Run a query on a PostgreSQL / MySQL DB-API connection: its column names and rows."""
    with db_cursor(con) as cursor:
        cursor.execute(sql, values)  # always a dict: the driver then turns %% back into %
        names = [col[0] for col in cursor.description]
        rows = cursor.fetchall()
    if hasattr(con, "commit") and dialect_name == "mysql":
        con.commit()  # end the read transaction so later reads see new rows
    return names, rows


def rows_table(names: list[str], rows: list[tuple]):
    """DB-API rows as an Arrow table (types inferred from the values)."""
    import pyarrow as pa

    columns = list(zip(*rows)) if rows else [[] for _ in names]
    return pa.table({name: pa.array(list(col)) for name, col in zip(names, columns)})


def rows_digest(names: list[str], rows: list[tuple]) -> str | None:
    """A digest of DB-API rows: their values' repr holds their types (Decimal('1.50'), a zoned
    datetime), so equal digests make equal Arrow tables (and Arrow, built from Python values,
    would load pandas). None past MAX_DIGEST_ROWS."""
    if len(rows) > MAX_DIGEST_ROWS:
        return None
    return _digest(repr(names), (repr(tuple(row)) for row in rows))


def _digest(head: str, rows) -> str:
    digest = hashlib.sha256(head.encode())
    for row in sorted(rows):
        digest.update(row.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def table_digest(table) -> str | None:
    """A digest of an Arrow table's schema and rows, whatever their order (a GROUP BY gives its
    groups in any order; Tally sorts answers on their full keys). None past MAX_DIGEST_ROWS."""
    import pyarrow as pa

    if table.num_rows > MAX_DIGEST_ROWS:
        return None
    # zoned times as their integers: a zoned value read back in Python loads pandas (~0.3 s)
    columns = [[value for chunk in column.chunks for value in chunk.view(pa.int64()).to_pylist()]
               if pa.types.is_timestamp(column.type) and column.type.tz else column.to_pylist()
               for column in table.columns]
    return _digest(str(table.schema), (repr(values) for values in zip(*columns)))

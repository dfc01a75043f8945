"""What each warehouse can do, stated as data rather than as branches in the logic."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    """Capabilities of one kind of warehouse."""

    name: str                 # ibis backend / sqlglot dialect name
    paramstyle: str           # "dollar" ($name) or "pyformat" (%(name)s)
    session_utc: str          # statement that puts the session in UTC
    naive_params: bool        # timestamps bound as naive UTC (MySQL DATETIME)
    supports_timestamptz: bool
    truncates_weeks: bool     # date_trunc('week') exists (else weeks come from the weekday index)
    transactional_ddl: bool   # CREATE TABLE can sit inside a transaction (MySQL commits implicitly)
    table_collation: str | None = None   # MySQL compares text case-insensitively unless told otherwise
    epoch_micros: bool = False           # epoch_us() / make_timestamp(): fast wall-clock arithmetic
    # DuckDB itself: a scratch DuckDB connection beside the warehouse's reads its tables in place, and
    # registered Arrow rows join them (rollups work out deltas, key changes and deletes next to the stored rows)
    local_duckdb: bool = False
    row_hash: bool = False               # hash() is one portable 64-bit function (day fingerprints, see rollups.inputs)
    # the statement changing a column's type, and the name of the exact-decimal type
    column_type_change: str = "ALTER TABLE {table} ALTER COLUMN {column} TYPE {type}"
    decimal_type: str = "DECIMAL"
    identifier_quote: str = '"'          # quotes a name in raw SQL where sqlglot is not loaded (MySQL: `)
    copy_from_stdin: bool = False        # the driver bulk-loads with COPY ... FROM STDIN (psycopg)
    tinyint_booleans: bool = False       # booleans are stored as TINYINT(1): such a column may hold flags (MySQL)
    key_text_type: str | None = None     # a text primary key's type where TEXT can't be one (MySQL)
    # each thread's transactions run on a connection of its own (Warehouse.cursor); elsewhere one
    # connection serves the Warehouse, and work that must commit apart from a job needs a second one
    thread_connections: bool = False
    # an embedded file one process writes at a time: `tally serve` owns it and the CLI hands it commands
    single_writer: bool = False

    @property
    def placeholder(self) -> str:
        """The positional parameter marker of raw statements (DuckDB `?`; the DB-API drivers `%s`)."""
        return "?" if self.paramstyle == "dollar" else "%s"

    def change_column_type(self, table: str, column: str, type_sql: str) -> str:
        """ALTER statement giving a column (names quoted already) a new type."""
        return self.column_type_change.format(table=table, column=column, type=type_sql)

    def decimal(self, precision: int, scale: int) -> str:
        return f"{self.decimal_type}({precision}, {scale})"


DUCKDB = Dialect("duckdb", "dollar", "SET TimeZone = 'UTC'; SET enable_progress_bar = false", False, True, True, True,
                epoch_micros=True, local_duckdb=True, row_hash=True, thread_connections=True,
                single_writer=True)
POSTGRES = Dialect("postgres", "pyformat", "SET TIME ZONE 'UTC'", False, True, True, True, decimal_type="NUMERIC",
                   copy_from_stdin=True)
MYSQL = Dialect("mysql", "pyformat", "SET time_zone = '+00:00'", True, False, False, False,
                "utf8mb4_bin", column_type_change="ALTER TABLE {table} MODIFY COLUMN {column} {type}",
                identifier_quote="`", tinyint_booleans=True, key_text_type="VARCHAR(255)")

SCHEMES = {
    "duckdb": DUCKDB,
    "postgres": POSTGRES,
    "postgresql": POSTGRES,
    "mysql": MYSQL,
    "mariadb": MYSQL,
}

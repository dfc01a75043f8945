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


DUCKDB = Dialect("duckdb", "dollar", "SET TimeZone = 'UTC'; SET enable_progress_bar = false", False, True, True, True,
                epoch_micros=True)
POSTGRES = Dialect("postgres", "pyformat", "SET TIME ZONE 'UTC'", False, True, True, True)
MYSQL = Dialect("mysql", "pyformat", "SET time_zone = '+00:00'", True, False, False, False,
                "utf8mb4_bin")

SCHEMES = {
    "duckdb": DUCKDB,
    "postgres": POSTGRES,
    "postgresql": POSTGRES,
    "mysql": MYSQL,
    "mariadb": MYSQL,
}

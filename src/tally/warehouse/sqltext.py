"""SQL text built by hand for work on rows: quoted names, literals, date lists, period starts, null-safe matches.

Everything here is DuckDB SQL (rollups work on Arrow rows in a DuckDB scratch connection, see
`scratch_connection`) except `warehouse_ident`, quoted for the warehouse's own dialect. Names and
values reach the text only through sqlglot's quoting.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable

import sqlglot.expressions as sge

# date_trunc units of the grains coarser than a week, by grain name
_TRUNC_UNITS = {"month": "month", "quarter": "quarter", "year": "year"}


@functools.lru_cache(maxsize=4096)
def quote_ident(name: str) -> str:
    """A quoted DuckDB identifier (cached: SQL built per statement quotes the same few names often)."""
    return sge.to_identifier(name, quoted=True).sql("duckdb")


def sql_literal(value) -> str:
    """A DuckDB literal: NULL, TRUE/FALSE, a number or a quoted string."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return sge.Literal.number(value).sql("duckdb")
    return sge.Literal.string(str(value)).sql("duckdb")


def sql_date(day: dt.date) -> str:
    """A DuckDB DATE literal."""
    return f"{sql_literal(day.isoformat())}::DATE"


def date_list(days: Iterable[dt.date]) -> str:
    """DATE literals separated by commas (the inside of an `IN (...)`)."""
    return ", ".join(sql_date(d) for d in days)


def period_start_sql(grain, week_start: int, column: str = "period") -> str:
    """DuckDB SQL turning a DATE column into the start of its `grain` period (week, month, quarter, year).

    Weeks start on `week_start` (0 = Monday), as `engine.timegrid.truncate` has them.
    """
    name = getattr(grain, "value", grain)
    if name == "week":
        return f"CAST({column} - INTERVAL 1 DAY * ((isodow({column}) - 1 - {week_start} + 7) % 7) AS DATE)"
    return f"CAST(date_trunc({sql_literal(_TRUNC_UNITS[name])}, {column}) AS DATE)"


def null_safe_match(left: str, right: str, columns: Iterable[str], exact: Iterable[str] = ()) -> str:
    """`left.c IS NOT DISTINCT FROM right.c AND ...` (NULL matches NULL); columns in `exact` never
    hold NULL and are compared with `=` (which lets DuckDB skip blocks). Empty for no columns."""
    exact = set(exact)
    return " AND ".join(
        f"{left}.{quote_ident(c)} = {right}.{quote_ident(c)}" if c in exact
        else f"{left}.{quote_ident(c)} IS NOT DISTINCT FROM {right}.{quote_ident(c)}" for c in columns)


def warehouse_ident(name: str, dialect) -> str:
    """An identifier quoted for the warehouse's dialect (a `Dialect` or its name)."""
    return sge.to_identifier(name, quoted=True).sql(getattr(dialect, "name", dialect))


def scratch_connection(warehouse=None):
    """A DuckDB connection for work on Arrow rows: where the warehouse allows it (`Dialect.local_duckdb`),
    a connection of its own to the warehouse's database (its memory counts against the build's
    budget and spills to disk past it, and it reads the stored tables in place); elsewhere an
    in-memory database."""
    import duckdb

    if warehouse is not None and warehouse.dialect.local_duckdb:
        con = warehouse.new_cursor()
        con.execute(warehouse.dialect.session_utc)   # as the warehouse's own cursors: times read in UTC
    else:
        con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    return con


def bind_value(warehouse, value):
    """A query parameter's value as the warehouse's driver takes it (naive UTC times on MySQL)."""
    return warehouse.param_value(value)

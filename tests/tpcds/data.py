"""TPC-DS data from DuckDB's `tpcds` extension: generated once, copied into a warehouse under test."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pyarrow as pa

# The store_sales star: the fact and the dimensions its queries join to.
FACT = "store_sales"
DIMENSIONS = {  # table -> its key, the fact column(s) referencing it
    "date_dim": ("d_date_sk", ["ss_sold_date_sk"]),
    "time_dim": ("t_time_sk", ["ss_sold_time_sk"]),
    "item": ("i_item_sk", ["ss_item_sk"]),
    "store": ("s_store_sk", ["ss_store_sk"]),
    "customer": ("c_customer_sk", ["ss_customer_sk"]),
    "customer_demographics": ("cd_demo_sk", ["ss_cdemo_sk"]),
    "household_demographics": ("hd_demo_sk", ["ss_hdemo_sk"]),
    "promotion": ("p_promo_sk", ["ss_promo_sk"]),
}
# customer_address is reached from the fact (ss_addr_sk) and through customer (c_current_addr_sk).
TABLES = [FACT, *DIMENSIONS, "customer_address"]
LOAD_TIMEOUT = 90.0  # seconds for copying every table into one warehouse


def extension_path() -> Path:
    """The `tpcds` extension shipped in the duckdb-extension-tpcds wheel (LOAD needs no network)."""
    import duckdb_extension_tpcds

    path = Path(duckdb_extension_tpcds.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    return path / "tpcds.duckdb_extension"


def generate(sf: float) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB holding the star at scale factor `sf`, dimensions cut to the rows the fact uses.

    Cutting (semi-join on the fact's keys) keeps every answer of a query that reaches the dimensions
    only through store_sales, and makes the PostgreSQL / MariaDB loads small (date_dim and time_dim
    have 73,049 and 86,400 rows at any scale)."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"LOAD '{extension_path()}'")
    con.execute("CALL dsdgen(sf = ?)", [sf])
    for table, (key, columns) in DIMENSIONS.items():
        used = " OR ".join(f"{c} = {key}" for c in columns)
        con.execute(f"DELETE FROM {table} WHERE NOT EXISTS (SELECT 1 FROM {FACT} WHERE {used})")
    con.execute("DELETE FROM customer_address WHERE NOT EXISTS (SELECT 1 FROM store_sales WHERE ss_addr_sk = "
                "ca_address_sk) AND NOT EXISTS (SELECT 1 FROM customer WHERE c_current_addr_sk = ca_address_sk)")
    for table in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
        if table[0] not in TABLES:
            con.execute(f"DROP TABLE {table[0]}")
    return con


def official_query(con: duckdb.DuckDBPyConnection, number: int) -> str:
    """The official text of TPC-DS query `number` as the extension ships it."""
    return con.execute("SELECT query FROM tpcds_queries() WHERE query_nr = ?", [number]).fetchone()[0]


def arrow_tables(con: duckdb.DuckDBPyConnection) -> dict[str, pa.Table]:
    return {table: con.execute(f"SELECT * FROM {table}").fetch_arrow_table() for table in TABLES}


def copy_into(warehouse, tables: dict[str, pa.Table], timeout: float = LOAD_TIMEOUT) -> dict[str, float]:
    """Write every table with Tally's bulk path (DuckDB register, PostgreSQL COPY, MySQL batches).

    Returns seconds per table; raises TimeoutError once the whole copy exceeds `timeout` (checked
    between tables: a hung server shows which table it hung on)."""
    seconds, start = {}, time.monotonic()
    for name, data in tables.items():
        began = time.monotonic()
        warehouse.write_table(name, data)
        key = DIMENSIONS[name][0] if name in DIMENSIONS else "ca_address_sk" if name == "customer_address" else None
        if key and warehouse.dialect.name != "duckdb":
            # MariaDB joins unindexed tables by scanning them per row: q7 took minutes without these
            warehouse.execute_sql(f"ALTER TABLE {name} ADD PRIMARY KEY ({key})")
        seconds[name] = round(time.monotonic() - began, 2)
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"loading TPC-DS into {warehouse!r} took over {timeout:.0f}s (at {name}: {seconds})")
    return seconds

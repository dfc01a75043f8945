"""The `sql` connector end to end: real PostgreSQL and MariaDB sources (and SQLite files), `tally.sources.ingest`."""

from __future__ import annotations

import logging
import re
import socket
import sqlite3
from contextlib import closing
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import ibis
import MySQLdb
import psycopg
import pytest
import yaml

import tally
from tally.errors import ConfigError
from tally.sources import ingest
from tally.sources.connectors.sql_database import single_select, watermark_value
from tally.warehouse.internal import read_state
from tests.servers import mysql_connect_kwargs

UTC = timezone.utc
ZONE = "Europe/Istanbul"          # MariaDB DATETIME values are wall-clock times in the source's data_timezone
START = datetime(2024, 1, 1, tzinfo=UTC)
COLUMNS = {"id": "int64", "customer": "text", "amount": "decimal(12,2)", "status": "text",
           "updated_at": "timestamp"}
ORDERS = {
    "postgres": "CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(12,2), "
                "status text, updated_at timestamptz NOT NULL)",
    "mariadb": "CREATE TABLE orders (id bigint PRIMARY KEY, customer varchar(40) NOT NULL, amount decimal(12,2), "
               "status varchar(20), updated_at datetime(6) NOT NULL)",
}
INSERT = "INSERT INTO orders (id, customer, amount, status, updated_at) VALUES (%s, %s, %s, %s, %s)"


class Server:
    """A fresh database on one of the test servers, and how to write into it."""

    def __init__(self, kind: str, url: str):
        self.kind, self.url = kind, url

    def execute(self, sql: str, rows: list[tuple] | None = None) -> list[tuple]:
        """Run one statement (once per row of `rows`) and commit; the rows it returns."""
        con = (psycopg.connect(self.url, autocommit=True) if self.kind == "postgres"
               else MySQLdb.connect(**mysql_connect_kwargs(self.url), autocommit=True))
        with closing(con), closing(con.cursor()) as cur:
            cur.executemany(sql, rows) if rows else cur.execute(sql)
            return list(cur.fetchall()) if cur.description else []

    def stamp(self, moment: datetime) -> datetime:
        """The value to store for an instant: timestamptz as is, DATETIME as wall-clock time in ZONE."""
        return moment if self.kind == "postgres" else moment.astimezone(ZoneInfo(ZONE)).replace(tzinfo=None)

    def order(self, id: int, minutes: int, amount: str = "10.00", status: str = "paid") -> tuple:
        return (id, f"customer-{id % 3}", Decimal(amount), status, self.stamp(START + timedelta(minutes=minutes)))


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.servers),
                        pytest.param("mariadb", marks=pytest.mark.servers)])
def server(request) -> Server:
    return Server(request.param, request.getfixturevalue(f"{request.param}_db_url"))


def orders_source(**options) -> dict:
    return {"kind": "sql", "url": "${SHOP_DB_URL}", "table": "orders", "primary_key": ["id"],
            "cursor": "updated_at", "columns": COLUMNS, "data_timezone": ZONE, **options}


def run(root: Path, config: dict, *, warehouse: str | None = None, progress=None):
    """Write tally.yml with this one source, ingest it; (LoadResult, loaded rows by id, stored watermark)."""
    (root / "tally.yml").write_text(yaml.safe_dump({
        "name": "sql-test", "warehouse": warehouse or f"duckdb:///{root / 'warehouse.duckdb'}",
        "sources": {"orders": config}}))
    project = tally.Project.load(root)
    try:
        result = ingest(project, progress=progress)[0]
        wh = project.warehouse
        rows = wh.run(wh.compile(wh.table("orders"))).to_pylist() if wh.has_table("orders") else []
        return result, sorted(rows, key=lambda r: r["id"]), read_state(wh, "source:orders")
    finally:
        project.close()


def at(minutes: int) -> datetime:
    return START + timedelta(minutes=minutes)


def test_incremental_reads_only_rows_past_the_watermark(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_DB_URL", server.url)
    server.execute(ORDERS[server.kind])
    server.execute(INSERT, [server.order(1, 1, "1250.50"), server.order(2, 2, "0.10"), server.order(3, 3)])

    result, rows, watermark = run(tmp_path, orders_source())
    assert result.status == "ok", result.error
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (3, 3, 0)
    assert rows[0] == {"id": 1, "customer": "customer-1", "amount": Decimal("1250.50"), "status": "paid",
                       "updated_at": at(1)}
    assert watermark == at(3).isoformat()

    server.execute(INSERT, [server.order(4, 4), server.order(5, 5, status="refunded")])
    server.execute(f"UPDATE orders SET amount = 99.99, updated_at = '{server.stamp(at(6)).isoformat(' ')}' "
                   "WHERE id = 2")
    result, rows, watermark = run(tmp_path, orders_source())
    assert result.status == "ok", result.error
    # only the two new rows and the updated one came from the source: nothing to skip
    assert (result.rows_read, result.rows_loaded, result.rows_skipped) == (3, 3, 0)
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5]
    assert (rows[1]["amount"], rows[1]["updated_at"]) == (Decimal("99.99"), at(6))
    assert watermark == at(6).isoformat()

    result, rows, _ = run(tmp_path, orders_source())
    assert (result.rows_read, result.rows_skipped, len(rows)) == (0, 0, 5)


def test_query_source_joins_and_reads_incrementally(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_DB_URL", server.url)
    server.execute(ORDERS[server.kind])
    server.execute("CREATE TABLE customers (id int PRIMARY KEY, name varchar(40))")
    server.execute("INSERT INTO customers (id, name) VALUES (%s, %s)", [(0, "Ada"), (1, "Bo"), (2, "Cy")])
    server.execute(INSERT, [server.order(1, 1, "5.00"), server.order(2, 2, "7.25", status="cancelled"),
                            server.order(3, 3, "1.50")])
    config = orders_source(query="SELECT o.id, c.name AS customer, o.amount * 2 AS amount, o.status, o.updated_at "
                                 "FROM orders o JOIN customers c ON c.id = o.id % 3 WHERE o.status <> 'cancelled'")

    result, rows, _ = run(tmp_path, config)
    assert result.status == "ok", result.error
    assert [(r["id"], r["customer"], r["amount"]) for r in rows] == [(1, "Bo", Decimal("10.00")),
                                                                    (3, "Ada", Decimal("3.00"))]
    server.execute(INSERT, [server.order(4, 4, "2.00")])
    result, rows, watermark = run(tmp_path, config)
    assert (result.rows_read, result.rows_skipped) == (1, 0)
    assert [r["id"] for r in rows] == [1, 3, 4]
    assert watermark == at(4).isoformat()


@pytest.mark.parametrize("query", [
    "DELETE FROM orders",
    "SELECT 1; DROP TABLE orders",
    "WITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone",
    "SELECT * INTO copied FROM orders",
    "SELECT * FROM orders FOR UPDATE",
    "TRUNCATE orders",
    "SELECT FROM WHERE (",
])
@pytest.mark.servers
def test_a_query_that_is_not_one_select_is_refused_before_anything_runs(postgres_db_url, tmp_path, monkeypatch,
                                                                       query):
    server = Server("postgres", postgres_db_url)
    monkeypatch.setenv("SHOP_DB_URL", postgres_db_url)
    server.execute(ORDERS["postgres"])
    server.execute(INSERT, [server.order(1, 1)])
    (tmp_path / "tally.yml").write_text(yaml.safe_dump({"name": "t", "sources": {"orders": orders_source(
        query=query)}}))
    with pytest.raises(ConfigError, match=r"sources\.orders\.query|query") as error:
        ingest(tally.Project.load(tmp_path))
    assert error.value.line is not None
    assert "must" in error.value.reason or "not valid SQL" in error.value.reason
    assert urlsplit(postgres_db_url).password not in str(error.value)
    assert server.execute("SELECT count(*), to_regclass('copied') FROM orders") == [(1, None)]


@pytest.mark.parametrize(("options", "message"), [
    ({"query": "SELECT 1", "source_table": "orders"}, "not both"),
    ({"url": "oracle://scott:tiger@db/orcl"}, "url must start with one of"),
    ({"batch_size": 0}, "greater than 0"),
])
def test_options_are_checked_when_the_project_loads(tmp_path, options, message):
    config = {**orders_source(), "url": "postgresql://u:topsecret@127.0.0.1/db", **options}
    (tmp_path / "tally.yml").write_text(yaml.safe_dump({"name": "t", "sources": {"orders": config}}))
    with pytest.raises(ConfigError, match=message) as error:
        ingest(tally.Project.load(tmp_path))
    assert "topsecret" not in str(error.value) and "tiger" not in str(error.value)


WRITING_FUNCTION = {   # a function that writes, called by an innocent-looking SELECT
    "postgres": "CREATE FUNCTION touch() RETURNS int LANGUAGE sql AS 'INSERT INTO audit VALUES (1) RETURNING 1'",
    "mariadb": "CREATE FUNCTION touch() RETURNS int MODIFIES SQL DATA "
               "BEGIN INSERT INTO audit VALUES (1); RETURN 1; END",
}


def test_the_source_session_is_read_only_whatever_the_select_calls(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_DB_URL", server.url)
    server.execute("CREATE TABLE audit (n int)")
    server.execute(WRITING_FUNCTION[server.kind])
    config = orders_source(query="SELECT touch() AS id, 'x' AS customer, 1.0 AS amount, 'paid' AS status, "
                                 "now() AS updated_at")
    result, rows, _ = run(tmp_path, config)
    assert result.status == "failed" and rows == []
    assert re.search("read.only transaction", result.error, re.IGNORECASE)
    assert urlsplit(server.url).password not in result.error
    assert server.execute("SELECT count(*) FROM audit") == [(0,)]


@pytest.mark.servers
def test_a_table_in_another_schema_by_source_table(postgres_db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_DB_URL", postgres_db_url)
    server = Server("postgres", postgres_db_url)
    server.execute("CREATE SCHEMA sales")
    server.execute(ORDERS["postgres"].replace("TABLE orders", "TABLE sales.orders"))
    server.execute(INSERT.replace("INTO orders", "INTO sales.orders"), [server.order(1, 1), server.order(2, 2)])
    result, rows, _ = run(tmp_path, orders_source(source_table="sales.orders"))
    assert result.status == "ok", result.error
    assert [r["id"] for r in rows] == [1, 2]

    result, _, _ = run(tmp_path, orders_source(source_table="sales.missing"))
    assert result.status == "failed"
    assert "no table 'sales.missing'" in result.error and "***" in result.error


@pytest.mark.parametrize("batch_size", [64, 1000])
def test_rows_are_read_in_batches(server, tmp_path, monkeypatch, batch_size):
    monkeypatch.setenv("SHOP_DB_URL", server.url)
    server.execute(ORDERS[server.kind])
    server.execute(INSERT, [server.order(i, i % 500, f"{i}.{i % 100:02d}") for i in range(1, 1001)])
    reads = []

    def progress(source, fraction, message):
        if message.startswith("read "):
            reads.append(int(message.split()[1].replace(",", "")))

    result, rows, _ = run(tmp_path, orders_source(batch_size=batch_size), progress=progress)
    assert result.status == "ok", result.error
    assert (result.rows_read, result.rows_loaded, len(rows)) == (1000, 1000, 1000)
    assert len(reads) == -(-1000 // batch_size) and reads[-1] == 1000
    assert sum(r["amount"] for r in rows) == sum(Decimal(f"{i}.{i % 100:02d}") for i in range(1, 1001))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("problem", ["closed port", "wrong password"])
def test_an_unreachable_source_fails_the_run_without_showing_the_password(server, tmp_path, monkeypatch, caplog,
                                                                          problem):
    parts = urlsplit(server.url)
    secret = "Not-The-Password-42"
    netloc = (f"{parts.username}:{secret}@127.0.0.1:{closed_port()}" if problem == "closed port"
              else parts.netloc.replace(f":{parts.password}@", f":{secret}@"))
    monkeypatch.setenv("SHOP_DB_URL", parts._replace(netloc=netloc).geturl())
    caplog.set_level(logging.DEBUG)
    result, rows, watermark = run(tmp_path, orders_source())
    assert result.status == "failed" and rows == [] and watermark is None
    assert result.error.startswith("cannot connect to ") and ":***@127.0.0.1" in result.error
    assert secret not in result.error and secret not in caplog.text
    project = tally.Project.load(tmp_path)
    try:
        wh = project.warehouse
        loads = wh.run(wh.compile(wh.table("_tally_loads"))).to_pylist()
    finally:
        project.close()
    assert [(load["status"], load["error"]) for load in loads] == [("failed", result.error)]


def test_sqlite_file_relative_to_the_project(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    con = sqlite3.connect(tmp_path / "data" / "shop.db")
    con.execute("CREATE TABLE shop_orders (id INTEGER PRIMARY KEY, customer TEXT, amount DECIMAL(12,2), "
                "status TEXT, modified TIMESTAMP)")
    con.executemany("INSERT INTO shop_orders VALUES (?, ?, ?, ?, ?)",
                    [(1, "a", "12.50", "paid", "2024-01-01 03:01:00"), (2, "b", "7", "paid", "2024-01-01 03:02:00"),
                     (3, "c", "1,250.00", "paid", None)])
    con.commit()
    monkeypatch.setenv("SHOP_DB_URL", "sqlite:///data/shop.db")
    config = orders_source(source_table="shop_orders", rename={"modified": "updated_at"}, batch_size=2)

    result, rows, watermark = run(tmp_path, config)
    assert result.status == "ok", result.error
    assert [(r["id"], r["amount"], r["updated_at"]) for r in rows] == [
        (1, Decimal("12.50"), at(1)), (2, Decimal("7.00"), at(2)), (3, Decimal("1250.00"), None)]
    assert watermark == at(2).isoformat()

    con.execute("INSERT INTO shop_orders VALUES (4, 'd', 3, 'paid', '2024-01-01 03:04:00')")
    con.commit()
    result, rows, watermark = run(tmp_path, config)
    # the new row, and the row without a cursor value (the pipeline loads those on every run)
    assert (result.rows_read, result.rows_skipped, len(rows)) == (2, 0, 4)
    assert watermark == at(4).isoformat()
    con.close()
    assert (tmp_path / "data" / "shop.db").stat().st_size > 0


def test_sqlite_missing_file_or_table(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_DB_URL", "sqlite:///nowhere.db")
    result, _, _ = run(tmp_path, orders_source())
    assert result.status == "failed" and "no SQLite database at" in result.error
    assert not (tmp_path / "nowhere.db").exists()          # opened read-only: never created
    sqlite3.connect(tmp_path / "nowhere.db").close()
    result, _, _ = run(tmp_path, orders_source())
    assert result.status == "failed" and "no table 'orders'" in result.error


@pytest.mark.servers
def test_a_postgres_warehouse_loading_from_mariadb(postgres_db_url, mariadb_db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_DB_URL", mariadb_db_url)
    source = Server("mariadb", mariadb_db_url)
    source.execute(ORDERS["mariadb"])
    source.execute(INSERT, [source.order(1, 1, "1250.50"), source.order(2, 2)])
    result, rows, watermark = run(tmp_path, orders_source(), warehouse=postgres_db_url)
    assert result.status == "ok", result.error
    assert [(r["id"], r["amount"], r["updated_at"]) for r in rows] == [(1, Decimal("1250.50"), at(1)),
                                                                       (2, Decimal("10.00"), at(2))]
    source.execute(INSERT, [source.order(3, 3)])
    source.execute(f"UPDATE orders SET status = 'refunded', updated_at = '{source.stamp(at(4)).isoformat(' ')}' "
                   "WHERE id = 1")
    result, rows, watermark = run(tmp_path, orders_source(), warehouse=postgres_db_url)
    assert (result.status, result.rows_read, result.rows_skipped) == ("ok", 2, 0)
    assert [(r["id"], r["status"]) for r in rows] == [(1, "refunded"), (2, "paid"), (3, "paid")]
    assert watermark == at(4).isoformat()
    assert Server("postgres", postgres_db_url).execute(
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_name = 'orders' AND column_name = 'amount'") == [("numeric",)]


@pytest.mark.parametrize(("text", "dtype", "expected"), [
    ("2024-01-01T10:00:00+00:00", "timestamp('UTC')", datetime(2024, 1, 1, 10, tzinfo=UTC)),
    ("2024-01-01T10:00:00+00:00", "timestamp", datetime(2024, 1, 1, 13)),          # wall-clock time in ZONE
    ("2024-01-01T10:00:00", "timestamp", datetime(2024, 1, 1, 10)),
    ("2024-01-01T22:00:00+00:00", "date", date(2024, 1, 2)),
    ("2024-01-02", "date", date(2024, 1, 2)),
    ("12", "int64", 12),
    ("12.9", "int32", 12),                                                          # rounded down: `>` keeps 13
    ("12.345", "decimal(12,2)", Decimal("12.34")),
    ("abc", "string", "abc"),
    ("true", "boolean", None),                                                      # not pushed
])
def test_watermark_values_round_down_to_the_column_type(text, dtype, expected):
    assert watermark_value(text, ibis.dtype(dtype), ZONE) == expected


def test_float_watermarks_step_just_below():
    value = watermark_value("0.3", ibis.dtype("float64"), ZONE)
    assert value < 0.3 and value > 0.29999999999999


def test_single_select_accepts_unions_and_ctes():
    assert single_select("WITH x AS (SELECT 1 AS a) SELECT a FROM x UNION ALL SELECT 2", "postgres") is not None
    with pytest.raises(ValueError, match="single SELECT"):
        single_select("", "sqlite")


@pytest.mark.servers
def test_a_connection_lost_midway_fails_the_run_and_loads_nothing(postgres_db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_DB_URL", postgres_db_url)
    server = Server("postgres", postgres_db_url)
    server.execute(ORDERS["postgres"])
    server.execute(INSERT, [server.order(i, i) for i in range(1, 101)])

    def progress(source, fraction, message):
        if message == "read 10 rows":     # PostgreSQL streams: the next batch is fetched after this one
            server.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")

    result, rows, watermark = run(tmp_path, orders_source(batch_size=10), progress=progress)
    assert result.status == "failed" and rows == [] and watermark is None
    assert "reading table 'orders' from postgresql://" in result.error
    assert "failed after 10 rows" in result.error and "nothing was loaded" in result.error
    assert urlsplit(postgres_db_url).password not in result.error

"""A small project for job tests: a CSV source `orders` and a rollup `daily` over it, on any warehouse."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml


def write_orders(root: Path, count: int, start: int = 1) -> int:
    """`count` order rows in data/orders.csv (ids from `start`); returns the count written."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    with open(root / "data" / "orders.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["order_id", "amount", "ordered_at"])
        for i in range(start, start + count):
            writer.writerow([i, f"{i % 97}.50", f"2024-01-{1 + i % 28:02d} 10:00:00"])
    return count


def write_project(root: Path, warehouse: str, *, source: dict | None = None, rollup: dict | None = None,
                  jobs: dict | None = None, extra: dict | None = None) -> Path:
    """tally.yml for the job tests; `source`/`rollup` keys are added to the orders source / daily rollup."""
    config = {
        "name": "jobs-test",
        "timezone": "Europe/Istanbul",
        "warehouse": warehouse,
        "sources": {"orders": {"kind": "csv", "path": "data/orders.csv", "table": "orders",
                               "primary_key": ["order_id"],
                               "columns": {"order_id": "int64", "amount": "decimal(12,2)", "ordered_at": "timestamp"},
                               **(source or {})}},
        "models": {"orders": {"table": "orders", "time": "ordered_at",
                              "measures": {"revenue": {"sum": "amount"}, "orders": {"count": "*"}}}},
        "rollups": {"daily": {"metrics": ["revenue", "orders"], "grains": ["day"], **(rollup or {})}},
        **({"jobs": jobs} if jobs else {}),
        **(extra or {}),
    }
    (root / "tally.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return root


@pytest.fixture
def duck_url(tmp_path) -> str:
    return f"duckdb:///{tmp_path}/warehouse.duckdb"


@pytest.fixture(params=["duckdb", "postgres", "mariadb"])
def any_url(request, tmp_path) -> str:
    """A new empty warehouse of each kind (a database of its own on the servers)."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path}/warehouse.duckdb"
    return request.getfixturevalue("postgres_db_url" if request.param == "postgres" else "mariadb_db_url")


def plain_rows(url: str, sql: str) -> list[tuple]:
    """Rows of `sql` read with the database's own driver (no Tally code): the independent check."""
    if url.startswith("duckdb"):
        import duckdb

        con = duckdb.connect(url.split(":///", 1)[1], read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()
    if url.startswith("postgres"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as con:
            return con.execute(sql).fetchall()
    import MySQLdb

    from tests.servers import mysql_connect_kwargs

    con = MySQLdb.connect(**mysql_connect_kwargs(url))
    try:
        cursor = con.cursor()
        cursor.execute(sql.replace('"', "`"))
        return list(cursor.fetchall())
    finally:
        con.close()

"""A small sales project (a CSV source with a rejected row, a rollup) and TestClients over its app."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

with warnings.catch_warnings():   # starlette 1.10 warns at import that its TestClient's httpx is deprecated
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

from tally.cli import app as cli_app

CONFIG = """
name: h5api
timezone: Europe/Istanbul
warehouse: {url}
sources:
  h5_sales:
    kind: csv
    path: data/*.csv
    table: h5_sales
    primary_key: [id]
    columns: {{id: int64, sold_at: timestamp, amount: "decimal(12,2)", shop: string}}
models:
  sales:
    table: h5_sales
    time: sold_at
    primary_key: [id]
    dimensions: {{shop: shop}}
    measures:
      revenue: {{sum: amount, format: money}}
      sold: {{count: id, format: integer}}
metrics:
  avg_sale: revenue / sold
rollups:
  h5_daily:
    metrics: [revenue, sold]
    grains: [day, month]
    by: [shop]
{api}"""

ROWS = [(1, "2026-09-01 10:00:00", "10.50", "a"), (2, "2026-09-01 22:30:00", "20.25", "b"),
        (3, "2026-09-02 10:00:00", "5.00", "a"), (4, "2026-09-15 10:00:00", "100.01", "b"),
        (5, "not a time", "1.00", "a")]   # rejected


def cli(*args) -> str:
    result = CliRunner().invoke(cli_app, [str(a) for a in args])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result.stdout


def write_rows(directory: Path, name: str, rows) -> None:
    lines = ["id,sold_at,amount,shop"] + [",".join(map(str, row)) for row in rows]
    (directory / "data").mkdir(exist_ok=True)
    (directory / "data" / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_project(directory: Path, url: str, api: str = "", rows=ROWS, build: bool = True) -> Path:
    (directory / "tally.yml").write_text(CONFIG.format(url=url, api=api), encoding="utf-8")
    write_rows(directory, "a.csv", rows)
    cli("-p", directory, "ingest", "--full-refresh")
    if build:
        cli("-p", directory, "rollup", "build", "--full")
    return directory


def client(project, **kwargs) -> TestClient:
    """A TestClient over create_app(project); loopback by default (TestClient's host is `testclient`)."""
    from tally.api import create_app

    return TestClient(create_app(project, **kwargs), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def duck_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("h5api")
    return make_project(directory, f"duckdb:///{directory}/warehouse.duckdb")


@pytest.fixture(scope="module")
def duck(duck_dir):
    from tally import Project

    project = Project.load(duck_dir)
    yield client(project)
    project.close()

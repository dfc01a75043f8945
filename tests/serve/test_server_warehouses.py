"""On PostgreSQL and MariaDB nothing is handed off: the CLI works beside `tally serve` by itself."""

from __future__ import annotations

import json

import pytest

from tests.serve.conftest import days_ago, serving, tally, write_orders

pytestmark = pytest.mark.servers


@pytest.fixture(params=["postgres", "mariadb"])
def server_project(request, tmp_path):
    from tally.commands.init import init_project
    from tests.servers import mariadb_database, postgres_database

    database = postgres_database if request.param == "postgres" else mariadb_database
    with database(request.getfixturevalue(f"{request.param}_url"), "serve") as url:
        root = tmp_path / "shop"
        init_project(root, None)
        config = root / "tally.yml"
        config.write_text(config.read_text().replace("warehouse: duckdb:///warehouse.duckdb", f"warehouse: {url}"))
        write_orders(root / "data" / "orders.csv", 1, 200, days_ago(10))
        yield root


def test_the_cli_works_beside_the_server(server_project):
    root = server_project
    with serving(root, handoff=False) as server:
        assert not (root / ".tally" / "server.json").exists()
        results = [tally(root, *args) for args in (["ingest"], ["rollup", "build"], ["verify"],
                                                   ["query", "revenue", "--format", "json"])]
        assert server.handed_off() == 0
        assert server.stop() == 0
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
    total = sum(round((i % 997) / 10, 2) for i in range(200))
    assert abs(sum(row["revenue"] for row in json.loads(results[3].stdout)) - total) < 0.005

"""Shared fixtures: the three warehouses (one parametrized fixture) and the ecommerce example on each."""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from pathlib import Path

import pytest

pytest_plugins = ["tests.servers"]

WAREHOUSES = ["duckdb", "postgres", "mariadb"]
ECOMMERCE_ROWS = 4000


@pytest.fixture(scope="session", params=WAREHOUSES)
def warehouse_kind(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def session_warehouse_url(request, warehouse_kind, tmp_path_factory):
    """A warehouse URL for the whole session, one per kind (servers are started on first use)."""
    from tests.servers import mariadb_database, postgres_database

    with ExitStack() as stack:
        if warehouse_kind == "duckdb":
            yield f"duckdb:///{tmp_path_factory.mktemp('duck')}/warehouse.duckdb"
        elif warehouse_kind == "postgres":
            yield stack.enter_context(postgres_database(request.getfixturevalue("postgres_url"), "shared"))
        else:
            yield stack.enter_context(mariadb_database(request.getfixturevalue("mariadb_url"), "shared"))


@pytest.fixture(scope="session")
def ecommerce(session_warehouse_url, tmp_path_factory):
    """The ecommerce example with generated data loaded into each warehouse, plus the raw tables."""
    from tally.demo import _generator, prepare

    directory = tmp_path_factory.mktemp("ecommerce")
    project, _ = prepare("ecommerce", directory, ECOMMERCE_ROWS, seed=7, warehouse=session_warehouse_url)
    tables = _generator("ecommerce").generate(ECOMMERCE_ROWS, seed=7)
    yield project, tables
    project.close()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def project_dir(tmp_path) -> Path:
    return tmp_path

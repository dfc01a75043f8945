"""The TPC-DS star loaded once per warehouse kind for tests/tpcds."""

from __future__ import annotations

from contextlib import ExitStack
from functools import cache
from pathlib import Path

import pytest

from tests.tpcds import data

HERE = Path(__file__).parent
# DuckDB at the scale the suite was first measured at; the servers at a tenth of it (their loads are slower)
SCALE = {"duckdb": 0.1, "postgres": 0.01, "mariadb": 0.01}


@cache
def reference(sf: float):
    """The generated star in an in-memory DuckDB, once per scale factor per session."""
    return data.generate(sf)


@pytest.fixture(scope="session")
def tpcds(request, warehouse_kind, tmp_path_factory):
    """(project on a warehouse holding the star, the reference DuckDB connection)."""
    import tally
    from tests.servers import mariadb_database, postgres_database

    con = reference(SCALE[warehouse_kind])
    with ExitStack() as stack:
        if warehouse_kind == "duckdb":
            url = f"duckdb:///{tmp_path_factory.mktemp('tpcds')}/warehouse.duckdb"
        elif warehouse_kind == "postgres":
            url = stack.enter_context(postgres_database(request.getfixturevalue("postgres_url"), "tpcds"))
        else:
            url = stack.enter_context(mariadb_database(request.getfixturevalue("mariadb_url"), "tpcds"))
        project = tally.Project.load(HERE, warehouse=url)
        stack.callback(project.close)
        data.copy_into(project.warehouse, data.arrow_tables(con))
        yield project, con



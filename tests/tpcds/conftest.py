"""The TPC-DS star loaded once per warehouse kind for tests/tpcds."""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from functools import cache
from pathlib import Path

import pytest

from tests.servers import warehouse_url_for
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

    con = reference(SCALE[warehouse_kind])
    with ExitStack() as stack:
        url = stack.enter_context(warehouse_url_for(warehouse_kind, request, "tpcds"))
        # a copy of tally.yml: the project's `.tally/` cache goes to a temp folder, not into tests/tpcds
        root = tmp_path_factory.mktemp(f"tpcds_{warehouse_kind}")
        shutil.copy(HERE / "tally.yml", root / "tally.yml")
        project = tally.Project.load(root, warehouse=url)
        stack.callback(project.close)
        data.copy_into(project.warehouse, data.arrow_tables(con))
        yield project, con



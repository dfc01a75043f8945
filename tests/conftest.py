"""Shared fixtures: the three warehouses (one parametrized fixture) and the ecommerce example on each."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# before they are imported: their asserts report values as a test's own do
pytest.register_assert_rewrite("tests.cli_helpers", "tests.servers")

from tests.servers import WAREHOUSE_KINDS, warehouse_url_for  # noqa: E402

pytest_plugins = ["tests.servers"]

ECOMMERCE_ROWS = 4000


@pytest.fixture(scope="session", params=WAREHOUSE_KINDS)
def warehouse_kind(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def session_warehouse_url(request, warehouse_kind):
    """A warehouse URL for the whole session, one per kind (servers are started on first use)."""
    with warehouse_url_for(warehouse_kind, request, "shared") as url:
        yield url


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

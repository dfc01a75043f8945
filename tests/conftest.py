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


# -- parallel runs (pytest -n 2 --dist loadgroup, as `make test` runs it) -------------------------
#
# Each xdist worker is a session of its own: it starts its own servers and builds its own session
# and module fixtures. Grouping keeps that to once where it matters: every test on PostgreSQL runs
# on one worker, every test on MariaDB on one, and the rest module by module (tests/tpcds as one,
# its DuckDB star is built per session). A test's own `xdist_group` mark wins.

SHARED_SETUP_FOLDERS = ("tests/tpcds/",)


def xdist_group_of(item: pytest.Item) -> str:
    """The loadgroup a test runs in: its server, else its module (or folder, for SHARED_SETUP_FOLDERS)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    used = set(getattr(item, "fixturenames", ())) | {value for value in params.values() if isinstance(value, str)}
    for server in ("postgres", "mariadb"):
        if used & {server, f"{server}_url", f"{server}_db_url"}:
            return server
    path = item.nodeid.split("::", 1)[0]
    return next((folder for folder in SHARED_SETUP_FOLDERS if path.startswith(folder)), path)


@pytest.hookimpl(tryfirst=True)   # before xdist reads the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if getattr(config.option, "dist", "no") != "loadgroup":
        return
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(xdist_group_of(item)))

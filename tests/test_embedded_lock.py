"""Every use of the embedded warehouse's shared DuckDB connection holds the warehouse lock: a scheduled
ingest in `tally serve` ran Ibis's list_tables on it unlocked while an API request read it, and the
two threads read each other's results (a 500 "No open result set"; the ingest failed converting 'main')."""

from __future__ import annotations

from tally.warehouse import Warehouse
from tally.warehouse.internal import ensure_internal_tables


class Guarded:
    """The connection, refusing any call made without the warehouse lock."""

    def __init__(self, con, lock):
        self._con, self._lock = con, lock

    def __getattr__(self, name):
        value = getattr(self._con, name)
        if callable(value) and name in ("execute", "sql", "query", "cursor", "fetchall", "table", "register"):
            def checked(*args, **kwargs):
                assert self._lock._is_owned(), f"connection.{name}() without the warehouse lock"
                return value(*args, **kwargs)
            return checked
        return value


def test_internal_tables_are_ensured_under_the_warehouse_lock(tmp_path):
    warehouse = Warehouse(f"duckdb:///{tmp_path}/w.duckdb", tmp_path)
    try:
        warehouse.backend.con = Guarded(warehouse.backend.con, warehouse._lock)
        ensure_internal_tables(warehouse)   # every internal table made
        ensure_internal_tables(warehouse)   # and found
        assert "_tally_job_runs" in warehouse.list_tables()
    finally:
        warehouse.backend.con = warehouse.backend.con._con
        warehouse.close()


def test_ingest_rollup_jobs_and_queries_hold_the_lock(tmp_path):
    from tally import Project
    from tally.jobs import list_jobs, recent_runs, run_job
    from tests.api.conftest import make_project

    project = Project.load(make_project(tmp_path, f"duckdb:///{tmp_path}/w.duckdb", build=False))
    try:
        warehouse = project.warehouse
        warehouse.backend.con = Guarded(warehouse.backend.con, warehouse._lock)
        assert run_job(project, "ingest:h5_sales").status == "succeeded"
        assert run_job(project, "rollup:h5_daily").status == "succeeded"
        assert list_jobs(project) and recent_runs(project, False, 10, 0)
        assert project.query(["revenue"], by=["shop"]).num_rows == 2
    finally:
        project.close()

"""DuckDB settings in the warehouse URL, and the buffer budget of an ingest's load."""

from __future__ import annotations

import pytest

from tally.errors import ConfigError, WarehouseError
from tally.warehouse.base import Warehouse


def setting(warehouse: Warehouse, name: str) -> str:
    return warehouse._cursor().execute(f"SELECT current_setting('{name}')").fetchone()[0]


def test_duckdb_settings_in_the_url_apply_to_the_session(tmp_path):
    warehouse = Warehouse("duckdb:///w.duckdb?memory_limit=512MB&threads=1", tmp_path)
    assert (tmp_path / "w.duckdb").exists()          # the query is not part of the file name
    assert setting(warehouse, "threads") == 1
    assert setting(warehouse, "memory_limit") == "488.2 MiB"


def test_an_unknown_url_setting_is_refused_by_name(tmp_path):
    with pytest.raises(ConfigError) as error:
        Warehouse("duckdb:///w.duckdb?memory=1GB", tmp_path)
    assert "unknown setting 'memory'" in str(error.value) and "memory_limit" in str(error.value)
    assert not (tmp_path / "w.duckdb").exists()


def test_a_bad_setting_value_names_the_url(tmp_path):
    with pytest.raises(WarehouseError) as error:
        Warehouse("duckdb:///w.duckdb?memory_limit=lots", tmp_path)
    assert "cannot connect to duckdb:///w.duckdb?memory_limit=lots" in str(error.value)


def test_a_load_runs_within_its_memory_budget_and_restores_the_limit(tmp_path):
    from tally.sources import pipeline

    url = "duckdb:///w.duckdb?memory_limit=4GB&load_memory_limit=256MB"
    warehouse = Warehouse(url, tmp_path)
    con = warehouse._cursor()
    budget = pipeline._memory_budget(con, url)
    assert setting(warehouse, "memory_limit") == "244.1 MiB"
    budget.close()
    assert setting(warehouse, "memory_limit") == "3.7 GiB"
    # a budget above the warehouse's own limit leaves the limit alone
    pipeline._memory_budget(con, "duckdb:///w.duckdb?memory_limit=4GB&load_memory_limit=64GB").close()
    assert setting(warehouse, "memory_limit") == "3.7 GiB"
    # without a limit in the URL, DuckDB's default comes back
    default = Warehouse("duckdb:///d.duckdb", tmp_path)
    shown = setting(default, "memory_limit")
    pipeline._memory_budget(default._cursor(), "duckdb:///d.duckdb").close()
    assert setting(default, "memory_limit") == shown != "953.6 MiB"


def test_sizes_are_read_in_decimal_and_binary_units():
    from tally.sources.pipeline import _bytes

    assert _bytes("1GB") == 10**9 and _bytes("18.6 GiB") == 18.6 * 2**30 and _bytes("512 KiB") == 512 * 1024
    assert _bytes("unlimited") == float("inf")

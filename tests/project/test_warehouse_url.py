"""DuckDB settings in the warehouse URL, and the buffer budgets of ingest loads and rollup builds."""

from __future__ import annotations

import pytest

from tally.errors import ConfigError, WarehouseError
from tally.warehouse.base import Warehouse


def setting(warehouse: Warehouse, name: str) -> str:
    return warehouse.cursor().execute(f"SELECT current_setting('{name}')").fetchone()[0]


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


def test_a_job_runs_within_its_memory_budget_and_the_limit_is_set_back(tmp_path):
    warehouse = Warehouse("duckdb:///w.duckdb?memory_limit=4GB&load_memory_limit=256MB", tmp_path)
    with warehouse.memory_budget("load_memory_limit"):
        assert setting(warehouse, "memory_limit") == "244.1 MiB"
    assert setting(warehouse, "memory_limit") == "3.7 GiB"
    with warehouse.memory_budget("build_memory_limit"):     # 1.5GB by default
        assert setting(warehouse, "memory_limit") == "1.3 GiB"
    # a budget above the warehouse's own limit leaves the limit alone
    low = Warehouse("duckdb:///l.duckdb?memory_limit=512MB", tmp_path)
    with low.memory_budget("build_memory_limit"):
        assert setting(low, "memory_limit") == "488.2 MiB"
    # without a limit in the URL, DuckDB's default comes back, even after a failure
    default = Warehouse("duckdb:///d.duckdb", tmp_path)
    shown = setting(default, "memory_limit")
    with pytest.raises(RuntimeError), default.memory_budget("load_memory_limit"):
        assert setting(default, "memory_limit") == "953.6 MiB"
        raise RuntimeError("the load failed")
    assert setting(default, "memory_limit") == shown != "953.6 MiB"


def test_a_budget_duckdb_refuses_is_a_config_error(tmp_path):
    warehouse = Warehouse("duckdb:///w.duckdb?load_memory_limit=0.5", tmp_path)
    with pytest.raises(ConfigError) as error, warehouse.memory_budget("load_memory_limit"):
        pass
    assert "load_memory_limit '0.5'" in str(error.value)


def test_sizes_are_read_in_decimal_and_binary_units():
    from tally.warehouse.base import byte_size

    assert byte_size("1GB") == 10**9 and byte_size("18.6 GiB") == 18.6 * 2**30 and byte_size("512 KiB") == 512 * 1024
    assert byte_size("unlimited") == float("inf")


def test_budgets_in_duckdb_spellings_and_unreadable_ones(tmp_path):
    warehouse = Warehouse("duckdb:///w.duckdb?load_memory_limit=1G", tmp_path)
    with warehouse.memory_budget("load_memory_limit"):
        assert setting(warehouse, "memory_limit") == "953.6 MiB"
    odd = Warehouse("duckdb:///o.duckdb?load_memory_limit=lots", tmp_path)
    with pytest.raises(ConfigError) as error, odd.memory_budget("load_memory_limit"):
        pass
    assert "load_memory_limit 'lots'" in str(error.value) and "not a size" in str(error.value)


def test_a_malformed_url_query_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as error:
        Warehouse("duckdb:///w.duckdb?memory_limit", tmp_path)
    assert "malformed query string" in str(error.value)

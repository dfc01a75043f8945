"""Issue 14: `tally query` and `tally verify` open an embedded DuckDB read-only, so several run at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import pytest

from tally.demo import prepare
from tally.errors import WarehouseError
from tally.warehouse import Warehouse
from tests.cli_helpers import invoke

MONTH = ["revenue", "profit", "--grain", "month", "--from", "2026-07-01", "--to", "2026-10-01"]


@pytest.fixture(scope="module")
def shop_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("readonly") / "shop"
    project, _ = prepare("ecommerce", directory, 2000, seed=3)
    project.close()
    assert invoke("-p", directory, "rollup", "build").exit_code == 0
    return directory


def cli(directory, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tally.cli", "-p", str(directory), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def test_queries_run_while_another_process_reads(shop_dir):
    """Once `tally query` took DuckDB's write lock: it failed while any other process had the file open."""
    holder = duckdb.connect(str(shop_dir / "warehouse.duckdb"), read_only=True)
    try:
        runs = [cli(shop_dir, "query", *MONTH, "--format", "json", "--meta"),
                cli(shop_dir, "query", *MONTH, "--format", "json", "--meta", "--live"),
                cli(shop_dir, "verify", "--format", "json")]
        outputs = [run.communicate(timeout=120) for run in runs]
    finally:
        holder.close()
    for run, (stdout, stderr) in zip(runs, outputs):
        assert run.returncode == 0, stderr
    routed, live = json.loads(outputs[0][0]), json.loads(outputs[1][0])
    assert routed["meta"]["source"] == "rollup"   # routing's freshness checks only read
    assert live["meta"]["source"] == "live" and routed["rows"] == live["rows"]
    assert all(not found for found in json.loads(outputs[2][0]).values())


def test_a_missing_database_file_is_one_line(tmp_path):
    (tmp_path / "tally.yml").write_text((shop_yml := "name: x\nwarehouse: duckdb:///none.duckdb\n"
                                         "models:\n  m: {table: t, measures: {n: {count: '*'}}}\n"), encoding="utf-8")
    result = invoke("-p", tmp_path, "query", "n")
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception, shop_yml)
    assert result.stderr.strip().splitlines() == [
        "error: the warehouse duckdb:///none.duckdb has no database file yet (run `tally ingest` or `tally seed` first)"]
    assert not (tmp_path / "none.duckdb").exists()


def test_read_only_warehouse_refuses_writes(shop_dir):
    import pyarrow as pa

    warehouse = Warehouse("duckdb:///warehouse.duckdb", shop_dir, read_only=True)
    try:
        assert warehouse.read_only and warehouse.has_table("orders")
        with pytest.raises(Exception, match="read-only"):
            warehouse.write_table("j5_scratch", pa.table({"a": [1]}))
    finally:
        warehouse.close()
    with pytest.raises(WarehouseError, match="no database file yet"):
        Warehouse("duckdb:///missing.duckdb", shop_dir, read_only=True)

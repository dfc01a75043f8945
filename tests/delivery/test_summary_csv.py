"""Issue 14: `--format csv` of ingest, rollup build and verify (documented, once refused)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.cli_helpers import invoke, ok, printed

CONFIG = """
name: summaries
timezone: UTC
warehouse: duckdb:///warehouse.duckdb
sources:
  sales:
    kind: csv
    path: sales.csv
    table: sales
    primary_key: [id]
    columns: {id: int64, sold_at: timestamp, amount: "decimal(12,2)", note: string}
models:
  sales:
    table: sales
    time: sold_at
    primary_key: [id]
    dimensions: {note: note}
    measures:
      revenue: {sum: amount, format: money}
rollups:
  daily: {metrics: [revenue], grains: [day, month]}
"""


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def project_dir(tmp_path):
    (tmp_path / "tally.yml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "sales.csv").write_text("id,sold_at,amount,note\n1,2026-01-01 10:00,5.50,=cmd\n"
                                        "2,2026-01-02 11:00,7.25,plain\n", encoding="utf-8")
    return tmp_path


def test_ingest_csv(project_dir):
    found = rows(printed("-p", project_dir, "ingest", "--format", "csv"))
    assert [(r["source"], r["status"], r["rows_loaded"]) for r in found] == [("sales", "ok", "2")]
    assert json.loads(found[0]["inferred_types"]) == {} and found[0]["new_columns"] == "[]"


def test_rollup_build_and_verify_csv(project_dir):
    ok("-p", project_dir, "ingest")
    built = rows(printed("-p", project_dir, "rollup", "build", "--format", "csv"))
    again = json.loads(printed("-p", project_dir, "rollup", "build", "--full", "--format", "json"))
    assert [r["rollup"] for r in built] == [r["rollup"] for r in again] == ["daily"]
    assert set(built[0]) == set(again[0])
    assert printed("-p", project_dir, "verify", "--format", "csv") == "rollup,grain,period_start,key,metric,stored,live\n"


def test_verify_csv_lists_mismatches(project_dir):
    import duckdb

    ok("-p", project_dir, "ingest")
    ok("-p", project_dir, "rollup", "build")
    with duckdb.connect(str(project_dir / "warehouse.duckdb")) as con:
        con.execute("UPDATE daily SET revenue = 1 WHERE grain = 'month'")
    result = invoke("-p", project_dir, "verify", "--format", "csv")
    assert result.exit_code == 1
    found = rows(result.stdout)
    assert [(r["rollup"], r["grain"], r["period_start"], r["metric"]) for r in found] == [
        ("daily", "month", "2026-01-01", "revenue")]
    assert (found[0]["stored"], found[0]["live"]) == ("1", "12.75") or float(found[0]["live"]) == 12.75

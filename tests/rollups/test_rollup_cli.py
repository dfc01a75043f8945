"""`tally rollup build` and `tally verify` on a DuckDB ecommerce project: output, exit codes, config errors."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from tally.demo import prepare
from tests.cli_helpers import invoke, ok, refused
from tests.rollups.helpers import ROLLUPS, Clock, edit_config, execute, in_month, opened, order_lines


@pytest.fixture
def shop(tmp_path) -> Path:
    """A fresh project on its own DuckDB file (the one its tally.yml names), not built yet."""
    directory = tmp_path / "shop"
    project, _ = prepare("ecommerce", directory, 2000, seed=5)
    project.close()
    return directory


def build_json(directory: Path, *args) -> list[dict]:
    return json.loads(ok("-p", directory, "rollup", "build", *args, "--format", "json").stdout)


def verify_json(directory: Path, *args, code: int = 0) -> dict:
    result = invoke("-p", directory, "verify", *args, "--format", "json")
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


def test_build_then_verify(shop):
    result = ok("-p", shop, "rollup", "build")
    for name in ROLLUPS:
        assert re.search(rf"{name}\s.*\bfull\b", result.stdout), result.stdout
    result = ok("-p", shop, "verify")
    for name in ROLLUPS:
        assert f"{name}: ok" in result.stdout
    # nothing changed: unchanged, and json output
    summary = build_json(shop)
    assert [(r["rollup"], r["table"], r["mode"], r["rows"]) for r in summary] == [
        (name, name, "unchanged", 0) for name in ROLLUPS]
    assert verify_json(shop) == {name: [] for name in ROLLUPS}


def test_build_json_modes(shop):
    first = build_json(shop, "shop_reports")
    assert [(r["rollup"], r["mode"]) for r in first] == [("shop_reports", "full")]
    assert first[0]["rows"] > 0 and first[0]["periods"] > 0 and first[0]["seconds"] >= 0
    with opened(shop) as project:
        line = order_lines(project, *in_month(dt.date(2025, 9, 1)), limit=1)[0]
        execute(project, "UPDATE orders SET status = 'cancelled', updated_at = ? WHERE order_id = ?",
                [Clock()(), line["order_id"]])
    again = build_json(shop, "shop_reports")
    assert [r["mode"] for r in again] == ["incremental"]
    assert 0 < again[0]["periods"] < first[0]["periods"]
    ranged = build_json(shop, "shop_reports", "--from", "2025-03-01", "--to", "2025-04-01")
    assert [r["mode"] for r in ranged] == ["range"]
    # periods touching March 2025: its days with orders, 6 weeks, the month, Q1, 2025
    assert ranged[0]["periods"] <= 31 + 6 + 3
    assert [r["mode"] for r in build_json(shop, "--full")] == ["full"] * len(ROLLUPS)
    assert verify_json(shop) == {name: [] for name in ROLLUPS}


def test_verify_reports_a_tampered_ratio_and_repairs_it(shop):
    ok("-p", shop, "rollup", "build")
    execute_on(shop, "UPDATE shop_reports SET margin = 0.99 WHERE grain = 'month' AND period_start = ?",
               [dt.date(2025, 6, 1)])
    result = invoke("-p", shop, "verify", "shop_reports")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert re.search(r"shop_reports: \d+ mismatch\(es\)", result.stdout)
    assert "2025-06-01" in result.stdout and "margin" in result.stdout and "0.99" in result.stdout
    found = verify_json(shop, "shop_reports", code=1)["shop_reports"]
    assert found and {(m["grain"], m["period_start"], m["metric"], m["stored"]) for m in found} == {
        ("month", "2025-06-01", "margin", 0.99)}
    assert all(set(m) == {"rollup", "grain", "period_start", "key", "metric", "stored", "live"} for m in found)
    result = ok("-p", shop, "verify", "--repair")
    assert "(repaired)" in result.stdout
    result = ok("-p", shop, "verify")
    assert all(f"{name}: ok" in result.stdout for name in ROLLUPS)


def test_verify_reports_tampered_rows_and_repairs_them(shop):
    ok("-p", shop, "rollup", "build")
    day = dt.date(2025, 6, 3)
    execute_on(shop, "UPDATE shop_reports SET gross_sales = gross_sales + 1, revenue = revenue + 1 "
                     "WHERE grain = 'month' AND period_start = ?", [dt.date(2025, 6, 1)])
    execute_on(shop, "DELETE FROM listing_reports WHERE grain = 'day' AND period_start = ?", [day])
    result = invoke("-p", shop, "verify")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert re.search(r"shop_reports: \d+ mismatch\(es\)", result.stdout)
    assert re.search(r"listing_reports: \d+ mismatch\(es\)", result.stdout)
    assert "product_reports: ok" in result.stdout
    found = verify_json(shop, code=1)
    assert {m["metric"] for m in found["shop_reports"]} == {"gross_sales", "revenue"}
    assert {(m["period_start"], m["metric"]) for m in found["listing_reports"]} == {(day.isoformat(), "(row)")}
    ok("-p", shop, "verify", "--repair")
    assert verify_json(shop) == {name: [] for name in ROLLUPS}


def execute_on(directory: Path, sql: str, params=()) -> None:
    with opened(directory) as project:
        execute(project, sql, params)


def test_unknown_rollup_is_bad_usage(shop):
    line = refused("-p", shop, "rollup", "build", "shop_reportz")
    assert "unknown rollup" in line and "shop_reportz" in line and "shop_reports" in line
    line = refused("-p", shop, "verify", "nope")
    assert "unknown rollup" in line and "nope" in line
    line = refused("-p", shop, "rollup", "build", "--category", "financial")
    assert "financial" in line


def test_verify_before_any_build_says_so(shop):
    result = invoke("-p", shop, "verify", "shop_reports", "--format", "json")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    found = json.loads(result.stdout)["shop_reports"]
    assert [m["metric"] for m in found] == ["(table)"]
    assert "rollup build" in found[0]["live"]


ROLLUP_HEAD = "  shop_reports:\n    metrics: [revenue, orders, units, customers, aov, refunds, net_revenue, cogs, " \
              "shipping_cost, profit, margin]\n"


@pytest.mark.parametrize("metrics, by, key, reason", [
    ("[revenue, orderz]", None, "metrics", "unknown metric 'orderz'"),
    ("[revenue, stock]", None, "metrics", "snapshot"),
    ("[stock]", "[sku]", "metrics", "snapshot"),
    ("[revenue, refunds]", "[shop, color]", "by", "no dimension 'color'"),
])
def test_bad_rollup_config_is_refused_with_file_and_line(shop, metrics, by, key, reason):
    """Refused when the project loads, whatever the command, pointing at the offending line."""
    path = shop / "tally.yml"
    assert ROLLUP_HEAD in path.read_text()
    edit_config(shop, ROLLUP_HEAD, f"  shop_reports:\n    metrics: {metrics}\n")
    if by is not None:
        edit_config(shop, "    grains: [day, week, month, quarter, year]\n    by: [shop]\n",
                    f"    grains: [day, week, month, quarter, year]\n    by: {by}\n")
    lines = path.read_text().splitlines()
    wanted_line = lines.index(f"    {key}: {by if key == 'by' else metrics}") + 1
    for command in (["rollup", "build"], ["verify"], ["query", "revenue"]):
        line = refused("-p", shop, *command)
        assert f"{path}:{wanted_line}: " in line, line
        assert "shop_reports" in line and reason in line, line

"""The `tally` command line on a DuckDB ecommerce project: output formats, exit codes, one-line errors."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from decimal import Decimal

import pytest

from tally import Project
from tally.demo import prepare
from tests.cli_helpers import invoke, ok, refused

MONEY = re.compile(r"\$\d{1,3}(,\d{3})*\.\d{2}")
MARCH = ["--from", "2026-03-01", "--to", "2026-04-01"]


@pytest.fixture(scope="module")
def shop_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli") / "shop"
    project, _ = prepare("ecommerce", directory, 3000, seed=3)
    project.close()
    return directory


@pytest.fixture(scope="module")
def project(shop_dir):
    loaded = Project.load(shop_dir)
    yield loaded
    loaded.close()


def query_json(shop_dir, *args: str) -> list[dict]:
    return json.loads(ok("-p", shop_dir, "query", *args, "--format", "json").stdout)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- query output ------------------------------------------------------------

def test_json_keys_in_order_and_numbers(shop_dir):
    rows = query_json(shop_dir, "revenue", "orders", "aov", "--by", "shop", "--grain", "week", *MARCH)
    assert rows
    for row in rows:
        assert list(row) == ["period", "shop", "revenue", "orders", "aov"]
        assert dt.date.fromisoformat(row["period"]).weekday() == 0  # ISO date of a Monday-started week
        assert is_number(row["revenue"]) and isinstance(row["orders"], int)
        assert row["aov"] is None or is_number(row["aov"])


def test_json_is_a_plain_array(shop_dir):
    result = ok("-p", shop_dir, "query", "revenue", *MARCH, "--format", "json")
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and len(rows) == 1
    assert list(rows[0]) == ["revenue"]
    assert result.stderr == ""


def test_json_matches_the_engine(shop_dir, project):
    rows = query_json(shop_dir, "revenue", "orders", "--by", "status", *MARCH)
    wanted = project.query(["revenue", "orders"], by=["status"], start="2026-03-01", end="2026-04-01").to_pylist()
    assert [r["status"] for r in rows] == [w["status"] for w in wanted]
    for row, want in zip(rows, wanted):
        assert Decimal(str(row["revenue"])) == want["revenue"]
        assert row["orders"] == want["orders"]


def test_json_with_compare_adds_previous_change_and_pct(shop_dir):
    rows = query_json(shop_dir, "revenue", "orders", "--grain", "month", "--from", "2026-01-01",
                      "--to", "2026-04-01", "--compare", "previous_year")
    assert [r["period"] for r in rows] == ["2026-01-01", "2026-02-01", "2026-03-01"]
    metric_keys = [f"{m}{suffix}" for m in ("revenue", "orders") for suffix in ("", "_previous", "_change",
                                                                                 "_change_pct")]
    for row in rows:
        assert list(row) == ["period", *metric_keys]
        assert all(is_number(row[k]) or (k.endswith("_pct") and row[k] is None) for k in metric_keys)
        assert row["revenue_change"] == pytest.approx(row["revenue"] - row["revenue_previous"])
        assert row["orders_change"] == row["orders"] - row["orders_previous"]
    last_year = query_json(shop_dir, "orders", "--grain", "month", "--from", "2025-01-01", "--to", "2025-04-01")
    assert [r["orders_previous"] for r in rows] == [r["orders"] for r in last_year]


def test_json_daily_series_has_every_day(shop_dir):
    rows = query_json(shop_dir, "revenue", "orders", "--grain", "day", *MARCH)
    assert [r["period"] for r in rows] == [(dt.date(2026, 3, 1) + dt.timedelta(days=i)).isoformat()
                                           for i in range(31)]
    assert all(is_number(r["revenue"]) and isinstance(r["orders"], int) for r in rows)


def test_json_hour_periods_are_timestamps(shop_dir):
    rows = query_json(shop_dir, "orders", "--grain", "hour", "--from", "2026-03-01", "--to", "2026-03-01T03:00")
    assert [r["period"] for r in rows] == ["2026-03-01T00:00:00", "2026-03-01T01:00:00", "2026-03-01T02:00:00"]


def test_json_top_n_listing(shop_dir):
    rows = query_json(shop_dir, "revenue", "--by", "listing", "--order", "-revenue", "--limit", "5", *MARCH)
    assert len(rows) == 5
    assert [r["revenue"] for r in rows] == sorted((r["revenue"] for r in rows), reverse=True)


def test_csv_header_and_rows(shop_dir):
    result = ok("-p", shop_dir, "query", "revenue", "orders", "--by", "status", "--grain", "month",
                *MARCH, "--format", "csv")
    lines = result.stdout.splitlines()
    assert lines[0] == "period,status,revenue,orders"
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == len(lines) - 1 >= 1
    for row in rows:
        assert row["period"] == "2026-03-01"
        float(row["revenue"])
        int(row["orders"])


def test_csv_matches_json(shop_dir):
    text = ok("-p", shop_dir, "query", "revenue", "aov", "--grain", "day", *MARCH, "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    as_json = query_json(shop_dir, "revenue", "aov", "--grain", "day", *MARCH)
    assert len(rows) == len(as_json) == 31
    for row, other in zip(rows, as_json):
        assert row["period"] == other["period"]
        assert float(row["revenue"]) == other["revenue"]
        assert row["aov"] == ("" if other["aov"] is None else str(other["aov"]))


def test_table_shows_formatted_money(shop_dir):
    out = ok("-p", shop_dir, "query", "revenue", "orders", "--by", "shop", *MARCH).stdout
    assert MONEY.search(out), out
    assert "revenue" in out and "shop" in out


def test_totals_table_with_compare(shop_dir):
    out = ok("-p", shop_dir, "query", "revenue", "margin", *MARCH, "--compare", "previous_period").stdout
    assert MONEY.search(out), out
    assert re.search(r"\d+\.\d%", out)  # margin as a percent
    assert "previous" in out and "change %" in out
    assert "2026-03-01" in out and "2026-02-01" in out


# -- bad input: exit 2 and one `error:` line -------------------------------------

def test_unknown_metric_suggests(shop_dir):
    line = refused("-p", shop_dir, "query", "revenu")
    assert "unknown metric 'revenu' (did you mean 'revenue'?)" in line


@pytest.mark.parametrize("where, reason", [
    ("status = 'x'; drop table orders", "is not allowed"),
    ("status in (select status from orders)", "a subquery"),
    ("read_csv('/etc/passwd') = 1", "function read_csv() is not allowed"),
    ("colour = 'red'", "'colour'"),
    ("status = ", "cannot parse"),
])
def test_bad_where(shop_dir, where, reason):
    line = refused("-p", shop_dir, "query", "revenue", "--where", where)
    assert reason in line


def test_where_with_semicolon_says_what_is_wrong(shop_dir):
    line = refused("-p", shop_dir, "query", "revenue", "--where", "status = 'x'; drop table orders")
    assert "BLOCK" not in line and ";" in line


def test_incomplete_where_reads_plainly(shop_dir):
    line = refused("-p", shop_dir, "query", "revenue", "--where", "status = ")
    assert "sqlglot" not in line and "<class" not in line


def test_unknown_dimension_names_the_asked_metric(shop_dir):
    line = refused("-p", shop_dir, "query", "revenue", "--by", "shops")
    assert "'revenue'" in line and "gross_sales" not in line
    assert "did you mean 'shop'?" in line


@pytest.mark.parametrize("where", ["status = '[/b]' +", "status = '[red]x' +"])
def test_error_text_is_printed_verbatim(shop_dir, where):
    line = refused("-p", shop_dir, "query", "revenue", "--where", where)
    assert where in line


@pytest.mark.parametrize("by", ["colour", "shops"])
def test_unknown_dimension(shop_dir, by):
    line = refused("-p", shop_dir, "query", "revenue", "--by", by)
    assert f"can't be broken down or filtered by {by!r}" in line
    assert "shop, listing, sku, status, customer" in line


@pytest.mark.parametrize("args, reason", [
    (["--from", "2026-13-01"], "--from '2026-13-01' is not a date"),
    (["--to", "yesterday"], "--to 'yesterday' is not a date"),
    (["--from", "2026-03-02", "--to", "2026-03-01"], "--from 2026-03-02 must be before --to 2026-03-01"),
    (["--from", "2026-03-01", "--to", "2026-03-01"], "must be before"),
    (["--grain", "fortnight"], "unknown grain 'fortnight' (use one of: hour, day, week, month, quarter, year)"),
    (["--compare", "last_week"], "unknown comparison 'last_week' (use previous_period or previous_year)"),
    (["--order", "revenue sideways"], "cannot read order 'revenue sideways'"),
    (["--order", "-orders"], "cannot order by 'orders'"),
    (["--timezone", "Mars/Base"], "unknown timezone 'Mars/Base'"),
    (["--limit", "0"], "limit must be a positive integer"),
])
def test_bad_query_options(shop_dir, args, reason):
    line = refused("-p", shop_dir, "query", "revenue", *args)
    assert reason in line


def test_grain_on_a_snapshot(shop_dir):
    line = refused("-p", shop_dir, "query", "stock", "--grain", "day")
    assert "snapshot with no time column" in line


def test_metric_name_with_sql(shop_dir):
    line = refused("-p", shop_dir, "query", "revenue;drop table orders")
    assert "is not a valid metric name" in line


def test_bad_tally_yml_names_file_and_line(tmp_path):
    (tmp_path / "tally.yml").write_text("name: x\nmodels:\n  o:\n    table: o\n    measures:\n"
                                        "      r: {sum: a}\n      n: {count: b, cuont: c}\n")
    line = refused("-p", tmp_path, "query", "r")
    assert f"{tmp_path / 'tally.yml'}:7: models.o.measures.n: unknown key 'cuont' (did you mean 'count'?)" in line


def test_missing_project(tmp_path):
    line = refused("-p", tmp_path / "nowhere", "query", "revenue")
    assert "no tally.yml here; run `tally init`" in line


def test_unknown_profile(shop_dir):
    line = refused("-p", shop_dir, "--profile", "staging", "query", "revenue")
    assert "tally.yml:" in line and "unknown profile 'staging'" in line


def test_bad_format_is_a_usage_error(shop_dir):
    result = invoke("-p", shop_dir, "query", "revenue", "--format", "xml")
    assert result.exit_code == 2
    assert "xml" in result.stderr


# -- init, metrics, help -------------------------------------------------------

def test_init_creates_a_loadable_project(tmp_path):
    target = tmp_path / "new-shop"
    result = ok("init", target)
    assert "tally.yml" in result.stdout
    loaded = Project.load(target)
    assert loaded.config.name == "new-shop"
    metrics = json.loads(ok("-p", target, "metrics", "--format", "json").stdout)
    assert [m["metric"] for m in metrics] == ["revenue", "orders", "refunds", "customers", "aov", "net_revenue"]


def test_init_refuses_to_overwrite(tmp_path):
    ok("init", tmp_path)
    before = (tmp_path / "tally.yml").read_text()
    (tmp_path / "tally.yml").write_text(before + "# edited\n")
    line = refused("init", tmp_path)
    assert "already exists; not overwriting it" in line
    assert (tmp_path / "tally.yml").read_text() == before + "# edited\n"


def test_metrics_json(shop_dir):
    metrics = json.loads(ok("-p", shop_dir, "metrics", "--format", "json").stdout)
    by_name = {m["metric"]: m for m in metrics}
    assert list(metrics[0]) == ["metric", "kind", "model", "format", "dimensions", "definition"]
    assert {"revenue", "orders", "aov", "refunds", "net_revenue", "profit", "margin", "stock"} <= set(by_name)
    assert by_name["revenue"] == {"metric": "revenue", "kind": "derived", "model": None, "format": "money",
                                  "dimensions": "customer, listing, shop, sku, status",
                                  "definition": "gross_sales - discounts"}
    assert by_name["stock"]["kind"] == "measure" and by_name["stock"]["model"] == "offerings"
    assert by_name["stock"]["dimensions"] == "sku"


def test_help_lists_the_commands():
    out = ok("--help").stdout
    for command in ("init", "query", "metrics", "seed", "demo"):
        assert re.search(rf"^\W*{command}\s", out, re.MULTILINE), command


@pytest.mark.parametrize("command", ["init", "query", "metrics", "seed", "demo"])
def test_every_command_has_help(command):
    out = ok(command, "--help").stdout
    assert "Usage" in out

"""Issue 13 (rollups) on every warehouse: rows changed in place by an ingest are never answered stale
(item 3), reserved and internal names are refused (item 4), `verify` checks the growth columns
(item 10), and a build across a DST change in Europe/London runs on MariaDB.

The project is small and written here: orders loaded from a CSV file by `tally ingest`, keyed by
`order_id`, with no `updated:` column. Expected numbers are summed from the CSV rows in Python.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

import tally.rollups
from tally import Project
from tally.errors import ConfigError
from tests.cli_helpers import ok, printed
from tests.servers import WAREHOUSE_KINDS, warehouse_url_for

LONDON = "Europe/London"

CONFIG = """
name: orders
timezone: Europe/London
warehouse: {url}
sources:
  orders:
    kind: csv
    path: data/*.csv
    table: orders
    primary_key: [order_id]
    columns: {{order_id: int64, customer_id: int64, status: string, amount: "decimal(12,2)", ordered_at: timestamp}}
models:
  orders:
    table: orders
    time: ordered_at
    primary_key: [order_id]
    dimensions: {{status: status}}
    measures:
      revenue: {{sum: amount, where: "status <> 'cancelled'", format: money}}
      orders: {{count_distinct: order_id, where: "status <> 'cancelled'"}}
      customers: {{count_distinct: customer_id}}
rollups:
{rollups}
"""

DAILY = """  daily:
    metrics: [revenue, orders, customers]
    grains: [day, month]
  by_status:
    metrics: [revenue, orders]
    grains: [day, month]
    by: [status]
"""


def rows(count: int = 80) -> list[dict]:
    """Orders every 3 hours from 2024-03-28 (across London's clock change on 2024-03-31 01:00 UTC)."""
    start = dt.datetime(2024, 3, 28, 0, 30)
    statuses = ["paid", "shipped", "cancelled", "refunded"]
    return [{"order_id": i, "customer_id": i % 13, "status": statuses[i % 4],
             "amount": f"{(i * 37) % 500 + 10}.{i % 100:02d}",
             "ordered_at": (start + dt.timedelta(hours=3 * i)).isoformat() + "Z"} for i in range(1, count + 1)]


def write_csv(directory: Path, data: list[dict]) -> None:
    (directory / "data").mkdir(exist_ok=True)
    with open(directory / "data" / "orders.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(data[0]))
        writer.writeheader()
        writer.writerows(data)


def expected_revenue(data: list[dict], start: dt.datetime, end: dt.datetime) -> Decimal:
    """Plain Python: the sum of non-cancelled amounts with start <= ordered_at < end (UTC)."""
    total = Decimal(0)
    for row in data:
        at = dt.datetime.fromisoformat(row["ordered_at"].replace("Z", "+00:00"))
        if start <= at < end and row["status"] != "cancelled":
            total += Decimal(row["amount"])
    return total


@pytest.fixture(params=WAREHOUSE_KINDS)
def url(request) -> Iterator[str]:
    with warehouse_url_for(request.param, request) as url:
        yield url


def make_project(directory: Path, url: str, rollups: str = DAILY, data: list[dict] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tally.yml").write_text(CONFIG.format(url=url, rollups=rollups))
    if data is not None:
        write_csv(directory, data)
    return directory


def query(directory: Path, *args) -> list[dict]:
    return json.loads(printed("-p", directory, "query", *args, "--format", "json"))


def answer(directory: Path, routed: bool, metrics, **kwargs):
    project = Project.load(directory)
    project.use_rollups = routed
    try:
        result = project.query_result(metrics, **kwargs)
        return result.table.to_pylist(), result.meta
    finally:
        project.close()


# -- item 3: rows changed in place ------------------------------------------------------------------


MARCH = {"start": "2024-03-01", "end": "2024-04-01"}
MARCH_UTC = (dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc), dt.datetime(2024, 4, 1, tzinfo=dt.timezone.utc)
             - dt.timedelta(hours=1))   # London midnight of April 1st is 23:00 UTC (summer time)


def test_an_order_changed_in_place_is_never_answered_stale(url, tmp_path):
    data = rows()
    directory = make_project(tmp_path / "p", url, data=data)
    ok("-p", directory, "ingest")
    assert [r["mode"] for r in json.loads(printed("-p", directory, "rollup", "build", "--format", "json"))] == [
        "full", "full"]
    before = expected_revenue(data, *MARCH_UTC)
    routed, meta = answer(directory, True, ["revenue"], **MARCH)
    assert meta["source"] == "rollup:daily" and routed[0]["revenue"] == before
    # the same order, a new status, no change time: the file is loaded again
    changed = next(r for r in data if r["status"] == "paid" and r["ordered_at"] < "2024-03-31")
    changed["status"] = "cancelled"
    write_csv(directory, data)
    ok("-p", directory, "ingest")
    after = expected_revenue(data, *MARCH_UTC)
    assert after == before - Decimal(changed["amount"])
    # not built yet: every answer is live, and right
    routed, meta = answer(directory, True, ["revenue"], **MARCH)
    assert meta["source"] == "live" and routed[0]["revenue"] == after
    assert Decimal(str(query(directory, "revenue", "--from", "2024-03-01", "--to", "2024-04-01")[0]["revenue"])) \
        == after
    # the build sees the change
    modes = [r["mode"] for r in json.loads(printed("-p", directory, "rollup", "build", "--format", "json"))]
    assert "unchanged" not in modes, modes
    routed, meta = answer(directory, True, ["revenue"], **MARCH)
    assert meta["source"] == "rollup:daily" and routed[0]["revenue"] == after
    by_status, meta = answer(directory, True, ["revenue", "orders"], by=["status"], grain="day", **MARCH)
    live, _ = answer(directory, False, ["revenue", "orders"], by=["status"], grain="day", **MARCH)
    assert meta["source"] == "rollup:by_status" and by_status == live
    assert json.loads(printed("-p", directory, "verify", "--format", "json")) == {"daily": [], "by_status": []}


def test_loading_the_same_file_again_keeps_answers_right(url, tmp_path):
    data = rows(40)
    directory = make_project(tmp_path / "p", url, data=data)
    ok("-p", directory, "ingest")
    ok("-p", directory, "rollup", "build")
    ok("-p", directory, "ingest")   # every row again, none changed
    built = json.loads(printed("-p", directory, "rollup", "build", "--format", "json"))
    if url.startswith("duckdb"):   # the fingerprints show nothing moved
        assert [r["mode"] for r in built] == ["unchanged", "unchanged"]
    routed, meta = answer(directory, True, ["revenue"], **MARCH)
    assert meta["source"] == "rollup:daily" and routed[0]["revenue"] == expected_revenue(data, *MARCH_UTC)


def test_a_table_no_source_loads_is_never_served_from_a_rollup(tmp_path):
    """Written outside Tally and without a change time: no way to prove a rollup current."""
    url = f"duckdb:///{tmp_path}/warehouse.duckdb"
    data = rows(40)
    directory = make_project(tmp_path / "p", url, data=data)
    ok("-p", directory, "ingest")
    config = (directory / "tally.yml").read_text()
    (directory / "tally.yml").write_text(config[:config.index("sources:")] + config[config.index("models:"):])
    ok("-p", directory, "rollup", "build")
    routed, meta = answer(directory, True, ["revenue"], **MARCH)
    assert meta["source"] == "live" and routed[0]["revenue"] == expected_revenue(data, *MARCH_UTC)


# -- item 10: verify reads every stored column --------------------------------------------------------


GROWTH = """  growing:
    metrics: [revenue, orders]
    grains: [day, month]
    by: [status]
    growth: true
"""


def test_verify_reports_a_tampered_growth_column(url, tmp_path):
    directory = make_project(tmp_path / "p", url, rollups=GROWTH, data=rows())
    ok("-p", directory, "ingest")
    ok("-p", directory, "rollup", "build")
    project = Project.load(directory)
    try:
        assert tally.rollups.verify(project) == {"growing": []}
        with project.warehouse.transaction() as tx:
            marker = "?" if project.warehouse.dialect.name == "duckdb" else "%s"
            tx.execute(f"UPDATE growing SET revenue_previous = revenue_previous + 1, revenue_change_pct = 99.5 "
                       f"WHERE grain = 'day' AND period_start = {marker} AND status = 'paid'", [dt.date(2024, 3, 30)])
        found = tally.rollups.verify(project)["growing"]
        assert sorted((m.grain, m.period_start, m.key["status"], m.metric) for m in found) == [
            ("day", "2024-03-30", "paid", "revenue_change_pct"), ("day", "2024-03-30", "paid", "revenue_previous")]
    finally:
        project.close()


# -- item 4: reserved and internal names ------------------------------------------------------------


@pytest.mark.parametrize("rollups, words", [
    ("  r: {metrics: [revenue], by: [grain]}\n", ["'r'", "'grain'", "reserved"]),
    ("  r: {metrics: [revenue], by: [period]}\n", ["'r'", "'period'", "reserved"]),
    ("  r: {metrics: [revenue], by: [period_end]}\n", ["'r'", "'period_end'", "reserved"]),
    ("  r: {metrics: [built_at]}\n", ["'r'", "'built_at'", "reserved"]),
    ("  r: {metrics: [revenue], table: _tally_state}\n", ["'r'", "_tally_state", "reserved"]),
    ("  r: {metrics: [revenue], table: _TALLY_keys_x}\n", ["'r'", "reserved"]),
    ("  r: {metrics: [revenue], by: [revenue]}\n", ["'r'", "'revenue'"]),
    ("  r: {metrics: [revenue, revenue_previous], growth: true}\n", ["'r'", "revenue_previous"]),
])
def test_reserved_names_are_refused_at_load(tmp_path, rollups, words):
    config = CONFIG.format(url=f"duckdb:///{tmp_path}/w.duckdb", rollups=rollups)
    config = config.replace("dimensions: {status: status}", "dimensions: {status: status, grain: status, "
                                                              "period: status, period_end: status, revenue: status}")
    config = config.replace("customers: {count_distinct: customer_id}",
                            "customers: {count_distinct: customer_id}\n      built_at: {sum: amount}\n"
                            "      revenue_previous: {sum: amount}")
    (tmp_path / "tally.yml").write_text(config)
    with pytest.raises(ConfigError) as caught:
        Project.load(tmp_path)
    message = str(caught.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_two_rollups_whose_key_table_names_ran_together_keep_their_own(url, tmp_path):
    """`shop` + `daily_orders` and `shop_daily` + `orders` named the same key table before."""
    config_metrics = "      daily_orders: {count_distinct: order_id}\n"
    directory = make_project(tmp_path / "p", url, rollups="""  shop:
    metrics: [daily_orders]
    grains: [day, month]
  shop_daily:
    metrics: [orders]
    grains: [day, month]
    by: [status]
""", data=rows())
    text = (directory / "tally.yml").read_text()
    (directory / "tally.yml").write_text(text.replace("      customers: {count_distinct: customer_id}\n",
                                                      "      customers: {count_distinct: customer_id}\n"
                                                      + config_metrics))
    ok("-p", directory, "ingest")
    ok("-p", directory, "rollup", "build")
    data = rows()
    data[5]["status"] = "cancelled" if data[5]["status"] != "cancelled" else "paid"
    write_csv(directory, data)
    ok("-p", directory, "ingest")
    ok("-p", directory, "rollup", "build")
    assert json.loads(printed("-p", directory, "verify", "--format", "json")) == {"shop": [], "shop_daily": []}
    project = Project.load(directory)
    try:
        tables = [t for t in project.warehouse.backend.list_tables() if t.startswith("_tally_keys_")]
        assert len(tables) == 2, tables
    finally:
        project.close()

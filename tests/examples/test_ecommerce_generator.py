"""The ecommerce example's generator: schema, determinism and the data's internal consistency."""

from __future__ import annotations

import csv
import importlib.util
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from examples.ecommerce import generate as generator
from examples.ecommerce.generate import generate, lookups, write_lookups

ROWS = 20_000
START, END = date(2024, 11, 1), date(2026, 11, 1)
MONEY = pa.decimal128(12, 2)
TS = pa.timestamp("us", tz="UTC")
SCHEMAS = {
    "orders": [("order_id", pa.int64()), ("line_no", pa.int32()), ("shop_id", pa.int32()),
               ("listing_id", pa.int64()), ("sku", pa.string()), ("customer_id", pa.int64()),
               ("status", pa.string()), ("quantity", pa.int32()), ("unit_price", MONEY),
               ("discount", MONEY), ("ordered_at", TS), ("updated_at", TS)],
    "listing_products": [("listing_id", pa.int64()), ("product_id", pa.int64()), ("sku", pa.string())],
    "product_offerings": [("product_id", pa.int64()), ("sku", pa.string()), ("price", MONEY),
                          ("quantity", pa.int32()), ("is_enabled", pa.bool_())],
    "order_refunds": [("refund_id", pa.int64()), ("order_id", pa.int64()), ("line_no", pa.int32()),
                      ("amount", MONEY), ("refunded_at", TS), ("updated_at", TS)],
}


@pytest.fixture(scope="module")
def tables():
    return generate(ROWS)


@pytest.fixture(scope="module")
def orders(tables):
    """The orders table as numpy columns: money in cents, timestamps in UTC seconds."""
    return {name: _numpy(tables["orders"][name]) for name in tables["orders"].column_names}


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_decimal(column.type):
        return np.round(column.cast(pa.float64()).to_numpy() * 10**column.type.scale).astype(np.int64)
    if pa.types.is_timestamp(column.type):
        return column.cast(pa.int64()).to_numpy() // 1_000_000
    return column.to_numpy()


def _seconds(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())


def _line_index(order_id, line_no, orders) -> np.ndarray:
    """Row of each (order_id, line_no) in orders; orders are sorted by that key."""
    keys = orders["order_id"] * 8 + orders["line_no"]
    pos = np.searchsorted(keys, order_id * 8 + line_no)
    assert np.array_equal(keys[np.minimum(pos, len(keys) - 1)], order_id * 8 + line_no)
    return pos


def test_tables_have_the_spec_schema(tables):
    assert list(tables) == list(SCHEMAS)
    for name, fields in SCHEMAS.items():
        assert tables[name].schema == pa.schema(fields), name
    assert tables["orders"].num_rows == ROWS


def test_same_seed_same_tables_other_seed_other_tables(tables):
    again = generate(ROWS, seed=42)
    assert all(again[name].equals(tables[name]) for name in tables)
    assert all(lookups(again)[name].equals(table) for name, table in lookups(tables).items())
    other = generate(ROWS, seed=7)
    assert not other["orders"].equals(tables["orders"])


def test_order_lines_are_unique_and_numbered_from_one(orders):
    keys = orders["order_id"] * 8 + orders["line_no"]
    assert np.all(np.diff(keys) > 0)  # sorted and unique
    first = np.r_[True, orders["order_id"][1:] != orders["order_id"][:-1]]
    assert np.all(orders["line_no"][first] == 1)
    assert np.all(orders["line_no"][~first] == orders["line_no"][np.flatnonzero(~first) - 1] + 1)
    assert orders["line_no"].max() <= 4


def test_statuses_and_their_shares(orders):
    status = orders["status"]
    assert set(status) <= {"paid", "shipped", "refunded", "cancelled"}
    assert 0.025 < np.mean(status == "cancelled") < 0.06
    assert 0.015 < np.mean(status == "refunded") < 0.045
    assert np.mean((status == "shipped") | (status == "paid")) > 0.85


def test_timestamps_stay_in_the_window(orders):
    ordered, updated = orders["ordered_at"], orders["updated_at"]
    assert ordered.min() >= _seconds(START) and ordered.max() < _seconds(END)
    assert np.all(updated >= ordered) and updated.max() < _seconds(END)
    shipped = orders["status"] == "shipped"
    assert np.all(updated[shipped] > ordered[shipped])


def test_refunds_point_at_refunded_lines(tables, orders):
    refunds = {name: _numpy(tables["order_refunds"][name]) for name in tables["order_refunds"].column_names}
    assert len(refunds["refund_id"]) > 0
    assert len(np.unique(refunds["refund_id"])) == len(refunds["refund_id"])
    line = _line_index(refunds["order_id"], refunds["line_no"], orders)
    assert len(np.unique(line)) == len(line)
    assert np.all(orders["status"][line] == "refunded")
    assert np.sum(orders["status"] == "refunded") == len(line)
    net = orders["quantity"][line] * orders["unit_price"][line] - orders["discount"][line]
    assert np.all((refunds["amount"] > 0) & (refunds["amount"] <= net))
    assert np.all(refunds["refunded_at"] > orders["ordered_at"][line])
    assert refunds["refunded_at"].max() < _seconds(END)
    assert np.all(refunds["updated_at"] >= refunds["refunded_at"])
    days = (refunds["refunded_at"] - orders["ordered_at"][line]) / 86_400
    assert days.min() >= 3 and days.max() <= 45


def test_prices_and_discounts(tables, orders):
    offers = tables["product_offerings"]
    price_by_sku = dict(zip(offers["sku"].to_pylist(), _numpy(offers["price"])))
    assert np.array_equal([price_by_sku[sku] for sku in orders["sku"]], orders["unit_price"])
    gross = orders["quantity"] * orders["unit_price"]
    discounted = orders["discount"] > 0
    assert np.all((orders["discount"] >= 0) & (orders["discount"] <= gross * 0.3 + 1))
    assert 0.12 < discounted.mean() < 0.28
    assert set(orders["quantity"]) <= {1, 2, 3, 4, 5} and np.mean(orders["quantity"] == 1) > 0.7


def test_every_sku_is_known_everywhere(tables, orders):
    links, offers = tables["listing_products"], tables["product_offerings"]
    extra = lookups(tables)
    used = set(np.unique(orders["sku"]))
    assert len(set(links["sku"].to_pylist())) == links.num_rows  # an SKU belongs to one listing
    for table in (links, offers, extra["costs"], extra["desi"]):
        assert used <= set(table["sku"].to_pylist())
    listing_of = dict(zip(links["sku"].to_pylist(), links["listing_id"].to_pylist()))
    assert all(listing_of[s] == listing for s, listing in zip(orders["sku"], orders["listing_id"]))
    assert set(offers["sku"].to_pylist()) == set(links["sku"].to_pylist())
    stock = offers["quantity"].to_numpy()
    assert stock.min() >= 0 and stock.max() <= 500
    assert 0.05 < 1 - np.mean(offers["is_enabled"].to_numpy()) < 0.15


def test_costs_desi_and_shipping_rates(tables, orders):
    extra = lookups(tables)
    price = _numpy(tables["product_offerings"]["price"])
    ratio = _numpy(extra["costs"]["unit_cost"]) / price
    assert ratio.min() >= 0.29 and ratio.max() <= 0.71
    desi = dict(zip(extra["desi"]["sku"].to_pylist(), _numpy(extra["desi"]["desi"])))  # tenths
    assert 5 <= min(desi.values()) and max(desi.values()) <= 300
    rates = extra["shipping_rates"]
    low, high = rates["desi_from"].to_numpy(), rates["desi_to"].to_numpy()
    assert low[0] == 0 and np.array_equal(low[1:], high[:-1]) and np.all(high > low)
    assert np.all(np.diff(_numpy(rates["cost"])) > 0)
    line_desi = np.array([desi[s] for s in orders["sku"]]) * orders["quantity"] / 10
    assert line_desi.max() < high[-1] and generator.MAX_DESI * 5 < high[-1]


def test_weekends_are_busier(orders):
    first_lines = orders["line_no"] == 1
    local_day = (orders["ordered_at"][first_lines] + 3 * 3600) // 86_400  # Istanbul is UTC+3
    days = np.arange(local_day.min(), local_day.max() + 1)
    per_day = np.bincount(local_day - days[0], minlength=len(days))
    weekend = (days + 3) % 7 >= 5  # 1970-01-01 was a Thursday
    assert per_day[weekend].mean() > 1.1 * per_day[~weekend].mean()


def test_lookup_csvs(tmp_path: Path, tables):
    write_lookups(tmp_path, tables)
    headers = {"costs": ["sku", "unit_cost"], "desi": ["sku", "desi"],
               "shipping_rates": ["desi_from", "desi_to", "cost"]}
    for name, header in headers.items():
        with open(tmp_path / f"{name}.csv", newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0] == header
        assert len(rows) - 1 == lookups(tables)[name].num_rows
    assert rows[1] == ["0", "1", "2.99"]


def test_cli_writes_parquet_and_csv(tmp_path: Path):
    generator.main(["--rows", "500", "--out", str(tmp_path)])
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {f"{t}.parquet" for t in SCHEMAS} | {"costs.csv", "desi.csv", "shipping_rates.csv"}


def test_loads_from_its_file_path_alone():
    """`tally demo` imports the generator by path, outside any package."""
    path = Path(generator.__file__)
    spec = importlib.util.spec_from_file_location("standalone_ecommerce_generator", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.generate(100)["orders"].num_rows == 100

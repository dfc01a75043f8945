"""The ecommerce metrics of SPEC.md, computed by the engine on every warehouse, equal a pandas computation."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from tally.sources.seeds import read_seed

from tests.engine import reference

KPIS = ["gross_sales", "discounts", "revenue", "orders", "units", "customers", "refunds", "net_revenue",
        "cogs", "shipping_cost", "profit", "aov", "margin"]
START, END = "2026-03-01", "2026-05-01"


@pytest.fixture(scope="module")
def expected(ecommerce):
    project, tables = ecommerce
    seeds = project.config.seeds
    lookups = {file: read_seed(project.root, name, seeds[name]) for file, name in
               (("costs", "product_costs"), ("desi", "product_desi"), ("shipping_rates", "shipping_rates"))}
    return reference.lines(tables, lookups), reference.refunds(tables)


def assert_same(actual: dict, wanted: dict) -> None:
    for name, value in wanted.items():
        got = actual[name]
        if isinstance(value, Decimal):
            assert Decimal(str(got)).quantize(Decimal("0.01")) == value.quantize(Decimal("0.01")), name
        elif isinstance(value, float):
            assert got == pytest.approx(value, rel=1e-9), name
        else:
            assert got == value, name


def test_totals_equal_pandas(ecommerce, expected):
    project, _ = ecommerce
    order_lines, refund_rows = expected
    row = project.query(KPIS, start=START, end=END).to_pylist()[0]
    assert_same(row, reference.kpis(reference.in_range(order_lines, START, END),
                                     reference.in_range(refund_rows, START, END)))


def test_breakdown_by_shop_equals_pandas(ecommerce, expected):
    project, _ = ecommerce
    order_lines, refund_rows = expected
    lines_in, refunds_in = reference.in_range(order_lines, START, END), reference.in_range(refund_rows, START, END)
    rows = project.query(["revenue", "refunds", "orders", "profit"], by=["shop"], start=START, end=END).to_pylist()
    shops = set(lines_in["shop_id"]) | set(refunds_in["shop_id"].dropna())
    assert {r["shop"] for r in rows} == shops
    for row in rows:
        wanted = reference.kpis(lines_in[lines_in["shop_id"] == row["shop"]],
                                refunds_in[refunds_in["shop_id"] == row["shop"]])
        assert_same(row, {k: wanted[k] for k in ("revenue", "refunds", "orders", "profit")})


def test_daily_series_is_complete_and_sums_to_total(ecommerce):
    project, _ = ecommerce
    daily = project.query(["revenue", "orders", "aov"], grain="day", start=START, end=END).to_pylist()
    assert [r["period"] for r in daily] == [dt.date(2026, 3, 1) + dt.timedelta(days=i) for i in range(61)]
    total = project.query(["revenue"], start=START, end=END).to_pylist()[0]["revenue"]
    assert sum(r["revenue"] for r in daily) == total
    assert all(r["aov"] is None for r in daily if r["orders"] == 0)


@pytest.mark.parametrize("grain", ["week", "month", "quarter", "year"])
def test_coarser_grains_sum_days(ecommerce, grain):
    project, _ = ecommerce
    start, end = "2025-01-01", "2026-01-01"
    coarse = project.query(["revenue", "units"], grain=grain, start=start, end=end).to_pylist()
    daily = project.query(["revenue", "units"], grain="day", start=start, end=end).to_pylist()
    assert sum(r["revenue"] for r in coarse) == sum(r["revenue"] for r in daily)
    assert sum(r["units"] for r in coarse) == sum(r["units"] for r in daily)
    if grain == "week":
        assert all(r["period"].weekday() == 0 for r in coarse)


def test_compare_previous_period(ecommerce):
    project, _ = ecommerce
    row = project.query(["revenue", "margin"], start="2026-04-01", end="2026-05-01",
                        compare="previous_period").to_pylist()[0]
    march = project.query(["revenue", "margin"], start="2026-03-01", end="2026-04-01").to_pylist()[0]
    assert row["revenue_previous"] == march["revenue"]
    assert row["revenue_change"] == row["revenue"] - march["revenue"]
    assert row["revenue_change_pct"] == pytest.approx(
        float(row["revenue"] - march["revenue"]) / float(march["revenue"]) * 100)
    assert row["margin_previous"] == pytest.approx(march["margin"])


def test_compare_previous_year_by_month(ecommerce):
    project, _ = ecommerce
    rows = project.query(["orders"], grain="month", start="2026-01-01", end="2026-04-01",
                         compare="previous_year").to_pylist()
    last_year = project.query(["orders"], grain="month", start="2025-01-01", end="2025-04-01").to_pylist()
    assert [r["orders_previous"] for r in rows] == [r["orders"] for r in last_year]


def test_top_listings(ecommerce, expected):
    project, _ = ecommerce
    order_lines, _ = expected
    rows = project.query(["revenue", "units"], by=["listing"], order_by=["-revenue"], limit=5,
                         start=START, end=END).to_pylist()
    live = reference.in_range(order_lines, START, END)
    live = live[live["status"] != "cancelled"]
    revenue = (live["quantity"].astype(object) * live["unit_price"] - live["discount"]).groupby(live["listing_id"]).sum()
    top = revenue.sort_values(ascending=False).head(5)
    assert [r["listing"] for r in rows] == list(top.index)
    assert [r["revenue"] for r in rows] == list(top.values)


def test_where_filters_dimensions(ecommerce):
    project, _ = ecommerce
    by_status = {r["status"]: r["revenue"] for r in
                 project.query(["revenue"], by=["status"], start=START, end=END).to_pylist()}
    paid = project.query(["revenue"], where="status = 'paid' or status in ('shipped')", start=START,
                         end=END).to_pylist()[0]["revenue"]
    assert paid == by_status.get("paid", 0) + by_status.get("shipped", 0)


def test_stock_snapshot(ecommerce):
    project, tables = ecommerce
    offerings = tables["product_offerings"].to_pandas()
    wanted = int(offerings.loc[offerings["is_enabled"], "quantity"].sum())
    assert project.query(["stock"]).to_pylist()[0]["stock"] == wanted


def test_same_numbers_on_every_warehouse(ecommerce, warehouse_kind, request):
    """Each warehouse's answer equals DuckDB's; stored per kind on the session to compare across params."""
    project, _ = ecommerce
    rows = project.query(["revenue", "refunds", "aov", "customers"], grain="week", by=["shop"],
                         start="2026-02-01", end="2026-03-01").to_pylist()
    answers = request.config.cache_answers = getattr(request.config, "cache_answers", {})
    answers[warehouse_kind] = rows
    for kind, other in answers.items():
        assert len(other) == len(rows), kind
        for a, b in zip(other, rows):
            assert a.keys() == b.keys()
            for key in a:
                if isinstance(a[key], float):
                    assert a[key] == pytest.approx(b[key], rel=1e-9)
                else:
                    assert a[key] == b[key], (kind, key)

"""Comparisons and top-N on the ecommerce example, each number checked against plain Python over
the generated rows (issue 13 items 7, 11, 12, 13), on every warehouse."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tally.errors import QueryError

IST = ZoneInfo("Europe/Istanbul")
NY = ZoneInfo("America/New_York")


def at(text: str, tz: ZoneInfo = IST) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=tz)


@pytest.fixture(scope="module")
def rows(ecommerce):
    """Order lines and refunds as plain dicts, refunds with their line's shop and status."""
    _, tables = ecommerce
    lines = tables["orders"].to_pylist()
    by_line = {(r["order_id"], r["line_no"]): r for r in lines}
    refunds = []
    for r in tables["order_refunds"].to_pylist():
        line = by_line[(r["order_id"], r["line_no"])]
        refunds.append({**r, "shop_id": line["shop_id"], "status": line["status"]})
    return lines, refunds


def revenue(lines, lo, hi, **where) -> Decimal:
    return sum((r["quantity"] * r["unit_price"] - r["discount"] for r in _kept(lines, "ordered_at", lo, hi, where)
                if r["status"] != "cancelled"), Decimal(0))


def orders(lines, lo, hi, **where) -> int:
    return len({r["order_id"] for r in _kept(lines, "ordered_at", lo, hi, where) if r["status"] != "cancelled"})


def refunded(refunds, lo, hi, **where) -> Decimal:
    return sum((r["amount"] for r in _kept(refunds, "refunded_at", lo, hi, where)), Decimal(0))


def _kept(rows, time, lo, hi, where):
    return [r for r in rows if lo <= r[time] < hi and all(r[k] == v for k, v in where.items())]


# -- item 11: top-N sorts by the values shown, zeros included ------------------------------------------

def test_top_n_keeps_groups_whose_sum_is_zero(ecommerce, rows):
    """Once `refunded 245.90`: cancelled lines' filtered revenue was NULL when sorted in SQL."""
    project, _ = ecommerce
    lines, _ = rows
    lo, hi = at("2026-09-01"), at("2026-10-01")
    statuses = sorted({r["status"] for r in _kept(lines, "ordered_at", lo, hi, {})})
    expected = sorted(((revenue(lines, lo, hi, status=s), s) for s in statuses))
    assert expected[0] == (Decimal(0), "cancelled")
    got = project.query("revenue", by="status", start="2026-09-01", end="2026-10-01", order_by="revenue",
                        limit=1).to_pylist()
    assert got == [{"status": "cancelled", "revenue": Decimal("0.00")}]


def test_top_n_across_models_sorts_by_the_values_shown(ecommerce, rows):
    """Once `refunded, cancelled`: a status without refunds had net_revenue NULL in SQL, sorted last."""
    project, _ = ecommerce
    lines, refunds = rows
    lo, hi = at("2026-09-01"), at("2026-10-01")
    statuses = {r["status"] for r in _kept(lines, "ordered_at", lo, hi, {})} | \
        {r["status"] for r in _kept(refunds, "refunded_at", lo, hi, {})}
    net = {s: revenue(lines, lo, hi, status=s) - refunded(refunds, lo, hi, status=s) for s in statuses}
    expected = sorted(net, key=lambda s: (-net[s], s))[:2]
    got = project.query("net_revenue", by="status", start="2026-09-01", end="2026-10-01", order_by="-net_revenue",
                        limit=2).to_pylist()
    assert [r["status"] for r in got] == expected
    assert [r["net_revenue"] for r in got] == [net[s] for s in expected]


# -- item 12: --limit keeps the groups, not the previous range's ranking --------------------------------

def test_limit_does_not_cut_the_previous_range(ecommerce, rows):
    """Once `orders_previous 0` for a shop outside May's top 5: the previous query was limited too."""
    project, _ = ecommerce
    lines, _ = rows
    got = project.query("orders", by="shop", start="2026-06-01", end="2026-07-01", compare="previous_period",
                        order_by="-orders", limit=5).to_pylist()
    may = at("2026-05-01"), at("2026-06-01")
    june = at("2026-06-01"), at("2026-07-01")
    shops = {r["shop_id"] for r in lines}
    top = sorted(shops, key=lambda s: (-orders(lines, *june, shop_id=s), s))[:5]
    may_top = sorted(shops, key=lambda s: (-orders(lines, *may, shop_id=s), s))[:5]
    assert set(top) - set(may_top), "the data no longer has a June top-5 shop outside May's top 5"
    assert [r["shop"] for r in got] == top
    assert [r["orders_previous"] for r in got] == [orders(lines, *may, shop_id=s) for s in top]


# -- item 7: a comparison never overlaps its range ------------------------------------------------------

def test_previous_year_without_a_range_is_the_last_year_of_data(ecommerce, rows):
    """Once 2024-11-02 → 2026-11-01 against 2023-11-02 → 2025-11-01 (a year counted twice, "+183%")."""
    project, _ = ecommerce
    lines, _ = rows
    result = project.query_result("revenue", compare="previous_year")
    assert (result.meta["from"], result.meta["to"]) == ("2025-11-01", "2026-11-01")
    assert (result.meta["compare"]["from"], result.meta["compare"]["to"]) == ("2024-11-01", "2025-11-01")
    row = result.to_pylist()[0]
    assert row["revenue"] == revenue(lines, at("2025-11-01"), at("2026-11-01"))
    assert row["revenue_previous"] == revenue(lines, at("2024-11-01"), at("2025-11-01"))


def test_previous_year_with_an_open_end_is_one_year_from_the_start(ecommerce):
    project, _ = ecommerce
    meta = project.query_result("revenue", start="2025-01-01", compare="previous_year").meta
    assert (meta["from"], meta["to"], meta["compare"]["from"], meta["compare"]["to"]) == \
        ("2025-01-01", "2026-01-01", "2024-01-01", "2025-01-01")


def test_previous_year_of_a_range_longer_than_a_year_is_refused(ecommerce):
    project, _ = ecommerce
    with pytest.raises(QueryError, match="longer than one year"):
        project.query("revenue", start="2025-01-01", end="2026-03-01", compare="previous_year")
    with pytest.raises(QueryError, match="longer than 52 weeks"):
        project.query("revenue", grain="week", start="2025-03-03", end="2026-03-09", compare="previous_year")


# -- item 13: the documented rules ----------------------------------------------------------------------

def test_previous_period_by_grain_pairs_from_the_last_period(ecommerce, rows):
    """March 15 → May 1 by month: April with March 1-14, March 15-31 with February (once April with
    February, counted from the first)."""
    project, _ = ecommerce
    lines, _ = rows
    result = project.query_result("revenue", grain="month", start="2026-03-15", end="2026-05-01",
                                  compare="previous_period")
    assert (result.meta["compare"]["from"], result.meta["compare"]["to"]) == ("2026-01-27", "2026-03-15")
    got = {r["period"]: r["revenue_previous"] for r in result.to_pylist()}
    assert got == {dt.date(2026, 3, 1): revenue(lines, at("2026-02-01"), at("2026-03-01")),
                   dt.date(2026, 4, 1): revenue(lines, at("2026-03-01"), at("2026-03-15"))}


@pytest.mark.parametrize("start, end, before", [
    ("2026-03-08T00:00", "2026-03-08T12:00", "2026-03-07T12:00"),   # 11 h elapse, 12 on the clock
    ("2026-11-01T00:00", "2026-11-01T12:00", "2026-10-31T12:00"),   # 13 h elapse
])
def test_previous_period_of_part_days_is_its_wall_clock_length(ecommerce, rows, start, end, before):
    """Once moved back by elapsed time (11 h / 13 h across New York's DST changes)."""
    project, _ = ecommerce
    lines, _ = rows
    result = project.query_result("revenue", start=start, end=end, compare="previous_period",
                                  timezone="America/New_York")
    assert (result.meta["compare"]["from"], result.meta["compare"]["to"]) == (before + ":00", start[:10])
    assert result.to_pylist()[0]["revenue_previous"] == revenue(lines, at(before, NY), at(start, NY))


def test_previous_year_by_hour_is_the_same_local_hour(ecommerce, rows):
    """New York skips 02:00 on 2026-03-08, not on 2025-03-08: 03:00 pairs with 03:00 a year before
    (once matched by position, with 02:00)."""
    project, _ = ecommerce
    lines, _ = rows
    result = project.query("orders", grain="hour", start="2026-03-07", end="2026-03-14", compare="previous_year",
                           timezone="America/New_York").to_pylist()
    assert len(result) == 7 * 24 - 1
    checked = 0
    for row in result:
        hour = row["period"].replace(year=2025, tzinfo=NY)
        expected = orders(lines, hour, hour + dt.timedelta(hours=1))
        assert row["orders_previous"] == expected, row["period"]
        checked += expected > 0
    assert checked > 10


def test_previous_year_by_week_is_the_week_52_weeks_before(ecommerce, rows):
    project, _ = ecommerce
    lines, _ = rows
    result = project.query_result("revenue", grain="week", start="2026-03-02", end="2026-04-06",
                                  compare="previous_year")
    assert (result.meta["compare"]["from"], result.meta["compare"]["to"]) == ("2025-03-03", "2025-04-07")
    for row in result.to_pylist():
        week = at(row["period"].isoformat()) - dt.timedelta(weeks=52)
        assert row["revenue_previous"] == revenue(lines, week, week + dt.timedelta(weeks=1)), row["period"]


# -- snapshots: a past range's header with today's stock says so ----------------------------------------

def test_snapshot_metric_is_labelled_with_its_load_time(ecommerce):
    """Once unlabelled: `stock` for January 2025 is the stock loaded now, not January's."""
    from tally.delivery.terminal import title_text as _title
    from tally.warehouse.internal import ensure_internal_tables, write_state

    project, _ = ecommerce
    ask = dict(by="sku", start="2025-01-01", end="2025-02-01")
    assert "as_of" not in project.query_result("revenue", **ask).meta
    ensure_internal_tables(project.warehouse, ["_tally_state"])
    with project.warehouse.transaction() as tx:
        write_state(tx, "table:product_offerings", None)
    assert project.query_result(["stock", "revenue"], **ask).meta["as_of"] == {"stock": None}
    with project.warehouse.transaction() as tx:
        write_state(tx, "table:product_offerings", "load-1")
    try:
        meta = project.query_result(["stock", "revenue"], **ask).meta
        stamp = meta["as_of"]["stock"]
        loaded = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert abs(dt.datetime.now(dt.timezone.utc) - loaded) < dt.timedelta(minutes=5)
        assert f"stock: snapshot as of its load at {stamp}" in _title(meta)
    finally:
        with project.warehouse.transaction() as tx:
            write_state(tx, "table:product_offerings", None)

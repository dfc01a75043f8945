"""A full build sums a distinct count from its days when every counted value has its rows on one
local day (an order's lines on the order's day), and counts it when one doesn't.

Every test builds its own ecommerce project (see helpers.py and conftest.py)."""

from __future__ import annotations

import datetime as dt

import tally.rollups
from tally.rollups import compute
from tally.rollups.definition import definitions

from tests.rollups.helpers import execute, insert_line, mismatches, opened, order_lines, utc

SPAN = (dt.date(2020, 1, 1), dt.date(2030, 1, 1))


def _summed(project) -> dict[str, list[str]]:
    return {rdef.name: compute.day_summed(project.engine, rdef, *SPAN) for rdef in definitions(project)}


def _orders(project, grain: str, start: dt.date, end: dt.date, shop_id: int) -> list[int]:
    rows = execute(project, "SELECT orders FROM shop_reports WHERE grain = ? AND period_start >= ? "
                            "AND period_start < ? AND shop = ?", [grain, start, end, shop_id])
    return [r[0] for r in rows]


def test_orders_are_summed_from_days_and_customers_are_not(shop):
    directory, url = shop
    with opened(directory, url) as project:
        assert _summed(project) == {"shop_reports": ["orders"], "listing_reports": ["orders"],
                                    "product_reports": ["orders"]}
        assert mismatches(tally.rollups.verify(project)) == {}
        march = _orders(project, "month", dt.date(2025, 3, 1), dt.date(2025, 3, 2), 3)
        assert march == [sum(_orders(project, "day", dt.date(2025, 3, 1), dt.date(2025, 4, 1), 3))]


def test_an_order_on_two_days_is_counted_once_in_its_month(shop):
    directory, url = shop
    with opened(directory, url) as project:
        line = order_lines(project, "shop_id = 3 AND status <> 'cancelled' AND ordered_at >= ? AND ordered_at < ?",
                           [utc(2025, 3, 2), utc(2025, 3, 10)], limit=1)[0]
        # a line of the same order, two weeks later: the order is now on two days of March
        insert_line(project, dict(line, line_no=99, ordered_at=utc(2025, 3, 24, 12), updated_at=utc(2026, 11, 2)))
        assert _summed(project)["shop_reports"] == []
        results = tally.rollups.build(project, full=True)
        assert [r.mode for r in results] == ["full"] * 3
        assert mismatches(tally.rollups.verify(project)) == {}
        days = _orders(project, "day", dt.date(2025, 3, 1), dt.date(2025, 4, 1), 3)
        # the days count the order on each of its two days; the month, once
        assert _orders(project, "month", dt.date(2025, 3, 1), dt.date(2025, 3, 2), 3) == [sum(days) - 1]

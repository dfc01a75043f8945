"""Stored distinct keys: incremental builds bring distinct counts up to date from them, on every warehouse.

The oracle is always a live computation: the key tables must hold exactly the distinct (day, dimension,
key) rows a live query finds, and `verify` (every stored period recomputed live) must find nothing.
"""

from __future__ import annotations

import datetime as dt
import importlib
from decimal import Decimal

import pyarrow as pa

import tally.rollups
from tally.rollups import keys
from tally.rollups.definition import definitions

from tests.rollups.helpers import (
    ROLLUPS,
    Clock,
    change_storm,
    execute,
    insert_line,
    mismatches,
    next_id,
    opened,
    order_lines,
    utc,
)

build_module = importlib.import_module("tally.rollups.build")


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([(name, "ascending") for name in table.column_names])


def assert_keys_match_live(project) -> int:
    """Every key table equals the live key rows over the data's span; returns how many were checked."""
    checked = 0
    warehouse, engine = project.warehouse, project.engine
    for rdef in definitions(project):
        for measure in keys.measures(engine, rdef):
            stored = warehouse.run(warehouse.compile(warehouse.table(keys.table_name(rdef, measure))))
            live = keys.live(engine, rdef, measure, dt.date(2020, 1, 1), dt.date(2030, 1, 1))
            assert stored.num_rows > 0, (rdef.name, measure)
            assert _sorted(stored).to_pylist() == _sorted(live.cast(stored.schema)).to_pylist(), (rdef.name, measure)
            checked += 1
    return checked


def add_line(project, like: dict, **changes) -> None:
    """A new order (the next order id) copied from the line `like`, with `changes`."""
    insert_line(project, dict(like, order_id=next_id(project, "orders", "order_id"), **changes))


def year_customers(project, year: int, shop_id: int) -> int:
    rows = execute(project, "SELECT customers FROM shop_reports WHERE grain = 'year' AND period_start = ? "
                            "AND shop = ?", [dt.date(year, 1, 1), shop_id])
    return rows[0][0] if rows else 0


def test_key_tables_equal_live_keys_after_full_and_incremental_builds(shop):
    directory, url = shop
    with opened(directory, url) as project:
        assert assert_keys_match_live(project) == 4   # shop: orders, customers; listing, product: orders
        assert all(keys.complete(project.warehouse, rdef, build_module._load_state(project.warehouse, rdef)["definition"],
                                 keys.measures(project.engine, rdef))
                   for rdef in definitions(project))
        change_storm(project, Clock())
        results = tally.rollups.build(project)
        assert [r.mode for r in results] == ["incremental"] * len(ROLLUPS)
        assert mismatches(tally.rollups.verify(project)) == {}
        assert_keys_match_live(project)


def test_a_returning_customer_counts_once_and_a_vanished_one_is_taken_away(shop):
    directory, url = shop
    clock = Clock()
    with opened(directory, url) as project:
        # a customer of shop 3 in 2025 orders again on another 2025 day: the year's count stays
        line = order_lines(project, "shop_id = 3 AND status <> 'cancelled' AND ordered_at >= ? AND ordered_at < ?",
                           [utc(2025, 3, 1), utc(2025, 4, 1)], limit=1)[0]
        before = year_customers(project, 2025, 3)
        add_line(project, line, line_no=1, ordered_at=utc(2025, 9, 14, 12), updated_at=clock())
        tally.rollups.build(project)
        assert year_customers(project, 2025, 3) == before
        # a customer never seen before: one more
        add_line(project, line, line_no=1, customer_id=987654, ordered_at=utc(2025, 9, 15, 12), updated_at=clock())
        tally.rollups.build(project)
        assert year_customers(project, 2025, 3) == before + 1
        # that customer's only order deleted: one fewer again
        execute(project, "DELETE FROM orders WHERE customer_id = 987654")
        tally.rollups.build(project)
        assert year_customers(project, 2025, 3) == before
        assert mismatches(tally.rollups.verify(project)) == {}
        assert_keys_match_live(project)


def test_lost_key_rows_are_rewritten_before_they_are_used(shop):
    directory, url = shop
    clock = Clock()
    with opened(directory, url) as project:
        rdef = definitions(project, ["shop_reports"])[0]
        project.warehouse.drop_table(keys.table_name(rdef, "customers"))
        line = order_lines(project, "status <> 'cancelled'", limit=1)[0]
        add_line(project, line, customer_id=555555, ordered_at=utc(2025, 6, 10, 9), updated_at=clock())
        results = tally.rollups.build(project)   # keys incomplete: rewritten whole, counts recomputed live
        assert [r.mode for r in results] == ["incremental"] * len(ROLLUPS)
        state = build_module._load_state(project.warehouse, rdef)
        assert keys.complete(project.warehouse, rdef, state["definition"], keys.measures(project.engine, rdef))
        add_line(project, line, customer_id=555556, ordered_at=utc(2025, 6, 11, 9), updated_at=clock())
        tally.rollups.build(project)             # and used again
        assert mismatches(tally.rollups.verify(project)) == {}
        assert_keys_match_live(project)


def test_a_sum_too_wide_for_its_narrow_column_widens_it(shop):
    directory, url = shop
    with opened(directory, url) as project:
        column = dict(project.warehouse.table("shop_reports").schema().items())["gross_sales"]
        assert column.precision == 18                    # sums fit: stored narrow
        line = order_lines(project, "status <> 'cancelled'", limit=1)[0]
        clock = Clock()
        for hour in (10, 11):   # 9e15 each (a line's own product stays within 16 digits), 1.8e16 the day
            add_line(project, line, quantity=1_000_000, unit_price=Decimal("9000000000.00"),
                     ordered_at=utc(2026, 2, 3, hour), updated_at=clock())
        tally.rollups.build(project)
        project.warehouse.forget("shop_reports")
        column = dict(project.warehouse.table("shop_reports").schema().items())["gross_sales"]
        assert column.precision > 18
        top = execute(project, "SELECT MAX(gross_sales) FROM shop_reports WHERE grain = 'year'")[0][0]
        assert Decimal(top) >= Decimal("18000000000000000")
        assert mismatches(tally.rollups.verify(project)) == {}

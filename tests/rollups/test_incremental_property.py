"""Property: whatever changes the shop's database sees, incremental rollup builds stay equal to live answers
and to a full rebuild.

Each example starts from a copy of one fully built DuckDB project and applies random batches of changes
(late orders at random old dates, status updates, deleted orders, refunds paid back in a later period,
orders moved to another shop, deleted refunds, changed quantities), each stamped with a new `updated_at`
as the shop's app would, then runs an incremental build after every batch. `shop_reports` (by shop) and
`product_reports` (by SKU, which refunds reach through their order line) are checked; `listing_reports`
has the same shape as `product_reports` and is left out to keep the test under a minute.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, example, given, note, settings
from hypothesis import strategies as st

import tally.rollups

from tests.rollups.helpers import (
    ORDER_COLUMNS,
    Clock,
    assert_same_tables,
    execute,
    insert_line,
    insert_refund,
    make_shop,
    mismatches,
    next_id,
    opened,
    stored_table,
    utc,
)

CHECKED = ["shop_reports", "product_reports"]
ROWS = 500
LAST = utc(2026, 11, 20)  # refunds are paid back at most up to here (the data ends on 2026-11-01)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A fully built project folder (its warehouse is warehouse.duckdb inside), copied per example."""
    return make_shop(tmp_path_factory.mktemp("property") / "shop", None, rows=ROWS, seed=3)


index = st.integers(0, 10**6)
shop = st.integers(1, 21)  # 21: a shop the data has never seen
operation = st.one_of(
    st.tuples(st.just("late_order"), st.integers(-20, 729), st.integers(0, 23), index, shop),
    st.tuples(st.just("status"), index, st.sampled_from(["cancelled", "paid", "shipped", "refunded"])),
    st.tuples(st.just("delete_order"), index),
    st.tuples(st.just("refund"), index, st.integers(1, 150), st.integers(1, 100)),
    st.tuples(st.just("move_shop"), index, shop),
    st.tuples(st.just("delete_refund"), index),
    st.tuples(st.just("quantity"), index, st.integers(1, 9)),
)
batches = st.lists(st.lists(operation, min_size=1, max_size=3), min_size=1, max_size=3)


def pick_line(project, i: int) -> dict | None:
    count = execute(project, "SELECT COUNT(*) FROM orders")[0][0]
    if not count:
        return None
    row = execute(project, f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders ORDER BY order_id, line_no "
                           f"LIMIT 1 OFFSET {i % count}")[0]
    return dict(zip(ORDER_COLUMNS, row))


def apply(project, op: tuple, clock: Clock) -> None:
    kind, *args = op
    if kind == "late_order":
        days, hour, i, shop_id = args
        line = pick_line(project, i)
        when = utc(2024, 11, 1) + dt.timedelta(days=days, hours=hour, minutes=30)
        insert_line(project, dict(line, order_id=next_id(project, "orders", "order_id"), line_no=1, shop_id=shop_id,
                                  status="paid", ordered_at=when, updated_at=clock()))
        return
    if kind == "refund":
        i, delay, percent = args
        line = pick_line(project, i)
        net = line["unit_price"] * line["quantity"] - line["discount"]
        amount = max(Decimal("0.01"), (net * percent / 100).quantize(Decimal("0.01")))
        when = min(line["ordered_at"] + dt.timedelta(days=delay, hours=5), LAST)
        insert_refund(project, line, amount, when, clock())
        return
    if kind == "delete_refund":
        refunds = [r[0] for r in execute(project, "SELECT refund_id FROM order_refunds ORDER BY refund_id")]
        if refunds:
            execute(project, "DELETE FROM order_refunds WHERE refund_id = ?", [refunds[args[0] % len(refunds)]])
        return
    line = pick_line(project, args[0])
    if line is None:
        return
    if kind == "status":
        execute(project, "UPDATE orders SET status = ?, updated_at = ? WHERE order_id = ?",
                [args[1], clock(), line["order_id"]])
    elif kind == "delete_order":
        execute(project, "DELETE FROM orders WHERE order_id = ?", [line["order_id"]])
    elif kind == "move_shop":
        execute(project, "UPDATE orders SET shop_id = ?, updated_at = ? WHERE order_id = ?",
                [args[1], clock(), line["order_id"]])
    elif kind == "quantity":
        execute(project, "UPDATE orders SET quantity = ?, updated_at = ? WHERE order_id = ? AND line_no = ?",
                [args[1], clock(), line["order_id"], line["line_no"]])
    else:  # pragma: no cover
        raise AssertionError(kind)


@settings(max_examples=4, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps=batches)
# a refund paid back weeks later, then its line moves to a new shop; an order deleted; a late order
# from before the data's first day, at 22:30 UTC (the next local day)
@example(steps=[[("refund", 7, 40, 50)], [("move_shop", 7, 21), ("delete_order", 11)],
                [("late_order", -5, 22, 3, 21), ("status", 7, "cancelled")]])
def test_incremental_builds_equal_live_and_a_full_rebuild(pristine, steps):
    folder = Path(tempfile.mkdtemp(prefix="tally-prop-"))
    try:
        directory = Path(shutil.copytree(pristine, folder / "shop"))
        clock = Clock()
        with opened(directory) as project:
            for number, batch in enumerate(steps):
                note(f"batch {number}: {batch}")
                for op in batch:
                    apply(project, op, clock)
                results = tally.rollups.build(project, CHECKED)
                assert {r.mode for r in results} <= {"incremental", "unchanged"}, results
                assert mismatches(tally.rollups.verify(project, CHECKED[number % 2:][:1])) == {}
            assert [r.mode for r in tally.rollups.build(project, CHECKED)] == ["unchanged"] * len(CHECKED)
            assert mismatches(tally.rollups.verify(project, CHECKED)) == {}
            incremental = {name: stored_table(project, name) for name in CHECKED}
            tally.rollups.build(project, CHECKED, full=True)
            assert_same_tables(incremental, {name: stored_table(project, name) for name in CHECKED})
    finally:
        shutil.rmtree(folder, ignore_errors=True)

"""Cheap change scans: a model's row counts per day are read for its changed days alone when the
rest of the model shows no deletion (`changes.days_now`), and the in-place difference works from
the day rows that differ, still keeping a coarser row whose other day rows didn't change.

Every test builds its own ecommerce project (see helpers.py and conftest.py)."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

import tally.rollups
from tally.engine import changes
from tally.engine.timegrid import Grain
from tally.rollups.build import state_key
from tally.rollups.definition import definitions
from tally.warehouse.internal import read_state

from tests.rollups.helpers import (
    ROLLUPS,
    Clock,
    all_stored,
    assert_same_tables,
    execute,
    insert_line,
    mismatches,
    next_id,
    opened,
    order_lines,
    stored,
)


def _scan(project, model: str = "orders"):
    """(engine, zone, span, the counts the last build kept, the days changed since it)."""
    engine = project.engine
    rdef = definitions(project, ["shop_reports"], None)[0]
    state = json.loads(read_state(project.warehouse, state_key(rdef.name)))
    span = changes.bounds(engine, model)
    changed = changes.changed_days(engine, model, rdef.zone, state["watermarks"], span)
    return engine, rdef.zone, span, state["days"][model], changed


def test_changed_days_alone_give_every_day_count(shop):
    """Late rows and updates: the counts read from the changed days equal a count of every day."""
    directory, url = shop
    clock = Clock()
    with opened(directory, url) as project:
        late = order_lines(project, limit=2)
        new_id = next_id(project, "orders", "order_id")
        for i, (line, when) in enumerate(zip(late, [dt.datetime(2025, 3, 3, 12, tzinfo=dt.timezone.utc),
                                                    dt.datetime(2025, 9, 30, 21, 30, tzinfo=dt.timezone.utc)])):
            insert_line(project, dict(line, order_id=new_id + i, ordered_at=when, updated_at=clock()))
        moved = order_lines(project, "status <> 'cancelled'", limit=1)[0]
        execute(project, "UPDATE orders SET status = 'cancelled', updated_at = ? WHERE order_id = ? AND line_no = ?",
                [clock(), moved["order_id"], moved["line_no"]])
        engine, zone, span, before, changed = _scan(project)
        assert {"2025-03-03", "2025-10-01"} <= changed   # 21:30 UTC on Sep 30 is Oct 1 in Istanbul
        now = changes.days_now(engine, "orders", zone, span, before, changed)
        assert now is not None, "no row was deleted: the changed days' counts are enough"
        assert now == changes.day_counts(engine, "orders", zone, span)
        assert now != before


def test_a_deletion_outside_the_changed_days_needs_every_day(shop):
    directory, url = shop
    clock = Clock()
    with opened(directory, url) as project:
        gone = order_lines(project, "ordered_at < ?", [dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)], limit=1)[0]
        execute(project, "DELETE FROM orders WHERE order_id = ? AND line_no = ?", [gone["order_id"], gone["line_no"]])
        # a change elsewhere, so that some day is flagged by its change time
        other = order_lines(project, "ordered_at >= ?", [dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)], limit=1)[0]
        execute(project, "UPDATE orders SET quantity = quantity + 1, updated_at = ? WHERE order_id = ? AND line_no = ?",
                [clock(), other["order_id"], other["line_no"]])
        engine, zone, span, before, changed = _scan(project)
        assert changed and all(d >= "2026-01-01" for d in changed)
        assert changes.days_now(engine, "orders", zone, span, before, changed) is None
        # and the build finds the deleted row's day from every day's count
        results = tally.rollups.build(project)
        assert [r.mode for r in results] == ["incremental"] * len(ROLLUPS)
        assert mismatches(tally.rollups.verify(project)) == {}


def test_a_row_without_a_change_time_needs_every_day(shop):
    directory, url = shop
    clock = Clock()
    with opened(directory, url) as project:
        line = order_lines(project, limit=1)[0]
        execute(project, "UPDATE orders SET updated_at = NULL WHERE order_id = ? AND line_no = ?",
                [line["order_id"], line["line_no"]])
        other = order_lines(project, "ordered_at >= ?", [dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)], limit=1)[0]
        execute(project, "UPDATE orders SET discount = discount + 1, updated_at = ? WHERE order_id = ? AND line_no = ?",
                [clock(), other["order_id"], other["line_no"]])
        engine, zone, span, before, changed = _scan(project)
        assert changes.days_now(engine, "orders", zone, span, before, changed) is None


def test_counts_of_joined_matches_are_always_read_in_full(shop):
    """Refunds count their matched order lines: a deleted line shows no change time, so no shortcut."""
    directory, url = shop
    with opened(directory, url) as project:
        engine, zone, span, before, changed = _scan(project, "refunds")
        assert changes.days_now(engine, "refunds", zone, span, before, changed or {"2025-01-01"}) is None


@pytest.mark.parametrize("kind", ["duckdb"])
def test_a_coarser_row_keeps_its_unchanged_day_rows(shop):
    """A listing's week: its lines of one changed day are deleted, its row of another changed day
    is as it was. The week row stays, with that day's numbers (DuckDB's in-place difference)."""
    directory, url = shop
    clock = Clock()
    with opened(directory, url) as project:
        rdef = definitions(project, ["listing_reports"], None)[0]
        zone = ZoneInfo(rdef.zone)
        lines = order_lines(project, "status <> 'cancelled'", limit=100000)
        days: dict[tuple, set] = {}
        for line in lines:
            local = line["ordered_at"].astimezone(zone).date()
            days.setdefault((line["listing_id"], rdef.period(local, Grain.week)), set()).add(local)
        listing, week, (day_a, day_b) = next((k[0], k[1], sorted(v)) for k, v in sorted(days.items()) if len(v) == 2)
        on_b = [x for x in lines if x["listing_id"] == listing and x["ordered_at"].astimezone(zone).date() == day_b]
        for line in on_b:
            execute(project, "DELETE FROM orders WHERE order_id = ? AND line_no = ?", [line["order_id"], line["line_no"]])
        # day A changes through another listing's line
        other = next(x for x in lines if x["listing_id"] != listing and x["ordered_at"].astimezone(zone).date() == day_a)
        execute(project, "UPDATE orders SET quantity = quantity + 1, updated_at = ? WHERE order_id = ? AND line_no = ?",
                [clock(), other["order_id"], other["line_no"]])
        results = tally.rollups.build(project)
        assert [r.mode for r in results] == ["incremental"] * len(ROLLUPS)
        weeks = [r for r in stored(project, "listing_reports", grain="week")
                 if r["listing"] == listing and r["period_start"] == week]
        day_rows = [r for r in stored(project, "listing_reports", grain="day")
                    if r["listing"] == listing and r["period_start"] in (day_a, day_b)]
        assert [r["period_start"] for r in day_rows] == [day_a]
        assert len(weeks) == 1 and weeks[0]["gross_sales"] == day_rows[0]["gross_sales"]
        assert mismatches(tally.rollups.verify(project)) == {}
        incremental = all_stored(project)
        tally.rollups.build(project, full=True)
        assert_same_tables(incremental, all_stored(project))


@pytest.mark.parametrize("kind", ["duckdb"])
def test_a_small_incremental_build_keeps_the_memory_limit(shop, monkeypatch):
    """Lowering DuckDB's limit evicts cached blocks: a build of a few changed days runs without it,
    a full build within it."""
    directory, url = shop
    clock = Clock()
    with opened(directory, url) as project:
        warehouse = project.warehouse
        budgets = []
        real = type(warehouse).memory_budget

        def spy(self, setting):
            budgets.append(setting)
            return real(self, setting)

        monkeypatch.setattr(type(warehouse), "memory_budget", spy)
        line = order_lines(project, limit=1)[0]
        execute(project, "UPDATE orders SET quantity = quantity + 1, updated_at = ? WHERE order_id = ? AND line_no = ?",
                [clock(), line["order_id"], line["line_no"]])
        assert [r.mode for r in tally.rollups.build(project)] == ["incremental"] * len(ROLLUPS)
        assert budgets == []
        assert [r.mode for r in tally.rollups.build(project, full=True)] == ["full"] * len(ROLLUPS)
        assert budgets == ["build_memory_limit"] * len(ROLLUPS)


def test_bounds_and_watermarks_from_last_builds_equal_a_full_read(shop):
    """The ends looked for beyond the last build's bounds, and the change times after its watermark,
    give what a read of every row gives; an end whose row was deleted is read again in full."""
    directory, url = shop
    clock = Clock()
    with opened(directory, url) as project:
        engine = project.engine
        rdef = definitions(project, ["shop_reports"], None)[0]
        state = json.loads(read_state(project.warehouse, state_key(rdef.name)))
        assert set(state["bounds"]) == {"orders", "refunds"}
        known, mark = state["bounds"]["orders"], state["watermarks"]["orders"]
        assert changes.bounds(engine, "orders", known) == changes.bounds(engine, "orders")
        assert changes.max_updated(engine, "orders", mark) == mark == changes.max_updated(engine, "orders")
        # the first line deleted, a later one inserted, another line changed
        first = order_lines(project, "ordered_at = (SELECT min(ordered_at) FROM orders)", limit=10)
        for line in first:
            execute(project, "DELETE FROM orders WHERE order_id = ? AND line_no = ?", [line["order_id"], line["line_no"]])
        late = dict(first[0], order_id=next_id(project, "orders", "order_id"),
                    ordered_at=dt.datetime.fromisoformat(known[1]) + dt.timedelta(hours=5), updated_at=clock())
        insert_line(project, late)
        assert changes.bounds(engine, "orders", known) == changes.bounds(engine, "orders")
        assert changes.bounds(engine, "orders", known)[1] == late["ordered_at"]
        assert changes.bounds(engine, "orders", known)[0] > dt.datetime.fromisoformat(known[0])
        newest = changes.max_updated(engine, "orders", mark)
        assert newest == changes.max_updated(engine, "orders") > mark
        # the newest change deleted: the watermark stays where it was (nothing after it is missed)
        execute(project, "DELETE FROM orders WHERE order_id = ?", [late["order_id"]])
        assert changes.max_updated(engine, "orders", newest) == newest
        assert changes.max_updated(engine, "orders", mark) == mark
        totals = changes.totals(engine, "orders")
        rows = execute(project, "SELECT count(*), count(ordered_at), count(updated_at) FROM orders")[0]
        assert (totals["rows"], totals["dated"], totals["stamped"]) == tuple(rows)
        results = tally.rollups.build(project)
        assert [r.mode for r in results] == ["incremental"] * len(ROLLUPS)
        assert mismatches(tally.rollups.verify(project)) == {}

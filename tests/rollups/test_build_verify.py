"""Rollups on every warehouse: a full build equals live answers, incremental refreshes after late rows,
backdated refunds, cancellations and deletions equal a full rebuild, and `verify` catches (and repairs)
tampered stored rows.

Every test builds its own ecommerce project (the session `ecommerce` fixture is shared and read-only).
Live answers come from a project with rollup routing off, so "live" never reads the rollup it checks.
"""

from __future__ import annotations

import datetime as dt
import math
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path

import pytest

import tally.rollups
from tally import Project
from tally.demo import prepare
from tests.rollups.helpers import (
    DIMENSION,
    GRAINS,
    ROLLUPS,
    ROWS,
    SEED,
    UTC,
    Clock,
    all_stored,
    assert_same_rows,
    assert_same_tables,
    change_storm,
    edit_config,
    execute,
    in_month,
    insert_refund,
    make_shop,
    mismatches,
    opened,
    order_lines,
    sort_key,
    stored,
    stored_table,
)
from tests.servers import WAREHOUSE_KINDS, warehouse_url_for


@pytest.fixture(scope="module", params=WAREHOUSE_KINDS)
def built(request, tmp_path_factory):
    """One fully built project per warehouse for the read-only tests of this module."""
    with ExitStack() as stack:
        url = stack.enter_context(warehouse_url_for(request.param, request, "rollups"))
        directory = make_shop(tmp_path_factory.mktemp("rollup_shop") / "shop", url)
        project = stack.enter_context(opened(directory, url))
        yield project


# --------------------------------------------------------------------------
# a full build equals live answers
# --------------------------------------------------------------------------


def live_rows(project: Project, name: str, grain: str, start: str, end: str) -> list[dict]:
    """`project.query` with the rollup's grain, dimension and range, shaped like stored rows."""
    rollup = project.config.rollups[name]
    dimension = DIMENSION[name]
    stored_columns = [c for c in stored(project, name, grain=grain)[0] if c not in
                      ("period_start", "period_end", "grain", dimension)]
    rows = project.query(stored_columns, by=[dimension], grain=grain, start=start, end=end, fill=False).to_pylist()
    assert set(rollup.metrics) <= set(stored_columns)
    shaped = [{"period_start": r["period"], dimension: r[dimension], **{c: r[c] for c in stored_columns}}
              for r in rows]
    return sorted(shaped, key=lambda r: sort_key(r, ["period_start", dimension]))


def stored_in(project: Project, name: str, grain: str, start: str, end: str) -> list[dict]:
    a, b = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    rows = [r for r in stored(project, name, grain=grain) if a <= r["period_start"] < b]
    for row in rows:
        del row["grain"], row["period_end"]
    return sorted(rows, key=lambda r: sort_key(r, ["period_start", DIMENSION[name]]))


def test_full_build_verifies_clean(built):
    assert mismatches(tally.rollups.verify(built)) == {}


@pytest.mark.parametrize("name, grain, start, end", [
    ("shop_reports", "day", "2025-06-01", "2025-07-01"),
    ("shop_reports", "week", "2025-03-03", "2025-06-02"),
    ("shop_reports", "month", "2025-01-01", "2026-01-01"),
    ("shop_reports", "quarter", "2024-10-01", "2026-10-01"),
    ("shop_reports", "year", "2024-01-01", "2027-01-01"),
    ("listing_reports", "month", "2025-01-01", "2025-07-01"),
    ("product_reports", "week", "2026-01-05", "2026-03-02"),
    ("product_reports", "day", "2026-10-01", "2026-11-01"),
])
def test_stored_rows_equal_live_query(built, name, grain, start, end):
    wanted = live_rows(built, name, grain, start, end)
    assert wanted, "the range should hold data"
    assert_same_rows(stored_in(built, name, grain, start, end), wanted, f"{name} {grain}")


def test_stored_table_shape(built):
    rows = stored(built, "shop_reports", built_at=True)
    rollup = built.config.rollups["shop_reports"]
    columns = list(rows[0])
    assert columns[:4] == ["period_start", "period_end", "grain", "shop"]
    assert columns[-1] == "built_at"
    assert set(rollup.metrics) <= set(columns)
    for base in ("gross_sales", "discounts", "orders", "units", "customers", "refunds", "cogs", "shipping_cost"):
        assert base in columns, base
    assert {r["grain"] for r in rows} == set(GRAINS)
    for row in rows:
        start = row["period_start"]
        if row["grain"] == "week":
            assert start.weekday() == 0 and row["period_end"] == start + dt.timedelta(days=7)
        elif row["grain"] == "day":
            assert row["period_end"] == start + dt.timedelta(days=1)
        elif row["grain"] == "year":
            assert (start.month, start.day) == (1, 1) and row["period_end"] == start.replace(year=start.year + 1)
        else:
            assert start.day == 1 and row["period_end"].day == 1


def test_ratios_are_recomputed_from_parts_not_averaged(built):
    weeks = [r for r in stored(built, "shop_reports", grain="week") if r["orders"] >= 4]
    days = stored(built, "shop_reports", grain="day")
    averaged_differs = 0
    for week in weeks:
        assert week["aov"] == pytest.approx(float(week["revenue"]) / week["orders"], rel=1e-12)
        assert week["margin"] == pytest.approx(float(week["profit"]) / float(week["revenue"]), rel=1e-12)
        assert week["revenue"] == week["gross_sales"] - week["discounts"]
        assert week["net_revenue"] == week["revenue"] - week["refunds"]
        assert week["profit"] == week["net_revenue"] - week["cogs"] - week["shipping_cost"]
        inside = [d for d in days if d["shop"] == week["shop"]
                  and week["period_start"] <= d["period_start"] < week["period_end"]]
        assert sum(d["revenue"] for d in inside) == week["revenue"]
        assert sum(d["orders"] for d in inside) == week["orders"]
        daily_aov = [d["aov"] for d in inside if d["aov"] is not None]
        if len(daily_aov) > 1 and not math.isclose(sum(daily_aov) / len(daily_aov), week["aov"]):
            averaged_differs += 1
    assert averaged_differs > 10, "weeks where the mean of daily AOVs differs from the week's AOV"
    # distinct customers of a quarter are counted once over the quarter, not summed over its months
    quarters = stored(built, "shop_reports", grain="quarter")
    months = stored(built, "shop_reports", grain="month")
    live = {(r["period"], r["shop"]): r["customers"] for r in
            built.query(["customers"], by=["shop"], grain="quarter", start="2024-10-01", end="2026-10-01",
                        fill=False).to_pylist()}
    for quarter in quarters:
        inside = [m["customers"] for m in months if m["shop"] == quarter["shop"]
                  and quarter["period_start"] <= m["period_start"] < quarter["period_end"]]
        assert quarter["customers"] <= sum(inside)
        if (quarter["period_start"], quarter["shop"]) in live:
            assert quarter["customers"] == live[(quarter["period_start"], quarter["shop"])]


def table_summary(project: Project) -> dict:
    """Per rollup table: rows, latest build time, total revenue per grain (cheap to read on every warehouse)."""
    summary = {}
    for name in ROLLUPS:
        project.warehouse.forget(name)
        table = project.warehouse.table(name)
        expr = table.group_by("grain").aggregate(rows=table.count(), built=table.built_at.max(),
                                                 revenue=table.revenue.sum()).order_by("grain")
        summary[name] = project.warehouse.run(project.warehouse.compile(expr)).to_pylist()
    return summary


def test_unchanged_build_writes_nothing(built):
    before = table_summary(built)
    results = tally.rollups.build(built)
    assert [(r.rollup, r.mode, r.rows) for r in results] == [(n, "unchanged", 0) for n in ROLLUPS]
    assert table_summary(built) == before


# --------------------------------------------------------------------------
# incremental refreshes
# --------------------------------------------------------------------------


def test_incremental_build_after_late_rows_refunds_cancels_and_deletes(shop):
    directory, url = shop
    with opened(directory, url) as project:
        before = stored(project, "shop_reports", built_at=True)
        before_tables = all_stored(project)
        done = change_storm(project, Clock())
        results = tally.rollups.build(project)
        assert [r.mode for r in results] == ["incremental"] * len(ROLLUPS)
        full_periods = {(r["grain"], r["period_start"]) for r in before}
        for result in results:
            assert 0 < result.periods < len(full_periods) / 4
        assert mismatches(tally.rollups.verify(project)) == {}
        after = stored(project, "shop_reports", built_at=True)
        # untouched periods kept their rows (and build time); touched ones were rewritten (on DuckDB
        # just their changed rows: a period is rewritten when any of its rows is)
        old_times = {r["built_at"] for r in before}
        rewritten = {(r["grain"], r["period_start"]) for r in after if r["built_at"] not in old_times}
        kept = {(r["grain"], r["period_start"]) for r in after} - rewritten
        assert ("month", dt.date(2026, 6, 1)) in kept
        assert {("month", dt.date(2025, m, 1)) for m in (1, 4, 6, 7, 10)} <= rewritten
        assert {("day", dt.date(2025, 6, 1)), ("day", dt.date(2026, 1, 1)), ("week", dt.date(2025, 12, 29)),
                ("year", dt.date(2024, 1, 1)), ("year", dt.date(2026, 1, 1))} <= rewritten
        assert ("day", dt.date(2025, 5, 31)) not in rewritten  # 21:30 UTC on May 31 is June 1 in Istanbul
        # the orphaned refunds of deleted orders keep counting, under no shop
        orphans = [r for r in after if r["shop"] is None]
        assert orphans and all(r["refunds"] > 0 and r["orders"] == 0 for r in orphans)
        assert any(r["shop"] == 21 for r in after)  # a late order from a shop never seen before
        incremental = all_stored(project)
        assert not incremental["shop_reports"].equals(before_tables["shop_reports"])
        assert [r.mode for r in tally.rollups.build(project, full=True)] == ["full"] * len(ROLLUPS)
        assert_same_tables(incremental, all_stored(project))
        assert done["deleted"] and done["cancelled"] and done["refunded"]


def test_two_incremental_builds_in_a_row(shop):
    """Changes after an incremental build are found against that build's watermarks."""
    directory, url = shop
    clock = Clock()
    with opened(directory, url) as project:
        line = order_lines(project, *in_month(dt.date(2025, 5, 1)), limit=1)[0]
        execute(project, "UPDATE orders SET quantity = quantity + 3, updated_at = ? WHERE order_id = ? "
                         "AND line_no = ?", [clock(), line["order_id"], line["line_no"]])
        assert [r.mode for r in tally.rollups.build(project)] == ["incremental"] * len(ROLLUPS)
        insert_refund(project, line, Decimal("7.50"), line["ordered_at"] + dt.timedelta(days=35), clock())
        assert [r.mode for r in tally.rollups.build(project)] == ["incremental"] * len(ROLLUPS)
        assert [r.mode for r in tally.rollups.build(project)] == ["unchanged"] * len(ROLLUPS)
        assert mismatches(tally.rollups.verify(project, ["shop_reports"])) == {}
        incremental = all_stored(project)
        tally.rollups.build(project, full=True)
        assert_same_tables(incremental, all_stored(project))


# --------------------------------------------------------------------------
# --from / --to
# --------------------------------------------------------------------------


def tamper(project: Project, name: str, grain: str, start: dt.date, amount: str = "1.00",
           shop: int | None = None) -> None:
    """Add `amount` to a stored gross_sales and revenue (of one shop, or of every row of the period)."""
    execute(project, f"UPDATE {name} SET gross_sales = gross_sales + {Decimal(amount)}, revenue = revenue + "
                     f"{Decimal(amount)} WHERE grain = ? AND period_start = ?"
                     + (" AND shop = ?" if shop is not None else ""), [grain, start, *([shop] if shop else [])])


def test_range_build_rebuilds_only_those_periods(shop):
    directory, url = shop
    with opened(directory, url) as project:
        before = {(r["grain"], r["period_start"], r["shop"]): r for r in
                  stored(project, "shop_reports", built_at=True)}
        march = min(d for g, d, _ in before if g == "day" and dt.date(2025, 3, 10) <= d)
        august = min(d for g, d, _ in before if g == "day" and dt.date(2025, 8, 10) <= d)
        tamper(project, "shop_reports", "day", march)
        tamper(project, "shop_reports", "day", august, shop=_a_shop_on(project, august))
        results = tally.rollups.build(project, ["shop_reports"], start="2025-03-01", end="2025-04-01")
        assert [(r.rollup, r.mode) for r in results] == [("shop_reports", "range")]
        touched = {("day", dt.date(2025, 3, 1) + dt.timedelta(days=i)) for i in range(31)}
        touched |= {("week", dt.date(2025, 2, 24) + dt.timedelta(days=7 * i)) for i in range(6)}
        touched |= {("month", dt.date(2025, 3, 1)), ("quarter", dt.date(2025, 1, 1)), ("year", dt.date(2025, 1, 1))}
        after = stored(project, "shop_reports", built_at=True)
        rebuilt = {(r["grain"], r["period_start"]) for r in after
                   if r["built_at"] != before.get((r["grain"], r["period_start"], r["shop"]), {}).get("built_at")}
        with_rows = {(grain, start) for grain, start, _ in before}
        assert rebuilt == touched & with_rows
        assert ("day", march) in rebuilt
        found = tally.rollups.verify(project, ["shop_reports"])["shop_reports"]
        assert sorted((m.grain, m.period_start, m.metric) for m in found) == [
            ("day", august.isoformat(), "gross_sales"), ("day", august.isoformat(), "revenue")]
        assert all(m.stored == pytest.approx(m.live + 1) for m in found)


def test_range_build_keeps_changes_outside_the_range_pending(shop):
    """A --from/--to build fixes its periods only: a change elsewhere is still due for the next build."""
    directory, url = shop
    with opened(directory, url) as project:
        line = order_lines(project, *in_month(dt.date(2025, 3, 1)), limit=1)[0]
        execute(project, "UPDATE orders SET status = 'cancelled', updated_at = ? WHERE order_id = ?",
                [Clock()(), line["order_id"]])
        tally.rollups.build(project, ["shop_reports"], start="2025-06-01", end="2025-06-02")
        assert [r.mode for r in tally.rollups.build(project, ["shop_reports"])] == ["incremental"]
        assert mismatches(tally.rollups.verify(project, ["shop_reports"])) == {}


# --------------------------------------------------------------------------
# definition changes
# --------------------------------------------------------------------------



def test_definition_change_triggers_full_build(shop):
    directory, url = shop
    # a measure's definition: cancelled and refunded lines both leave gross sales
    edit_config(directory, "gross_sales: {sum: quantity * unit_price, where: \"status <> 'cancelled'\"",
                "gross_sales: {sum: quantity * unit_price, where: \"status not in ('cancelled', 'refunded')\"")
    with opened(directory, url) as project:
        assert [r.mode for r in tally.rollups.build(project)] == ["full"] * len(ROLLUPS)
        assert [r.mode for r in tally.rollups.build(project)] == ["unchanged"] * len(ROLLUPS)
        assert mismatches(tally.rollups.verify(project, ["shop_reports"])) == {}
    # the metrics a rollup stores: one fewer
    edit_config(directory, "metrics: [revenue, orders, units, customers, aov,",
                "metrics: [revenue, orders, units, aov,")
    with opened(directory, url) as project:
        results = tally.rollups.build(project)
        assert [r.mode for r in results] == ["full", "unchanged", "unchanged"]
        assert mismatches(tally.rollups.verify(project, ["shop_reports"])) == {}


def test_adding_a_metric_to_a_rollup_rebuilds_with_its_column(shop):
    directory, url = shop
    edit_config(directory, "  margin: {formula: profit / revenue, format: percent}\n",
                "  margin: {formula: profit / revenue, format: percent}\n"
                "  units_per_order: {formula: units / orders}\n")
    edit_config(directory, "metrics: [revenue, orders, units, customers, aov,",
                "metrics: [revenue, orders, units, customers, units_per_order, aov,")
    with opened(directory, url) as project:
        assert [r.mode for r in tally.rollups.build(project, ["shop_reports"])] == ["full"]
        assert "units_per_order" in stored(project, "shop_reports", grain="year")[0]
        assert mismatches(tally.rollups.verify(project, ["shop_reports"])) == {}


def test_metric_formula_change_triggers_full_build(shop):
    """A derived metric's formula shapes stored numbers too."""
    directory, url = shop
    edit_config(directory, "margin: {formula: profit / revenue,", "margin: {formula: profit / gross_sales,")
    with opened(directory, url) as project:
        assert [r.mode for r in tally.rollups.build(project, ["shop_reports"])] == ["full"]
        assert mismatches(tally.rollups.verify(project, ["shop_reports"])) == {}


# --------------------------------------------------------------------------
# verify: tampering, repair
# --------------------------------------------------------------------------


def test_verify_detects_tampering_and_repair_fixes_it(shop):
    directory, url = shop
    with opened(directory, url) as project:
        clean = all_stored(project)
        shop_id = _a_shop_on(project, dt.date(2025, 6, 3))
        tamper(project, "shop_reports", "month", dt.date(2025, 6, 1), "2.50", shop=shop_id)
        day_row = stored(project, "listing_reports", grain="day")[100]
        execute(project, "DELETE FROM listing_reports WHERE grain = 'day' AND period_start = ? AND listing = ?",
                [day_row["period_start"], day_row["listing"]])
        execute(project, "UPDATE product_reports SET orders = orders + 1, margin = 0.5 "
                         "WHERE grain = 'week' AND period_start = ?", [dt.date(2026, 2, 2)])
        report = tally.rollups.verify(project)
        found = mismatches(report)
        assert set(found) == set(ROLLUPS)
        shop_found = found["shop_reports"]
        assert sorted((m.grain, m.period_start, m.key["shop"], m.metric) for m in shop_found) == [
            ("month", "2025-06-01", shop_id, "gross_sales"), ("month", "2025-06-01", shop_id, "revenue")]
        assert all(m.stored == pytest.approx(m.live + 2.5) for m in shop_found)
        listing_found = found["listing_reports"]
        assert [(m.grain, m.period_start, m.key, m.metric, m.stored, m.live) for m in listing_found] == [
            ("day", day_row["period_start"].isoformat(), {"listing": day_row["listing"]}, "(row)", "missing",
             "present")]
        assert {m.metric for m in found["product_reports"]} == {"orders", "margin"}
        assert {m.period_start for m in found["product_reports"]} == {"2026-02-02"}
        # repair rewrites those periods; then everything verifies and equals the clean build
        tally.rollups.verify(project, repair=True)
        assert_same_tables(all_stored(project), clean)


def test_verify_reports_extra_stored_rows(shop):
    directory, url = shop
    with opened(directory, url) as project:
        execute(project, "UPDATE shop_reports SET shop = 99 WHERE grain = 'day' AND period_start = ? AND shop = ?",
                [dt.date(2025, 6, 3), _a_shop_on(project, dt.date(2025, 6, 3))])
        found = tally.rollups.verify(project, ["shop_reports"])["shop_reports"]
        kinds = sorted((m.key["shop"] == 99, m.metric, m.stored, m.live) for m in found)
        assert kinds == [(False, "(row)", "missing", "present"), (True, "(row)", "present", "missing")]
        tally.rollups.verify(project, ["shop_reports"], repair=True)
        assert mismatches(tally.rollups.verify(project, ["shop_reports"])) == {}


def _a_shop_on(project: Project, day: dt.date) -> int:
    """A shop with a stored day row on `day` (the day must have orders)."""
    return next(r["shop"] for r in stored(project, "shop_reports", grain="day") if r["period_start"] == day)


VERIFY_RANGE = (
    "BUG: verify only recomputes live over [min stored period_start, max stored period_end) per grain, and "
    "compares nothing when a grain has no stored rows, so stored periods deleted at either end of the range "
    "(or a whole grain) go unnoticed")


@pytest.fixture
def duck_shop(tmp_path) -> tuple[Path, str]:
    url = f"duckdb:///{tmp_path}/warehouse.duckdb"
    return make_shop(tmp_path / "shop", url), url


def test_verify_detects_deleted_first_and_last_periods(duck_shop):
    directory, url = duck_shop
    with opened(directory, url) as project:
        days = [r["period_start"] for r in stored(project, "shop_reports", grain="day")]
        execute(project, "DELETE FROM shop_reports WHERE grain = 'day' AND period_start IN (?, ?)",
                [min(days), max(days)])
        found = tally.rollups.verify(project, ["shop_reports"])["shop_reports"]
        assert {m.period_start for m in found} == {min(days).isoformat(), max(days).isoformat()}
        assert {(m.metric, m.stored, m.live) for m in found} == {("(row)", "missing", "present")}


def test_verify_detects_a_deleted_grain(duck_shop):
    directory, url = duck_shop
    with opened(directory, url) as project:
        execute(project, "DELETE FROM product_reports WHERE grain = 'year'")
        found = tally.rollups.verify(project, ["product_reports"])["product_reports"]
        assert found and {m.grain for m in found} == {"year"}


# --------------------------------------------------------------------------
# rollup routing: a project answers aligned queries from fresh rollups
# --------------------------------------------------------------------------

def test_routed_answers_equal_live_answers(duck_shop):
    directory, url = duck_shop
    with opened(directory, url, routed=True) as routed, opened(directory, url) as live:
        for grain, start, end in (("day", "2025-06-01", "2025-07-01"), ("month", "2025-01-01", "2026-01-01"),
                                  ("quarter", "2025-01-01", "2026-01-01"), (None, "2025-03-01", "2025-04-01")):
            query = dict(by=["shop"], grain=grain, start=start, end=end)
            result = routed.query_result(["revenue", "orders", "aov", "refunds", "margin"], **query)
            assert result.meta["source"] == "rollup:shop_reports", (grain, result.meta)
            assert_same_rows(result.table.to_pylist(),
                             live.query(["revenue", "orders", "aov", "refunds", "margin"], **query).to_pylist(),
                             f"{grain}")
        # a change to the data makes the rollup stale: answers go live (after the freshness TTL)
        line = order_lines(live, *in_month(dt.date(2025, 6, 1)), limit=1)[0]
        execute(live, "UPDATE orders SET quantity = quantity + 5, updated_at = ? WHERE order_id = ?",
                [Clock()(), line["order_id"]])
        import time

        time.sleep(1.2)
        query = dict(by=["shop"], grain="month", start="2025-06-01", end="2025-07-01")
        result = routed.query_result(["revenue", "units"], **query)
        assert result.meta["source"] == "live"
        assert result.table.to_pylist() == live.query(["revenue", "units"], **query).to_pylist()


def test_verify_on_a_default_project_detects_tampering(duck_shop):
    directory, url = duck_shop
    with opened(directory, url, routed=True) as project:
        day = dt.date(2025, 6, 3)
        tamper(project, "shop_reports", "month", dt.date(2025, 6, 1), "2.50")
        execute(project, "DELETE FROM shop_reports WHERE grain = 'day' AND period_start = ?", [day])
        found = tally.rollups.verify(project, ["shop_reports"])["shop_reports"]
        assert {(m.grain, m.period_start, m.metric) for m in found} == {
            ("month", "2025-06-01", "gross_sales"), ("month", "2025-06-01", "revenue"),
            ("day", day.isoformat(), "(row)")}


def test_full_rebuild_on_a_default_project_recomputes_tampered_rows(duck_shop):
    directory, url = duck_shop
    with opened(directory, url, routed=True) as project:
        tamper(project, "shop_reports", "day", dt.date(2025, 6, 3), "2.50")
        assert [r.mode for r in tally.rollups.build(project, ["shop_reports"], full=True)] == ["full"]
    with opened(directory, url) as live:
        assert mismatches(tally.rollups.verify(live, ["shop_reports"])) == {}


def test_build_right_after_a_routed_query_uses_the_new_data(duck_shop):
    directory, url = duck_shop
    with opened(directory, url, routed=True) as project:
        query = dict(by=["shop"], grain="day", start="2025-06-01", end="2025-07-01")
        assert project.query_result(["revenue"], **query).meta["source"] == "rollup:shop_reports"
        line = order_lines(project, *in_month(dt.date(2025, 6, 1)), limit=1)[0]
        execute(project, "UPDATE orders SET quantity = quantity + 5, updated_at = ? WHERE order_id = ?",
                [Clock()(), line["order_id"]])
        assert [r.mode for r in tally.rollups.build(project, ["shop_reports"])] == ["incremental"]
    with opened(directory, url) as live:
        assert mismatches(tally.rollups.verify(live, ["shop_reports"])) == {}


def test_reloaded_lookup_file_refreshes_rollups(duck_shop):
    directory, url = duck_shop
    costs = directory / "costs.csv"
    header, *lines = costs.read_text().splitlines()
    costs.write_text("\n".join([header] + [f"{sku},{Decimal(cost) + 1}" for sku, cost in
                                            (line.split(",") for line in lines)]) + "\n")
    with opened(directory, url) as project:
        project.load_seeds(["product_costs"])
        assert [r.mode for r in tally.rollups.build(project, ["shop_reports"])] != ["unchanged"]
        assert mismatches(tally.rollups.verify(project, ["shop_reports"])) == {}


GROWTH_ROLLUP = """  growth_reports:
    metrics: [revenue, orders, aov]
    grains: [day, week, month, quarter, year]
    by: [shop]
    growth: true
"""


def test_growth_columns_after_incremental_build_equal_a_full_rebuild(tmp_path):
    url = f"duckdb:///{tmp_path}/warehouse.duckdb"
    directory = tmp_path / "shop"
    prepare("ecommerce", directory, ROWS, seed=SEED, warehouse=url)[0].close()
    (directory / "tally.yml").write_text((directory / "tally.yml").read_text() + GROWTH_ROLLUP)
    with opened(directory, url) as project:
        assert [r.mode for r in tally.rollups.build(project, ["growth_reports"])] == ["full"]
        days = sorted({r["period_start"] for r in stored(project, "growth_reports", grain="day")})
        gone = next(d for d in days if d >= dt.date(2025, 8, 1))  # a day with orders, then none
        zone = dt.timezone(dt.timedelta(hours=3))  # Istanbul
        start = dt.datetime.combine(gone, dt.time(), zone)
        execute(project, "DELETE FROM orders WHERE ordered_at >= ? AND ordered_at < ?",
                [start, start + dt.timedelta(days=1)])
        assert [r.mode for r in tally.rollups.build(project, ["growth_reports"])] == ["incremental"]
        incremental = stored_table(project, "growth_reports")
        tally.rollups.build(project, ["growth_reports"], full=True)
        assert_same_rows(incremental, stored_table(project, "growth_reports"), "growth_reports")

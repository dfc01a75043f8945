"""Days whose rows changed in ways a rollup never reads are not recomputed (DuckDB keeps per-day
fingerprints of what each rollup reads); every change it does read still is, through lookups and
joined models too, and the result always equals a full rebuild."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

import tally.rollups
from tally.warehouse.internal import read_state, write_state
from tests.rollups.helpers import (
    ROLLUPS,
    Clock,
    all_stored,
    assert_same_tables,
    execute,
    in_month,
    insert_refund,
    make_shop,
    mismatches,
    opened,
    order_lines,
    stored,
)


@pytest.fixture
def duck(tmp_path):
    url = f"duckdb:///{tmp_path}/warehouse.duckdb"
    return make_shop(tmp_path / "shop", url), url


def modes(project) -> dict[str, str]:
    return {r.rollup: r.mode for r in tally.rollups.build(project)}


def equals_full_rebuild(project) -> None:
    assert mismatches(tally.rollups.verify(project)) == {}
    incremental = all_stored(project)
    tally.rollups.build(project, full=True)
    assert_same_tables(incremental, all_stored(project))


def test_a_status_change_no_measure_reads_recomputes_nothing(duck):
    clock = Clock()
    with opened(*duck) as project:
        before = {name: stored(project, name, built_at=True) for name in ROLLUPS}
        lines = order_lines(project, "status = 'shipped'", limit=20)
        for line in lines:   # every measure reads `status <> 'cancelled'`: shipped and refunded are alike
            execute(project, "UPDATE orders SET status = 'refunded', updated_at = ? WHERE order_id = ? AND line_no = ?",
                    [clock(), line["order_id"], line["line_no"]])
        assert modes(project) == {name: "unchanged" for name in ROLLUPS}
        assert {name: stored(project, name, built_at=True) for name in ROLLUPS} == before
        # the watermarks moved on: the same rows are not looked at again
        state = json.loads(read_state(project.warehouse, "rollup:shop_reports"))
        assert dt.datetime.fromisoformat(state["watermarks"]["orders"]) == clock.value
        assert modes(project) == {name: "unchanged" for name in ROLLUPS}
        equals_full_rebuild(project)


def test_a_status_change_a_filter_reads_is_recomputed(duck):
    clock = Clock()
    with opened(*duck) as project:
        line = order_lines(project, *in_month(dt.date(2025, 6, 1)), limit=1)[0]
        execute(project, "UPDATE orders SET status = 'cancelled', updated_at = ? WHERE order_id = ? AND line_no = ?",
                [clock(), line["order_id"], line["line_no"]])
        assert modes(project) == {name: "incremental" for name in ROLLUPS}
        equals_full_rebuild(project)


def test_a_change_read_only_through_a_lookup_is_recomputed(duck):
    """A line's SKU moves its cost (cogs) and its shipping band: product and shop reports change;
    listing reports read the same SKU's cost, so they change too."""
    clock = Clock()
    with opened(*duck) as project:
        line = order_lines(project, *in_month(dt.date(2025, 3, 1)), limit=1)[0]
        other = execute(project, "SELECT sku FROM product_costs WHERE sku <> ? AND unit_cost <> "
                                 "(SELECT unit_cost FROM product_costs WHERE sku = ?) LIMIT 1",
                        [line["sku"], line["sku"]])[0][0]
        execute(project, "UPDATE orders SET sku = ?, updated_at = ? WHERE order_id = ? AND line_no = ?",
                [other, clock(), line["order_id"], line["line_no"]])
        assert modes(project) == {name: "incremental" for name in ROLLUPS}
        equals_full_rebuild(project)


def test_a_change_to_a_joined_model_moves_its_refunds(duck):
    """Refunds read their line's shop through the join: moving a refunded line to another shop
    changes the refund's day (a later one) as well as the order's."""
    clock = Clock()
    with opened(*duck) as project:
        line = order_lines(project, *in_month(dt.date(2025, 2, 1)), limit=1)[0]
        insert_refund(project, line, Decimal("5.00"), line["ordered_at"] + dt.timedelta(days=40), clock())
        assert modes(project) == {name: "incremental" for name in ROLLUPS}
        execute(project, "UPDATE orders SET shop_id = shop_id + 1, updated_at = ? WHERE order_id = ? AND line_no = ?",
                [clock(), line["order_id"], line["line_no"]])
        results = {r.rollup: r for r in tally.rollups.build(project)}
        assert results["shop_reports"].mode == "incremental" and results["shop_reports"].days_changed == 2
        # the listing and SKU didn't move: nothing listing or product reports read changed
        assert results["listing_reports"].mode == results["product_reports"].mode == "unchanged"
        equals_full_rebuild(project)


def test_state_without_fingerprints_takes_them_on(duck):
    """A rollup built before fingerprints were kept: its next build recomputes what changed by
    change time, and keeps fingerprints from then on."""
    clock = Clock()
    with opened(*duck) as project:
        for name in ROLLUPS:
            state = json.loads(read_state(project.warehouse, f"rollup:{name}"))
            del state["inputs"]
            with project.warehouse.transaction() as tx:
                write_state(tx, f"rollup:{name}", json.dumps(state))
        line = order_lines(project, "status = 'shipped'", limit=1)[0]
        execute(project, "UPDATE orders SET status = 'refunded', updated_at = ? WHERE order_id = ? AND line_no = ?",
                [clock(), line["order_id"], line["line_no"]])
        assert modes(project) == {name: "incremental" for name in ROLLUPS}
        state = json.loads(read_state(project.warehouse, "rollup:shop_reports"))
        assert set(state["inputs"]) == {"orders", "refunds"} and state["inputs"]["orders"]
        execute(project, "UPDATE orders SET status = 'shipped', updated_at = ? WHERE order_id = ? AND line_no = ?",
                [clock(), line["order_id"], line["line_no"]])
        assert modes(project) == {name: "unchanged" for name in ROLLUPS}
        equals_full_rebuild(project)


def test_one_pass_over_a_model_gives_each_rollup_its_own_fingerprints(duck):
    from tally.engine import changes
    from tally.rollups import inputs
    from tally.rollups.definition import definitions

    with opened(*duck) as project:
        engine = project.engine
        rdefs = [r for r in definitions(project, None, None) if "orders" in r.models]
        assert len(rdefs) > 1
        span = changes.bounds(engine, "orders")
        together = inputs.fingerprints(engine, rdefs, "orders", span)
        alone = {r.name: inputs.fingerprints(engine, [r], "orders", span)[r.name] for r in rdefs}
        assert together == alone
        assert len({json.dumps(v, sort_keys=True) for v in together.values()}) == len(rdefs)  # each reads its own
        some = sorted(dt.date.fromisoformat(d) for d in together[rdefs[0].name])[3:6]
        days = inputs.fingerprints(engine, rdefs, "orders", span, some)
        assert days == {name: {d.isoformat(): v[d.isoformat()] for d in some if d.isoformat() in v}
                        for name, v in together.items()}


def test_change_scans_are_compiled_once_and_answer_for_each_watermark(duck, monkeypatch):
    from tally.engine import changes

    clock = Clock()
    with opened(*duck) as project:
        engine, warehouse = project.engine, project.warehouse
        zone = "Europe/Istanbul"
        span = changes.bounds(engine, "orders")
        line = order_lines(project, *in_month(dt.date(2025, 6, 1)), limit=1)[0]
        execute(project, "UPDATE orders SET discount = discount + 1, updated_at = ? WHERE order_id = ? AND line_no = ?",
                [clock(), line["order_id"], line["line_no"]])
        early = {"orders": (clock.value - dt.timedelta(seconds=1)).isoformat()}
        late = {"orders": clock.value.isoformat()}
        first = changes.changed_days(engine, "orders", zone, early, span)
        compiled = []
        monkeypatch.setattr(warehouse, "compile", lambda *a, **k: compiled.append(a) or pytest.fail("compiled again"))
        assert changes.changed_days(engine, "orders", zone, late, span) == set()
        assert changes.changed_days(engine, "orders", zone, early, span) == first
        assert len(first) == 1 and next(iter(first)).startswith("2025-06")
        assert compiled == []

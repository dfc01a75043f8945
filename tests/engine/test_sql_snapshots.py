"""Compiled SQL of fixed ecommerce query shapes, per warehouse, against reviewed snapshot files.

A changed snapshot is changed behaviour: review the diff. To rewrite them, run with
TALLY_UPDATE_SNAPSHOTS=1 and read what changed before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tally.engine.timegrid import comparison_shift, shift_local

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("TALLY_UPDATE_SNAPSHOTS") == "1"

KPIS = ["gross_sales", "discounts", "revenue", "orders", "units", "customers", "refunds", "net_revenue",
        "cogs", "shipping_cost", "profit", "aov", "margin"]
MARCH = {"start": "2026-03-01", "end": "2026-04-01"}

QUERIES = {
    "kpis_compare": (KPIS, {"start": "2026-04-01", "end": "2026-05-01", "compare": "previous_period"}),
    "daily_series": (["revenue", "orders", "aov"], {"grain": "day", **MARCH}),
    "weekly_by_shop": (["revenue", "refunds", "aov", "customers"], {"grain": "week", "by": ["shop"], **MARCH}),
    "top_listings": (["revenue", "units"], {"by": ["listing"], "order_by": ["-revenue"], "limit": 20, **MARCH}),
    "where_status_shop": (["revenue", "orders"], {"by": ["shop"], "where": "status = 'shipped' and shop in (6, 7)",
                                                  **MARCH}),
    "stock_by_sku": (["stock"], {"by": ["sku"]}),
    "hourly": (["revenue", "orders"], {"grain": "hour", "start": "2026-03-01", "end": "2026-03-02"}),
    "revenue_and_stock_by_sku": (["revenue", "stock"], {"by": ["sku"], **MARCH}),
}

PLACEHOLDERS = {"duckdb": ("$start", "$end"), "postgres": ("%(start)s", "%(end)s"),
                "mariadb": ("%(start)s", "%(end)s")}


def compiled(project, metrics, kwargs):
    """The spec and the plan the engine would run for this query."""
    engine = project.engine
    spec = engine.spec(metrics, **kwargs)
    start, end = engine._resolve_range(spec)
    return spec, engine._plan(spec, start, end)


def snapshot_text(plan) -> str:
    parts = []
    for kind, part in (("timed", plan.timed), ("timeless", plan.timeless)):
        if part is not None:
            parts.append(f"-- {kind} (params: {', '.join(part.query.params) or 'none'})\n{part.query.sql}\n")
    return "\n".join(parts)


@pytest.mark.parametrize("name", list(QUERIES))
def test_sql_snapshot(ecommerce, warehouse_kind, name):
    project, _ = ecommerce
    metrics, kwargs = QUERIES[name]
    spec, plan = compiled(project, metrics, kwargs)
    text = snapshot_text(plan)

    assert "1901" not in text, "a range value was inlined instead of bound as a parameter"
    if plan.timed is not None:
        assert plan.timed.query.params == ("start", "end")
        for placeholder in PLACEHOLDERS[warehouse_kind]:
            assert placeholder in plan.timed.query.sql
    if plan.timeless is not None:
        assert plan.timeless.query.params == ()
    if spec.where:
        assert spec.where not in text  # rebuilt from the parsed tree, never pasted

    path = SNAPSHOTS / warehouse_kind / f"{name}.sql"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    else:
        assert path.exists(), f"no snapshot {path}; run with TALLY_UPDATE_SNAPSHOTS=1 and review it"
        assert text == path.read_text(encoding="utf-8"), (
            f"compiled SQL differs from {path}; if the change is intended, rerun with TALLY_UPDATE_SNAPSHOTS=1 "
            "and review the diff")

    result = project.engine.run(spec)  # the snapshotted SQL runs on this warehouse
    assert result.table.num_rows >= 1


def test_comparison_reuses_the_statement(ecommerce):
    """The previous period binds other values into the same SQL: no recompilation, no inlined dates."""
    project, _ = ecommerce
    metrics, kwargs = QUERIES["kpis_compare"]
    spec, plan = compiled(project, metrics, kwargs)
    delta = comparison_shift(spec.compare, spec.start, spec.end, spec.zone)
    previous = project.engine._plan(spec, shift_local(spec.start, delta, spec.zone),
                                    shift_local(spec.end, delta, spec.zone))
    assert previous.timed.query.sql == plan.timed.query.sql


def test_string_literals_are_escaped(ecommerce):
    """Quotes, semicolons and comment marks inside a --where string stay inside the literal."""
    project, _ = ecommerce
    where = "status = 'x''; drop table orders; --' or status = 'paid'"
    _, plan = compiled(project, ["orders"], {"where": where, **MARCH})
    assert where not in plan.timed.query.sql
    paid = project.query(["orders"], where="status = 'paid'", **MARCH).to_pylist()
    assert project.query(["orders"], where=where, **MARCH).to_pylist() == paid
    assert project.warehouse.has_table("orders")


def test_percent_in_a_literal_survives_pyformat(ecommerce):
    """`%` in a LIKE pattern must be escaped for %(name)s placeholders and still match."""
    project, _ = ecommerce
    like = project.query(["revenue", "orders"], where="status like '%ed'", **MARCH).to_pylist()
    listed = project.query(["revenue", "orders"], where="status in ('shipped', 'refunded', 'cancelled')",
                           **MARCH).to_pylist()
    assert like == listed


@pytest.mark.parametrize("where", ["status <> 'SHIPPED'", "status in ('SHIPPED')", "status like 'SHIP%'",
                                   "status = 'SHIPPED'"])
def test_string_comparisons_are_case_sensitive_everywhere(ecommerce, warehouse_kind, where, request):
    """`=` is case-sensitive on every warehouse; <>, IN and LIKE must agree, or numbers differ by warehouse."""
    project, _ = ecommerce
    orders = project.query(["orders"], where=where, **MARCH).to_pylist()[0]["orders"]
    everything = project.query(["orders"], **MARCH).to_pylist()[0]["orders"]
    assert orders == (everything if "<>" in where else 0)

"""Rollup benchmark: shop/listing/product reports for five grains, Tally vs hand SQL vs pandas, then incremental.

On the cached ecommerce data (a fresh copy of its warehouse per system, each in its own process):

- **tally full**: `tally.rollups.build` of `shop_reports`, `listing_reports`, `product_reports`
  (day, week, month, quarter, year) into the DuckDB warehouse;
- **hand SQL**: the same 15 tables, one `CREATE TABLE ... AS` statement each, as an analyst writes
  them (timezone conversion, the cost / desi / shipping-band joins, refunds by their order line);
- **pandas**: the same 15 tables from DataFrames already in memory (loading untimed);
- **tally incremental**: after the full build, one new day of orders and refunds (and refunded
  order lines updated) is appended, and `build` refreshes only the periods it touched.

Before timing counts, Tally's month rows of `shop_reports` are checked against the hand SQL table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.data import DATA_ROOT, DEFAULT_ROWS, SEED, ensure

ROOT = Path(__file__).resolve().parents[1]
GRAINS = ("day", "week", "month", "quarter", "year")
ROLLUPS = {"shop_reports": ("shop_id", True), "listing_reports": ("listing_id", False),
           "product_reports": ("sku", False)}      # dimension column, has customers
LOCAL = "timezone('Europe/Istanbul', {})"


def workdir(rows: int, seed: int, system: str) -> Path:
    """A fresh copy of the benchmark warehouse with the example's current tally.yml."""
    data = ensure(rows, seed)
    folder = DATA_ROOT / f"rollups-{rows}-{seed}-{system}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy(data.warehouse, folder / "warehouse.duckdb")
    for csv in data.dir.glob("*.csv"):
        shutil.copy(csv, folder / csv.name)
    shutil.copy(ROOT / "examples" / "ecommerce" / "tally.yml", folder / "tally.yml")
    return folder


def hand_sql(dim: str, customers: bool, grain: str) -> str:
    period = f"CAST(date_trunc('{grain}', {LOCAL.format('{}')}) AS DATE)"
    extra = ", count(DISTINCT customer_id) AS customers" if customers else ""
    return f"""
    WITH lines AS (
      SELECT {period.format('o.ordered_at')} AS period, o.{dim} AS dim, o.order_id, o.customer_id, o.quantity,
             o.unit_price, o.discount, c.unit_cost, r.cost AS rate
      FROM orders o
      LEFT JOIN product_costs c ON c.sku = o.sku
      LEFT JOIN product_desi d ON d.sku = o.sku
      LEFT JOIN shipping_rates r ON d.desi * o.quantity >= r.desi_from AND d.desi * o.quantity < r.desi_to
      WHERE o.status <> 'cancelled'),
    sales AS (
      SELECT period, dim, sum(quantity * unit_price) AS gross_sales, sum(discount) AS discounts,
             count(DISTINCT order_id) AS orders, sum(quantity) AS units{extra},
             sum(quantity * unit_cost) AS cogs, sum(rate) AS shipping_cost
      FROM lines GROUP BY ALL),
    refunds AS (
      SELECT {period.format('f.refunded_at')} AS period, o.{dim} AS dim, sum(f.amount) AS refunds
      FROM order_refunds f LEFT JOIN orders o ON o.order_id = f.order_id AND o.line_no = f.line_no
      GROUP BY ALL)
    SELECT coalesce(s.period, r.period) AS period, coalesce(s.dim, r.dim) AS dim,
           coalesce(s.gross_sales, 0) - coalesce(s.discounts, 0) AS revenue, coalesce(s.orders, 0) AS orders,
           coalesce(s.units, 0) AS units, coalesce(r.refunds, 0) AS refunds,
           (coalesce(s.gross_sales, 0) - coalesce(s.discounts, 0)) / nullif(s.orders, 0) AS aov,
           coalesce(s.gross_sales, 0) - coalesce(s.discounts, 0) - coalesce(r.refunds, 0) AS net_revenue,
           coalesce(s.cogs, 0) AS cogs, coalesce(s.shipping_cost, 0) AS shipping_cost,
           coalesce(s.gross_sales, 0) - coalesce(s.discounts, 0) - coalesce(r.refunds, 0) - coalesce(s.cogs, 0)
             - coalesce(s.shipping_cost, 0) AS profit
    FROM sales s FULL OUTER JOIN refunds r ON s.period = r.period AND s.dim IS NOT DISTINCT FROM r.dim"""


def run_hand(folder: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(folder / "warehouse.duckdb"))
    con.execute("SET enable_progress_bar = false")
    start = time.perf_counter()
    for name, (dim, customers) in ROLLUPS.items():
        for grain in GRAINS:
            con.execute(f"CREATE OR REPLACE TABLE hand_{name}_{grain} AS {hand_sql(dim, customers, grain)}")
    return {"seconds": time.perf_counter() - start}


def run_tally(folder: Path) -> dict:
    import tally
    from tally.rollups import build

    project = tally.Project.load(folder)
    start = time.perf_counter()
    results = build(project, full=True)
    full = time.perf_counter() - start
    check = _check_against_hand(project, folder)
    _append_one_day(project)
    start = time.perf_counter()
    incremental = build(project)
    seconds = time.perf_counter() - start
    return {"seconds": full, "rows": sum(r.rows for r in results), "incremental_seconds": seconds,
            "incremental_modes": [r.mode for r in incremental], "checked_rows": check}


def _check_against_hand(project, folder: Path) -> int:
    """Tally's month rows of shop_reports equal the hand SQL month table (revenue, orders, refunds)."""
    import duckdb
    from decimal import Decimal

    con = project.warehouse.cursor()
    con.execute(f"CREATE OR REPLACE TEMP TABLE hand AS {hand_sql('shop_id', True, 'month')}")
    hand = {(r[0], r[1]): r[2:] for r in con.execute("SELECT period, dim, revenue, orders, refunds FROM hand").fetchall()}
    mine = {(r[0], r[1]): r[2:] for r in con.execute(
        "SELECT period_start, shop, revenue, orders, refunds FROM shop_reports WHERE grain = 'month'").fetchall()}
    assert hand.keys() == mine.keys(), "different (month, shop) rows"
    cent = Decimal("0.01")
    for key, (revenue, orders, refunds) in hand.items():
        got = mine[key]
        assert Decimal(got[0]).quantize(cent) == Decimal(revenue).quantize(cent), (key, got, revenue)
        assert got[1] == orders and Decimal(got[2]).quantize(cent) == Decimal(refunds).quantize(cent), key
    del duckdb
    return len(hand)


def _append_one_day(project) -> None:
    """One more day of orders (copied from the last day), refunds paid back that day, their lines updated."""
    con = project.warehouse.cursor()
    con.execute("""
      INSERT INTO orders
      SELECT order_id + 1000000000, line_no, shop_id, listing_id, sku, customer_id, status, quantity, unit_price,
             discount, ordered_at + INTERVAL 1 DAY, now()
      FROM orders WHERE ordered_at >= (SELECT max(ordered_at) FROM orders) - INTERVAL 1 DAY""")
    con.execute("""
      CREATE OR REPLACE TEMP TABLE newly_refunded AS
      SELECT order_id, line_no, quantity * unit_price - discount AS amount FROM orders
      WHERE status = 'shipped' AND ordered_at >= (SELECT max(ordered_at) FROM orders) - INTERVAL 20 DAY
      USING SAMPLE 200 ROWS""")
    con.execute("""
      INSERT INTO order_refunds
      SELECT 900000000 + row_number() OVER (), order_id, line_no, amount,
             (SELECT max(ordered_at) FROM orders), now() FROM newly_refunded""")
    con.execute("""
      UPDATE orders SET status = 'refunded', updated_at = now()
      WHERE (order_id, line_no) IN (SELECT order_id, line_no FROM newly_refunded)""")
    con.execute("CHECKPOINT")   # the load's own cost, as when `tally ingest` ends: not the build's


def run_pandas(folder: Path) -> dict:
    import pandas as pd

    data = {t: pd.read_parquet(folder.parent / f"ecommerce-{folder.name.split('-')[1]}-{folder.name.split('-')[2]}"
                               / "parquet" / f"{t}.parquet")
            for t in ("orders", "order_refunds", "product_costs", "product_desi", "shipping_rates")}
    start = time.perf_counter()
    o = data["orders"]
    o = o[o.status != "cancelled"].merge(data["product_costs"], on="sku", how="left") \
        .merge(data["product_desi"], on="sku", how="left")
    rates = data["shipping_rates"].sort_values("desi_from")
    edges = list(rates.desi_from.astype(float)) + [float(rates.desi_to.astype(float).iloc[-1])]
    band = pd.cut(o.desi.astype(float) * o.quantity, edges, right=False, labels=False)
    o["rate"] = rates.cost.astype(float).to_numpy()[band.fillna(0).astype(int)]
    o.loc[band.isna(), "rate"] = float("nan")
    o["local"] = o.ordered_at.dt.tz_convert("Europe/Istanbul").dt.tz_localize(None)
    o["gross"] = o.quantity * o.unit_price.astype(float)
    o["cost"] = o.quantity * o.unit_cost.astype(float)
    f = data["order_refunds"].merge(data["orders"][["order_id", "line_no", "shop_id", "listing_id", "sku"]],
                                    on=["order_id", "line_no"], how="left")
    f["local"] = f.refunded_at.dt.tz_convert("Europe/Istanbul").dt.tz_localize(None)
    f["amount"] = f.amount.astype(float)
    freq = {"day": "D", "week": "W-MON", "month": "M", "quarter": "Q", "year": "Y"}
    tables = 0
    for dim, customers in ROLLUPS.values():
        for grain in GRAINS:
            if grain == "week":
                op = o.local.dt.to_period("W-SUN").dt.start_time
                fp = f.local.dt.to_period("W-SUN").dt.start_time
            else:
                op = o.local.dt.to_period(freq[grain]).dt.start_time
                fp = f.local.dt.to_period(freq[grain]).dt.start_time
            aggs = {"gross": ("gross", "sum"), "discounts": ("discount", "sum"), "orders": ("order_id", "nunique"),
                    "units": ("quantity", "sum"), "cogs": ("cost", "sum"), "shipping": ("rate", "sum")}
            if customers:
                aggs["customers"] = ("customer_id", "nunique")
            sales = o.assign(period=op).groupby(["period", dim], dropna=False).agg(**aggs)
            refunds = f.assign(period=fp).groupby(["period", dim], dropna=False).agg(refunds=("amount", "sum"))
            table = sales.join(refunds, how="outer").fillna({"refunds": 0})
            table["revenue"] = table.gross - table.discounts.astype(float)
            table["profit"] = table.revenue - table.refunds - table.cogs - table.shipping
            table["aov"] = table.revenue / table.orders
            tables += 1
    return {"seconds": time.perf_counter() - start, "tables": tables}


def _child(system: str, folder: Path) -> dict:
    code = ("import json, resource; from pathlib import Path; from bench import rollups; "
            f"r = rollups.run_{system}(Path({str(folder)!r})); "
            "r['peak_rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; print(json.dumps(r))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"{system} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(rows: int, seed: int) -> dict:
    report = {"rows": rows}
    for system in ("hand", "tally", "pandas"):
        report[system] = _child(system, workdir(rows, seed, system))
    report["full_ratio"] = report["tally"]["seconds"] / report["hand"]["seconds"]
    report["pandas_ratio"] = report["pandas"]["seconds"] / report["tally"]["seconds"]
    report["targets"] = {"full build <= 0.7x hand SQL": report["full_ratio"] <= 0.7,
                         "incremental < 1 s": report["tally"]["incremental_seconds"] < 1.0,
                         "peak RSS < 3 GiB": report["tally"]["peak_rss_mib"] < 3072}
    for system in ("hand", "tally", "pandas"):
        shutil.rmtree(DATA_ROOT / f"rollups-{rows}-{seed}-{system}", ignore_errors=True)
    return report


def show(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    view = Table(title=f"Rollups: 3 reports x 5 grains on {report['rows']:,} order lines")
    for header in ("system", "seconds", "peak RSS MiB"):
        view.add_column(header, justify="right" if header != "system" else "left")
    for system in ("tally", "hand", "pandas"):
        view.add_row(system + (" (full build)" if system == "tally" else ""), f"{report[system]['seconds']:.2f}",
                     f"{report[system]['peak_rss_mib']:,.0f}")
    view.add_row("tally incremental (+1 day)", f"{report['tally']['incremental_seconds']:.2f}", "")
    Console().print(view)
    print(f"tally / hand SQL = {report['full_ratio']:.2f}x, pandas / tally = {report['pandas_ratio']:.2f}x; "
          f"checked {report['tally']['checked_rows']} month x shop rows against hand SQL; targets: "
          + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in report["targets"].items()))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="order lines (default 10,000,000)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")


def main(args: argparse.Namespace) -> dict:
    report = run(args.rows, args.seed)
    show(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report

"""Ingest benchmark: a CSV of order lines (types + 3 checks) loaded by `tally ingest` vs a bare DuckDB load.

The file is the ecommerce `orders` table of the cached benchmark data, written once as CSV. Each
system runs in its own process (fresh warehouse file), so each has its own peak RSS:

- **tally**: `tally.sources.ingest` with the source below — declared types, primary key, cursor,
  `not_null`, `min` and `accepted_values` checks — into an empty DuckDB warehouse;
- **bare**: `CREATE TABLE orders AS SELECT * FROM read_csv(...)` (DuckDB's own type sniffing, no
  checks, no keys), the floor for loading this file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.data import DATA_ROOT, DEFAULT_ROWS, SEED, ensure

SOURCE = """name: ingest-bench
warehouse: duckdb:///warehouse.duckdb
sources:
  orders:
    kind: csv
    path: orders.csv
    table: orders
    primary_key: [order_id, line_no]
    cursor: updated_at
    columns: {order_id: int64, line_no: int32, shop_id: int32, listing_id: int64, sku: string,
              customer_id: int64, status: string, quantity: int32, unit_price: "decimal(12,2)",
              discount: "decimal(12,2)", ordered_at: timestamp, updated_at: timestamp}
    checks:
      - not_null: [order_id, ordered_at]
      - min: {quantity: 1}
      - accepted_values: {status: [paid, shipped, refunded, cancelled]}
"""


def csv_file(rows: int, seed: int) -> Path:
    """The orders CSV for (rows, seed), written once from the cached parquet export."""
    folder = DATA_ROOT / f"ingest-{rows}-{seed}"
    target = folder / "orders.csv"
    if not target.exists():
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        folder.mkdir(parents=True, exist_ok=True)
        table = pq.read_table(ensure(rows, seed).parquet("orders"))
        pacsv.write_csv(table, folder / "orders.csv.part")
        (folder / "orders.csv.part").rename(target)
    return target


def run_tally(folder: Path) -> dict:
    import tally
    from tally.sources import ingest

    project = tally.Project.load(folder)
    start = time.perf_counter()
    result = ingest(project)[0]
    seconds = time.perf_counter() - start
    assert result.status == "ok", result.error
    return {"seconds": seconds, "rows_read": result.rows_read, "rows_loaded": result.rows_loaded,
            "rows_rejected": result.rows_rejected}


def run_bare(folder: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(folder / "bare.duckdb"))
    con.execute("SET enable_progress_bar = false")
    start = time.perf_counter()
    con.execute(f"CREATE TABLE orders AS SELECT * FROM read_csv('{folder / 'orders.csv'}')")
    seconds = time.perf_counter() - start
    rows = con.execute("SELECT count(*) FROM orders").fetchone()[0]
    return {"seconds": seconds, "rows_loaded": rows}


def _child(system: str, folder: Path) -> dict:
    """Run one system in a fresh process; its numbers plus its peak RSS."""
    code = ("import json, resource, sys; from pathlib import Path; from bench import ingest; "
            f"r = ingest.run_{system}(Path({str(folder)!r})); "
            "r['peak_rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; print(json.dumps(r))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(rows: int, seed: int, reps: int) -> dict:
    source = csv_file(rows, seed)
    folder = source.parent
    (folder / "tally.yml").write_text(SOURCE)
    report = {"rows": rows, "file_mib": source.stat().st_size / 2**20, "tally": [], "bare": []}
    for _ in range(reps):
        for system in ("bare", "tally"):
            for leftover in ("warehouse.duckdb", "warehouse.duckdb.wal", "bare.duckdb", "bare.duckdb.wal"):
                (folder / leftover).unlink(missing_ok=True)
            report[system].append(_child(system, folder))
    best = {s: min(report[s], key=lambda r: r["seconds"]) for s in ("tally", "bare")}
    report["tally_seconds"] = best["tally"]["seconds"]
    report["bare_seconds"] = best["bare"]["seconds"]
    report["rows_per_second"] = rows / best["tally"]["seconds"]
    report["ratio"] = best["tally"]["seconds"] / best["bare"]["seconds"]
    report["tally_peak_rss_mib"] = max(r["peak_rss_mib"] for r in report["tally"])
    report["targets"] = {"rows_per_second >= 1M": report["rows_per_second"] >= 1e6,
                         "within 2x of bare": report["ratio"] <= 2.0,
                         "peak RSS < 2 GiB": report["tally_peak_rss_mib"] < 2048}
    return report


def show(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    view = Table(title=f"Ingest: {report['rows']:,} order lines, {report['file_mib']:.0f} MiB CSV (best of runs)")
    for header in ("system", "seconds", "rows/s", "peak RSS MiB"):
        view.add_column(header, justify="right" if header != "system" else "left")
    for system in ("tally", "bare"):
        best = min(report[system], key=lambda r: r["seconds"])
        view.add_row(system, f"{best['seconds']:.2f}", f"{report['rows'] / best['seconds']:,.0f}",
                     f"{max(r['peak_rss_mib'] for r in report[system]):,.0f}")
    Console().print(view)
    print(f"tally / bare = {report['ratio']:.2f}x; targets: " +
          ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in report["targets"].items()))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="order lines (default 10,000,000)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--reps", type=int, default=2, help="runs of each system (best reported)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")


def main(args: argparse.Namespace) -> dict:
    report = run(args.rows, args.seed, args.reps)
    show(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


"""Benchmark data: the `ecommerce` example project built once per (rows, seed) and cached.

`ensure(rows, seed)` returns a `Dataset` for `bench/data/ecommerce-{rows}-{seed}/`, building it the
first time with `tally.demo.prepare` (the project folder with `tally.yml`, the lookup CSVs and the
DuckDB warehouse `warehouse.duckdb`) and exporting every warehouse table to `parquet/{table}.parquet`,
so the pandas baseline reads exactly the rows the warehouse holds without regenerating them.
A finished build writes `manifest.json`; a folder without one is rebuilt.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROWS = 10_000_000
SEED = 42
DATA_ROOT = Path(__file__).resolve().parent / "data"
TABLES = ("orders", "listing_products", "product_offerings", "order_refunds",
          "product_costs", "product_desi", "shipping_rates")


@dataclass(frozen=True)
class Dataset:
    """A built benchmark project folder."""

    dir: Path
    rows: int
    seed: int

    @property
    def warehouse(self) -> Path:
        return self.dir / "warehouse.duckdb"

    def parquet(self, table: str) -> Path:
        return self.dir / "parquet" / f"{table}.parquet"

    @property
    def manifest(self) -> dict:
        return json.loads((self.dir / "manifest.json").read_text())


def dataset_dir(rows: int, seed: int = SEED) -> Path:
    return DATA_ROOT / f"ecommerce-{rows}-{seed}"


def ensure(rows: int = DEFAULT_ROWS, seed: int = SEED, log=print) -> Dataset:
    """The cached dataset for (rows, seed), built now if missing or unfinished."""
    target = dataset_dir(rows, seed)
    if (target / "manifest.json").exists():
        return Dataset(target, rows, seed)
    building = target.with_name(target.name + ".building")
    for stale in (building, target):
        if stale.exists():
            shutil.rmtree(stale)
    log(f"building benchmark data: {rows:,} order lines, seed {seed} -> {target} (once; cached)")
    began = time.perf_counter()
    counts = _build(building, rows, seed)
    seconds = time.perf_counter() - began
    manifest = {"example": "ecommerce", "rows": rows, "seed": seed, "tables": counts,
                "build_seconds": round(seconds, 1),
                "warehouse_bytes": (building / "warehouse.duckdb").stat().st_size}
    (building / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    building.rename(target)
    log(f"built in {seconds:.0f} s: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return Dataset(target, rows, seed)


def _build(folder: Path, rows: int, seed: int) -> dict[str, int]:
    import duckdb

    from tally.demo import prepare

    project, _ = prepare("ecommerce", folder, rows, seed=seed)
    project.close()  # checkpoints the warehouse and releases its lock
    (folder / "parquet").mkdir()
    counts = {}
    con = duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True)
    try:
        con.execute("SET enable_progress_bar = false")
        for table in TABLES:
            path = folder / "parquet" / f"{table}.parquet"
            con.execute(f"COPY {table} TO '{path}' (FORMAT parquet)")
            counts[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        con.close()
    return counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="order lines (default 10,000,000)")
    parser.add_argument("--seed", type=int, default=SEED)


def main(args: argparse.Namespace) -> dict:
    ds = ensure(args.rows, args.seed)
    print(json.dumps(ds.manifest, indent=2))
    return ds.manifest

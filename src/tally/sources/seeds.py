"""Seeds: small lookup files in the project folder (costs, rates) loaded whole into the warehouse."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from tally.errors import ConfigError
from tally.project.schema import Seed
from tally.warehouse import Warehouse
from tally.warehouse.types import arrow_type


def read_seed(root: Path, name: str, seed: Seed) -> pa.Table:
    """Read a seed CSV with its declared column types; ConfigError with the file on bad data."""
    path = root / seed.path
    if not path.exists():
        raise ConfigError(f"seed {name!r}: file {seed.path} not found in {root}")
    types = {col: arrow_type(kind) for col, kind in seed.columns.items()}
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
    except pa.ArrowInvalid as exc:
        raise ConfigError(f"seed {name!r}: cannot read {seed.path}: {exc}") from None
    missing = sorted(set(types) - set(table.column_names))
    if missing:
        raise ConfigError(f"seed {name!r}: {seed.path} has no column(s) {', '.join(missing)} "
                          f"(it has: {', '.join(table.column_names)})")
    return table


def load_seeds(root: Path, seeds: dict[str, Seed], warehouse: Warehouse, names=None) -> dict[str, int]:
    """Replace each seed's table with the file's rows; returns rows loaded per seed."""
    from tally.warehouse.internal import ensure_internal_tables, write_state

    unknown = [n for n in names or () if n not in seeds]
    if unknown:   # a misspelt name would load nothing and say nothing
        raise ConfigError(f"unknown seed(s) {', '.join(unknown)} (seeds: {', '.join(seeds) or 'none'})")
    ensure_internal_tables(warehouse)
    loaded = {}
    for name, seed in seeds.items():
        if names and name not in names:
            continue
        table = read_seed(root, name, seed)
        warehouse.write_table(seed.table or name, table)
        digest = hashlib.sha256((root / seed.path).read_bytes()).hexdigest()[:16]
        with warehouse.transaction() as tx:   # rollups joined to this table see it was reloaded
            write_state(tx, f"table:{seed.table or name}", digest)
        loaded[name] = table.num_rows
    return loaded
